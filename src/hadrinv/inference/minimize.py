"""Minimisation of torch objectives with errors from the exact autodiff Hessian.

The objective is a scalar torch function of a 1-D float64 parameter vector: a chi^2 (errordef 1) or a
negative log-likelihood (errordef 0.5). `Objective` gives minimisers its numpy value, autodiff gradient and
exact Hessian (torch.func, or the objective's own ``gradient`` / ``hessian`` methods when it has them) and
turns non-finite values into +inf, so that a step into an unphysical region is rejected rather than taken.

`find_minimum` runs MIGRAD (iminuit) or a trust-region Newton method with the exact Hessian (scipy
'trust-exact', 'trust-constr' with bounds), then `assess_minimum` judges the point: covariance
2 * errordef * H^-1 from the exact Hessian, EDM = g^T H^-1 g / 2, parameters at a bound, saddle points,
and the validity flag. A minimiser that fails or meets a non-finite value gives an invalid result with the
reason in ``message``; it never raises for that. `hadrinv.inference.restarts.random_restarts` runs many
fits from random starting points (Ray or serial).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from iminuit import Minuit
from scipy import optimize

__all__ = [
    "CHI2",
    "NEGATIVE_LOG_LIKELIHOOD",
    "FitResult",
    "MinimizeResult",
    "Objective",
    "assess_minimum",
    "bounds_arrays",
    "covariance_from_hessian",
    "find_minimum",
    "hessian",
]

CHI2 = 1.0
NEGATIVE_LOG_LIKELIHOOD = 0.5
Bounds = Sequence[tuple[float | None, float | None] | None]


# -- Results and exact-Hessian errors ------------------------------------------------------------------------------


@dataclass
class FitResult:
    """Values, Hessian errors and validity of a fit, readable at a glance (print it)."""

    names: list[str]
    values: np.ndarray
    errors: np.ndarray
    covariance: np.ndarray
    fval: float
    ndf: int | None
    is_valid: bool  # the minimiser converged to a minimum within tolerance
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
        ndf = f", ndf = {self.ndf}, fval/ndf = {self.chi2_per_ndf:.4g}" if self.ndf else ""
        lines = [f"fit: {status}; covariance {covar}; fval = {self.fval:.6g}{ndf}; {self.n_calls} calls"]
        width = max(len(n) for n in self.names)
        lines += [f"  {n:<{width}}  {v: .6g} +- {e:.3g}" for n, v, e in zip(self.names, self.values, self.errors)]
        return "\n".join(lines)


@dataclass
class MinimizeResult(FitResult):
    """A `FitResult` with how it was reached.

    method: 'newton', 'minuit' or 'least_squares'; message: why a fit is invalid, warnings; edm: estimated
    distance to the minimum, g^T H^-1 g / 2, at the reported point; x0: starting point; hessian: the exact
    Hessian of the objective there (None when it could not be computed).
    """

    method: str = "newton"
    message: str = ""
    edm: float = float("nan")
    x0: np.ndarray | None = None
    hessian: np.ndarray | None = field(default=None, repr=False, compare=False)

    def _details(self) -> str:
        return ""

    def __str__(self) -> str:
        text = FitResult.__str__(self) + self._details()
        return text + (f"\n  note: {self.message}" if self.message else "")

    def to_dict(self) -> dict:
        """Tensors and plain containers only (loadable with torch.load(weights_only=True))."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping):
        array = lambda v: np.asarray(v.numpy(), dtype=float) if torch.is_tensor(v) else v
        return cls(**{k: array(v) for k, v in d.items()})


def _plain(value):
    if isinstance(value, np.ndarray):
        return torch.as_tensor(np.asarray(value, dtype=float))
    return value.item() if isinstance(value, np.generic) else value


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


# -- The objective as minimisers see it ----------------------------------------------------------------------------


class _NonFinite(ArithmeticError):
    pass


