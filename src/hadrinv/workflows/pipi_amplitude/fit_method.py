"""Baseline: energy-independent fit of elastic phase shifts, unitarity exact by construction.

At every measured energy the partial waves are f_l = exp(i delta_l) sin(delta_l), and all delta_l(s_i)
are fitted at once (trust-region least squares) to the chi^2 of all points; errors come from the exact
Hessian. The energies decouple, so a grid scan of every energy gives the starts (its best local minima),
and the fits from them are combined energy by energy (among the minima the data cannot tell apart, the
one continuing the neighbouring energies smoothly); a last fit polishes the combination, and the
A -> -A* ambiguity is resolved by choosing rising phase shifts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from hadrinv.inference.fit import FitResult, least_squares
from hadrinv.models.pipi import PipiProblem
from hadrinv.physics.partial_waves import rising_path, select_rising_branch

# A minimiser that converged to a minimum of a chi^2 the model cannot reach (chi2/ndf of hundreds) has
# Hessian errors that mean nothing: below this p-value the fit is not reported as valid.
MIN_P_VALUE = 1e-3
# Local minima of one energy's chi^2 closer than this to its best are not told apart by the data (about
# two standard deviations for the one-parameter difference between them); see `combine_solutions`.
AMBIGUITY_CHI2 = 4.0


def chi2_p_value(chi2: float, ndf: int) -> float:
    """P(chi^2 >= chi2) for ndf degrees of freedom; NaN without degrees of freedom."""
    return float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else float("nan")


def fit_is_valid(minimiser_valid: bool, p_value: float) -> bool:
    """Converged and consistent with the data (a NaN p-value is not >= MIN_P_VALUE)."""
    return bool(minimiser_valid) and p_value >= MIN_P_VALUE


def require_degrees_of_freedom(problem: PipiProblem, source: str | None = None) -> None:
    """ValueError (one line) when the fit would be underdetermined or have no degrees of freedom.

    The fit's unknowns are the phase shifts delta_0..delta_l_max at every energy, and the energies
    decouple: an energy with fewer distinct angles than unknowns leaves a continuum of solutions there
    (infinite errors), and ndf <= 0 overall leaves chi2/ndf undefined. Either way the fit would report
    numbers that look like results, so it is refused before anything runs or is written.
    """
    where = f"{source}: " if source else ""
    n_waves = problem.n_waves
    for i, s in enumerate(problem.energies.tolist()):
        angles = len(torch.unique(problem.cos_theta[problem.energy_index == i]))
        if angles < n_waves:
            raise ValueError(
                f"{where}s = {s:.6g} GeV^2 has {angles} distinct angle(s) for {n_waves} unknown phase shifts "
                f"(l = 0..{problem.l_max}): the fit is underdetermined; measure more angles there or lower l_max"
            )
    n_parameters = problem.n_energies * n_waves
    if len(problem) <= n_parameters:
        raise ValueError(
            f"{where}{len(problem)} points for {n_parameters} fitted phase shifts ({problem.n_energies} energies x "
            f"{n_waves} waves, l_max = {problem.l_max}): ndf = {len(problem) - n_parameters}, no degrees of freedom "
            "to judge the fit; measure more angles or lower l_max"
        )


@dataclass
class PhaseShiftFit:
    delta: torch.Tensor  # (n_s, n_waves), radians, physical branch
    delta_err: torch.Tensor  # (n_s, n_waves), radians, Hessian errors
    fit: FitResult
    restarts: int
    seconds: float

    @property
    def chi2_p_value(self) -> float:
        return chi2_p_value(self.fit.fval, self.fit.ndf or 0)

    @property
    def is_valid(self) -> bool:
        """The minimiser converged and the chi^2 p-value is at least MIN_P_VALUE."""
        return fit_is_valid(self.fit.is_valid, self.chi2_p_value)


def fit_phase_shifts(
    problem: PipiProblem, restarts: int = 2, seed: int = 0, ambiguity_chi2: float = AMBIGUITY_CHI2
) -> PhaseShiftFit:
    """restarts: number of starts (the best grid minima per energy; random starts for l_max > 2);
    ambiguity_chi2: minima within this chi^2 of an energy's best are equally acceptable there, and
    the one continuing the phase shifts of the neighbouring energies smoothly is kept (`combine_solutions`).
    """
    start = time.perf_counter()
    basis = problem.angular_basis()

    def pulls(delta: torch.Tensor) -> torch.Tensor:
        return (problem.cross_section(*problem.elastic_waves(delta), basis) - problem.dsigma) / problem.error

    def chi2_per_energy(delta: torch.Tensor) -> torch.Tensor:
        return problem.chi2_per_energy(problem.cross_section(*problem.elastic_waves(delta), basis))

    n_par = problem.n_energies * problem.n_waves
    generator = np.random.default_rng(seed)
    if problem.n_waves <= 3:
        starts = grid_scan_starts(problem, chi2_per_energy, restarts)
    else:  # a grid in more than 3 dimensions is too large: random starts
        starts = [generator.uniform(0.05, math.pi - 0.05, n_par) for _ in range(restarts)]
    solutions, chi2 = [], []
    for x0 in starts:  # a handful of independent fits
        values = torch.as_tensor(least_squares(pulls, x0).values)
        with torch.no_grad():
            chi2.append(chi2_per_energy(values))
        solutions.append(values.view(problem.n_energies, problem.n_waves))
    combined = combine_solutions(torch.stack(solutions), torch.stack(chi2), ambiguity_chi2)
    names = list(problem.names)
    result = least_squares(pulls, combined.reshape(-1).numpy(), names=names)
    delta = select_rising_branch(torch.as_tensor(result.values).view(problem.n_energies, problem.n_waves))
    delta_err = torch.as_tensor(result.errors).view(problem.n_energies, problem.n_waves)
    return PhaseShiftFit(
        delta=delta, delta_err=delta_err, fit=result, restarts=restarts, seconds=time.perf_counter() - start
    )


def combine_solutions(solutions: torch.Tensor, chi2: torch.Tensor, ambiguity_chi2: float) -> torch.Tensor:
    """One solution per energy from several fits: the smoothest rising path through the acceptable minima.

    solutions: radians (R, n_s, n_waves), R fits of all energies; chi2: (R, n_s), per energy. Where the
    data leave discrete ambiguities (two minima with chi^2 within `ambiguity_chi2` of each other, common
    where |A| is small and near the edges of the range), the best chi^2 alone picks by noise and can jump
    by tens of degrees between neighbouring energies; among the acceptable minima and both branches of
    A -> -A*, `rising_path` keeps the sequence with the smallest steps in s.
    """
    allowed = chi2 <= chi2.min(dim=0).values + ambiguity_chi2
    candidates = torch.cat([solutions, -solutions])
    return rising_path(candidates, allowed=torch.cat([allowed, allowed]))


def grid_scan_starts(
    problem: PipiProblem, chi2_per_energy, count: int, points_per_wave: int | None = None
) -> list[np.ndarray]:
    """`count` starts: at every energy, the best local minima of chi^2 on a grid over [0, pi)^n_waves.

    The energies decouple, so one batched evaluation scans all of them. The chi^2 valleys are far
    narrower than any affordable grid step (a tenth of a degree for 1% data), so the best grid point
    can sit beside the wrong valley: we start from several local minima of the grid, not just the best.
    """
    n = points_per_wave or {1: 180, 2: 60, 3: 20}[problem.n_waves]
    axis = torch.arange(n, dtype=torch.float64) * (math.pi / n)
    grid = torch.cartesian_prod(*([axis] * problem.n_waves)).view(-1, problem.n_waves)  # (n_grid, n_waves)
    candidates = grid[:, None, :].expand(-1, problem.n_energies, -1).reshape(len(grid), -1)
    with torch.no_grad():
        chi2 = torch.cat([chi2_per_energy(chunk) for chunk in candidates.split(256)])  # (n_grid, n_s)
    cube = chi2.view(*([n] * problem.n_waves), problem.n_energies)
    is_minimum = torch.ones_like(cube, dtype=torch.bool)
    for dim in range(problem.n_waves):  # phase shifts are periodic in pi: neighbours wrap around
        is_minimum &= (cube <= cube.roll(1, dim)) & (cube <= cube.roll(-1, dim))
    ranked = torch.where(is_minimum, cube, torch.inf).view(len(grid), problem.n_energies).argsort(0)
    return [grid[ranked[k]].reshape(-1).numpy() for k in range(min(count, len(grid)))]


def amplitude_with_errors(
    problem: PipiProblem, delta: torch.Tensor, covariance: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """A at the data points and its 1-sigma errors (Re, Im) by linear propagation of the covariance.

    delta: (n_s, n_waves) on the physical branch; covariance of the flattened delta (branch-independent).
    """
    basis = problem.angular_basis()

    def amplitude(flat: torch.Tensor) -> torch.Tensor:
        re, im = problem.elastic_waves(flat)
        return torch.stack([(re[problem.energy_index] * basis).sum(-1), (im[problem.energy_index] * basis).sum(-1)])

    flat = delta.reshape(-1).to(torch.float64)
    jac = torch.func.jacrev(amplitude)(flat)  # (2, n_points, n_par)
    cov = torch.as_tensor(covariance)
    var = torch.einsum("cpi,ij,cpj->cp", jac, cov, jac)
    value = amplitude(flat)
    return torch.complex(value[0], value[1]), torch.complex(var[0].clamp(min=0).sqrt(), var[1].clamp(min=0).sqrt())
