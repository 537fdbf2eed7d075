"""Baseline: energy-independent fit of elastic phase shifts, unitarity exact by construction.

At every measured energy the partial waves are f_l = exp(i delta_l) sin(delta_l), and all delta_l(s_i)
are fitted at once (trust-region least squares) to the chi^2 of all points; errors come from the exact Hessian. The energies
decouple, so a grid scan of every energy gives the starts (its best local minima), and the fits from them
are combined energy by energy (the best solution at each energy); a last fit polishes the combination, and the A -> -A* ambiguity is resolved by choosing rising phase shifts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.inference.fit import FitResult, least_squares
from hadrinv.physics.partial_waves import select_rising_branch
from hadrinv.workflows.pipi_amplitude.problem import PipiProblem


@dataclass
class PhaseShiftFit:
    delta: torch.Tensor  # (n_s, n_waves), radians, physical branch
    delta_err: torch.Tensor  # (n_s, n_waves), radians, Hessian errors
    fit: FitResult
    restarts: int
    seconds: float


def _waves(problem: PipiProblem, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d = delta.view(*delta.shape[:-1], problem.n_energies, problem.n_waves)
    sin = torch.sin(d)
    return sin * torch.cos(d), sin * sin


def fit_phase_shifts(problem: PipiProblem, restarts: int = 2, seed: int = 0) -> PhaseShiftFit:
    """restarts: number of starts (the best grid minima per energy; random starts for l_max > 2)."""
    start = time.perf_counter()
    basis = problem.angular_basis()

    def pulls(delta: torch.Tensor) -> torch.Tensor:
        return (problem.cross_section(*_waves(problem, delta), basis) - problem.dsigma) / problem.error

    def chi2_per_energy(delta: torch.Tensor) -> torch.Tensor:
        return problem.chi2_per_energy(problem.cross_section(*_waves(problem, delta), basis))

    n_par = problem.n_energies * problem.n_waves
    generator = np.random.default_rng(seed)
    if problem.n_waves <= 3:
        starts = grid_scan_starts(problem, chi2_per_energy, restarts)
    else:  # a grid in more than 3 dimensions is too large: random starts
        starts = [generator.uniform(0.05, math.pi - 0.05, n_par) for _ in range(restarts)]
    best = None
    for x0 in starts:  # a handful of independent fits
        values = torch.as_tensor(least_squares(pulls, x0).values)
        with torch.no_grad():
            per_energy = chi2_per_energy(values)
        if best is None:
            best, best_chi2 = values.clone(), per_energy
        else:
            better = per_energy < best_chi2
            view = best.view(problem.n_energies, problem.n_waves)
            view[better] = values.view(problem.n_energies, problem.n_waves)[better]
            best_chi2 = torch.minimum(best_chi2, per_energy)
    names = [f"delta{l}(s={s:.4f})" for s in problem.energies.tolist() for l in range(problem.n_waves)]
    result = least_squares(pulls, best.numpy(), names=names)
    delta = select_rising_branch(torch.as_tensor(result.values).view(problem.n_energies, problem.n_waves))
    delta_err = torch.as_tensor(result.errors).view(problem.n_energies, problem.n_waves)
    return PhaseShiftFit(delta=delta, delta_err=delta_err, fit=result, restarts=restarts, seconds=time.perf_counter() - start)


def grid_scan_starts(problem: PipiProblem, chi2_per_energy, count: int, points_per_wave: int | None = None) -> list[np.ndarray]:
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


def amplitude_with_errors(problem: PipiProblem, delta: torch.Tensor, covariance: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """A at the data points and its 1-sigma errors (Re, Im) by linear propagation of the covariance.

    delta: (n_s, n_waves) on the physical branch; covariance of the flattened delta (branch-independent).
    """
    basis = problem.angular_basis()

    def amplitude(flat: torch.Tensor) -> torch.Tensor:
        re, im = _waves(problem, flat)
        return torch.stack([(re[problem.energy_index] * basis).sum(-1), (im[problem.energy_index] * basis).sum(-1)])

    flat = delta.reshape(-1).to(torch.float64)
    jac = torch.func.jacrev(amplitude)(flat)  # (2, n_points, n_par)
    cov = torch.as_tensor(covariance)
    var = torch.einsum("cpi,ij,cpj->cp", jac, cov, jac)
    value = amplitude(flat)
    return torch.complex(value[0], value[1]), torch.complex(var[0].clamp(min=0).sqrt(), var[1].clamp(min=0).sqrt())