class Objective:
    """numpy-facing value / gradient / Hessian of a torch objective, counting calls, mapping NaN to +inf.

    gradient, hessian: torch callables of the parameter tensor; by default the objective's own ``gradient``
    and ``hessian`` methods if it has both (e.g. a chunked likelihood), else torch.func autodiff.
    A non-finite gradient or Hessian raises (the minimiser stops there and the fit is flagged invalid).
    """

    def __init__(self, function, gradient=None, hessian=None):
        self.function = function
        self.n_calls = 0
        self.n_nonfinite = 0
        self.best_x: np.ndarray | None = None
        self.best_f = math.inf
        own = hasattr(function, "gradient") and hasattr(function, "hessian")
        self._grad = gradient or (function.gradient if own else lambda p: torch.func.grad(function)(p))
        self._hess = hessian or (function.hessian if own else lambda p: torch.func.hessian(function)(p))

    @staticmethod
    def _t(x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64)

    def raw_value(self, x) -> float:
        with torch.no_grad():
            return float(self.function(self._t(x)))

    def value(self, x) -> float:
        self.n_calls += 1
        try:
            v = self.raw_value(x)
        except (ArithmeticError, np.linalg.LinAlgError, torch.linalg.LinAlgError):  # e.g. a singular K-matrix
            v = math.nan
        if not math.isfinite(v):  # a step into a region where the model is unphysical or overflows: reject it
            self.n_nonfinite += 1
            return math.inf
        if v < self.best_f:
            self.best_f, self.best_x = v, np.array(x, dtype=float)
        return v

    def gradient(self, x) -> np.ndarray:
        g = np.asarray(torch.as_tensor(self._grad(self._t(x))).detach().numpy(), dtype=float)
        if not np.isfinite(g).all():
            raise _NonFinite(f"non-finite gradient at {np.asarray(x).tolist()}")
        return g

    def hessian(self, x) -> np.ndarray:
        h = np.asarray(torch.as_tensor(self._hess(self._t(x))).detach().numpy(), dtype=float)
        if not np.isfinite(h).all():
            if not math.isfinite(self.raw_value(x)):
                # scipy's trust-exact takes the Hessian of a trial point before its value rejects the point:
                # any finite matrix will do there
                return np.zeros_like(h)
            raise _NonFinite(f"non-finite Hessian at {np.asarray(x).tolist()}")
        return h


