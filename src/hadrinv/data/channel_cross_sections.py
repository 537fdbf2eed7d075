"""dsigma/dOmega of several pi pi charge channels in one table: reading, validation, writing.

CSV columns: channel, s (GeV^2), cos_theta, dsigma_domega and error (GeV^-2, one standard deviation).
channel is one of `physics.pipi_isospin.CHANNELS` (pi+pi-, pi0pi0, pi+pi+, pi+pi0, pi+pi-_pi0pi0); each
channel may have its own energies and angles. The channel "S0-inelastic" (`INELASTIC_CHANNELS`) holds in
dsigma_domega and error 1 - eta^2 of the S0 wave (dimensionless: |S(pi pi -> K Kbar)|^2 where K Kbar is the
only inelastic channel), at most once per energy, at or above the K Kbar threshold; its cos_theta is not
used. The error is required: the channels are weighed against each other by it, and no single assumed
relative error is right for all of them. Normalisation: |A|^2 / (64 pi^2 s)
(`physics.pipi_isospin.channel_cross_section`), without the 1/2 of identical final particles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hadrinv.data.io import atomic_write_csv, atomic_write_text
from hadrinv.data.validation import DataError, check_magnitudes, read_numeric_csv, read_truth, truth_path
from hadrinv.physics.pipi_isospin import ALL_CHANNELS, INELASTIC_CHANNELS, S_K_GEV2, S_PI_GEV2

REQUIRED_COLUMNS = ("s", "cos_theta", "dsigma_domega", "error")


@dataclass
class ChannelCrossSections:
    """Measured points, one per row: arrays of equal length (float64, the channel names as str)."""

    channel: np.ndarray
    s: np.ndarray
    cos_theta: np.ndarray
    dsigma_domega: np.ndarray
    error: np.ndarray
    source: str = "<memory>"
    truth: dict = field(default_factory=dict)  # generating settings, when the data are simulated

    def __len__(self) -> int:
        return len(self.s)


def read_channel_cross_sections(path: str | Path) -> ChannelCrossSections:
    """Read and validate a multi-channel CSV; raises DataError naming file, row and problem. A sidecar
    FILE.truth.json (written with simulated data) is attached as `truth` when present."""
    path = Path(path)
    values = read_numeric_csv(
        path, REQUIRED_COLUMNS, check_row=lambda row, v: _check_point(path, row, v), label_columns=("channel",)
    )
    for name in INELASTIC_CHANNELS:
        s = values["s"][values["channel"] == name]
        repeated = np.unique(s, return_counts=True)[1] > 1
        if repeated.any():
            raise DataError(path, f"{name}: s = {np.unique(s)[repeated][0]:g} GeV^2 appears more than once")
    return ChannelCrossSections(
        channel=values["channel"],
        s=values["s"],
        cos_theta=values["cos_theta"],
        dsigma_domega=values["dsigma_domega"],
        error=values["error"],
        source=str(path),
        truth=read_truth(path),
    )


def _check_point(path: Path, row: int, v: dict) -> None:
    if v["channel"] not in ALL_CHANNELS:
        raise DataError(path, f"channel {v['channel']!r} is not one of {', '.join(ALL_CHANNELS)}", row)
    if v["channel"] in INELASTIC_CHANNELS and v["s"] < S_K_GEV2:
        raise DataError(
            path, f"{v['channel']}: s = {v['s']:g} GeV^2 is below the K Kbar threshold {S_K_GEV2:.5f} GeV^2", row
        )
    if v["s"] <= S_PI_GEV2:
        raise DataError(
            path,
            f"s = {v['s']:g} GeV^2 is at or below the threshold (2 m_pi)^2 = {S_PI_GEV2:.5f} GeV^2 (is s in GeV^2?)",
            row,
        )
    if not -1.0 <= v["cos_theta"] <= 1.0:
        raise DataError(path, f"cos_theta = {v['cos_theta']:g} is outside [-1, 1]", row)
    if v["error"] <= 0:
        raise DataError(path, f"error = {v['error']:g} must be positive", row)
    check_magnitudes(path, row, v, ("dsigma_domega", "error"), errors=("error",))


def write_channel_cross_sections(data: ChannelCrossSections, path: str | Path) -> Path:
    """Write the CSV (and its truth sidecar when known), atomically."""
    path = Path(path)
    columns = (data.s, data.cos_theta, data.dsigma_domega, data.error)
    rows = ([str(c), *(repr(float(v[i])) for v in columns)] for i, c in enumerate(data.channel))
    if data.truth:
        atomic_write_text(truth_path(path), json.dumps(data.truth, indent=2) + "\n")
    return atomic_write_csv(path, ["channel", *REQUIRED_COLUMNS], rows)
