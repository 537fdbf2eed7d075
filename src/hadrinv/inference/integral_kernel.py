"""Learning a symmetric integral kernel K(x, y) from pairs of functions (f, g) with int K(x, y) f(y) dmu(y) = g(x).

This is the generic half of "physics-driven learning" of a non-local potential (talk 001): the physics
supplies sampled functions f (wave functions, correlators), their images g (the free part of an equation)
and the measure; this module knows nothing about Schroedinger equations.

The kernel is K(x, y) = scale * g(f(x) + f(y)) * regulator(x, y) with MLPs f: R -> R^d and g: R^d -> R
(the talk's form): symmetric under x <-> y by construction because the sum is. The regulator makes K
vanish far out, also by construction:

- ``both``: K = 0 where x > R and y > R (the talk's asymptotic condition: 1 - (1 - chi(x)) (1 - chi(y)));
- ``either``: K = 0 where x > R or y > R (chi(x) chi(y): a stronger prior for short-range interactions);

with chi(x) = 1 below R - 6 w, 0 beyond R (a smooth step, exactly zero past R; w = R/50 by default).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

RegulatorMode = Literal["both", "either"]


def smooth_cutoff(x: torch.Tensor, radius: float, width: float) -> torch.Tensor:
    """1 for x <= radius - 6 width, 0 for x >= radius, smooth (C-infinity) in between."""
    t = ((radius - x) / (6.0 * width)).clamp(0.0, 1.0)  # 0 at the radius, 1 at the inner edge

    def bump(s):  # exp(-1/s), 0 at s <= 0
        return torch.where(s > 0, torch.exp(-1.0 / s.clamp_min(1e-12)), torch.zeros_like(s))

    return bump(t) / (bump(t) + bump(1.0 - t))


class SymmetricKernel(nn.Module):
    """K(x, y) = scale g(f(x) + f(y)) regulator(x, y); x scaled by ``length`` before f.

    ``scale`` of a tenth of the expected |K| or less trains fastest: with a scale near |K| Adam stalls at a
    relative residual near 1 on the tests' separable problem and on the Omega-Omega case (measured)."""

    def __init__(
        self,
        features: int = 32,
        hidden: int = 64,
        depth: int = 2,
        scale: float = 1.0,
        length: float = 1.0,
        regulator_radius: float | None = None,
        regulator_width: float | None = None,
        regulator: RegulatorMode = "both",
    ):
        super().__init__()
        if regulator not in ("both", "either"):
            raise ValueError(f"regulator must be 'both' or 'either', got {regulator!r}")
        self.scale, self.length, self.regulator = float(scale), float(length), regulator
        self.regulator_radius = regulator_radius
        self.regulator_width = (
            regulator_width if regulator_width is not None else (regulator_radius / 50 if regulator_radius else None)
        )
        layers: list[nn.Module] = [nn.Linear(1, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.f = nn.Sequential(*layers, nn.Linear(hidden, features))
        layers = [nn.SiLU(), nn.Linear(features, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        last = nn.Linear(hidden, 1)
        # start from K = 0: the fit then grows the kernel the data ask for instead of undoing a random one
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.g = nn.Sequential(*layers, last)

    def cutoff(self, x: torch.Tensor) -> torch.Tensor:
        if self.regulator_radius is None:
            return torch.ones_like(x)
        return smooth_cutoff(x, self.regulator_radius, self.regulator_width)

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """K(x_i, y_j) as an (len(x), len(y)) matrix (y = x by default)."""
        y = x if y is None else y
        fx = self.f(x[:, None] / self.length)
        fy = fx if y is x else self.f(y[:, None] / self.length)
        values = self.g(fx[:, None, :] + fy[None, :, :])[..., 0]
        cx, cy = self.cutoff(x), self.cutoff(y)
        if self.regulator == "both":
            reg = 1.0 - (1.0 - cx)[:, None] * (1.0 - cy)[None, :]
        else:
            reg = cx[:, None] * cy[None, :]
        return self.scale * values * reg

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pointwise K(x, y) for broadcastable x, y."""
        x, y = torch.broadcast_tensors(x, y)
        fx, fy = self.f(x.reshape(-1, 1) / self.length), self.f(y.reshape(-1, 1) / self.length)
        values = self.g(fx + fy)[..., 0].reshape(x.shape)
        cx, cy = self.cutoff(x), self.cutoff(y)
        reg = 1.0 - (1.0 - cx) * (1.0 - cy) if self.regulator == "both" else cx * cy
        return self.scale * values * reg

    def options(self) -> dict:
        return {
            "features": self.f[-1].out_features,
            "hidden": self.f[0].out_features,
            "depth": sum(isinstance(m, nn.Linear) for m in self.f) - 1,
            "scale": self.scale,
            "length": self.length,
            "regulator_radius": self.regulator_radius,
            "regulator_width": self.regulator_width,
            "regulator": self.regulator,
        }


@dataclass
class KernelFitResult:
    relative_residual: float  # sum w (g - K f)^2 / sum w g^2 on the data, after the fit
    history: list[float] = field(
        default_factory=list
    )  # relative residual every `log_every` Adam steps, then after L-BFGS
    seconds: float = 0.0


def fit_integral_kernel(
    kernel: SymmetricKernel,
    nodes: torch.Tensor,
    measure: torch.Tensor,
    inputs: torch.Tensor,
    outputs: torch.Tensor,
    residual_weights: torch.Tensor,
    adam_steps: int = 2000,
    learning_rate: float = 3e-3,
    l2: float = 1e-5,
    lbfgs_steps: int = 500,
    log_every: int = 100,
    callback: Callable[[int, float], None] | None = None,
) -> KernelFitResult:
    """Fit K so that sum_j K(x_i, x_j) measure_j inputs[b, j] = outputs[b, i] for i < outputs.shape[1].

    inputs (B, n) are sampled on all nodes; outputs (B, m) on the first m <= n nodes (finite differences
    may lose the outer ones); residual_weights (m,) weight the squared residual (e.g. 4 pi r^2 dr).
    Loss = sum_b,i w_i (residual)^2 / sum_b,i w_i outputs^2 + l2 * sum(theta^2): Adam with cosine decay
    (the talk), then L-BFGS, which takes the residual orders of magnitude lower on this linear problem.
    """
    if inputs.shape[-1] != len(nodes) or outputs.shape[0] != inputs.shape[0] or outputs.shape[-1] > len(nodes):
        raise ValueError(
            f"shapes: nodes {tuple(nodes.shape)}, inputs {tuple(inputs.shape)}, outputs {tuple(outputs.shape)}"
        )
    if not (torch.isfinite(inputs).all() and torch.isfinite(outputs).all()):
        raise ValueError("inputs and outputs must be finite")
    m = outputs.shape[-1]
    weighted_inputs = inputs * measure
    norm = (outputs**2 * residual_weights).sum()
    params = [p for p in kernel.parameters() if p.requires_grad]
    t0 = time.perf_counter()

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        K = kernel.matrix(nodes)[:m]
        residual = outputs - weighted_inputs @ K.T
        relative = (residual**2 * residual_weights).sum() / norm
        return relative, relative + l2 * sum((p**2).sum() for p in params)

    history: list[float] = []
    optimizer = torch.optim.Adam(params, lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(adam_steps, 1), eta_min=learning_rate / 100)
    for step in range(adam_steps):
        relative, total = losses()
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        schedule.step()
        if step % log_every == 0:
            history.append(float(relative.detach()))
            if callback:
                callback(step, history[-1])
    if lbfgs_steps:
        lbfgs = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=lbfgs_steps,
            history_size=50,
            line_search_fn="strong_wolfe",
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
        )

        def closure():
            lbfgs.zero_grad()
            total = losses()[1]
            total.backward()
            return total

        lbfgs.step(closure)
    with torch.no_grad():
        relative = float(losses()[0])
    if not math.isfinite(relative):
        raise FloatingPointError("the kernel fit diverged (non-finite residual)")
    history.append(relative)
    return KernelFitResult(relative_residual=relative, history=history, seconds=time.perf_counter() - t0)
