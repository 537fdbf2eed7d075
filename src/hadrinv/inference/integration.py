"""Monte Carlo integration on the unit hypercube, one interface for every method.

`integrate(f, dim, method=...)` takes any batched integrand f(x: Tensor[n, dim]) -> Tensor[n], real or
complex, and returns an `IntegrationResult`: the value and its Monte Carlo error, the integrand calls
(adaptation or training included), the relative standard deviation of the weights and the unweighting
efficiency <w> / max w of the final sample, and a validity flag. Methods:

- `flat`: plain Monte Carlo, the reference every other method must beat.
- `vegas`: G. P. Lepage's adaptive importance sampling and stratification through the `vegas` package, the
  tool physicists use (not re-written here). Its grid adapts on `train_fraction` of the calls; the estimate
  uses fresh samples on the frozen grid only, so adaptation cannot bias it, and its error is vegas's own.
- `flow`: neural importance sampling (`hadrinv.inference.nis`): a spline flow on the hypercube trained on
  `train_fraction` of the calls, then fresh samples from the frozen flow for the estimate.
- `vegas+flow`: a vegas grid adapted on a third of the training calls serves as a fixed pre-map
  x = G(y) (MadNIS's VEGAS pre-training); the flow then learns the smoother integrand f(G(y)) G'(y) in y,
  which its few spline bins need no longer resolve near sharp peaks.

Accumulation is in float64 whatever f returns. An integrand that returns NaN or inf stops with a ValueError
naming how many points and the first of them; zeros anywhere are fine (weights are zero, never NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from hadrinv.inference.nis import FlowSettings, flow_sample_weights, mean_and_error, train_flow

METHODS = ("flat", "vegas", "flow", "vegas+flow")
# share of the calls that adapts or trains, when not given: vegas's error on i-flow's camel (d = 4, 8) is
# smallest at 1/2; a flow reaches most of its variance reduction on about a third of the calls, and the
# estimate then gets the rest (camel d = 4, 2e5 calls: variance 0.29 of vegas's at 0.35, 0.30 at 0.5)
DEFAULT_TRAIN_FRACTION = {"flat": 0.0, "vegas": 0.5, "flow": 0.35, "vegas+flow": 0.35}


@dataclass
class IntegrationResult:
    value: float
    error: float
    calls: int  # every integrand evaluation, adaptation included
    train_calls: int  # of which spent adapting (vegas) or training
    method: str
    relative_std: float  # std(w) / |<w>| of the final sample's weights
    unweighting_efficiency: float  # |<w>| / max |w|
    value_imag: float | None = None  # complex integrands
    error_imag: float | None = None
    is_valid: bool = True
    message: str = ""
    sample_weights: np.ndarray | None = field(default=None, repr=False)  # the final sample's f/q, for plots

    def __str__(self) -> str:
        """A table a physicist reads at a glance, as iminuit prints its minimum."""
        rows = [("method", self.method), ("value", f"{self.value:.10g} +- {self.error:.3g}")]
        if self.value_imag is not None:
            rows.append(("imaginary part", f"{self.value_imag:.10g} +- {self.error_imag:.3g}"))
        relative = self.error / abs(self.value) if self.value else math.inf
        rows += [
            ("relative error", f"{relative:.3g}"),
            ("calls (training)", f"{self.calls} ({self.train_calls})"),
            ("weights: relative std", f"{self.relative_std:.4g}"),
            ("unweighting efficiency", f"{self.unweighting_efficiency:.4g}"),
            ("valid", "yes" if self.is_valid else f"NO: {self.message}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}} | {v}" for k, v in rows)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None and k != "sample_weights"}


class CountedIntegrand:
    """f on float64 numpy or torch batches, counting calls and refusing non-finite values and wrong shapes."""

    def __init__(self, f: Callable[[torch.Tensor], torch.Tensor], dim: int):
        self.f, self.dim, self.calls = f, dim, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = self.f(x)
        if not isinstance(y, torch.Tensor):
            y = torch.as_tensor(np.asarray(y))
        if y.shape != (len(x),):
            raise ValueError(
                f"the integrand returned shape {tuple(y.shape)} for a batch of {len(x)} points; expected ({len(x)},)"
            )
        y = y.to(torch.complex128 if y.is_complex() else torch.float64)
        bad = ~torch.isfinite(y)
        if bool(bad.any()):
            first = x[bad.nonzero()[0, 0]].tolist()
            raise ValueError(
                f"the integrand returned {int(bad.sum())} non-finite value(s) (NaN or inf) of {len(x)}, the first at "
                f"x = {[round(v, 6) for v in first]}"
            )
        self.calls += len(x)
        return y


def integrate(
    f: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    method: str = "vegas",
    calls: int = 100_000,
    train_fraction: float | None = None,
    seed: int = 0,
    batch: int = 100_000,
    flow: FlowSettings | None = None,
    log: Callable[[str], None] | None = None,
) -> IntegrationResult:
    """The integral of f over [0, 1]^dim with about `calls` integrand evaluations in all.

    `train_fraction` of the calls adapt the grid (vegas) or train the flow (None: the method's default,
    `DEFAULT_TRAIN_FRACTION`); `flow` sets the flow and its
    training (default `FlowSettings()`), `log` receives training progress lines.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if dim < 1 or calls < 2:
        raise ValueError(f"need dim >= 1 and calls >= 2, got dim = {dim}, calls = {calls}")
    counted = CountedIntegrand(f, dim)
    if train_fraction is None:
        train_fraction = DEFAULT_TRAIN_FRACTION[method]
    if not 0.0 <= train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in [0, 1), got {train_fraction}")
    if method == "flat":
        return _flat(counted, dim, calls, seed, batch)
    if method == "vegas":
        return _vegas(counted, dim, calls, train_fraction, seed, batch)
    return _flow(counted, dim, calls, train_fraction, seed, batch, flow or FlowSettings(), method, log)


