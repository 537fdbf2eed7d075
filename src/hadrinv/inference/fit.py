"""Fits of torch objectives with errors from the exact autodiff Hessian: the generic front ends.

`minimize`: a chi^2 (errordef = 1) or a negative log-likelihood (errordef = 0.5) of a 1-D float64
parameter vector, minimised by MINUIT's MIGRAD (iminuit) with the autodiff gradient.
`least_squares`: a vector of pulls, minimised by scipy's trust-region least squares with the autodiff
Jacobian; much faster than MIGRAD when there are many parameters (MIGRAD's dense updates scale as n^2).
Both go through `hadrinv.inference.minimize` (bounds, non-finite values, validity) and report the
covariance 2 * errordef * H^-1 with H the exact Hessian of the objective at the minimum (torch.func), not
a minimiser's approximation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import optimize

from hadrinv.inference.minimize import (
    CHI2,
    NEGATIVE_LOG_LIKELIHOOD,
    Bounds,
    FitResult,
    MinimizeResult,
    Objective,
    assess_minimum,
    covariance_from_hessian,
    find_minimum,
    hessian,
)

__all__ = [
    "CHI2",
    "NEGATIVE_LOG_LIKELIHOOD",
    "FitResult",
    "covariance_from_hessian",
    "hessian",
    "least_squares",
    "minimize",
]


def minimize(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0,
    names: list[str] | None = None,
    errordef: float = CHI2,
    ndf: int | None = None,
    tolerance: float = 0.1,
    strategy: int = 1,
    *,
    method: str = "minuit",
    bounds: Bounds | None = None,
) -> MinimizeResult:
    """MIGRAD from x0 with the autodiff gradient, then the exact Hessian for the errors.

    method 'newton' takes scipy's trust-region Newton method with the exact Hessian instead; bounds: one
    (low, high) per parameter, None for an open side. See `hadrinv.inference.minimize.find_minimum`.
    """
    result = find_minimum(
        objective,
        x0,
        bounds=bounds,
        method=method,
        names=names or None,
        errordef=errordef,
        tolerance=tolerance,
        strategy=strategy,
    )
    result.ndf = ndf
    return result


def least_squares(
    pulls: Callable[[torch.Tensor], torch.Tensor],
    x0,
    names: list[str] | None = None,
    max_evaluations: int | None = None,
    jacobian: Callable[[torch.Tensor], torch.Tensor] | None = None,
    exact_hessian: bool = True,
) -> MinimizeResult:
    """Minimise chi^2 = sum(pulls(x)^2) (scipy 'trf' with the autodiff Jacobian); Hessian errors of chi^2.

    ``jacobian``: d pulls / d x (n_residuals, n_parameters) when autodiff is not the cheapest way (e.g. a
    model that evaluates many parameter points in one batched call). ``exact_hessian=False`` takes the
    Gauss-Newton Hessian 2 J^T J at the minimum instead of second derivatives of chi^2. Valid when scipy
    reports convergence.
    """
    x0 = np.asarray(x0, dtype=float)
    names = names or [f"x{i}" for i in range(len(x0))]
    as_tensor = lambda x: torch.as_tensor(x, dtype=torch.float64)
    jacobian = jacobian or torch.func.jacfwd(pulls)  # n_parameters << n_residuals
    solution = optimize.least_squares(
        lambda x: pulls(as_tensor(x)).detach().numpy(),
        x0,
        jac=lambda x: jacobian(as_tensor(x)).detach().numpy(),
        method="trf",
        x_scale="jac",
        max_nfev=max_evaluations,
        # tolerances on the total chi^2: with many independent blocks (energies) the default 1e-8 can stop
        # while a block that contributes little to the total is still moving
        ftol=1e-12,
        xtol=1e-12,
        gtol=1e-10,
    )
    chi2 = lambda p: (pulls(p) ** 2).sum()
    # scipy hands back the pulls and the Jacobian at its solution, the only point assessed below: a costly
    # Jacobian (a batched finite-difference model) is not evaluated again
    J, r = torch.as_tensor(solution.jac), torch.as_tensor(solution.fun)
    gradient = lambda p: 2.0 * J.T @ r
    gauss_newton = lambda p: 2.0 * J.T @ J
    objective = Objective(chi2, gradient=gradient, hessian=None if exact_hessian else gauss_newton)
    result = assess_minimum(
        objective,
        solution.x,
        fval=float((solution.fun**2).sum()),
        names=list(names),
        errordef=CHI2,
        method="least_squares",
        start=x0,
        converged=bool(solution.success),
        minimiser_message="" if solution.success else str(solution.message),
    )
    result.ndf = len(solution.fun) - len(x0)
    result.n_calls = int(solution.nfev)
    return result
