"""Differential cross sections dsigma/dOmega(s, cos theta): reading, validation, writing.

CSV columns: s (GeV^2), cos_theta, dsigma_domega (GeV^-2) and an optional error (GeV^-2, one standard
deviation). Any grid is accepted: irregular s, a different number of angles per energy.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hadrinv.data.io import atomic_write_text
from hadrinv.data.validation import DataError

REQUIRED_COLUMNS = ("s", "cos_theta", "dsigma_domega")
OPTIONAL_COLUMNS = ("error",)


@dataclass
class CrossSectionData:
    """Measured points, one per row; arrays of equal length, float64."""

    s: np.ndarray
    cos_theta: np.ndarray
    dsigma_domega: np.ndarray
    error: np.ndarray | None = None
    source: str = "<memory>"
    truth: dict = field(default_factory=dict)  # generating parameters, when the data are simulated

    def __len__(self) -> int:
        return len(self.s)

    @property
    def energies(self) -> np.ndarray:
        """Distinct s values, sorted."""
        return np.unique(self.s)

    @property
    def energy_index(self) -> np.ndarray:
        """For each point, the index of its s in `energies`."""
        return np.searchsorted(self.energies, self.s)


def read_cross_sections(path: str | Path, s_threshold_gev2: float) -> CrossSectionData:
    """Read and validate a cross-section CSV; raises DataError naming file, row and problem.

    A sidecar FILE.truth.json (written by `hadrinv simulate`) is attached as `truth` when present.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(path, "empty file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(path, "not a CSV text file (cannot decode as UTF-8)") from None
    if "\x00" in text:
        raise DataError(path, "not a CSV text file (contains binary data)")
    # split on newlines only: str.splitlines() also splits at form feeds and would shift the row numbers
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError(path, "empty file (only comments)")
    header_row, header_line = lines[0]
    header = [h.strip() for h in next(csv.reader(io.StringIO(header_line)))]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)} in header {header_line.strip()!r}; expected {', '.join(REQUIRED_COLUMNS)}[, error]", header_row)
    columns = {name: header.index(name) for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if name in header}
    if len(lines) == 1:
        raise DataError(path, "no data rows after the header")
    values = {name: np.empty(len(lines) - 1) for name in columns}
    for i, (row, line) in enumerate(lines[1:]):
        fields = next(csv.reader(io.StringIO(line)))
        if len(fields) != len(header):
            raise DataError(path, f"{len(fields)} fields, header has {len(header)}", row)
        for name, col in columns.items():
            text_value = fields[col].strip()
            try:
                value = float(text_value)
            except ValueError:
                raise DataError(path, f"column {name}: {text_value!r} is not a number", row) from None
            if not math.isfinite(value):
                raise DataError(path, f"column {name}: value is {text_value} (must be finite)", row)
            values[name][i] = value
        _check_point(path, row, values, i, s_threshold_gev2)
    data = CrossSectionData(
        s=values["s"], cos_theta=values["cos_theta"], dsigma_domega=values["dsigma_domega"],
        error=values.get("error"), source=str(path), truth=_read_truth(path),
    )
    return data


def _check_point(path: Path, row: int, values: dict, i: int, s_threshold_gev2: float) -> None:
    s = values["s"][i]
    if s <= s_threshold_gev2:
        raise DataError(path, f"s = {s:g} GeV^2 is at or below the threshold (2 m_pi)^2 = {s_threshold_gev2:.5f} GeV^2 (is s in GeV^2?)", row)
    z = values["cos_theta"][i]
    if not -1.0 <= z <= 1.0:
        raise DataError(path, f"cos_theta = {z:g} is outside [-1, 1]", row)
    if "error" in values and values["error"][i] <= 0:
        raise DataError(path, f"error = {values['error'][i]:g} must be positive", row)


def _read_truth(path: Path) -> dict:
    sidecar = truth_path(path)
    if not sidecar.is_file():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(sidecar, f"not valid JSON ({exc.msg})", exc.lineno) from None


def truth_path(path: str | Path) -> Path:
    """Where the generating parameters of a simulated data file are kept."""
    path = Path(path)
    return path.with_name(path.name + ".truth.json")


def write_cross_sections(data: CrossSectionData, path: str | Path) -> Path:
    """Write the CSV (and its truth sidecar when known), atomically."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    has_error = data.error is not None
    writer.writerow(list(REQUIRED_COLUMNS) + (["error"] if has_error else []))
    for i in range(len(data)):
        row = [repr(float(data.s[i])), repr(float(data.cos_theta[i])), repr(float(data.dsigma_domega[i]))]
        if has_error:
            row.append(repr(float(data.error[i])))
        writer.writerow(row)
    if data.truth:
        atomic_write_text(truth_path(path), json.dumps(data.truth, indent=2) + "\n")
    atomic_write_text(path, buffer.getvalue())
    return path
