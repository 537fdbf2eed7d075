"""delta_0^0, delta_1^1 and delta_0^2 from several charge channels: the fit and the diffusion posterior.

Both work on the elastic region (below the K Kbar threshold), where four channels fix the three phases at
every energy (`fit`). The diffusion model is the single-channel one (`diffusion_method`) with the
isospin forward model behind its spline: three phase-shift curves on cubic B-splines in s, elastic waves,
each data point in its own channel. Its prior is centred on the fit, as for one channel.

Above the threshold the moduli of the channels' amplitudes do not fix the waves (see
`physics.pipi_isospin.common_phase_interval`): `family_extraction` reports the member the fit keeps
(`fit.inelastic_family`), and `inelastic` holds the diffusion posterior and the spline fit there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from hadrinv.models.pipi_isospin import WAVE_NAMES, IsospinProblem
from hadrinv.physics.pipi_isospin import inelastic_wave
from hadrinv.workflows.pipi_amplitude.config import DiffusionConfig
from hadrinv.workflows.pipi_amplitude.diffusion_method import (
    LEVELS,
    SplinePhaseModel,
    run_diffusion,
    sample_intervals_deg,
)
from hadrinv.workflows.pipi_amplitude.fit_method import chi2_p_value, fit_is_valid
from hadrinv.workflows.pipi_amplitude.gan_method import spline_design
from hadrinv.workflows.pipi_isospin.fit import InelasticFamily, IsospinFit, continuous_choice


class IsospinSplineModel(SplinePhaseModel):
    """Charge-channel cross sections from spline coefficients (..., 3 * n_basis) of the three elastic phases."""

    def __init__(self, problem: IsospinProblem, n_basis: int):
        self.problem, self.n_basis = problem, n_basis
        self.design = spline_design(problem, n_basis).to(problem.s.device)
        self.n_curves = problem.n_waves
        self.dim = self.n_curves * n_basis

    def cross_section(self, coefficients: torch.Tensor) -> torch.Tensor:
        return self.problem.cross_section_from_waves(inelastic_wave(self.delta(coefficients)))


@dataclass
class IsospinExtraction:
    """Phase shifts in degrees, (n_s, 3) in the order of `WAVE_NAMES`, with 1-sigma errors and intervals;
    above the inelastic threshold also the inelasticities."""

    method: str
    energies: np.ndarray  # (n_s,) GeV^2
    delta_deg: np.ndarray
    delta_err_deg: np.ndarray
    intervals_deg: dict[int, tuple[np.ndarray, np.ndarray]]
    metrics: dict = field(default_factory=dict)
    eta: np.ndarray | None = None  # (n_s, 3)
    eta_err: np.ndarray | None = None
    eta_intervals: dict[int, tuple[np.ndarray, np.ndarray]] | None = None

    def compare(self, truth_deg: np.ndarray, truth_eta: np.ndarray | None = None) -> dict:
        """RMS error and 68 / 95 % coverage of each wave against the true phases (n_s, 3) in degrees; the
        whole curve is moved by the multiple of 180 degrees that brings it closest to the truth. With the
        true inelasticities (and inelasticities here): their largest and RMS error and coverage too."""
        shift = np.round((truth_deg - self.delta_deg).mean(0) / 180.0) * 180.0
        error = self.delta_deg + shift - truth_deg
        out = {}
        for k, name in enumerate(WAVE_NAMES):
            out[f"rms_{name}_deg"] = float(np.sqrt(np.mean(error[:, k] ** 2)))
            for level, (lo, hi) in self.intervals_deg.items():
                inside = (truth_deg[:, k] >= lo[:, k] + shift[k]) & (truth_deg[:, k] <= hi[:, k] + shift[k])
                out[f"coverage_{level}_{name}"] = float(inside.mean())
        if truth_eta is None or self.eta is None:
            return out
        for k, name in enumerate(WAVE_NAMES):
            name = "eta" + name.removeprefix("delta")
            out[f"max_{name}_err"] = float(np.abs(self.eta[:, k] - truth_eta[:, k]).max())
            out[f"rms_{name}"] = float(np.sqrt(np.mean((self.eta[:, k] - truth_eta[:, k]) ** 2)))
            for level, (lo, hi) in (self.eta_intervals or {}).items():
                inside = (truth_eta[:, k] >= lo[:, k]) & (truth_eta[:, k] <= hi[:, k])
                out[f"coverage_{level}_{name}"] = float(inside.mean())
        return out


def fit_extraction(problem: IsospinProblem, fit: IsospinFit) -> IsospinExtraction:
    """The fit's phases with Gaussian intervals from its Hessian errors."""
    delta, err = np.degrees(fit.delta.numpy()), np.degrees(fit.delta_err.numpy())
    intervals = gaussian_intervals(delta, err)
    metrics = {
        "chi2": fit.fit.fval,
        "ndf": fit.fit.ndf,
        "chi2_p_value": fit.chi2_p_value,
        "is_valid": fit_is_valid(fit.fit.is_valid, fit.chi2_p_value),
        "seconds": fit.seconds,
    }
    return IsospinExtraction("fit", problem.energies.numpy(), delta, err, intervals, metrics)


