"""Energy-independent fit of the S0, P and S2 waves (phases and inelasticities) to several charge channels.

As the single-channel fit (`fit_method`): all energies are fitted at once (they decouple), from several
random starts; at every energy the minima within `ambiguity_chi2` of its best, on either branch of the
global A -> -A* ambiguity, are candidates, and the one continuing its neighbours smoothly is kept. The
path follows delta_0^0 and delta_1^1, which rise (f0(500), f0(980), rho), and -delta_0^2, which rises
because the repulsive I = 2 phase falls. A last fit polishes the choice; errors from the exact Hessian.

Below the K Kbar threshold the waves are elastic and four channels fix the three phases at every
energy. Above it, with the inelasticities free, they do not: every channel's |A|^2 is unchanged by a
common phase of all the waves, so one energy's data fix a one-parameter family bounded only by
eta <= 1 (at sqrt(s) = 1.0-1.1 GeV on CFD pseudo-data the S0 eta runs from about 0.3-0.45 up to 1 along
it), and smoothness in s does not remove a smooth common phase. `fit_isospin` therefore refuses those
energies; `inelastic_family` maps the family and picks a member by a stated physics assumption, or, where
the S0 wave's inelastic flux was measured (channel "S0-inelastic"), by the data up to a discrete choice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.inference.batched_least_squares import grouped_least_squares
from hadrinv.inference.fit import FitResult, least_squares
from hadrinv.models.pipi_isospin import IsospinProblem
from hadrinv.physics.partial_waves import rising_path, unwrap_phase, wrap_half_period
from hadrinv.physics.pipi_isospin import (
    common_phase_interval,
    inelastic_wave,
    rotate_waves,
    wave_phase_and_inelasticity,
)
from hadrinv.workflows.pipi_amplitude.fit_method import AMBIGUITY_CHI2, chi2_p_value, grid_scan_starts

# the sign of each wave on the path: delta_0^2 is followed as -delta_0^2, which rises
_PATH_SIGN = torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)


@dataclass
class IsospinFit:
    delta: torch.Tensor  # (n_s, 3) radians, delta_0^0, delta_1^1, delta_0^2, continuous in s
    delta_err: torch.Tensor  # (n_s, 3)
    eta: torch.Tensor  # (n_s, 3): 1, the fit's energies are below the inelastic threshold
    fit: FitResult
    seconds: float

    @property
    def chi2_p_value(self) -> float:
        return chi2_p_value(self.fit.fval, self.fit.ndf or 0)


def fit_isospin(
    problem: IsospinProblem,
    starts: int = 8,
    seed: int = 0,
    ambiguity_chi2: float = AMBIGUITY_CHI2,
    batched_starts: int = 64,
) -> IsospinFit:
    if bool(problem.inelastic.any()):
        first = math.sqrt(float(problem.energies[problem.inelastic][0]))
        raise ValueError(
            f"energies from sqrt(s) = {first:.4g} GeV are above the inelastic threshold, where one energy's data "
            "do not fix the waves; fit the energies below it (IsospinProblem.at_energies) and map the rest "
            "with inelastic_family"
        )
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_s = problem.n_energies
    solutions, chi2 = [], []
    # the best local minima of a grid scan of the three phases at every energy, then random starts: the
    # chi^2 valleys are narrower than the grid step, and random starts alone missed the global minimum
    # at a few energies (measured)
    grid = grid_scan_starts(problem, problem.chi2_per_energy, (starts + 1) // 2)
    randoms = [rng.uniform(0.05, math.pi - 0.05, 3 * n_s) for _ in range(starts - len(grid))]
    for x0 in grid + randoms:  # a handful of independent fits of all energies
        values = torch.as_tensor(least_squares(problem.pulls, x0).values)
        solutions.append(values)
        with torch.no_grad():
            chi2.append(problem.chi2_per_energy(values))
    # and every energy on its own from `batched_starts` random starts, all in one batched fit: the global fits
    # above missed the global minimum at one energy of 20 on one CFD set (chi^2 735 against 42 at the truth)
    if batched_starts:
        x0 = torch.rand(batched_starts, n_s, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        batched = grouped_least_squares(lambda x: problem.pulls(x.flatten(-2)), x0 * math.pi, problem.energy_index)
        solutions += list(batched.x.flatten(-2))
        chi2 += list(batched.chi2)
    solutions, chi2 = torch.stack(solutions), torch.stack(chi2)  # (R, n_par), (R, n_s)
    result = least_squares(problem.pulls, _choose(problem, solutions, chi2, ambiguity_chi2).numpy())
    values = torch.as_tensor(result.values)
    # the polished fit may have crossed to the other branch where the branches touch: choose again
    delta = _choose(problem, values[None], problem.chi2_per_energy(values)[None], math.inf).view(n_s, 3)
    delta_err = torch.as_tensor(result.errors).view(n_s, 3)
    eta = torch.ones_like(delta)  # below the inelastic threshold, which the fit requires
    return IsospinFit(delta, delta_err, eta, result, time.perf_counter() - started)


@dataclass
class InelasticFamily:
    """Above the inelastic threshold, what one energy's channels fix: the best fit and, since a common phase
    of all waves leaves every cross section unchanged, the range of each inelasticity and phase over the
    rotations that keep the waves unitary (`physics.pipi_isospin.common_phase_interval`)."""

    energies: torch.Tensor  # (n_s,) GeV^2
    delta: torch.Tensor  # (n_s, 3) radians at the best fit, in [0, pi)
    eta: torch.Tensor  # (n_s, 3) at the best fit
    eta_range: tuple[torch.Tensor, torch.Tensor]  # (n_s, 3) lowest and highest over the family
    delta_spread: torch.Tensor  # (n_s, 3) radians: max - min of each phase over the family
    delta_choice: torch.Tensor  # (n_s, 3) radians, continuous over the family: the member with the
    eta_choice: torch.Tensor  # nearly elastic waves closest to eta = 1 (and its inelasticities)
    delta_choice_err: torch.Tensor  # (n_s, 3) radians, from replicas of the data (NaN without replicas)
    eta_choice_err: torch.Tensor  # (n_s, 3)
    eta_assumed_range: tuple[torch.Tensor, torch.Tensor]  # (n_s, 3): over the members whose nearly elastic
    # waves keep eta >= 1 - elastic_tolerance, the assumption's systematic band (the choice alone if none)
    chi2: torch.Tensor  # (n_s,)
    ndf: torch.Tensor  # (n_s,) points less the five combinations the data fix (six with S0-inelastic)
    converged: torch.Tensor  # (n_s,) bool
    seconds: float = 0.0


def inelastic_family(
    problem: IsospinProblem,
    starts: int = 128,
    seed: int = 0,
    grid: int = 401,
    nearly_elastic: tuple[int, ...] = (1, 2),
    replicas: int = 20,
    elastic_tolerance: float = 0.1,
) -> InelasticFamily:
    """Fit every inelastic energy of `problem` from `starts` random starts (all at once) and map the flat
    direction of its minimum.

    One member is singled out by a physics assumption, not by the data: the waves `nearly_elastic`
    (indices into delta_0^0, delta_1^1, delta_0^2; default the P and S2 waves, whose inelasticities stay
    within 0.1 of one below 1.4 GeV in the CFD analysis) as close to eta = 1 as the family allows. Its
    errors: the spread of the same choice over `replicas` pseudo-data sets drawn around the best fit
    with the data's errors (a parametric bootstrap: the choice is not a smooth function of the data). The
    assumption's own uncertainty: the range of each eta over the members whose nearly elastic waves keep
    eta >= 1 - `elastic_tolerance`. At energies with an S0-inelastic point the data fix the member up to a
    choice between two (see `_map_family`), and no range is assumed."""
    started = time.perf_counter()
    sub = problem.at_energies(problem.inelastic)
    n_s = sub.n_energies
    generator = torch.Generator().manual_seed(seed)
    scale = torch.tensor([math.pi] * 3 + [1.5] * 3, dtype=torch.float64)
    x0 = torch.rand(starts, n_s, 6, generator=generator, dtype=torch.float64) * scale
    x, chi2, converged = _best_per_energy(sub, x0[None], sub.dsigma[None])
    x, chi2, converged = x[0], chi2[0], converged[0]
    fixed = sub.flux_measured
    family = _map_family(x, grid, nearly_elastic, elastic_tolerance, _flux(sub, sub.dsigma))
    # all replicas in one batched fit, each from the data's best fit and two random starts (a replica's
    # minimum lies near the data's: 16 random starts each changed no error bar by more than noise, at 6x the time)
    noise = torch.randn(replicas, len(sub), generator=generator, dtype=torch.float64)
    x0 = torch.rand(replicas, 2, n_s, 6, generator=generator, dtype=torch.float64) * scale
    x0 = torch.cat([x.expand(replicas, 1, n_s, 6), x0], 1)
    replica_data = sub.cross_section(_flat(x)) + sub.error * noise
    x_replicas = _best_per_energy(sub, x0, replica_data)[0]
    choices = [
        _map_family(x_r, grid, nearly_elastic, elastic_tolerance, _flux(sub, d))
        for x_r, d in zip(x_replicas, replica_data)
    ]
    delta_err = eta_err = torch.full((n_s, 3), math.nan, dtype=torch.float64)
    if replicas > 1:
        eta_err = torch.stack([c["eta_choice"] for c in choices]).std(0)
        deltas = []
        for c in choices:  # modulo pi and on the branch (A -> -A*) of the data's own choice
            step = wrap_half_period(c["delta_choice"] - family["delta_choice"])
            mirror = wrap_half_period(-c["delta_choice"] - family["delta_choice"])
            use_mirror = mirror.abs().sum(-1, keepdim=True) < step.abs().sum(-1, keepdim=True)
            deltas.append(torch.where(use_mirror, mirror, step))
        delta_err = torch.stack(deltas).std(0)
    points = torch.zeros(n_s, dtype=torch.long).index_add_(0, sub.energy_index, torch.ones_like(sub.energy_index))
    return InelasticFamily(
        sub.energies,
        torch.remainder(x[:, :3], math.pi),
        torch.cos(x[:, 3:]) ** 2,
        family["eta_range"],
        family["delta_spread"],
        family["delta_choice"],
        family["eta_choice"],
        delta_err,
        eta_err,
        family["eta_assumed_range"],
        chi2,
        points - torch.where(fixed, 6, 5),
        converged,
        time.perf_counter() - started,
    )


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(..., n_s, 6) per-energy (three phases, three u) -> the problem's parameter layout."""
    return torch.cat([x[..., :3].flatten(-2), x[..., 3:].flatten(-2)], -1)


