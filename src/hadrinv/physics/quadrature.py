"""Quadrature rules as (nodes, weights) tensors, so integrals become batched dot products."""

from __future__ import annotations

import math

import numpy as np
import torch


def gauss_legendre(n: int, a: float = -1.0, b: float = 1.0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights on [a, b]; exact for polynomials of degree <= 2n - 1."""
    x, w = np.polynomial.legendre.leggauss(n)
    half = 0.5 * (b - a)
    nodes = torch.as_tensor(half * x + 0.5 * (a + b), dtype=dtype)
    weights = torch.as_tensor(half * w, dtype=dtype)
    return nodes, weights


def periodic_trapezoid(n: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes phi_k = 2 pi k / n on [0, 2 pi) with equal weights 2 pi / n.

    Exact for trigonometric polynomials of degree < n. We use it for the azimuthal integral of the
    unitarity relation instead of the talk's Simpson rule on 10 nodes, which leaves a residual of
    about 7.5e-4 on an exactly unitary amplitude (see docs/physics.md).
    """
    nodes = torch.arange(n, dtype=dtype) * (2.0 * math.pi / n)
    weights = torch.full((n,), 2.0 * math.pi / n, dtype=dtype)
    return nodes, weights


def simpson(n: int, a: float, b: float, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Composite Simpson nodes and weights on [a, b] with n equally spaced nodes.

    For an even n (an odd number of intervals) the last interval uses the trapezoid rule, as
    scipy.integrate.simpson did for its default; kept so the talk's 64 x 10 set-up can be reproduced.
    """
    if n < 3:
        raise ValueError("Simpson's rule needs at least 3 nodes")
    nodes = torch.linspace(a, b, n, dtype=dtype)
    h = (b - a) / (n - 1)
    m = n if n % 2 == 1 else n - 1
    w = torch.zeros(n, dtype=dtype)
    w[:m:2] = 2.0
    w[1:m:2] = 4.0
    w[0] = 1.0
    w[m - 1] = 1.0
    w = w * h / 3.0
    if m < n:
        w[m - 1] += 0.5 * h
        w[m] += 0.5 * h
    return nodes, w


def trapezoid_weights(nodes: torch.Tensor) -> torch.Tensor:
    """Trapezoid weights on sorted, possibly irregular nodes (e.g. measured angles)."""
    gaps = torch.diff(nodes)
    weights = torch.zeros_like(nodes)
    weights[:-1] += 0.5 * gaps
    weights[1:] += 0.5 * gaps
    return weights
