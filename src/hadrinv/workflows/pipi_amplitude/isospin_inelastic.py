"""The S0, P and S2 waves above the K Kbar threshold by conditional diffusion, under a stated assumption.

Above 2 m_K every channel's cross section is unchanged by a common phase of all the waves
(`physics.pipi_isospin.common_phase_interval`): the data leave a flat direction at every energy, and no
posterior exists without a further assumption. The one used here is the fit's (`isospin_fit.inelastic_family`):
the P and S2 waves nearly elastic, here as a Gaussian pseudo-observation 1 - eta = 0 +- `elastic_width` of each
of them at every energy. The simulations draw it like any measurement, so the posterior is the data's times
the assumption's, and the assumption's width shows in the band instead of hiding in a choice.

Representation: six curves on cubic B-splines in s over the inelastic energies, delta_0^0, delta_1^1, delta_0^2
(radians) and epsilon_l = 1 - eta_l of the same waves. epsilon, not u with eta = cos^2 u as in the fit: the map
must be regular at eta = 1, where the P and S2 waves sit, or the Laplace approximation that the prior is built
from is singular there (d eta / du = 0 at u = 0). The Gaussian's tail beyond the unitarity bound is cut: a
sample's eta above 1 is reported as 1 (unitarity as an inequality), and the fraction cut is a metric.

The prior is centred on the fit's choice (`inelastic_family`), made continuous in s on the rising branch.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hadrinv.inference.networks import bspline_design_matrix
from hadrinv.models.pipi_isospin import IsospinProblem
from hadrinv.physics.partial_waves import rising_path, wrap_half_period
from hadrinv.physics.pipi_isospin import (
    inelastic_wave,
    rotate_waves,
    unitary_rotation,
    wave_phase_and_inelasticity,
)
from hadrinv.workflows.pipi_amplitude.config import DiffusionConfig
from hadrinv.workflows.pipi_amplitude.diffusion_method import LEVELS, SplinePhaseModel, run_diffusion
from hadrinv.workflows.pipi_amplitude.fit_method import chi2_p_value, fit_is_valid
from hadrinv.workflows.pipi_amplitude.isospin import IsospinExtraction
from hadrinv.workflows.pipi_amplitude.isospin_fit import InelasticFamily

_PATH_SIGN = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # delta_0^2 falls: followed as -delta_0^2


class InelasticSplineModel(SplinePhaseModel):
    """Cross sections of the charge channels, then the pseudo-observations epsilon of the `nearly_elastic`
    waves at every energy, from spline coefficients (..., 6 * n_basis): three phases, three epsilons."""

    def __init__(
        self, problem: IsospinProblem, n_basis: int, elastic_width: float = 0.05, nearly_elastic: tuple = (1, 2)
    ):
        if elastic_width <= 0:
            raise ValueError(f"elastic_width must be positive, got {elastic_width}")
        self.problem, self.n_basis = problem, n_basis
        self.design = threshold_spline_design(problem, n_basis).to(problem.s.device)
        self.n_curves = 2 * problem.n_waves
        self.dim = self.n_curves * n_basis
        self.nearly_elastic = [problem.n_waves + k for k in nearly_elastic]
        n_pseudo = problem.n_energies * len(nearly_elastic)
        zeros = torch.zeros(n_pseudo, dtype=problem.dsigma.dtype, device=problem.dsigma.device)
        self._observed = torch.cat([problem.dsigma, zeros])
        self._error = torch.cat([problem.error, zeros + elastic_width])

    @property
    def observed(self) -> torch.Tensor:
        return self._observed

    @property
    def error(self) -> torch.Tensor:
        return self._error

    def waves(self, coefficients: torch.Tensor) -> torch.Tensor:
        curves = self.delta(coefficients)
        return inelastic_wave(curves[..., :3], 1.0 - curves[..., 3:])

    def cross_section(self, coefficients: torch.Tensor) -> torch.Tensor:
        curves = self.delta(coefficients)
        sigma = self.problem.cross_section_from_waves(inelastic_wave(curves[..., :3], 1.0 - curves[..., 3:]))
        return torch.cat([sigma, curves[..., self.nearly_elastic].flatten(-2)], -1)


def threshold_spline_design(problem: IsospinProblem, n_basis: int) -> torch.Tensor:
    """Cubic B-splines (n_s, n_basis) in k = sqrt(s - s_th) / 2 (GeV; the kaon momentum for the K Kbar
    threshold s_th), with knots one spacing past the energies on each side as `gan_method.spline_design`.
    The S0 wave has a square-root cusp at the threshold in s (its eta falls from 1 to about 0.4 within
    10 MeV above 2 m_K in CFD) and is smooth in k. Measured on 20 or 40 evenly spaced energies to 1.4 GeV, 8
    splines: from 0.993-1.0 GeV, the largest misses of the CFD S0 phase 0.4-1.1 degrees in k against 0.7-1.2 in
    s, of its eta up to 0.006 against 0.048; from 1.02 GeV, where the cusp is out of reach, 0.9-1.0 degrees in k
    against 0.7-0.8 in s."""
    k = (torch.clamp(problem.energies - problem.inelastic_from_gev2, min=0.0) / 4.0).sqrt().cpu().numpy()
    pad = float(k.max() - k.min()) / (n_basis - 3)
    return bspline_design_matrix(k, n_basis, float(k.min()) - pad, float(k.max()) + pad)


def continuous_choice(family: InelasticFamily) -> tuple[torch.Tensor, torch.Tensor]:
    """The family's chosen member as curves (n_s, 6) for a spline, and their errors: the phases on one branch of
    A -> -A* (delta -> -delta, which every cross section allows) and continuous in s (the smoothest rising
    path, delta_0^2 falling), then epsilon = 1 - eta. Errors from the replicas; where there are none, 2 degrees
    and 0.05."""
    delta = family.delta_choice
    candidates = torch.stack([delta, -delta]) * _PATH_SIGN
    path = rising_path(candidates) * _PATH_SIGN
    curves = torch.cat([path, 1.0 - family.eta_choice], -1)
    fallback = torch.tensor([math.radians(2.0)] * 3 + [0.05] * 3, dtype=torch.float64)
    errors = torch.cat([family.delta_choice_err, family.eta_choice_err], -1)
    return curves, torch.where(torch.isfinite(errors), errors, fallback)


def unitary_samples(delta: torch.Tensor, eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Samples (..., n_s, 3) with eta <= 1: where a wave's eta exceeds 1, all three waves are turned by the
    smallest common phase that makes them unitary (`unitary_rotation`), which changes no cross section;
    where no common phase does, eta is cut to 1. Also the fraction of (sample, energy) moved."""
    waves = inelastic_wave(delta, eta)
    outside = (eta > 1.0).any(-1)
    phi, found = unitary_rotation(waves)
    turned_delta, turned_eta = wave_phase_and_inelasticity(rotate_waves(waves, phi))
    delta = torch.where(outside[..., None], delta + wrap_half_period(turned_delta - delta), delta)
    eta = torch.where(outside[..., None], turned_eta, eta).clamp(max=1.0)
    return delta, eta, float(outside.double().mean())