def diffusion_isospin(
    problem: IsospinProblem,
    fit: IsospinFit | tuple[torch.Tensor, torch.Tensor],
    cfg: DiffusionConfig | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> IsospinExtraction:
    """Posterior samples of the three phase-shift curves, the prior centred on `fit` (or on phases and errors
    (n_s, 3) in radians); central value the sample mean, intervals the sample quantiles. Valid when the spline
    describes the data (p-value) and the held-out 68 % coverage is within the configured tolerance."""
    cfg = cfg or DiffusionConfig(hidden=192)  # 72 coefficients: the denoiser must be wider than that
    start = (fit.delta, fit.delta_err) if isinstance(fit, IsospinFit) else fit
    result = run_diffusion(problem, cfg, start, seed=seed, device=device, model_type=IsospinSplineModel)
    samples = result["delta"]  # (samples, n_s, 3) radians
    central = samples.mean(0)
    metrics = diffusion_metrics(problem, inelastic_wave(central), result, cfg)
    return IsospinExtraction(
        "diffusion",
        problem.energies.numpy(),
        np.degrees(central.numpy()),
        np.degrees(samples.std(0).numpy()),
        sample_intervals_deg(samples),
        metrics,
    )


def family_extraction(family: InelasticFamily) -> IsospinExtraction:
    """The fit above the threshold: the member of the common-phase family with the nearly elastic waves
    closest to elastic (phases continuous in s, errors from the replicas). Its eta intervals are the
    assumption's band, the members whose nearly elastic waves keep 1 - eta <= tolerance, widened by one
    (68 %) or two (95 %) replica errors and cut at the unitarity bound; the phase intervals are Gaussian.
    Valid when every energy's minimiser converged and the summed chi^2 has a p-value of at least 1e-3."""
    curves, errors = continuous_choice(family)
    delta, err = np.degrees(curves[:, :3].numpy()), np.degrees(errors[:, :3].numpy())
    eta, eta_err = family.eta_choice.numpy(), family.eta_choice_err.numpy()
    spread = np.nan_to_num(eta_err)
    low, high = (v.numpy() for v in family.eta_assumed_range)
    chi2, ndf = float(family.chi2.sum()), int(family.ndf.sum())
    p_value = chi2_p_value(chi2, ndf)
    metrics = {
        "chi2": chi2,
        "ndf": ndf,
        "chi2_p_value": p_value,
        "converged_fraction": float(family.converged.double().mean()),
        "is_valid": bool(family.converged.all()) and fit_is_valid(True, p_value),
        "seconds": family.seconds,
    }
    return IsospinExtraction(
        "fit",
        family.energies.numpy(),
        delta,
        err,
        gaussian_intervals(delta, err),
        metrics,
        eta=eta,
        eta_err=eta_err,
        eta_intervals={
            68: (low - spread, np.minimum(high + spread, 1.0)),
            95: (low - 2 * spread, np.minimum(high + 2 * spread, 1.0)),
        },
    )


def gaussian_intervals(
    value: np.ndarray, error: np.ndarray, upper: float = math.inf
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The central 68 and 95 % intervals value -+ z error (level in % -> (low, high)), high cut at `upper`."""
    intervals = {}
    for level in LEVELS:
        z = math.sqrt(2.0) * float(torch.special.erfinv(torch.tensor(level, dtype=torch.float64)))
        intervals[round(level * 100)] = (value - z * error, np.minimum(value + z * error, upper))
    return intervals


def data_chi2(problem: IsospinProblem, waves: torch.Tensor, n_parameters: int) -> tuple[float, int, float]:
    """chi^2 of the waves (n_s, 3) against the data, its degrees of freedom and p-value."""
    problem64 = problem.to(dtype=torch.float64)
    pulls = (problem64.cross_section_from_waves(waves) - problem64.dsigma) / problem64.error
    chi2, ndf = float(pulls.pow(2).sum()), len(problem) - n_parameters
    return chi2, ndf, chi2_p_value(chi2, ndf)


def diffusion_metrics(problem: IsospinProblem, waves: torch.Tensor, result: dict, cfg: DiffusionConfig) -> dict:
    """Metrics of a diffusion posterior (`run_diffusion`'s result) with central waves (n_s, 3): valid when they
    describe the data (p-value) and the held-out 68 % coverage is within the configured tolerance of 0.68."""
    chi2, ndf, p_value = data_chi2(problem, waves, result["n_shape_parameters"])
    calibrated = abs(result["calibration_coverage_68"] - 0.68) <= cfg.calibration_tolerance
    return {
        "chi2": chi2,
        "ndf": ndf,
        "chi2_p_value": p_value,
        "is_valid": fit_is_valid(result["map_valid"], p_value) and calibrated,
        "calibration_coverage_68": result["calibration_coverage_68"],
        "calibration_coverage_95": result["calibration_coverage_95"],
        "band_scale": result["band_scale"],
        "training_epochs": result["training"]["epochs"],
        "seconds": result["seconds"],
    }