def weight_statistics(weights: torch.Tensor) -> tuple[float, float]:
    """(relative std, unweighting efficiency) of weights, on their modulus for complex ones."""
    w = weights.abs() if weights.is_complex() else weights
    mean = float(w.mean())
    if mean == 0.0:
        return math.inf, 0.0
    return float(w.std()) / abs(mean), abs(mean) / float(w.abs().max())


def _flat(f: CountedIntegrand, dim: int, calls: int, seed: int, batch: int) -> IntegrationResult:
    generator = torch.Generator().manual_seed(seed)
    weights = torch.cat(
        [
            f(torch.rand(min(batch, calls - i), dim, generator=generator, dtype=torch.float64))
            for i in range(0, calls, batch)
        ]
    )
    n = len(weights)
    value = weights.mean()
    error_re = float(weights.real.std() / math.sqrt(n)) if weights.is_complex() else float(weights.std() / math.sqrt(n))
    relative_std, efficiency = weight_statistics(weights)
    result = IntegrationResult(float(value.real), error_re, f.calls, 0, "flat", relative_std, efficiency)
    result.sample_weights = weights.numpy()
    if weights.is_complex():
        result.value_imag, result.error_imag = float(value.imag), float(weights.imag.std() / math.sqrt(n))
    return result


def _vegas(
    f: CountedIntegrand, dim: int, calls: int, train_fraction: float, seed: int, batch: int
) -> IntegrationResult:
    import vegas  # a dependency, imported here so that the other methods do not pay for it

    iterations = 10
    train_calls = int(train_fraction * calls)
    # vegas stratifies with as many hypercubes as neval allows (2 points each at least), so a small neval in
    # many dimensions is fine: it then samples one hypercube per direction and stays within the budget
    neval_train = max(train_calls // iterations, 2)
    neval = max((calls - train_calls) // iterations, 2)

    @vegas.lbatchintegrand
    def integrand(x: np.ndarray) -> np.ndarray:
        y = f(torch.as_tensor(x, dtype=torch.float64))
        # vegas needs C-contiguous arrays; the real part of a complex tensor, for one, is a strided view
        return np.ascontiguousarray(torch.stack([y.real, y.imag], -1).numpy() if y.is_complex() else y.numpy())

    # vegas draws from numpy's global generator unless given its own
    integrator = vegas.Integrator(dim * [[0.0, 1.0]], ran_array_generator=np.random.default_rng(seed).random)
    probe = f(torch.full((1, dim), 0.5, dtype=torch.float64))  # real or complex: vegas needs the shape up front
    is_complex = probe.is_complex()
    if train_calls:
        integrator(integrand, nitn=iterations, neval=neval_train, nhcube_batch=batch)
    adapted = f.calls
    estimate = integrator(integrand, nitn=iterations, neval=neval, adapt=False, nhcube_batch=batch)
    x, wgt = next(iter(integrator.random_batch()))  # one more batch on the frozen grid, for the weight statistics
    weights = f(torch.as_tensor(x, dtype=torch.float64)) * torch.as_tensor(wgt) * len(wgt)
    relative_std, efficiency = weight_statistics(weights)
    re, im = (estimate[0], estimate[1]) if is_complex else (estimate, None)
    result = IntegrationResult(float(re.mean), float(re.sdev), f.calls, adapted, "vegas", relative_std, efficiency)
    result.sample_weights = weights.numpy()
    if im is not None:
        result.value_imag, result.error_imag = float(im.mean), float(im.sdev)
    q = float(estimate.Q)
    if q < 1e-3:  # the iterations disagree: vegas's error is not to be trusted
        result.is_valid, result.message = False, f"vegas iterations inconsistent (Q = {q:.2g})"
    return result


def _flow(
    f: CountedIntegrand,
    dim: int,
    calls: int,
    train_fraction: float,
    seed: int,
    batch: int,
    settings: FlowSettings,
    method: str,
    log: Callable[[str], None] | None,
) -> IntegrationResult:
    train_calls = int(train_fraction * calls)
    g = f
    if method == "vegas+flow":
        g = _vegas_premap(f, dim, train_calls // 3, seed, batch)
    if train_calls > f.calls:
        flow = train_flow(g, dim, train_calls - f.calls, settings, seed, log)
    else:
        flow = train_flow(g, dim, 0, FlowSettings(rounds=0), seed)  # no budget: the untrained flow is uniform
    trained = f.calls
    weights = flow_sample_weights(flow, g, calls - trained, seed, batch, settings.replicas)
    value, error, error_imag = mean_and_error(weights, settings.replicas)
    relative_std, efficiency = weight_statistics(weights)
    result = IntegrationResult(
        float(value.real) if isinstance(value, complex) else value,
        error,
        f.calls,
        trained,
        method,
        relative_std,
        efficiency,
    )
    result.sample_weights = weights.numpy()
    if isinstance(value, complex):
        result.value_imag, result.error_imag = value.imag, error_imag
    if not math.isfinite(relative_std) or relative_std > 0.5 * math.sqrt(len(weights)):
        # one weight carries the whole sum: the flow misses regions and its error cannot be trusted
        result.is_valid, result.message = False, f"weights dominated by few points (relative std {relative_std:.3g})"
    return result


def _vegas_premap(
    f: CountedIntegrand, dim: int, calls: int, seed: int, batch: int
) -> Callable[[torch.Tensor], torch.Tensor]:
    """y -> f(G(y)) G'(y) for a vegas map G adapted to f with `calls` evaluations."""
    import vegas

    @vegas.lbatchintegrand
    def integrand(x: np.ndarray) -> np.ndarray:
        return f(torch.as_tensor(x, dtype=torch.float64)).abs().numpy()  # the map follows |f|

    integrator = vegas.Integrator(dim * [[0.0, 1.0]], ran_array_generator=np.random.default_rng(seed).random)
    iterations = 5
    if calls >= iterations * 2:
        integrator(integrand, nitn=iterations, neval=calls // iterations, nhcube_batch=batch)
    grid = integrator.map

    def mapped(y: torch.Tensor) -> torch.Tensor:
        y_np = np.ascontiguousarray(y.detach().double().numpy())
        x, jac = np.empty_like(y_np), np.empty(len(y_np))
        grid.map(y_np, x, jac)
        value = f(torch.from_numpy(x))
        return value * torch.from_numpy(jac).to(value.dtype)

    return mapped