def diffusion_inelastic(
    problem: IsospinProblem,
    family: InelasticFamily,
    cfg: DiffusionConfig | None = None,
    elastic_width: float = 0.05,
    seed: int = 0,
    device: str = "cpu",
) -> IsospinExtraction:
    """Posterior samples of the three phases and inelasticities at the inelastic energies of `problem`,
    under the nearly-elastic P and S2 assumption of width `elastic_width`. Central values are the sample
    means, intervals the sample quantiles; valid when the spline describes the data (p-value of the cross
    sections alone) and the held-out 68 % coverage is within the configured tolerance."""
    cfg = cfg or DiffusionConfig(n_basis=8, hidden=128)
    sub = problem.at_energies(problem.inelastic)
    if sub.n_energies < 4:
        raise ValueError(f"{sub.n_energies} energies above the inelastic threshold; the splines need at least 4")

    def model_type(p: IsospinProblem, n_basis: int) -> InelasticSplineModel:
        return InelasticSplineModel(p, n_basis, elastic_width)

    result = run_diffusion(sub, cfg, continuous_choice(family), seed=seed, device=device, model_type=model_type)
    curves = result["delta"]  # (samples, n_s, 6)
    delta, eta, moved = unitary_samples(curves[..., :3], 1.0 - curves[..., 3:])
    sub64 = sub.to(dtype=torch.float64)
    waves = inelastic_wave(delta.mean(0), eta.mean(0))
    pulls = (sub64.cross_section_from_waves(waves) - sub64.dsigma) / sub64.error
    chi2, ndf = float(pulls.pow(2).sum()), len(sub) - 6 * cfg.n_basis
    p_value = chi2_p_value(chi2, ndf)
    calibrated = abs(result["calibration_coverage_68"] - 0.68) <= cfg.calibration_tolerance
    metrics = {
        "chi2": chi2,
        "ndf": ndf,
        "chi2_p_value": p_value,
        "is_valid": fit_is_valid(result["map_valid"], p_value) and calibrated,
        "calibration_coverage_68": result["calibration_coverage_68"],
        "calibration_coverage_95": result["calibration_coverage_95"],
        "band_scale": result["band_scale"],
        "unitarity_moved_fraction": moved,
        "elastic_width": elastic_width,
        "training_epochs": result["training"]["epochs"],
        "seconds": result["seconds"],
    }
    intervals, eta_intervals = {}, {}
    for level in LEVELS:
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
        low, high = torch.quantile(delta, q, dim=0)
        intervals[round(level * 100)] = (np.degrees(low.numpy()), np.degrees(high.numpy()))
        low, high = torch.quantile(eta, q, dim=0)
        eta_intervals[round(level * 100)] = (low.numpy(), high.numpy())
    return IsospinExtraction(
        "diffusion",
        sub.energies.numpy(),
        np.degrees(delta.mean(0).numpy()),
        np.degrees(delta.std(0).numpy()),
        intervals,
        metrics,
        eta=eta.mean(0).numpy(),
        eta_err=eta.std(0).numpy(),
        eta_intervals=eta_intervals,
    )
