"""Femtoscopic correlation functions C(k) of a hadron pair: the CSV reader and writer of `femto-inverse`.

File format (CSV, header line first; lines starting with '#' are comments, blank lines are skipped):

    k_mev,C[,error][,delta_deg]

- k_mev: the relative momentum k* of the pair in its rest frame, in MeV; > 0, strictly increasing.
- C: the correlation function, dimensionless (a ratio of pair yields, so >= 0; C -> 1 at large k).
- error: the 1-sigma absolute error on C, > 0 (required for measured data; in files of `hadrinv simulate femto`
  C is exact and the error is a stated fraction of it, what a measurement would carry).
- delta_deg: the phase shift in degrees at each k (present in simulated files, for comparison).

A simulated file has a sidecar FILE.truth.json with its generating parameters (see `truth_path`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_text
from hadrinv.data.validation import DataError, check_magnitudes, read_numeric_csv, truth_path

MIN_POINTS = 3
# Below this every k is implausibly small for MeV: femtoscopy spans k ~ 1-300 MeV, while the same data in
# GeV or fm^-1 (1 fm^-1 = 197 MeV) lie below ~1.5.
SUSPICIOUS_K_MAX = 2.0


@dataclass(frozen=True)
class CorrelationData:
    """C(k) at n points, float64 arrays of equal length; k in MeV."""

    k_mev: np.ndarray
    C: np.ndarray
    error: np.ndarray | None
    delta_deg: np.ndarray | None
    source: str  # the file path, or "simulated"

    def __len__(self) -> int:
        return len(self.k_mev)

    def as_tensors(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(k in MeV, C, error or None) as tensors of dtype."""
        error = None if self.error is None else torch.as_tensor(self.error, dtype=dtype)
        return torch.as_tensor(self.k_mev, dtype=dtype), torch.as_tensor(self.C, dtype=dtype), error


def read_correlation_csv(path: str | Path, require_error: bool = True) -> CorrelationData:
    """Read and validate a correlation-function CSV; raises DataError 'FILE:ROW: problem' (header = line 1).

    Checks, besides those of read_numeric_csv: k_mev > 0, C >= 0, error > 0, k strictly increasing,
    k in MeV (not GeV or fm^-1), at least MIN_POINTS points. The error column is optional unless require_error.
    """
    path = Path(path)
    required, optional = ("k_mev", "C"), ("delta_deg",)
    required, optional = (required + ("error",), optional) if require_error else (required, ("error",) + optional)
    rows: list[int] = []  # file line of each data row: read_numeric_csv skips comments and blank lines

    def check_row(row: int, v: dict) -> None:
        rows.append(row)
        if v["k_mev"] <= 0:
            raise DataError(path, f"k_mev = {v['k_mev']:g} must be positive (relative momentum in MeV)", row)
        if v["C"] < 0:
            raise DataError(
                path, f"C = {v['C']:g} is negative (a correlation function is a ratio of pair yields, >= 0)", row
            )
        if "error" in v and v["error"] <= 0:
            raise DataError(path, f"error = {v['error']:g} must be positive (1-sigma error on C)", row)
        # femto-inverse fits C(k) by least squares: such values overflow its squared pulls
        check_magnitudes(path, row, v, ("k_mev", "C", "error", "delta_deg"), errors=("error",))

    values = read_numeric_csv(path, required, optional, check_row)
    k = values["k_mev"]
    if len(k) < MIN_POINTS:
        raise DataError(path, f"{len(k)} data point(s); at least {MIN_POINTS} are needed")
    steps = np.diff(k)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        if steps[i] == 0:
            problem = f"duplicated k_mev = {k[i + 1]:g} (also on line {rows[i]}); k must be strictly increasing"
        else:
            problem = f"k_mev decreases from {k[i]:g} (line {rows[i]}) to {k[i + 1]:g}; k must be strictly increasing"
        raise DataError(path, problem, rows[i + 1])
    if k.max() < SUSPICIOUS_K_MAX:
        raise DataError(
            path,
            f"all k_mev < {SUSPICIOUS_K_MAX:g} (max {k.max():g}): k looks like GeV or fm^-1; the column is k in MeV",
        )
    return CorrelationData(
        k_mev=k, C=values["C"], error=values.get("error"), delta_deg=values.get("delta_deg"), source=str(path)
    )


def write_correlation_csv(path: str | Path, k_mev, C, error=None, delta_deg=None, truth: dict | None = None) -> Path:
    """Write the CSV `k_mev,C[,error][,delta_deg]` atomically (floats exactly, via repr), and `truth` as its
    JSON sidecar."""
    path = Path(path)
    columns = {"k_mev": k_mev, "C": C, "error": error, "delta_deg": delta_deg}
    columns = {name: np.asarray(a, dtype=np.float64).reshape(-1) for name, a in columns.items() if a is not None}
    n = len(columns["k_mev"])
    for name, array in columns.items():
        if len(array) != n:
            raise ValueError(f"column {name} has {len(array)} values, k_mev has {n}")
    lines = [",".join(columns)] + [",".join(repr(float(a[i])) for a in columns.values()) for i in range(n)]
    if truth is not None:
        atomic_write_text(truth_path(path), json.dumps(truth, indent=2) + "\n")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
