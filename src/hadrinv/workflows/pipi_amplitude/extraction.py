"""What an extraction method returns: phase shifts with errors, the amplitude at the data points,
and metrics against the data (and against the truth when the data were simulated)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_csv
from hadrinv.models.pipi import PipiProblem
from hadrinv.physics.partial_waves import UnitarityRelation, amplitude_from_waves
from hadrinv.physics.quadrature import gauss_legendre


@dataclass
class Extraction:
    method: str
    energies: np.ndarray  # (n_s,) GeV^2
    delta_deg: np.ndarray  # (n_s, n_waves), physical branch
    delta_err_deg: np.ndarray  # (n_s, n_waves), 1 sigma
    waves: np.ndarray  # complex (n_s, n_waves), central
    amplitude: np.ndarray  # complex (n_points,), at the data points
    amplitude_err: np.ndarray  # complex (n_points,): re and im 1-sigma errors
    metrics: dict = field(default_factory=dict)
    pulls: np.ndarray | None = None  # (model - data) / error at the points
    pooled_err_deg: np.ndarray | None = None  # GAN: spread of all latent samples, a diagnostic
    intervals_deg: dict[int, tuple[np.ndarray, np.ndarray]] | None = None  # level in % -> (low, high) (n_s, n_waves)

    def write(self, folder: Path, problem: PipiProblem) -> None:
        n_waves = self.delta_deg.shape[1]
        header = ["s"] + [f"delta{l}_{kind}" for l in range(n_waves) for kind in ("deg", "err_deg")]
        rows = [
            [f"{s:.10g}"]
            + [f"{v:.8g}" for l in range(n_waves) for v in (self.delta_deg[i, l], self.delta_err_deg[i, l])]
            for i, s in enumerate(self.energies)
        ]
        atomic_write_csv(folder / "partial_waves.csv", header, rows)
        s, z = problem.s.numpy(), problem.cos_theta.numpy()
        a, e = self.amplitude, self.amplitude_err
        rows = [
            [
                f"{s[i]:.10g}",
                f"{z[i]:.10g}",
                f"{a[i].real:.10g}",
                f"{a[i].imag:.10g}",
                f"{e[i].real:.6g}",
                f"{e[i].imag:.6g}",
            ]
            for i in range(len(s))
        ]
        atomic_write_csv(folder / "amplitude.csv", ["s", "cos_theta", "re_A", "im_A", "re_A_err", "im_A_err"], rows)


def data_metrics(problem: PipiProblem, waves: torch.Tensor, n_parameters: int) -> tuple[dict, np.ndarray]:
    """chi2/ndf of the central waves, the talk's unitarity loss on them, and the pulls."""
    sigma = problem.cross_section(waves.real, waves.imag)
    pulls = ((sigma - problem.dsigma) / problem.error).numpy()
    chi2 = float((pulls**2).sum())
    ndf = max(len(problem) - n_parameters, 1)
    z, _ = gauss_legendre(16)
    unitarity = UnitarityRelation(z, problem.l_max)
    return {"chi2": chi2, "ndf": ndf, "chi2_ndf": chi2 / ndf, "unitarity_loss": float(unitarity.loss(waves))}, pulls


def truth_metrics(
    delta_deg: np.ndarray, delta_err_deg: np.ndarray, truth_deg: np.ndarray, intervals_deg: dict | None = None
) -> dict:
    """Per wave: RMS and max error over the energies, the fraction of energies inside the 1-sigma band,
    and inside each interval (level in % -> (low, high)) where the method gives intervals."""
    diff = delta_deg - truth_deg
    out = {}
    for l in range(truth_deg.shape[1]):
        out[f"delta{l}_rms_error_deg"] = float(np.sqrt(np.mean(diff[:, l] ** 2)))
        out[f"delta{l}_max_error_deg"] = float(np.max(np.abs(diff[:, l])))
        out[f"delta{l}_band_coverage"] = float(np.mean(np.abs(diff[:, l]) <= delta_err_deg[:, l]))
        for level, (low, high) in (intervals_deg or {}).items():
            inside = (truth_deg[:, l] >= low[:, l]) & (truth_deg[:, l] <= high[:, l])
            out[f"delta{l}_coverage_{level}"] = float(np.mean(inside))
    return out


def align_to_truth_period(delta_deg: np.ndarray, truth_deg: np.ndarray) -> np.ndarray:
    """Phase shifts are defined modulo 180 degrees: shift each wave by the multiple closest to the truth."""
    shift = np.round(np.mean(truth_deg - delta_deg, axis=0) / 180.0) * 180.0
    return delta_deg + shift


def amplitude_at_points(problem: PipiProblem, waves: torch.Tensor) -> torch.Tensor:
    """A(s, z) at the data points from waves at the energies (..., n_s, n_waves)."""
    return amplitude_from_waves(waves[..., problem.energy_index, :], problem.cos_theta)


def waves_on_fine_grid(energies: np.ndarray, delta_deg: np.ndarray, waves: np.ndarray, s_fine: np.ndarray):
    """Partial waves (len(s_fine), n_waves) between the measured energies.

    Interpolates the phase shift (on its continuous branch) and the inelasticity eta = |1 + 2i f|
    linearly in s, then rebuilds f = (eta exp(2i delta) - 1) / 2i: interpolating Re f and Im f
    instead would cut across the unitarity circle near a narrow resonance.
    """
    order = np.argsort(energies)
    s, delta = energies[order], np.radians(delta_deg[order])
    eta = np.abs(1.0 + 2.0j * waves[order])
    d = np.stack([np.interp(s_fine, s, delta[:, l]) for l in range(delta.shape[1])], axis=-1)
    e = np.stack([np.interp(s_fine, s, eta[:, l]) for l in range(eta.shape[1])], axis=-1)
    return (e * np.exp(2.0j * d) - 1.0) / 2.0j


def rad2deg(x: torch.Tensor) -> np.ndarray:
    return (x * (180.0 / math.pi)).numpy()
