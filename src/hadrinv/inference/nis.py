"""Neural importance sampling: a normalizing flow on [0, 1]^d trained to sample |f|.

The flow is a stack of zuko coupling transforms (masked autoregressive with two passes, i-flow's binary
masks) whose univariate maps are monotonic rational-quadratic splines on the box itself: zuko's splines
map [-B, B] onto [-B, B], so with B = 1/2, a uniform base on [-1/2, 1/2]^d and a shift by 1/2 the flow is a
bijection of the unit hypercube. Samples never leave it, the density is exact, and no logit map pushes
mass to the faces (i-flow and MadNIS use the same construction).

Training follows i-flow / MadNIS: each round draws fresh points from the current flow, evaluates the
integrand once and adds (x, f(x), q_old(x)) to a buffer; a few gradient steps on the buffer then re-use
every evaluation, the old density entering as an importance weight, so the loss estimates stay unbiased
for the current flow. Losses:

- ``variance`` (default): L = < |f|^2 / (q q_old) > / I^2, the variance of the weights up to a constant,
  the loss of the talk. It aims straight at the estimate's error (camel, d = 4, same settings: variance
  0.30 of vegas's, against 0.46 with the KL loss).
- ``kl``: L = -< |f| / q_old * log q > / I, the forward KL divergence of q from |f| / I. It punishes
  missing mass only logarithmically, so it trains more steadily when early weights are wild, and it is
  the better choice for unweighting.

Both target q = |f| / int |f|, which for complex integrands minimises the variance of the real and imaginary
parts together. Each round's fresh points also measure the current flow's variance, and the best measured
flow is kept. The estimate itself is made with fresh samples only, from the frozen flow (`flow_sample_weights`:
i.i.d. or randomised quasi-Monte Carlo), with float64 weights, so training cannot bias it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
import zuko
from zuko.transforms import ComposedTransform, MonotonicRQSTransform

LOSSES = ("variance", "kl")


@dataclass
class FlowSettings:
    """Flow and training; defaults are i-flow's scale shrunk to what trains in about a minute on a CPU core."""

    transforms: int = 6  # coupling layers (each updates half the features), cycling through `binary_masks`
    bins: int = 16
    hidden: int = 64
    layers: int = 2
    loss: str = "variance"
    rounds: int = 25  # fresh-sample rounds in which the training budget is spent
    steps_per_round: int = 40  # gradient steps on the buffer after each round
    buffer_rounds: int = 5  # rounds kept in the buffer
    batch: int = 1024  # points per gradient step
    lr: float = 1e-2
    # randomised QMC for the estimate: scrambled Sobol sequences (0: i.i.d. points). 64, not fewer: where the
    # weights are heavy-tailed (the annulus's sharp ring) 16 replica means underestimate the error (pull
    # spread 1.54 over 8 seeds, 1.10 with 64; benchmarks/flow_pull_spread.py)
    replicas: int = 64