def bounds_arrays(bounds: Bounds | None, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) arrays from one (low, high) per parameter, None for an open side (None: no bounds)."""
    if bounds is None:
        return None
    bounds = list(bounds)
    if len(bounds) != n:
        raise ValueError(f"bounds has {len(bounds)} entries for {n} parameters")
    lo = np.array([-np.inf if b is None or b[0] is None else float(b[0]) for b in bounds])
    hi = np.array([np.inf if b is None or b[1] is None else float(b[1]) for b in bounds])
    if (lo >= hi).any():
        raise ValueError("each bound needs lower < upper")
    return lo, hi


# -- Minimisation --------------------------------------------------------------------------------------------------

_FAILURES = (_NonFinite, ValueError, ArithmeticError, np.linalg.LinAlgError, torch.linalg.LinAlgError)
# MIGRAD also fails with RuntimeError (Minuit2's C++ errors); only there is it a failure of the fit
_MINUIT_FAILURES = (*_FAILURES, RuntimeError)


def find_minimum(
    objective,
    x0,
    *,
    bounds: Bounds | None = None,
    method: str = "newton",
    names: list[str] | None = None,
    errordef: float = NEGATIVE_LOG_LIKELIHOOD,
    max_iterations: int = 200,
    max_calls: int | None = None,
    edm_tolerance: float = 1e-5,
    tolerance: float = 1e-4,
    strategy: int = 1,
    hesse: bool = False,
    options: dict | None = None,
) -> MinimizeResult:
    """Minimise a torch objective (a callable, or an `Objective`) from x0, with bounds.

    method 'newton': scipy.optimize.minimize 'trust-exact' with the autodiff gradient and exact Hessian
        ('trust-constr' with the same derivatives when ``bounds`` are given: one (low, high) per parameter,
        None for an open side). ``max_iterations`` caps the iterations; ``options`` go to scipy.
    method 'minuit': MIGRAD with the autodiff gradient (limits = bounds, call limit ``max_calls``, iminuit's
        ``tolerance`` and ``strategy``), then HESSE if ``hesse`` (a check only: the errors are always the
        exact Hessian's).

    The start is clipped into the bounds. A non-finite objective at a trial point counts as +inf, so the
    step is rejected. If the objective is not finite at x0, or the minimiser fails (non-finite derivatives
    at an accepted point, linear-algebra failure), the result is invalid with the reason in ``message``.
    Validity ('newton'): finite minimum, EDM < ``edm_tolerance`` over the parameters not at a bound, and no
    negative curvature; ('minuit'): MIGRAD's own verdict and a finite minimum.
    """
    if method not in ("newton", "minuit"):
        raise ValueError(f"unknown method {method!r}; use 'newton' or 'minuit'")
    x0 = np.asarray(x0, dtype=float).reshape(-1)
    n = x0.size
    names = list(names) if names is not None else [f"x{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} parameters")
    limits = bounds_arrays(bounds, n)
    if limits is not None:
        x0 = np.clip(x0, *limits)
    wrapped = objective if isinstance(objective, Objective) else Objective(objective)
    start = np.array(x0)

    wrapped.raw_value(x0)  # an error in the user's functions raises here, at the start
    if not math.isfinite(wrapped.value(x0)):
        return _invalid(names, x0, start, method, wrapped, "the objective is not finite at the starting point")

    notes: list[str] = []
    minimiser_message = ""
    failures = _MINUIT_FAILURES if method == "minuit" else _FAILURES
    try:
        if method == "newton":
            x, converged, minimiser_message = _newton(wrapped, x0, limits, max_iterations, options)
        else:
            x, converged, minimiser_message = _migrad(
                wrapped, x0, limits, names, errordef, max_calls, tolerance, strategy, hesse
            )
    except failures as error:
        x, converged = wrapped.best_x, False
        notes.append(f"minimiser stopped: {error}")

    fval = wrapped.raw_value(x)
    if not math.isfinite(fval) and wrapped.best_x is not None:
        x, fval, converged = wrapped.best_x, wrapped.best_f, False
        notes.append("final point not finite, reporting the best finite point")
    return assess_minimum(
        wrapped,
        x,
        fval=fval,
        names=names,
        errordef=errordef,
        method=method,
        start=start,
        limits=limits,
        converged=converged,
        minimiser_message=minimiser_message,
        notes=notes,
        edm_tolerance=edm_tolerance if method == "newton" else None,
    )


def assess_minimum(
    objective: Objective,
    x,
    *,
    fval: float | None = None,
    names: list[str],
    errordef: float,
    method: str,
    start=None,
    limits: tuple[np.ndarray, np.ndarray] | None = None,
    converged: bool = True,
    minimiser_message: str = "",
    notes: Sequence[str] = (),
    edm_tolerance: float | None = None,
) -> MinimizeResult:
    """Judge a point a minimiser returned: exact-Hessian covariance, EDM, bounds, curvature, validity.

    fval: the objective at x if already known (else it is evaluated).

    Parameters pushed against a bound are put on it and left out of the EDM and curvature checks.
    Validity: with ``edm_tolerance``, EDM below it and no negative curvature (the minimiser's own verdict
    ``converged`` is then only reported); without it, ``converged``. A non-finite value, gradient or Hessian
    at x gives an invalid result.
    """
    notes = list(notes)
    message = lambda: "; ".join(m for m in [minimiser_message, *notes] if m)
    n = len(names)
    if fval is None:
        fval = objective.raw_value(x) if x is not None else math.nan
    if not math.isfinite(fval):
        return _invalid(names, x, start, method, objective, message() or "no finite minimum found")
    x = np.asarray(x, dtype=float)
    try:
        g, h = objective.gradient(x), objective.hessian(x)
        at_bound = np.zeros(n, dtype=bool)
        if limits is not None:
            x, at_bound = _snap_to_bounds(objective, x, g, h, limits, errordef)
            if at_bound.any():
                fval = objective.raw_value(x)
                g, h = objective.gradient(x), objective.hessian(x)
                stuck = ", ".join(nm for nm, b in zip(names, at_bound) if b)
                notes.append(f"at a bound: {stuck} (their errors are not meaningful)")
    except _NonFinite as error:
        notes.append(str(error))
        result = _invalid(names, x, start, method, objective, message())
        result.fval = fval
        return result
    covariance, accurate = covariance_from_hessian(h, errordef)
    free = ~at_bound
    h_free = h[np.ix_(free, free)]
    edm = _edm(g[free], h_free) if free.any() else 0.0
    eigenvalues = np.linalg.eigvalsh(0.5 * (h_free + h_free.T)) if free.any() else np.ones(1)
    downhill = eigenvalues.min() < -1e-8 * max(np.abs(eigenvalues).max(), 1e-300)
    if edm_tolerance is None:
        is_valid = bool(converged)
    else:
        is_valid = bool(edm < edm_tolerance and not downhill)
        if is_valid and not converged:  # scipy stopped at float64 precision ('bad approximation'): fine
            minimiser_message = ""
    if downhill:
        notes.append("the Hessian has a negative eigenvalue (saddle point)")
    if objective.n_nonfinite:
        notes.append(f"{objective.n_nonfinite} trial points with a non-finite objective were rejected")
    return MinimizeResult(
        names=names,
        values=np.asarray(x, dtype=float),
        errors=np.sqrt(np.diag(covariance)),
        covariance=covariance,
        fval=float(fval),
        ndf=None,
        is_valid=is_valid,
        has_accurate_covar=accurate,
        n_calls=objective.n_calls,
        method=method,
        message=message(),
        edm=float(edm),
        x0=start,
        hessian=h,
    )


def _snap_to_bounds(objective: Objective, x, g, h, limits, errordef) -> tuple[np.ndarray, np.ndarray]:
    """Parameters pushed against a bound by the gradient and within 1e-3 sigma of it: put them on it.

    The interior-point method stops a barrier distance away from an active bound, MINUIT's transform
    close to it; the fit is then judged (EDM) on the other parameters.
    """
    lo, hi = limits
    sigma = np.sqrt(np.abs(np.diag(covariance_from_hessian(h, errordef)[0])))
    scale = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 1.0)

    def close(distance, bound):
        finite = np.isfinite(bound)
        return finite & (distance <= np.maximum(1e-3 * scale, 1e-9 * (1.0 + np.abs(np.where(finite, bound, 0.0)))))

    at_lo = close(x - lo, lo) & (g > 0)
    at_hi = close(hi - x, hi) & (g < 0)
    at_bound = at_lo | at_hi
    if not at_bound.any():
        return x, at_bound
    snapped = np.where(at_lo, lo, np.where(at_hi, hi, x))
    if math.isfinite(objective.raw_value(snapped)):
        return snapped, at_bound
    return x, at_bound  # the bound itself is outside the physical region: stay just inside it


def _edm(g: np.ndarray, h: np.ndarray) -> float:
    try:
        return float(0.5 * g @ np.linalg.lstsq(0.5 * (h + h.T), g, rcond=1e-12)[0])
    except np.linalg.LinAlgError:
        return math.inf


def _invalid(names, x, start, method, objective, message) -> MinimizeResult:
    n = len(names)
    x = np.full(n, np.nan) if x is None else np.asarray(x, dtype=float)
    return MinimizeResult(
        names=names,
        values=x,
        errors=np.full(n, np.nan),
        covariance=np.full((n, n), np.nan),
        fval=math.inf,
        ndf=None,
        is_valid=False,
        has_accurate_covar=False,
        n_calls=objective.n_calls,
        method=method,
        message=message,
        x0=start,
    )


def _newton(objective: Objective, x0, limits, max_iterations, options) -> tuple[np.ndarray, bool, str]:
    opts = {"maxiter": max_iterations, "gtol": 1e-8}
    if limits is None:
        opts.update(options or {})
        res = optimize.minimize(
            objective.value, x0, jac=objective.gradient, hess=objective.hessian, method="trust-exact", options=opts
        )
    else:
        opts.update({"xtol": 1e-10, "barrier_tol": 1e-10})
        opts.update(options or {})
        lo, hi = limits
        # strictly inside for the interior-point method
        pad = 1e-9 * np.maximum(np.where(np.isfinite(hi - lo), hi - lo, 1.0), 1e-300)
        x0 = np.clip(x0, lo + pad, hi - pad)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            res = optimize.minimize(
                objective.value,
                x0,
                jac=objective.gradient,
                hess=objective.hessian,
                method="trust-constr",
                bounds=optimize.Bounds(lo, hi, keep_feasible=True),
                options=opts,
            )
    return np.asarray(res.x, dtype=float), bool(res.success), "" if res.success else str(res.message)


def _migrad(
    objective: Objective, x0, limits, names, errordef, max_calls, tolerance, strategy, hesse
) -> tuple[np.ndarray, bool, str]:
    minuit = Minuit(objective.value, x0, grad=objective.gradient, name=names)
    minuit.errordef = errordef
    minuit.strategy = strategy
    minuit.tol = tolerance
    minuit.throw_nan = False
    if limits is not None:
        minuit.limits = [(a if np.isfinite(a) else None, b if np.isfinite(b) else None) for a, b in zip(*limits)]
    minuit.migrad(ncall=max_calls)
    valid = bool(minuit.valid)
    message = (
        ""
        if valid
        else (
            f"MIGRAD did not converge (edm {minuit.fmin.edm:.3g}, "
            f"call limit reached: {minuit.fmin.has_reached_call_limit})"
        )
    )
    if valid and hesse:
        try:
            minuit.hesse()
            if not minuit.valid:
                message = "HESSE failed after MIGRAD converged (errors from the exact Hessian)"
        except (RuntimeError, ValueError) as error:
            message = f"HESSE failed: {error}"
    return np.array(minuit.values, dtype=float), valid, message
