"""The S0, P and S2 waves above the K Kbar threshold by conditional diffusion.

Above 2 m_K every pi pi channel's cross section is unchanged by a common phase of all the waves
(`physics.pipi_isospin.common_phase_interval`): those data leave a flat direction at every energy. A measured
inelastic channel ("S0-inelastic", 1 - eta^2 of the S0 wave, which pi pi -> K Kbar measures) fixes it. At the
energies without one the flat direction is resolved by the fit's assumption (`fit.inelastic_family`): the
P and S2 waves nearly elastic, here as a Gaussian pseudo-observation 1 - eta = 0 +- `elastic_width` of each
at every such energy. The simulations draw it like any measurement, so the posterior is the data's times
the assumption's, and the assumption's width shows in the band instead of hiding in a choice.

Representation: six curves on cubic B-splines over the inelastic energies, delta_0^0, delta_1^1, delta_0^2
(radians) and epsilon_l = 1 - eta_l of the same waves. epsilon, not u with eta = cos^2 u as in the fit: the map
must be regular at eta = 1, where the P and S2 waves sit, or the Laplace approximation that the prior is built
from is singular there (d eta / du = 0 at u = 0). Samples beyond the unitarity bound (the Gaussian's tail)
are turned back inside it by a common phase (`unitary_samples`); the fraction turned is a metric.

The prior is centred on the fit's choice (`inelastic_family`), made continuous in s on the rising branch.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from hadrinv.inference.networks import padded_bspline_design
from hadrinv.models.pipi_isospin import IsospinProblem
from hadrinv.physics.partial_waves import wrap_half_period
from hadrinv.physics.pipi_isospin import (
    inelastic_wave,
    rotate_waves,
    unitary_rotation,
    wave_phase_and_inelasticity,
)
from hadrinv.workflows.pipi_amplitude.config import DiffusionConfig
from hadrinv.workflows.pipi_amplitude.diffusion_method import (
    Compressor,
    SplinePhaseModel,
    run_diffusion,
    sample_intervals,
    sample_intervals_deg,
)
from hadrinv.workflows.pipi_amplitude.fit_method import fit_is_valid
from hadrinv.workflows.pipi_isospin.extraction import (
    IsospinExtraction,
    data_chi2,
    diffusion_metrics,
    gaussian_intervals,
)
from hadrinv.workflows.pipi_isospin.fit import InelasticFamily, continuous_choice


class InelasticSplineModel(SplinePhaseModel):
    """Cross sections of the charge channels, then the pseudo-observations epsilon of the `nearly_elastic`
    waves at every energy where no inelastic channel was measured, from spline coefficients (..., 6 * n_basis):
    three phases, three epsilons."""

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
        # where an inelastic channel was measured the data fix the common phase: no assumption there
        self.assumed = torch.nonzero(~problem.flux_measured).flatten()
        n_pseudo = len(self.assumed) * len(nearly_elastic)
        zeros = torch.zeros(n_pseudo, dtype=problem.dsigma.dtype, device=problem.dsigma.device)
        self._observed = torch.cat([problem.dsigma, zeros])
        self._error = torch.cat([problem.error, zeros + elastic_width])

    @property
    def observed(self) -> torch.Tensor:
        return self._observed

    @property
    def error(self) -> torch.Tensor:
        return self._error

    def cross_section(self, coefficients: torch.Tensor) -> torch.Tensor:
        curves = self.delta(coefficients)
        sigma = self.problem.cross_section_from_waves(inelastic_wave(curves[..., :3], 1.0 - curves[..., 3:]))
        pseudo = curves[..., self.assumed, :][..., self.nearly_elastic].flatten(-2)
        return torch.cat([sigma, pseudo], -1)


def threshold_spline_design(problem: IsospinProblem, n_basis: int) -> torch.Tensor:
    """Cubic B-splines (n_s, n_basis) in k = sqrt(s - s_th) / 2 (GeV; the kaon momentum for the K Kbar
    threshold s_th), with knots one spacing past the energies on each side as `gan_method.spline_design`.
    The S0 wave has a square-root cusp at the threshold in s (its eta falls from 1 to about 0.4 within
    10 MeV above 2 m_K in CFD) and is smooth in k. Measured on 20 or 40 evenly spaced energies to 1.4 GeV, 8
    splines: from 0.993-1.0 GeV, the largest misses of the CFD S0 phase 0.4-1.1 degrees in k against 0.7-1.2 in
    s, of its eta up to 0.006 against 0.048; from 1.02 GeV, where the cusp is out of reach, 0.9-1.0 degrees in k
    against 0.7-0.8 in s."""
    k = (torch.clamp(problem.energies - problem.inelastic_from_gev2, min=0.0) / 4.0).sqrt()
    return padded_bspline_design(k.cpu().numpy(), n_basis)


def spline_fit_inelastic(
    problem: IsospinProblem,
    family: InelasticFamily,
    n_basis: int | None = None,
    elastic_width: float = 0.05,
    nearly_elastic: tuple[int, ...] = (1, 2),
    candidates: tuple[int, ...] = (6, 8, 10, 12, 14),
) -> IsospinExtraction:
    """The classical counterpart of `diffusion_inelastic`: the least-squares fit of the same six spline
    curves (with the same pseudo-observations where no inelastic channel was measured), errors from its
    Laplace approximation (Gauss-Newton), Gaussian intervals. A wave with eta above 1 at some energy is
    turned back by a common phase as the samples are. `n_basis` None: the number of splines per curve among
    `candidates` with the least AIC = chi^2 + 2 x parameters (on four CFD sets it chose 10 each time;
    with 8 the S0 eta missed the dip after the threshold by up to 0.056, with 10 by up to 0.037)."""
    started = time.perf_counter()
    sub = problem.at_energies(problem.inelastic).to(dtype=torch.float64)
    start = continuous_choice(family)
    fits = {}
    for n in (n_basis,) if n_basis is not None else candidates:
        model = InelasticSplineModel(sub, n, elastic_width, nearly_elastic)
        compress = Compressor(model, *start)
        fits[n] = (model, compress, float(model.pulls(compress.c_map).pow(2).sum()) + 2 * model.dim)
    model, compress, aic = min(fits.values(), key=lambda fit: fit[2])
    jacobian = torch.func.jacrev(model.delta)(compress.c_map)  # (n_s, 6, dim): the curves are linear in c
    error = torch.einsum("scd,de->sce", jacobian, compress.scale).pow(2).sum(-1).sqrt()
    curves = model.delta(compress.c_map)
    delta, eta, moved = unitary_samples(curves[None, :, :3], 1.0 - curves[None, :, 3:])
    delta, eta = delta[0], eta[0]
    chi2, ndf, p_value = data_chi2(sub, inelastic_wave(delta, eta), model.dim)
    delta_deg, delta_err = np.degrees(delta.numpy()), np.degrees(error[:, :3].numpy())
    eta, eta_err = eta.numpy(), error[:, 3:].numpy()
    metrics = {
        "chi2": chi2,
        "ndf": ndf,
        "chi2_p_value": p_value,
        "is_valid": fit_is_valid(compress.fit.is_valid, p_value),
        "n_basis": model.n_basis,
        "aic": aic,
        "unitarity_moved_fraction": moved,
        "seconds": time.perf_counter() - started,
    }
    intervals, eta_intervals = gaussian_intervals(delta_deg, delta_err), gaussian_intervals(eta, eta_err, 1.0)
    return IsospinExtraction(
        "spline fit", sub.energies.numpy(), delta_deg, delta_err, intervals, metrics, eta, eta_err, eta_intervals
    )


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
    nearly_elastic: tuple[int, ...] = (1, 2),
    seed: int = 0,
    device: str = "cpu",
) -> IsospinExtraction:
    """Posterior samples of the three phases and inelasticities at the inelastic energies of `problem`; where
    no inelastic channel was measured, under the assumption that the waves `nearly_elastic` (default P and S2)
    have 1 - eta = 0 +- `elastic_width`.
    Central values are the sample means, intervals the sample quantiles; valid when the spline describes the
    data (p-value of the cross sections alone) and the held-out 68 % coverage is within the configured
    tolerance."""
    cfg = cfg or DiffusionConfig(n_basis=8, hidden=128)
    sub = problem.at_energies(problem.inelastic)
    if sub.n_energies < 4:
        raise ValueError(f"{sub.n_energies} energies above the inelastic threshold; the splines need at least 4")

    def model_type(p: IsospinProblem, n_basis: int) -> InelasticSplineModel:
        return InelasticSplineModel(p, n_basis, elastic_width, nearly_elastic)

    result = run_diffusion(sub, cfg, continuous_choice(family), seed=seed, device=device, model_type=model_type)
    curves = result["delta"]  # (samples, n_s, 6)
    delta, eta, moved = unitary_samples(curves[..., :3], 1.0 - curves[..., 3:])
    metrics = diffusion_metrics(sub, inelastic_wave(delta.mean(0), eta.mean(0)), result, cfg)
    metrics.update(
        unitarity_moved_fraction=moved,
        elastic_width=elastic_width,
        assumed_energies=int((~sub.flux_measured).sum()) if nearly_elastic else 0,
    )
    return IsospinExtraction(
        "diffusion",
        sub.energies.numpy(),
        np.degrees(delta.mean(0).numpy()),
        np.degrees(delta.std(0).numpy()),
        sample_intervals_deg(delta),
        metrics,
        eta=eta.mean(0).numpy(),
        eta_err=eta.std(0).numpy(),
        eta_intervals=sample_intervals(eta),
    )