class UnitFlow(torch.nn.Module):
    """A normalizing flow that maps [0, 1]^d onto itself; `sample` returns points and log densities."""

    def __init__(self, dim: int, settings: FlowSettings, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)  # initial weights: same seed, same flow
        bins = settings.bins
        spline = partial(MonotonicRQSTransform, bound=0.5, slope=1e-3)
        self.dim = dim
        masks = binary_masks(dim)
        self.lazy = torch.nn.ModuleList(
            zuko.flows.MaskedAutoregressiveTransform(
                features=dim,
                passes=min(2, dim),
                # zuko groups features by order // ceil(dim / 2): 0 and dim - 1 fall in the two halves
                order=masks[i % len(masks)] * (dim - 1),
                univariate=spline,
                shapes=[(bins,), (bins,), (bins - 1,)],
                hidden_features=[settings.hidden] * settings.layers,
            )
            for i in range(settings.transforms)
        )
        for t in self.lazy:  # start from the identity map (zero spline parameters), i.e. uniform sampling
            linear = [m for m in t.modules() if isinstance(m, torch.nn.Linear)]
            # the hyper-network's last layer; in 1-D zuko keeps the spline's parameters themselves
            for parameter in linear[-1].parameters() if linear else t.parameters():
                torch.nn.init.zeros_(parameter)

    def _transform(self) -> ComposedTransform:
        return ComposedTransform(*(t(None) for t in self.lazy))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x) on [0, 1]^d (the base is uniform with unit volume)."""
        _, ladj = self._transform().call_and_ladj(x - 0.5)
        return ladj

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n points on [0, 1]^d and their log q, with the flow's dtype."""
        return self.push(torch.rand(n, self.dim, generator=generator, dtype=torch.float64))

    def push(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The flow's points for base points u on [0, 1]^d (uniform or quasi-random), and their log q."""
        dtype = next(self.parameters()).dtype
        y, ladj = self._transform().inv.call_and_ladj(u.to(dtype) - 0.5)
        return (y + 0.5).clamp(0.0, 1.0), -ladj


def binary_masks(dim: int) -> list[torch.Tensor]:
    """i-flow's coupling masks: feature i goes to the half given by bit k of i, and its complement, for each
    bit k, so every pair of features is split by some layer (2 ceil(log2 d) masks; d = 1: one)."""
    if dim == 1:
        return [torch.zeros(1, dtype=torch.long)]
    bits = max(1, math.ceil(math.log2(dim)))
    index = torch.arange(dim)
    masks = []
    for k in range(bits):
        bit = (index >> k) & 1
        masks += [1 - bit, bit]
    return masks


def train_flow(
    f: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    train_calls: int,
    settings: FlowSettings,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> UnitFlow:
    """A flow fitted to |f| with `train_calls` evaluations of f; f takes float64 points on [0, 1]^d."""
    if settings.loss not in LOSSES:
        raise ValueError(f"unknown flow loss {settings.loss!r}; choose from {', '.join(LOSSES)}")
    flow = UnitFlow(dim, settings, seed)
    optimizer = torch.optim.Adam(flow.parameters(), lr=settings.lr)
    steps = settings.rounds * settings.steps_per_round
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed + 1)
    per_round = max(train_calls // settings.rounds, 2)
    buffer: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    best, best_state = math.inf, None
    for round_ in range(settings.rounds):
        with torch.no_grad():
            x, log_q = flow.sample(per_round, generator)
        target = f(x.double()).abs().float()  # |f|: the density to learn, also for complex integrands
        # each round's fresh points measure the current flow's variance (round 0: the uniform density); the
        # flow returned is the best measured one, so training can never leave it worse than flat sampling
        # (a nearly flat integrand in many dimensions, where the loss's noise only adds structure)
        weights = target.double() * torch.exp(-log_q.double())
        variance = float(weights.var() / weights.mean() ** 2) if float(weights.mean()) > 0 else math.inf
        if variance < best:
            best, best_state = variance, copy.deepcopy(flow.state_dict())
        buffer = (buffer + [(x, target, log_q)])[-settings.buffer_rounds :]
        xs, ts, lqs = (torch.cat(column) for column in zip(*buffer, strict=True))
        for _ in range(settings.steps_per_round):
            pick = torch.randint(len(xs), (min(settings.batch, len(xs)),), generator=generator)
            loss = _loss(flow.log_prob(xs[pick]), ts[pick], lqs[pick], settings.loss)
            if not torch.isfinite(loss):
                continue  # a batch of only zeros: nothing to learn from it
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
            optimizer.step()
            schedule.step()
        if log is not None and (round_ + 1) % 5 == 0:
            log(f"flow round {round_ + 1}/{settings.rounds}: loss {loss.item():.4g}, relative variance {variance:.4g}")
    if best_state is not None:
        flow.load_state_dict(best_state)
    return flow


def _loss(log_q: torch.Tensor, target: torch.Tensor, log_q_old: torch.Tensor, kind: str) -> torch.Tensor:
    """Importance-weighted loss on buffer points drawn from q_old; scale-free (divided by the integral)."""
    weight = target * torch.exp(-log_q_old)  # |f| / q_old: the integrand's weight under the old density
    scale = weight.mean()
    if kind == "variance":
        # <|f|^2 / (q q_old)> = <weight^2 q_old / q>; in logs so that tiny densities cannot overflow
        return (torch.exp(2 * torch.log(weight / scale + 1e-30) + log_q_old - log_q) * (weight > 0)).mean()
    return -(weight / scale * log_q).mean()


def flow_sample_weights(
    flow: UnitFlow,
    f: Callable[[torch.Tensor], torch.Tensor],
    calls: int,
    seed: int,
    batch: int,
    replicas: int = 0,
) -> torch.Tensor:
    """Weights f(x) / q(x) of about `calls` fresh points from the frozen flow, in float64.

    replicas = 0: i.i.d. base points. replicas = K > 1: randomised quasi-Monte Carlo, the base points of
    K independently scrambled Sobol sequences of calls // K points each, returned as K consecutive
    blocks (`mean_and_error(weights, replicas=K)`). Each scrambled point is uniform, so every block's mean
    is unbiased, and the K block means are independent: their spread is an honest error. Why: the weights
    of a trained flow are a smooth function of its base point, and Sobol points fill the cube far more
    evenly than random ones, as vegas's stratification does for its grid; in low dimension the error then
    falls faster than 1 / sqrt(n).

    The flow runs in float32: its log density is then exact to about 1e-6, which biases the estimate by
    about 1e-6 relative, far below any Monte Carlo error reached here, at a third of the cost of float64.
    """
    generator = torch.Generator().manual_seed(seed + 2)
    if replicas > 1:
        per = calls // replicas
        engines = [
            torch.quasirandom.SobolEngine(flow.dim, scramble=True, seed=seed * 7919 + k) for k in range(replicas)
        ]
        bases = [(engine, n) for engine in engines for n in _chunks(per, batch)]
    else:
        bases = [(None, n) for n in _chunks(calls, batch)]
    parts = []
    with torch.no_grad():
        for engine, n in bases:
            if engine is None:
                u = torch.rand(n, flow.dim, generator=generator, dtype=torch.float64)
            else:
                u = engine.draw(n, dtype=torch.float64)
            x, log_q = flow.push(u)
            y = f(x.double())
            parts.append(y * torch.exp(-log_q.double()).to(y.dtype))
    return torch.cat(parts)


def _chunks(total: int, batch: int) -> list[int]:
    return [min(batch, total - start) for start in range(0, total, batch)]


def mean_and_error(weights: torch.Tensor, replicas: int = 0) -> tuple[complex | float, float, float | None]:
    """(mean, error of the real part, error of the imaginary part or None): of i.i.d. weights, or with
    replicas = K > 1 of K equal blocks from independent randomisations (the error from the block means)."""
    if replicas > 1:
        means = weights.reshape(replicas, -1).mean(1)
        n, spread = replicas, means
    else:
        n, spread = len(weights), weights
    value = complex(weights.mean()) if weights.is_complex() else float(weights.mean())
    if weights.is_complex():
        return value, float(spread.real.std() / math.sqrt(n)), float(spread.imag.std() / math.sqrt(n))
    return value, float(spread.std() / math.sqrt(n)), None
