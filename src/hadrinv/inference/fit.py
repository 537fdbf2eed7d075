"""Fits of torch objectives with errors from the exact autodiff Hessian.

`minimize`: a chi^2 (errordef = 1) or a negative log-likelihood (errordef = 0.5) of a 1-D float64
parameter vector, minimised by MINUIT's MIGRAD (iminuit) with the autodiff gradient.
`least_squares`: a vector of pulls, minimised by scipy's trust-region least squares with the autodiff
Jacobian; much faster than MIGRAD when there are many parameters (MIGRAD's dense updates scale as n^2).
Both report the covariance 2 * errordef * H^-1 with H the exact Hessian of the objective at the minimum
(torch.func), not a minimiser's approximation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from iminuit import Minuit
from scipy import optimize

CHI2 = 1.0
NEGATIVE_LOG_LIKELIHOOD = 0.5


@dataclass
class FitResult:
    """Values, Hessian errors and validity of a fit, readable at a glance (print it)."""

    names: list[str]
    values: np.ndarray
    errors: np.ndarray
    covariance: np.ndarray
    fval: float
    ndf: int | None
    is_valid: bool  # MIGRAD converged to a minimum within tolerance
    has_accurate_covar: bool  # the exact Hessian is positive definite
    n_calls: int

    @property
    def chi2_per_ndf(self) -> float:
        return self.fval / self.ndf if self.ndf else float("nan")

    @property
    def correlation(self) -> np.ndarray:
        d = np.sqrt(np.clip(np.diag(self.covariance), 1e-300, None))
        return self.covariance / np.outer(d, d)

    def __str__(self) -> str:
        status = "valid" if self.is_valid else "INVALID (did not converge)"
        covar = "accurate" if self.has_accurate_covar else "NOT positive definite"
        lines = [f"fit: {status}; covariance {covar}; fval = {self.fval:.6g}" + (f", ndf = {self.ndf}, fval/ndf = {self.chi2_per_ndf:.4g}" if self.ndf else "") + f"; {self.n_calls} calls"]
        width = max(len(n) for n in self.names)
        lines += [f"  {n:<{width}}  {v: .6g} +- {e:.3g}" for n, v, e in zip(self.names, self.values, self.errors)]
        return "\n".join(lines)


def hessian(objective: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray) -> np.ndarray:
    """Exact Hessian by forward-over-reverse autodiff."""
    return torch.func.hessian(objective)(torch.as_tensor(x, dtype=torch.float64)).detach().numpy()


def covariance_from_hessian(h: np.ndarray, errordef: float) -> tuple[np.ndarray, bool]:
    """2 * errordef * H^-1, and whether H is positive definite.

    If it is not, parameters touched by the non-positive directions get an infinite variance (NaN
    covariances), the others the inverse on the positive subspace.
    """
    h = 0.5 * (h + h.T)
    eigenvalues, vectors = np.linalg.eigh(h)
    positive = eigenvalues > 1e-12 * max(eigenvalues.max(), 1e-300)
    covariance = 2.0 * errordef * (vectors[:, positive] / eigenvalues[positive]) @ vectors[:, positive].T
    # a parameter that moves along a flat or downhill direction is not determined: its variance is infinite
    undetermined = (np.abs(vectors[:, ~positive]) > 1e-6).any(axis=1)
    covariance[undetermined, :] = np.nan
    covariance[:, undetermined] = np.nan
    np.fill_diagonal(covariance, np.where(undetermined, np.inf, np.diag(covariance)))
    return covariance, bool(positive.all())


def minimize(
    objective: Callable[[torch.Tensor], torch.Tensor],
    x0,
    names: list[str] | None = None,
    errordef: float = CHI2,
    ndf: int | None = None,
    tolerance: float = 0.1,
    strategy: int = 1,
) -> FitResult:
    """MIGRAD from x0 with the autodiff gradient, then the exact Hessian for the errors."""
    x0 = np.asarray(x0, dtype=float)
    names = names or [f"x{i}" for i in range(len(x0))]

    def fcn(x):
        with torch.no_grad():
            return float(objective(torch.as_tensor(x, dtype=torch.float64)))

    def grad(x):
        xt = torch.as_tensor(x, dtype=torch.float64).requires_grad_(True)
        (g,) = torch.autograd.grad(objective(xt), xt)
        return g.numpy()

    minuit = Minuit(fcn, x0, grad=grad, name=names)
    minuit.errordef = errordef
    minuit.strategy = strategy
    minuit.tol = tolerance
    minuit.migrad()
    values = np.array(minuit.values)
    covariance, accurate = covariance_from_hessian(hessian(objective, values), errordef)
    return FitResult(
        names=list(names), values=values, errors=np.sqrt(np.diag(covariance)), covariance=covariance,
        fval=float(minuit.fval), ndf=ndf, is_valid=bool(minuit.valid), has_accurate_covar=accurate, n_calls=int(minuit.nfcn),
    )


def least_squares(
    pulls: Callable[[torch.Tensor], torch.Tensor],
    x0,
    names: list[str] | None = None,
    max_evaluations: int | None = None,
    jacobian: Callable[[torch.Tensor], torch.Tensor] | None = None,
    exact_hessian: bool = True,
) -> FitResult:
    """Minimise chi^2 = sum(pulls(x)^2) (scipy 'trf' with the autodiff Jacobian); Hessian errors of chi^2.

    ``jacobian``: d pulls / d x (n_residuals, n_parameters) when autodiff is not the cheapest way (e.g. a
    model that evaluates many parameter points in one batched call). ``exact_hessian=False`` takes the
    Gauss-Newton Hessian 2 J^T J at the minimum instead of second derivatives of chi^2.
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
        ftol=1e-12, xtol=1e-12, gtol=1e-10,
    )
    if exact_hessian:
        chi2 = lambda x: (pulls(x) ** 2).sum()
        h = hessian(chi2, solution.x)
    else:
        J = jacobian(as_tensor(solution.x)).detach().numpy()
        h = 2.0 * J.T @ J
    covariance, accurate = covariance_from_hessian(h, CHI2)
    n_residuals = len(solution.fun)
    return FitResult(
        names=list(names), values=solution.x, errors=np.sqrt(np.diag(covariance)), covariance=covariance,
        fval=float((solution.fun**2).sum()), ndf=n_residuals - len(x0), is_valid=bool(solution.success), has_accurate_covar=accurate,
        n_calls=int(solution.nfev),
    )
