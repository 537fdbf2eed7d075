"""Differential cross sections dsigma/dOmega(s, cos theta): reading, validation, writing.

CSV columns: s (GeV^2), cos_theta, dsigma_domega (GeV^-2) and an optional error (GeV^-2, one standard
deviation). Any grid is accepted: irregular s, a different number of angles per energy.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hadrinv.data.io import atomic_write_text
from hadrinv.data.validation import DataError, check_magnitudes, read_numeric_csv, read_truth, truth_path

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
    values = read_numeric_csv(
        path, REQUIRED_COLUMNS, OPTIONAL_COLUMNS, lambda row, v: _check_point(path, row, v, s_threshold_gev2)
    )
    return CrossSectionData(
        s=values["s"],
        cos_theta=values["cos_theta"],
        dsigma_domega=values["dsigma_domega"],
        error=values.get("error"),
        source=str(path),
        truth=read_truth(path),
    )


def _check_point(path: Path, row: int, v: dict, s_threshold_gev2: float) -> None:
    s = v["s"]
    if s <= s_threshold_gev2:
        raise DataError(
            path,
            f"s = {s:g} GeV^2 is at or below the threshold (2 m_pi)^2 = {s_threshold_gev2:.5f} GeV^2 (is s in GeV^2?)",
            row,
        )
    z = v["cos_theta"]
    if not -1.0 <= z <= 1.0:
        raise DataError(path, f"cos_theta = {z:g} is outside [-1, 1]", row)
    if "error" in v and v["error"] <= 0:
        raise DataError(path, f"error = {v['error']:g} must be positive", row)
    # cross sections are of order 1e-6..1e4 GeV^-2; a value like 1e300 sends the fit into overflowing pulls for minutes
    check_magnitudes(path, row, v, ("dsigma_domega", "error"), errors=("error",))


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
