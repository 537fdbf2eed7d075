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

`fit_unbinned` minimises it with the shared minimiser `hadrinv.inference.minimize` (scipy trust-region
Newton with the exact Hessian, or MINUIT) and reports the covariance H^-1 of the exact Hessian of -ln L
(errordef 0.5: one standard deviation is Delta(-ln L) = 1/2), plus, for weighted events, the sandwich
covariance H^-1 C H^-1. `random_restarts` runs many fits from random starting points (Ray or serial).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hadrinv.data.chunks import first_event_dimension, slice_events
from hadrinv.inference import restarts
from hadrinv.inference.minimize import (
    NEGATIVE_LOG_LIKELIHOOD,
    Bounds,
    MinimizeResult,
    covariance_from_hessian,
    find_minimum,
    hessian,
)
from hadrinv.inference.restarts import RestartResult

__all__ = [
    "UnbinnedFitResult",
    "UnbinnedNLL",
    "fit_unbinned",
    "gaussian_constraint",
    "random_restarts",
    "sandwich_matrix",
    "slice_events",
]

Intensity = Callable[[torch.Tensor, Any], torch.Tensor]
Penalty = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------------------------------------
# Penalties
# ---------------------------------------------------------------------------------------------------


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
        n = int(weights.numel()) if weights is not None else first_event_dimension(cache)
        if n is None:
            raise ValueError(
                f"cannot chunk the {label} cache: no tensor leaf gives the number of events; "
                "pass weights or slice_cache"
            )
        out = []
        for start in range(0, n, self.chunk_size):
            stop = min(start + self.chunk_size, n)
            piece = (
                cache
                if (start, stop) == (0, n)
                else (self._slice(cache, start, stop) if self._slice else slice_events(cache, start, stop, n))
            )
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
        """Exact d^2(-ln L)/dp^2, (P, P): minimize.hessian (forward-over-reverse) per chunk, accumulated.

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
                h += (
                    np.asarray(custom(params), dtype=float)
                    if custom is not None
                    else hessian(lambda q, f=f: torch.as_tensor(f(q), dtype=torch.float64), x)
                )
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
# Fits
# ---------------------------------------------------------------------------------------------------


@dataclass
class UnbinnedFitResult(MinimizeResult):
    """A `MinimizeResult` (covariance = H^-1 of -ln L, errordef 0.5) with what unbinned fits add.

    sandwich_covariance: H^-1 C H^-1 for weighted events (None for unweighted ones unless requested); use
        `sandwich_errors` / `recommended_errors` for weighted fits, above all with negative weights.
    nll: -ln L without penalties at the minimum; penalties: each penalty's value there.
    """

    nll: float = float("nan")
    penalties: dict = field(default_factory=dict)
    sandwich_covariance: np.ndarray | None = None

    @property
    def sandwich_errors(self) -> np.ndarray | None:
        return None if self.sandwich_covariance is None else np.sqrt(np.diag(self.sandwich_covariance))

    @property
    def recommended_errors(self) -> np.ndarray:
        """The sandwich errors when available (weighted events), else the inverse-Hessian errors."""
        s = self.sandwich_errors
        return self.errors if s is None else s

    def _details(self) -> str:
        if self.sandwich_covariance is None:
            return ""
        width = max(len(n) for n in self.names)
        return "\n  sandwich errors (weighted events):\n" + "\n".join(
            f"  {n:<{width}}  +- {e:.3g}" for n, e in zip(self.names, self.sandwich_errors)
        )


def fit_unbinned(
    nll,
    x0,
    bounds: Bounds | None = None,
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
    """Minimise -ln L (an `UnbinnedNLL`, or any differentiable torch objective of a float64 vector) with
    `hadrinv.inference.minimize.find_minimum`.

    method 'newton': scipy trust-region Newton with the exact Hessian ('trust-constr' with ``bounds``: one
        (low, high) per parameter, None for an open side); ``max_iterations`` caps the iterations,
        ``options`` go to scipy. method 'minuit': MIGRAD (limits = bounds, call limit 20 x max_iterations,
        tolerance ``minuit_tolerance``), then HESSE as a check.

    Errors: covariance = H^-1 with H the exact Hessian of the objective at the minimum (errordef 0.5, the
    objective being -ln L, not -2 ln L). ``sandwich`` (default: when the NLL has non-unit data weights)
    also stores H^-1 C H^-1 in ``result.sandwich_covariance`` (see `UnbinnedNLL`). Non-finite values and
    validity as in `find_minimum`: a start where -ln L is not finite, or a failing minimiser, gives an
    invalid result with the reason in ``message``, never an exception.
    """
    found = find_minimum(
        nll,
        x0,
        bounds=bounds,
        method=method,
        names=names,
        errordef=NEGATIVE_LOG_LIKELIHOOD,
        max_iterations=max_iterations,
        max_calls=20 * max_iterations,
        edm_tolerance=edm_tolerance,
        tolerance=minuit_tolerance,
        strategy=strategy,
        hesse=True,
        options=options,
    )
    result = UnbinnedFitResult(**{f.name: getattr(found, f.name) for f in dataclasses.fields(found)})
    if found.hessian is None:  # no minimum with finite derivatives: nothing to add
        return result
    x = torch.as_tensor(found.values)
    want = sandwich if sandwich is not None else bool(getattr(nll, "weighted", False))
    if want and hasattr(nll, "score_covariance"):
        result.sandwich_covariance = sandwich_matrix(found.hessian, nll.score_covariance(x).numpy())
    result.penalties = nll.penalty_values(x) if hasattr(nll, "penalty_values") else {}
    result.nll = float(nll.nll_only(x).detach()) if hasattr(nll, "nll_only") else found.fval
    return result


def random_restarts(
    nll_factory_or_nll,
    sample_start: Callable[[torch.Generator], Any] | None,
    n: int,
    executor: str = "ray",
    seed: int = 0,
    *,
    nll_kwargs: dict | None = None,
    **options,
) -> RestartResult:
    """n `fit_unbinned` fits of the same NLL from starting points sample_start(generator), by
    `hadrinv.inference.restarts.random_restarts` (Ray or serial, checkpointed; see there for ``options``:
    tolerance, checkpoint_dir, resume, workers, ray_address, threads, on_done, and the fit options).

    The NLL usually holds closures and large caches that should not be pickled per task: pass a top-level
    ``make_nll`` (function or class) and its ``nll_kwargs`` (tensors, plain containers). An `UnbinnedNLL`
    instance may be passed instead; it is then shipped as it is, which works with executor 'serial', and
    with 'ray' only if cloudpickle can serialise it (its intensity function and caches).
    """
    if isinstance(nll_factory_or_nll, UnbinnedNLL):
        if nll_kwargs:
            raise ValueError("nll_kwargs is for a factory, not for an UnbinnedNLL instance")
        make_nll, kwargs = restarts.given, {"objective": nll_factory_or_nll}
    else:
        make_nll, kwargs = nll_factory_or_nll, nll_kwargs
    return restarts.random_restarts(
        make_nll,
        sample_start,
        n,
        executor,
        seed,
        objective_kwargs=kwargs,
        fit=fit_unbinned,
        result_type=UnbinnedFitResult,
        **options,
    )
