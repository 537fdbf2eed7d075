"""Unbinned maximum-likelihood fits of weighted events: the engine of a partial-wave analysis.

The layer knows nothing about a physics model. The user gives an intensity function
``intensity(params, cache) -> (N,)`` evaluated on an opaque ``cache`` (whatever was precomputed for a set
of events: angular amplitudes, masses, ...) for the data and for accepted phase-space Monte Carlo, and
`UnbinnedNLL` builds

    -ln L(p) = - sum_i w_i ln I(x_i; p) + W ln( sum_j v_j I(y_j; p) / sum_j v_j ),    W = sum_i w_i

(non-extended), or with ``extended=True``

    -ln L(p) = - sum_i w_i ln I(x_i; p) + nu(p),    nu(p) = volume * sum_j v_j I(y_j; p) / sum_j v_j,

the expected yield (``volume`` = phase-space volume x luminosity etc.; with the default 1 the overall scale
of I is the yield), plus named penalty terms. Gradients and the exact Hessian come from torch autograd
(torch.func); the data and MC sums can be evaluated in chunks of events to bound memory.

`fit_unbinned` minimises it (scipy trust-region Newton with the exact Hessian, or MINUIT) and reports the
covariance H^-1 of the exact Hessian of -ln L (errordef 0.5: one standard deviation is
Delta(-ln L) = 1/2), plus, for weighted events, the sandwich covariance H^-1 C H^-1. `random_restarts` runs
many fits from random starting points through `hadrinv.inference.ensemble.run_tasks` (Ray or serial).
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from iminuit import Minuit
from scipy import optimize

from hadrinv.inference.ensemble import run_tasks
from hadrinv.inference.fit import (
    NEGATIVE_LOG_LIKELIHOOD,
    FitResult,
    covariance_from_hessian,
    hessian,
)

__all__ = [
    "RestartResult",
    "UnbinnedFitResult",
    "UnbinnedNLL",
    "fit_unbinned",
    "gaussian_constraint",
    "random_restarts",
    "restart_task",
    "sandwich_matrix",
    "slice_events",
]

Intensity = Callable[[torch.Tensor, Any], torch.Tensor]
Penalty = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------------
# Opaque event caches
# ---------------------------------------------------------------------------------------------------


def slice_events(cache: Any, start: int, stop: int, n_events: int) -> Any:
    """Events start:stop of a cache: every tensor / array leaf whose leading dimension is n_events is sliced.

    Containers walked: dict, list, tuple (named tuples too) and dataclass instances; other leaves (scalars,
    lookup tables whose first dimension is not n_events, functions) are passed whole. Slices are views,
    nothing is copied.
    """
    if torch.is_tensor(cache) or isinstance(cache, np.ndarray):
        return cache[start:stop] if cache.ndim >= 1 and cache.shape[0] == n_events else cache
    if isinstance(cache, dict):
        return type(cache)((k, slice_events(v, start, stop, n_events)) for k, v in cache.items())
    if isinstance(cache, tuple) and hasattr(cache, "_fields"):
        return type(cache)(*(slice_events(v, start, stop, n_events) for v in cache))
    if isinstance(cache, (list, tuple)):
        return type(cache)(slice_events(v, start, stop, n_events) for v in cache)
    if dataclasses.is_dataclass(cache) and not isinstance(cache, type):
        changes = {f.name: slice_events(getattr(cache, f.name), start, stop, n_events) for f in dataclasses.fields(cache) if f.init}
        return dataclasses.replace(cache, **changes)
    return cache


def _first_event_dimension(cache: Any) -> int | None:
    if torch.is_tensor(cache) or isinstance(cache, np.ndarray):
        return int(cache.shape[0]) if cache.ndim >= 1 else None
    if isinstance(cache, dict):
        children = list(cache.values())
    elif isinstance(cache, (list, tuple)):
        children = list(cache)
    elif dataclasses.is_dataclass(cache) and not isinstance(cache, type):
        children = [getattr(cache, f.name) for f in dataclasses.fields(cache)]
    else:
        return None
    for child in children:
        n = _first_event_dimension(child)
        if n is not None:
            return n
    return None


def gaussian_constraint(index: int, mean: float, sigma: float) -> Penalty:
    """Penalty (p[index] - mean)^2 / (2 sigma^2): a Gaussian measurement mean +- sigma of one parameter."""
    def penalty(params: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((params[index] - mean) / sigma) ** 2

    return penalty


# ---------------------------------------------------------------------------------------------------
# The negative log-likelihood
# ---------------------------------------------------------------------------------------------------


class UnbinnedNLL:
    """-ln L of weighted events with the normalisation integral from accepted phase-space MC.

    intensity(params, cache) -> (N,) tensor: the (unnormalised, non-negative) intensity of the events in
        ``cache``; it must be written with torch operations that torch.func can differentiate (forward and
        reverse mode) and must act event by event (the value for one event must not depend on the others
        in the cache, otherwise chunking changes the result). ``data`` and ``mc`` are such caches; the
        NLL never looks inside them except to slice them into chunks.
    data_weights (N,), mc_weights (N_mc,): per-event weights w_i and v_j (default 1). The MC average is
        sum_j v_j I_j / sum_j v_j.
    penalties: name -> callable(params) -> scalar tensor, added to the objective by ``__call__``,
        `gradient` and `hessian` (Gaussian constraints, a fit-fraction penalty, ...); `nll_only` leaves
        them out (likelihood ratios, significances).
    extended: add the expected yield nu(p) = volume * <I>_MC instead of W ln <I>_MC (see module doc).
    chunk_size: evaluate the data and MC sums in chunks of this many events. Values are bitwise identical
        to the unchunked ones (the per-event log-intensities are concatenated and summed as one vector);
        `gradient`, `hessian` and `score_covariance` accumulate per-chunk derivatives, so their memory is
        bounded by a chunk and they agree with the unchunked ones to float64 rounding. ``__call__`` stays
        differentiable (autograd keeps all chunks alive then; use `gradient` to bound memory).
    slice_cache(cache, start, stop) -> cache: how to cut a cache into chunks; default `slice_events`
        (tensor / array leaves whose leading dimension is the number of events, in dicts, lists, tuples
        and dataclasses). The number of events is the length of the weights if given, else the leading
        dimension of the first tensor leaf of the cache.

    Weighted events. With weights the inverse Hessian of the weighted -ln L is not the covariance of the
    estimator. For mixed-sign weights (background subtraction with negative-weight sideband events,
    sWeights) it UNDERESTIMATES the errors: the background events cancel in H but their fluctuations do
    not. The asymptotically correct covariance for weighted fits (Langenbruch, Eur. Phys. J. C 82 (2022)
    393) is the sandwich H^-1 C H^-1 with C = sum_i w_i^2 g_i g_i^T and g_i the gradient of the per-event
    log-density, ln(I(x_i)/<I>_MC) (normalisation included; for the extended likelihood, ln I(x_i)):
    `sandwich_covariance`. It ignores the MC statistical uncertainty of the normalisation and, for
    sWeights, the uncertainty of the sWeights themselves. Penalty terms are treated as independent
    unweighted measurements: their Hessian is added to C (so that for unit weights the sandwich equals
    H^-1 asymptotically).
    """

    def __init__(
        self,
        intensity: Intensity,
        data: Any,
        mc: Any,
        data_weights=None,
        mc_weights=None,
        penalties: Mapping[str, Penalty] | None = None,
        *,
        extended: bool = False,
        volume: float = 1.0,
        chunk_size: int | None = None,
        slice_cache: Callable[[Any, int, int], Any] | None = None,
    ):
        self.intensity = intensity
        self.data, self.mc = data, mc
        as64 = lambda w: None if w is None else torch.as_tensor(w, dtype=torch.float64).reshape(-1)
        self.data_weights, self.mc_weights = as64(data_weights), as64(mc_weights)
        self.penalties: dict[str, Penalty] = dict(penalties or {})
        self.extended = bool(extended)
        self.volume = float(volume)
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.chunk_size = chunk_size
        self._slice = slice_cache
        self._data_chunks = self._chunks(data, self.data_weights, "data")
        self._mc_chunks = self._chunks(mc, self.mc_weights, "mc")
        self._n_data = self._count(self._data_chunks)  # None until the first evaluation if unknown
        self._n_mc = self._count(self._mc_chunks)

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _chunks(self, cache, weights, label) -> list[tuple[Any, torch.Tensor | None, int]]:
        """[(cache chunk, weight chunk, expected length or -1)]; one unsliced chunk when not chunking."""
        if self.chunk_size is None:
            return [(cache, weights, -1 if weights is None else int(weights.numel()))]
        n = int(weights.numel()) if weights is not None else _first_event_dimension(cache)
        if n is None:
            raise ValueError(f"cannot chunk the {label} cache: no tensor leaf gives the number of events; pass weights or slice_cache")
        out = []
        for start in range(0, n, self.chunk_size):
            stop = min(start + self.chunk_size, n)
            piece = cache if (start, stop) == (0, n) else (self._slice(cache, start, stop) if self._slice else slice_events(cache, start, stop, n))
            out.append((piece, None if weights is None else weights[start:stop], stop - start))
        return out

    @staticmethod
    def _count(chunks) -> int | None:
        lengths = [n for _, _, n in chunks]
        return None if min(lengths) < 0 else sum(lengths)

    @property
    def weighted(self) -> bool:
        """True when data weights are given and not all equal to one."""
        return self.data_weights is not None and not bool((self.data_weights == 1.0).all())

    @property
    def has_negative_weights(self) -> bool:
        return self.data_weights is not None and bool((self.data_weights < 0).any())

    @staticmethod
    def _params(params) -> torch.Tensor:
        return torch.as_tensor(params, dtype=torch.float64).reshape(-1)

    def _evaluate(self, params, cache, expected: int) -> torch.Tensor:
        out = self.intensity(params, cache)
        if out.ndim != 1 or (expected >= 0 and out.shape[0] != expected):
            raise ValueError(f"intensity returned shape {tuple(out.shape)}, expected ({expected},)")
        if out.is_complex():
            raise ValueError("intensity returned complex values; return |amplitude|^2 (real, float64)")
        return out.to(torch.float64)

    def _sum_weights(self, params) -> torch.Tensor:
        """W = sum_i w_i (N for unweighted data)."""
        if self.data_weights is not None:
            return self.data_weights.sum()
        if self._n_data is None:
            with torch.no_grad():
                self._n_data = int(self.log_intensity_data(params).shape[0])
        return torch.tensor(float(self._n_data), dtype=torch.float64)

    def _mc_denominator(self, params) -> torch.Tensor:
        """sum_j v_j (N_mc for unweighted MC)."""
        if self.mc_weights is not None:
            return self.mc_weights.sum()
        if self._n_mc is None:
            with torch.no_grad():
                self._n_mc = int(self.intensity_mc(params).shape[0])
        return torch.tensor(float(self._n_mc), dtype=torch.float64)

    # -- values --------------------------------------------------------------------------------------

    def log_intensity_data(self, params) -> torch.Tensor:
        """ln I(x_i; p) for all data events, (N,), concatenated over chunks."""
        params = self._params(params)
        parts = [torch.log(self._evaluate(params, c, n)) for c, _, n in self._data_chunks]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        self._n_data = int(out.shape[0])
        return out

    def intensity_mc(self, params) -> torch.Tensor:
        """I(y_j; p) for all MC events, (N_mc,), concatenated over chunks."""
        params = self._params(params)
        parts = [self._evaluate(params, c, n) for c, _, n in self._mc_chunks]
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        self._n_mc = int(out.shape[0])
        return out

    def mc_average(self, params) -> torch.Tensor:
        """<I>_MC = sum_j v_j I(y_j; p) / sum_j v_j (proportional to the accepted cross section)."""
        values = self.intensity_mc(params)
        total = values.sum() if self.mc_weights is None else (self.mc_weights * values).sum()
        return total / self._mc_denominator(params)

    def nll_only(self, params) -> torch.Tensor:
        """-ln L without the penalty terms (scalar tensor, differentiable)."""
        params = self._params(params)
        logs = self.log_intensity_data(params)
        data_term = -(logs.sum() if self.data_weights is None else (self.data_weights * logs).sum())
        average = self.mc_average(params)
        if self.extended:
            return data_term + self.volume * average
        return data_term + self._sum_weights(params) * torch.log(average)

    def penalty(self, params) -> torch.Tensor:
        """Sum of the penalty terms (scalar tensor)."""
        params = self._params(params)
        total = torch.zeros((), dtype=torch.float64)
        for f in self.penalties.values():
            total = total + torch.as_tensor(f(params), dtype=torch.float64)
        return total

    def penalty_values(self, params) -> dict[str, float]:
        """Each penalty's value at params."""
        params = self._params(params)
        with torch.no_grad():
            return {name: float(f(params)) for name, f in self.penalties.items()}

    def __call__(self, params) -> torch.Tensor:
        """-ln L plus the penalties (scalar tensor, differentiable)."""
        params = self._params(params)
        value = self.nll_only(params)
        return value + self.penalty(params) if self.penalties else value

    # -- derivatives, chunk by chunk -----------------------------------------------------------------

    def _data_sum(self, cache, weights, n):
        def f(q):
            logs = torch.log(self._evaluate(q, cache, n))
            return logs.sum() if weights is None else (weights * logs).sum()
        return f

    def _mc_sum(self, cache, weights, n):
        def f(q):
            values = self._evaluate(q, cache, n)
            return values.sum() if weights is None else (weights * values).sum()
        return f

    def _mc_sum_and_gradient(self, params) -> tuple[torch.Tensor, torch.Tensor]:
        """S = sum_j v_j I_j and dS/dp."""
        s, gs = torch.zeros((), dtype=torch.float64), torch.zeros_like(params)
        for cache, weights, n in self._mc_chunks:
            g, v = torch.func.grad_and_value(self._mc_sum(cache, weights, n))(params)
            s, gs = s + v.detach(), gs + g.detach()
        return s, gs

    def gradient(self, params, include_penalties: bool = True) -> torch.Tensor:
        """d(-ln L)/dp, (P,), accumulated over chunks (torch.func.grad per chunk)."""
        params = self._params(params).detach()
        g = torch.zeros_like(params)
        for cache, weights, n in self._data_chunks:
            g = g - torch.func.grad(self._data_sum(cache, weights, n))(params).detach()
        s, gs = self._mc_sum_and_gradient(params)
        if self.extended:
            g = g + self.volume * gs / self._mc_denominator(params)
        else:
            g = g + self._sum_weights(params) * gs / s
        if include_penalties and self.penalties:
            g = g + torch.func.grad(self.penalty)(params).detach()
        return g

    def value_and_gradient(self, params, include_penalties: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(-ln L [+ penalties], its gradient) in one pass over the chunks: what a quasi-Newton step needs,
        at the cost of one evaluation with its backward pass (`__call__` then `gradient` costs two)."""
        params = self._params(params).detach()
        value, g = torch.zeros((), dtype=torch.float64), torch.zeros_like(params)
        for cache, weights, n in self._data_chunks:
            gc, vc = torch.func.grad_and_value(self._data_sum(cache, weights, n))(params)
            value, g = value - vc.detach(), g - gc.detach()
        s, gs = self._mc_sum_and_gradient(params)
        denominator = self._mc_denominator(params)
        if self.extended:
            value, g = value + self.volume * s / denominator, g + self.volume * gs / denominator
        else:
            W = self._sum_weights(params)
            value, g = value + W * torch.log(s / denominator), g + W * gs / s
        if include_penalties and self.penalties:
            gp, vp = torch.func.grad_and_value(self.penalty)(params)
            value, g = value + vp.detach(), g + gp.detach()
        return value, g

    def hessian(self, params, include_penalties: bool = True) -> torch.Tensor:
        """Exact d^2(-ln L)/dp^2, (P, P): fit.hessian (forward-over-reverse) per chunk, accumulated.

        Non-extended: H = -sum_c H_c[sum w ln I] + W (H_S / S - g_S g_S^T / S^2), S = sum_j v_j I_j.
        """
        params = self._params(params).detach()
        x = params.numpy()
        h = np.zeros((params.numel(), params.numel()))
        for cache, weights, n in self._data_chunks:
            h -= hessian(self._data_sum(cache, weights, n), x)
        hs = np.zeros_like(h)
        for cache, weights, n in self._mc_chunks:
            hs += hessian(self._mc_sum(cache, weights, n), x)
        if self.extended:
            h += self.volume * hs / float(self._mc_denominator(params))
        else:
            s, gs = self._mc_sum_and_gradient(params)
            s, gs = float(s), gs.numpy()
            h += float(self._sum_weights(params)) * (hs / s - np.outer(gs, gs) / s**2)
        if include_penalties and self.penalties:
            for f in self.penalties.values():
                # a penalty may carry its own (e.g. Gauss-Newton) Hessian when autodiff through it is costly
                custom = getattr(f, "hessian", None)
                h += np.asarray(custom(params), dtype=float) if custom is not None else hessian(lambda q, f=f: torch.as_tensor(f(q), dtype=torch.float64), x)
        return torch.from_numpy(0.5 * (h + h.T))

    @staticmethod
    def _jacobian(f, params) -> torch.Tensor:
        """(n, P) Jacobian of an (n,) function of P parameters: forward mode (P << n), reverse on failure."""
        try:
            return torch.func.jacfwd(f)(params)
        except (NotImplementedError, RuntimeError):
            return torch.func.jacrev(f)(params)

    def _score_chunks(self, params):
        params = self._params(params).detach()
        shift = None
        if not self.extended:
            s, gs = self._mc_sum_and_gradient(params)
            shift = gs / s  # d ln <I>_MC / dp
        for cache, weights, n in self._data_chunks:
            jac = self._jacobian(lambda q, c=cache, n=n: torch.log(self._evaluate(q, c, n)), params).detach()
            yield (jac if shift is None else jac - shift), weights

    def event_scores(self, params) -> torch.Tensor:
        """g_i = d ln(I(x_i)/<I>_MC)/dp (extended: d ln I(x_i)/dp), (N, P), by torch.func.jacfwd per chunk."""
        return torch.cat([g for g, _ in self._score_chunks(params)])

    def score_covariance(self, params, include_penalties: bool = True) -> torch.Tensor:
        """C = sum_i w_i^2 g_i g_i^T (+ the penalties' Hessian), accumulated over chunks, (P, P)."""
        params = self._params(params).detach()
        c = torch.zeros((params.numel(), params.numel()), dtype=torch.float64)
        for scores, weights in self._score_chunks(params):
            weighted = scores if weights is None else scores * (weights**2)[:, None]
            c = c + weighted.T @ scores
        if include_penalties and self.penalties:
            c = c + torch.from_numpy(hessian(self.penalty, params.numpy()))
        return 0.5 * (c + c.T)

    def sandwich_covariance(self, params, hessian_matrix=None) -> np.ndarray:
        """H^-1 C H^-1 (Langenbruch 2022), the asymptotically correct covariance of a weighted fit.

        H: exact Hessian of the objective (penalties included) at ``params`` unless given. Parameters
        that H leaves undetermined get infinite variance and NaN covariances, as in `covariance_from_hessian`.
        """
        h = self.hessian(params).numpy() if hessian_matrix is None else np.asarray(hessian_matrix, dtype=float)
        return sandwich_matrix(h, self.score_covariance(params).numpy())


def sandwich_matrix(h: np.ndarray, c: np.ndarray) -> np.ndarray:
    """H^-1 C H^-1 with H^-1 the inverse on H's positive subspace (undetermined parameters: inf / NaN)."""
    inverse, _ = covariance_from_hessian(h, NEGATIVE_LOG_LIKELIHOOD)
    undetermined = ~np.isfinite(np.diag(inverse))
    inverse = np.where(undetermined[:, None] | undetermined[None, :], 0.0, inverse)
    cov = inverse @ c @ inverse
    cov[undetermined, :] = np.nan
    cov[:, undetermined] = np.nan
    np.fill_diagonal(cov, np.where(undetermined, np.inf, np.diag(cov)))
    return 0.5 * (cov + cov.T)


# ---------------------------------------------------------------------------------------------------
# Fit results
# ---------------------------------------------------------------------------------------------------


@dataclass
class UnbinnedFitResult(FitResult):
    """A `FitResult` (covariance = H^-1 of -ln L, errordef 0.5) with what unbinned fits add.

    sandwich_covariance: H^-1 C H^-1 for weighted events (None for unweighted ones unless requested); use
        `sandwich_errors` / `recommended_errors` for weighted fits, above all with negative weights.
    nll: -ln L without penalties at the minimum; penalties: each penalty's value there.
    edm: estimated distance to the minimum, g^T H^-1 g / 2, at the reported point.
    x0: starting point; method: 'newton' or 'minuit'; message: why a fit is invalid, warnings.
    """

    method: str = "newton"
    message: str = ""
    edm: float = float("nan")
    nll: float = float("nan")
    penalties: dict = field(default_factory=dict)
    x0: np.ndarray | None = None
    sandwich_covariance: np.ndarray | None = None

    @property
    def sandwich_errors(self) -> np.ndarray | None:
        return None if self.sandwich_covariance is None else np.sqrt(np.diag(self.sandwich_covariance))

    @property
    def recommended_errors(self) -> np.ndarray:
        """The sandwich errors when available (weighted events), else the inverse-Hessian errors."""
        s = self.sandwich_errors
        return self.errors if s is None else s

    def __str__(self) -> str:
        text = super().__str__()
        if self.sandwich_covariance is not None:
            width = max(len(n) for n in self.names)
            text += "\n  sandwich errors (weighted events):\n" + "\n".join(
                f"  {n:<{width}}  +- {e:.3g}" for n, e in zip(self.names, self.sandwich_errors))
        if self.message:
            text += f"\n  note: {self.message}"
        return text

    def to_dict(self) -> dict:
        """Tensors and plain containers only (loadable with torch.load(weights_only=True))."""
        t = lambda a: None if a is None else torch.as_tensor(np.asarray(a, dtype=float))
        return {
            "names": list(self.names), "values": t(self.values), "errors": t(self.errors), "covariance": t(self.covariance),
            "fval": float(self.fval), "ndf": self.ndf, "is_valid": bool(self.is_valid), "has_accurate_covar": bool(self.has_accurate_covar),
            "n_calls": int(self.n_calls), "method": self.method, "message": self.message, "edm": float(self.edm), "nll": float(self.nll),
            "penalties": {k: float(v) for k, v in self.penalties.items()}, "x0": t(self.x0), "sandwich_covariance": t(self.sandwich_covariance),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> UnbinnedFitResult:
        a = lambda v: None if v is None else np.asarray(v.numpy() if torch.is_tensor(v) else v, dtype=float)
        kwargs = dict(d)
        for k in ("values", "errors", "covariance", "x0", "sandwich_covariance"):
            kwargs[k] = a(kwargs.get(k))
        return cls(**kwargs)


# ---------------------------------------------------------------------------------------------------
# The fit
# ---------------------------------------------------------------------------------------------------


class _NonFinite(ArithmeticError):
    pass


class _Objective:
    """numpy-facing value / gradient / Hessian of the objective, counting calls, mapping NaN to +inf."""

    def __init__(self, objective):
        self.objective = objective
        self.n_calls = 0
        self.n_nonfinite = 0
        self.best_x: np.ndarray | None = None
        self.best_f = math.inf
        if hasattr(objective, "gradient") and hasattr(objective, "hessian"):
            self._grad = objective.gradient
            self._hess = objective.hessian
        else:  # a plain differentiable torch callable
            self._grad = lambda p: torch.func.grad(objective)(p)
            self._hess = lambda p: torch.from_numpy(hessian(objective, p.numpy()))

    @staticmethod
    def _t(x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=float), dtype=torch.float64)

    def raw_value(self, x) -> float:
        with torch.no_grad():
            return float(self.objective(self._t(x)))

    def value(self, x) -> float:
        self.n_calls += 1
        try:
            v = self.raw_value(x)
        except (ArithmeticError, np.linalg.LinAlgError, torch.linalg.LinAlgError):  # e.g. a singular K-matrix
            v = math.nan
        if not math.isfinite(v):  # a step into a region where I <= 0 or overflows: reject it
            self.n_nonfinite += 1
            return math.inf
        if v < self.best_f:
            self.best_f, self.best_x = v, np.array(x, dtype=float)
        return v

    def gradient(self, x) -> np.ndarray:
        g = self._grad(self._t(x)).detach().numpy().astype(float)
        if not np.isfinite(g).all():
            raise _NonFinite(f"non-finite gradient at {np.asarray(x).tolist()}")
        return g

    def hessian(self, x) -> np.ndarray:
        h = self._hess(self._t(x)).detach().numpy().astype(float)
        if not np.isfinite(h).all():
            raise _NonFinite(f"non-finite Hessian at {np.asarray(x).tolist()}")
        return h


def _bounds_arrays(bounds, n: int) -> tuple[np.ndarray, np.ndarray] | None:
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


def fit_unbinned(
    nll,
    x0,
    bounds: Sequence[tuple[float | None, float | None] | None] | None = None,
    method: str = "newton",
    names: list[str] | None = None,
    max_iterations: int = 200,
    *,
    sandwich: bool | None = None,
    edm_tolerance: float = 1e-5,
    minuit_tolerance: float = 1e-4,
    strategy: int = 1,
    options: dict | None = None,
) -> UnbinnedFitResult:
    """Minimise -ln L (an `UnbinnedNLL`, or any differentiable torch objective of a float64 vector).

    method 'newton': scipy.optimize.minimize 'trust-exact' with the autodiff gradient and exact Hessian
        ('trust-constr' with the same derivatives when ``bounds`` are given; bounds: one (low, high) per
        parameter, None for an open side). ``max_iterations`` caps the Newton iterations; ``options``
        go to scipy.
    method 'minuit': MIGRAD with the autodiff gradient (limits = bounds; call limit 20 x max_iterations,
        tolerance ``minuit_tolerance``), then HESSE. fit.minimize is not used: it has no limits and no
        handling of non-finite values.

    Errors: covariance = H^-1 with H the exact Hessian of the objective at the minimum (errordef 0.5, the
    objective being -ln L, not -2 ln L). ``sandwich`` (default: when the NLL has non-unit data weights)
    also stores H^-1 C H^-1 in ``result.sandwich_covariance`` (see `UnbinnedNLL`).

    Non-finite values: a NaN or infinite objective at a trial point counts as +inf, so the step is
    rejected and the trust region (or MIGRAD's line search) shrinks. If the objective is not finite at
    x0, or the minimiser fails (non-finite derivatives at an accepted point, linear-algebra failure),
    the result is returned with is_valid False and the reason in ``message``; it never raises for that.
    Validity ('newton'): finite minimum, EDM = g^T H^-1 g / 2 < ``edm_tolerance`` over the parameters
    not at a bound, and no negative curvature; ('minuit'): MIGRAD's own verdict and a finite minimum.
    """
    x0 = np.asarray(x0, dtype=float).reshape(-1)
    n = x0.size
    names = list(names) if names is not None else [f"x{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} parameters")
    limits = _bounds_arrays(bounds, n)
    if limits is not None:
        x0 = np.clip(x0, *limits)
    objective = _Objective(nll)
    start = np.array(x0)

    objective.raw_value(x0)  # an error in the user's functions raises here, at the start
    f0 = objective.value(x0)
    if not math.isfinite(f0):
        return _invalid(names, x0, start, method, objective, "the objective is not finite at the starting point")

    message = scipy_message = ""
    converged = True
    if method == "newton":
        try:
            x, converged, message = _newton(objective, x0, limits, max_iterations, options)
            scipy_message = message
        except (_NonFinite, ValueError, ArithmeticError, np.linalg.LinAlgError, torch.linalg.LinAlgError) as error:
            x, converged, message = objective.best_x, False, f"minimiser stopped: {error}"
    elif method == "minuit":
        try:
            x, converged, message = _migrad(objective, x0, limits, names, max_iterations, minuit_tolerance, strategy)
        except (_NonFinite, ValueError, ArithmeticError, np.linalg.LinAlgError, torch.linalg.LinAlgError, RuntimeError) as error:
            x, converged, message = objective.best_x, False, f"minimiser stopped: {error}"
    else:
        raise ValueError(f"unknown method {method!r}; use 'newton' or 'minuit'")

    fval = objective.raw_value(x)
    if not math.isfinite(fval) and objective.best_x is not None:
        x, fval, converged = objective.best_x, objective.best_f, False
        message = (message + "; " if message else "") + "final point not finite, reporting the best finite point"
    if not math.isfinite(fval):
        return _invalid(names, x, start, method, objective, message or "no finite minimum found")

    note = lambda text: (message + "; " if message else "") + text
    try:
        g, h = objective.gradient(x), objective.hessian(x)
        at_bound = np.zeros(n, dtype=bool)
        if limits is not None:
            x, at_bound = _snap_to_bounds(objective, x, g, h, limits)
            if at_bound.any():
                fval = objective.raw_value(x)
                g, h = objective.gradient(x), objective.hessian(x)
                message = note(f"at a bound: {', '.join(nm for nm, b in zip(names, at_bound) if b)} (their errors are not meaningful)")
    except _NonFinite as error:
        result = _invalid(names, x, start, method, objective, note(str(error)))
        result.fval = fval
        return result
    covariance, accurate = covariance_from_hessian(h, NEGATIVE_LOG_LIKELIHOOD)
    free = ~at_bound
    h_free = h[np.ix_(free, free)]
    edm = _edm(g[free], h_free) if free.any() else 0.0
    eigenvalues = np.linalg.eigvalsh(0.5 * (h_free + h_free.T)) if free.any() else np.ones(1)
    downhill = eigenvalues.min() < -1e-8 * max(np.abs(eigenvalues).max(), 1e-300)
    if method == "newton":
        is_valid = bool(edm < edm_tolerance and not downhill)
        if is_valid and not converged:  # scipy stopped at float64 precision ('bad approximation'): fine
            message = message.replace(scipy_message, "").strip("; ") if scipy_message else message
    else:
        is_valid = bool(converged)
    if downhill:
        message = note("the Hessian has a negative eigenvalue (saddle point)")

    sandwich_cov = None
    want = sandwich if sandwich is not None else bool(getattr(nll, "weighted", False))
    if want and hasattr(nll, "score_covariance"):
        sandwich_cov = sandwich_matrix(h, nll.score_covariance(torch.as_tensor(x)).numpy())
    penalties = nll.penalty_values(torch.as_tensor(x)) if hasattr(nll, "penalty_values") else {}
    nll_value = float(nll.nll_only(torch.as_tensor(x)).detach()) if hasattr(nll, "nll_only") else fval
    if objective.n_nonfinite:
        message = (message + "; " if message else "") + f"{objective.n_nonfinite} trial points with a non-finite objective were rejected"
    return UnbinnedFitResult(
        names=names, values=np.asarray(x, dtype=float), errors=np.sqrt(np.diag(covariance)), covariance=covariance, fval=float(fval),
        ndf=None, is_valid=is_valid, has_accurate_covar=accurate, n_calls=objective.n_calls, method=method, message=message,
        edm=float(edm), nll=nll_value, penalties=penalties, x0=start, sandwich_covariance=sandwich_cov,
    )


def _snap_to_bounds(objective: _Objective, x, g, h, limits) -> tuple[np.ndarray, np.ndarray]:
    """Parameters pushed against a bound by the gradient and within 1e-3 sigma of it: put them on it.

    The interior-point method stops a barrier distance away from an active bound, MINUIT's transform
    close to it; the fit is then judged (EDM) on the other parameters.
    """
    lo, hi = limits
    sigma = np.sqrt(np.abs(np.diag(covariance_from_hessian(h, NEGATIVE_LOG_LIKELIHOOD)[0])))
    scale = np.where(np.isfinite(sigma) & (sigma > 0), sigma, 1.0)
    close = lambda d, b: np.isfinite(b) & (d <= np.maximum(1e-3 * scale, 1e-9 * (1.0 + np.abs(np.where(np.isfinite(b), b, 0.0)))))
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


def _invalid(names, x, start, method, objective, message) -> UnbinnedFitResult:
    n = len(names)
    x = np.full(n, np.nan) if x is None else np.asarray(x, dtype=float)
    return UnbinnedFitResult(
        names=names, values=x, errors=np.full(n, np.nan), covariance=np.full((n, n), np.nan), fval=math.inf, ndf=None,
        is_valid=False, has_accurate_covar=False, n_calls=objective.n_calls, method=method, message=message, x0=start,
    )


def _newton(objective: _Objective, x0, limits, max_iterations, options) -> tuple[np.ndarray, bool, str]:
    opts = {"maxiter": max_iterations, "gtol": 1e-8}
    if limits is None:
        opts.update(options or {})
        res = optimize.minimize(objective.value, x0, jac=objective.gradient, hess=objective.hessian, method="trust-exact", options=opts)
    else:
        opts.update({"xtol": 1e-10, "barrier_tol": 1e-10})
        opts.update(options or {})
        lo, hi = limits
        # strictly inside for the interior-point method
        pad = 1e-9 * np.maximum(np.where(np.isfinite(hi - lo), hi - lo, 1.0), 1e-300)
        x0 = np.clip(x0, lo + pad, hi - pad)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            res = optimize.minimize(objective.value, x0, jac=objective.gradient, hess=objective.hessian, method="trust-constr",
                                    bounds=optimize.Bounds(lo, hi, keep_feasible=True), options=opts)
    return np.asarray(res.x, dtype=float), bool(res.success), "" if res.success else str(res.message)


def _migrad(objective: _Objective, x0, limits, names, max_iterations, tolerance, strategy) -> tuple[np.ndarray, bool, str]:
    minuit = Minuit(objective.value, x0, grad=objective.gradient, name=names)
    minuit.errordef = NEGATIVE_LOG_LIKELIHOOD
    minuit.strategy = strategy
    minuit.tol = tolerance
    minuit.throw_nan = False
    if limits is not None:
        minuit.limits = [(None if not np.isfinite(a) else a, None if not np.isfinite(b) else b) for a, b in zip(*limits)]
    minuit.migrad(ncall=20 * max_iterations)
    valid = bool(minuit.valid)
    message = "" if valid else f"MIGRAD did not converge (edm {minuit.fmin.edm:.3g}, call limit reached: {minuit.fmin.has_reached_call_limit})"
    if valid:
        try:
            minuit.hesse()
            if not minuit.valid:
                message = "HESSE failed after MIGRAD converged (errors from the exact Hessian)"
        except (RuntimeError, ValueError) as error:
            message = f"HESSE failed: {error}"
    return np.array(minuit.values, dtype=float), valid, message


# ---------------------------------------------------------------------------------------------------
# Random restarts
# ---------------------------------------------------------------------------------------------------


@dataclass
class RestartResult:
    """Fits from random starting points, valid fits first, each group sorted by fval.

    best: the valid fit with the lowest fval (the lowest finite one if none is valid); n_at_best: how many
    valid fits reached it within ``tolerance`` in the objective. Unpacks as (fits, best, n_at_best).
    """

    fits: list[UnbinnedFitResult]
    best: UnbinnedFitResult
    n_at_best: int
    tolerance: float

    @property
    def n(self) -> int:
        return len(self.fits)

    @property
    def n_valid(self) -> int:
        return sum(f.is_valid for f in self.fits)

    def summary(self) -> str:
        return (f"{self.n_at_best} of {self.n} restarts reached the minimum (-lnL = {self.best.fval:.6f} within {self.tolerance:g}; "
                f"{self.n_valid} valid fits)")

    def __iter__(self):
        return iter((self.fits, self.best, self.n_at_best))


def _return_nll(nll):
    return nll


def restart_task(make_nll: Callable[..., Any], nll_kwargs: dict, x0: list[float], fit_options: dict, threads: int | None = None) -> dict:
    """One restart: nll = make_nll(**nll_kwargs); fit_unbinned(nll, x0, **fit_options).to_dict()."""
    if threads:
        torch.set_num_threads(threads)
    return fit_unbinned(make_nll(**nll_kwargs), x0, **fit_options).to_dict()


def random_restarts(
    nll_factory_or_nll,
    sample_start: Callable[[torch.Generator], Any],
    n: int,
    executor: str = "ray",
    seed: int = 0,
    *,
    nll_kwargs: dict | None = None,
    tolerance: float = 1e-3,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    workers: int | None = None,
    ray_address: str | None = None,
    threads: int | None = None,
    on_done: Callable[[int, dict], None] | None = None,
    **fit_options,
) -> RestartResult:
    """n fits of the same NLL from starting points sample_start(generator) (one torch.Generator seeded by
    ``seed``, drawn in the driver, so the starts do not depend on the executor), run by `run_tasks`.

    The NLL usually holds closures and large caches that should not be pickled per task, so each task is
    the top-level function `restart_task`, which rebuilds the NLL from a picklable factory: pass a
    top-level ``make_nll`` (function or class) and its ``nll_kwargs`` (tensors, plain containers: shipped
    once per Ray worker through the object store). An `UnbinnedNLL` instance may be passed instead; it is
    then shipped as it is, which works with executor 'serial', and with 'ray' only if cloudpickle can
    serialise it (its intensity function and caches).

    fit_options go to `fit_unbinned` (method, bounds, names, max_iterations, ...). Each result is
    checkpointed in ``checkpoint_dir`` (a temporary directory if None); resume=True loads finished ones.
    threads: torch threads per task (default 1 on Ray, untouched when serial).
    """
    if isinstance(nll_factory_or_nll, UnbinnedNLL):
        if nll_kwargs:
            raise ValueError("nll_kwargs is for a factory, not for an UnbinnedNLL instance")
        make_nll, kwargs = _return_nll, {"nll": nll_factory_or_nll}
    else:
        make_nll, kwargs = nll_factory_or_nll, dict(nll_kwargs or {})
    generator = torch.Generator().manual_seed(int(seed))
    starts = [np.asarray(torch.as_tensor(sample_start(generator), dtype=torch.float64).reshape(-1).numpy(), dtype=float) for _ in range(n)]
    if threads is None and executor == "ray":
        threads = 1
    shared = {"make_nll": make_nll, "nll_kwargs": kwargs, "fit_options": dict(fit_options), "threads": threads}
    per_task = [{"x0": s.tolist()} for s in starts]

    def run(directory: Path) -> list[dict]:
        files = [directory / f"restart_{i:04d}.pt" for i in range(n)]
        return run_tasks(restart_task, shared, per_task, files, resume=resume, executor=executor, workers=workers,
                         ray_address=ray_address, on_done=on_done)

    if checkpoint_dir is None:
        with tempfile.TemporaryDirectory(prefix="restarts_") as tmp:
            raw = run(Path(tmp))
    else:
        raw = run(Path(checkpoint_dir))
    fits = [UnbinnedFitResult.from_dict(r) for r in raw]
    key = lambda f: (not f.is_valid, f.fval if math.isfinite(f.fval) else math.inf)
    fits.sort(key=key)
    best = fits[0]
    n_at_best = sum(1 for f in fits if f.is_valid and best.is_valid and f.fval <= best.fval + tolerance)
    return RestartResult(fits=fits, best=best, n_at_best=n_at_best, tolerance=tolerance)
