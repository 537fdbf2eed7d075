"""Energy-independent fit of the S0, P and S2 waves (phases and inelasticities) to several charge channels.

As the single-channel fit (`fit_method`): all energies are fitted at once (they decouple), from several
random starts; at every energy the minima within `ambiguity_chi2` of its best, on either branch of the
global A -> -A* ambiguity, are candidates, and the one continuing its neighbours smoothly is kept. The
path follows delta_0^0 and delta_1^1, which rise (f0(500), f0(980), rho), and -delta_0^2, which rises
because the repulsive I = 2 phase falls. A last fit polishes the choice; errors from the exact Hessian.

Below the K Kbar threshold the waves are elastic and four channels fix the three phases at every
energy. Above it, with the inelasticities free, one energy's data of these channels admit several
exact solutions (at sqrt(s) = 1.13 GeV on CFD pseudo-data: four different (delta, eta) with the same
chi^2 from eight starts, the inelasticity traded between the waves), so an energy-by-energy fit cannot
tell them apart: that region needs constraints across energies, and the fit refuses it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.inference.fit import FitResult, least_squares
from hadrinv.models.pipi_isospin import IsospinProblem
from hadrinv.physics.partial_waves import rising_path
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
    problem: IsospinProblem, starts: int = 8, seed: int = 0, ambiguity_chi2: float = AMBIGUITY_CHI2
) -> IsospinFit:
    if bool(problem.inelastic.any()):
        first = math.sqrt(float(problem.energies[problem.inelastic][0]))
        raise ValueError(
            f"energies from sqrt(s) = {first:.4g} GeV are above the inelastic threshold, where one energy's data "
            "do not fix the waves; fit the energies below it (IsospinProblem.at_energies)"
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
    solutions, chi2 = torch.stack(solutions), torch.stack(chi2)  # (R, n_par), (R, n_s)
    result = least_squares(problem.pulls, _choose(problem, solutions, chi2, ambiguity_chi2).numpy())
    values = torch.as_tensor(result.values)
    # the polished fit may have crossed to the other branch where the branches touch: choose again
    delta = _choose(problem, values[None], problem.chi2_per_energy(values)[None], math.inf).view(n_s, 3)
    delta_err = torch.as_tensor(result.errors).view(n_s, 3)
    eta = torch.ones_like(delta)  # below the inelastic threshold, which the fit requires
    return IsospinFit(delta, delta_err, eta, result, time.perf_counter() - started)


def _choose(problem: IsospinProblem, solutions: torch.Tensor, chi2: torch.Tensor, window: float) -> torch.Tensor:
    """Phases (n_s * 3,): per energy, among the solutions' minima within `window` of its best chi^2 and both
    branches (delta -> -delta for all waves), the smoothest rising path, continuous in s."""
    delta = solutions.reshape(-1, problem.n_energies, 3)
    allowed = chi2 <= chi2.min(dim=0).values + window
    candidates = torch.cat([delta, -delta]) * _PATH_SIGN
    return (rising_path(candidates, torch.cat([allowed, allowed])) * _PATH_SIGN).reshape(-1)