def _best_per_energy(
    sub: IsospinProblem, x0: torch.Tensor, dsigma: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each of R data sets dsigma (R, n_points), the best of its starts x0 (R, S, n_s, 6) at every energy:
    parameters (R, n_s, 6), chi^2 and convergence (R, n_s); one batched fit of all R x S starts."""
    n_sets, n_starts = x0.shape[:2]
    data = dsigma.repeat_interleave(n_starts, 0)  # (R * S, n_points)
    result = grouped_least_squares(
        lambda x: (sub.cross_section(_flat(x)) - data) / sub.error, x0.flatten(0, 1), sub.energy_index
    )
    x, chi2, converged = (v.unflatten(0, (n_sets, n_starts)) for v in (result.x, result.chi2, result.converged))
    best = chi2.argmin(1)  # (R, n_s)
    sets = torch.arange(n_sets)[:, None]
    energies = torch.arange(sub.n_energies)[None]
    return x[sets, best, energies], chi2[sets, best, energies], converged[sets, best, energies]


def _map_family(
    x: torch.Tensor,
    grid: int,
    nearly_elastic: tuple[int, ...],
    tolerance: float,
    flux: tuple[torch.Tensor, torch.Tensor],
) -> dict:
    """The common-phase family of the waves x (n_s, 6) on `grid` rotations: ranges and the chosen member.

    flux: the measured 1 - eta^2 of the S0 wave and its error per energy (n_s,), NaN where not measured.
    Where measured it changes along the family: its chi^2 has a minimum on each side of the S0 wave's
    turning point, two discrete solutions of equal chi^2 (measured on CFD pseudo-data: in one, P and S2
    stay within 0.03 of elastic; in the other, they fall to eta 0.7 and 0.3). The member is then the
    minimum within chi^2 + 4 of the best whose nearly elastic waves are closest to elastic: a choice
    between two points, not along a line, and the band holds that member alone."""
    waves = inelastic_wave(x[:, :3], torch.cos(x[:, 3:]) ** 2)
    lo, hi = common_phase_interval(waves)
    phi = lo[:, None] + (hi - lo)[:, None] * torch.linspace(0.0, 1.0, grid, dtype=torch.float64)  # (n_s, grid)
    family_delta, family_eta = wave_phase_and_inelasticity(rotate_waves(waves[:, None, :], phi))
    family_delta = unwrap_phase(family_delta, dim=1)
    n_s = len(x)
    if nearly_elastic:
        departure = (1.0 - family_eta[..., list(nearly_elastic)]).amax(-1)  # (n_s, grid)
    else:
        departure = (torch.arange(grid) - (grid - 1) / 2).abs().to(x.dtype).expand(n_s, grid)  # the middle
    pick = departure.argmin(1)
    fixed = torch.isfinite(flux[0])
    if bool(fixed.any()):
        chi2 = ((1.0 - family_eta[..., 0] ** 2 - flux[0][:, None]) / flux[1][:, None]) ** 2  # (n_s, grid)
        padded = torch.nn.functional.pad(chi2[:, None], (1, 1), mode="replicate")[:, 0]
        minimum = (chi2 <= padded[:, :-2]) & (chi2 <= padded[:, 2:]) & (chi2 <= chi2.min(1, keepdim=True).values + 4)
        pick = torch.where(fixed, torch.where(minimum, departure, torch.inf).argmin(1), pick)
    assumed = ((departure <= tolerance) & ~fixed[:, None]) | (torch.arange(grid) == pick[:, None])  # (n_s, grid)
    pick = pick[:, None, None].expand(n_s, 1, 3)
    return {
        "eta_assumed_range": (
            torch.where(assumed[..., None], family_eta, torch.inf).min(1).values,
            torch.where(assumed[..., None], family_eta, -torch.inf).max(1).values,
        ),
        "eta_range": (family_eta.min(1).values, family_eta.max(1).values),
        "delta_spread": family_delta.max(1).values - family_delta.min(1).values,
        "delta_choice": family_delta.gather(1, pick).squeeze(1),
        "eta_choice": family_eta.gather(1, pick).squeeze(1),
    }


def _flux(sub: IsospinProblem, dsigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The measured S0-inelastic value and error per energy (n_s,), NaN where none (one point at most)."""
    obs = torch.full((sub.n_energies,), math.nan, dtype=torch.float64)
    err = torch.full_like(obs, math.nan)
    points = sub.flux_points
    obs[sub.energy_index[points]] = dsigma[points].to(obs.dtype)
    err[sub.energy_index[points]] = sub.error[points].to(obs.dtype)
    return obs, err


def _choose(problem: IsospinProblem, solutions: torch.Tensor, chi2: torch.Tensor, window: float) -> torch.Tensor:
    """Phases (n_s * 3,): per energy, among the solutions' minima within `window` of its best chi^2 and both
    branches (delta -> -delta for all waves), the smoothest rising path, continuous in s."""
    delta = solutions.reshape(-1, problem.n_energies, 3)
    allowed = chi2 <= chi2.min(dim=0).values + window
    candidates = torch.cat([delta, -delta]) * _PATH_SIGN
    return (rising_path(candidates, torch.cat([allowed, allowed])) * _PATH_SIGN).reshape(-1)


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
