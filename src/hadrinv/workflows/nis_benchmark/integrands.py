"""i-flow's test integrands (Gao, Isaacson, Krause, arXiv:2001.05486) with their exact values.

Names: ``gauss-D`` and ``camel-D`` (alpha = 0.2, any dimension D), ``circles`` (two overlapping circles,
2-D), ``annulus`` (2-D), ``polynomial-D`` (sum of x_i (1 - x_i)), ``triangle`` and ``box`` (one-loop scalar
integrals below threshold, at i-flow's kinematics). Each is a batched torch function on float64 points of
[0, 1]^D; exact values come from closed forms, except the circles (i-flow's 0.0136848, computed to 6
digits by i-flow) and the loop integrals (i-flow's published values, checked here against the closed form
and a deterministic quadrature in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

ALPHA = 0.2
CIRCLES_EXACT = 0.0136848  # i-flow, eq. 14: 0.0136848(1)
TRIANGLE_EXACT = -1.70721682537767509e-5  # C0(0, 0, 125^2, 175^2, 175^2, 175^2), GeV^-2
BOX_EXACT = 1.93696402386819321e-10  # D0(0, 0, 0, 125^2, 130^2, -130^2/2, 175^2 x 4), GeV^-4


@dataclass(frozen=True)
class TestIntegrand:
    name: str
    dim: int
    f: Callable[[torch.Tensor], torch.Tensor]
    exact: float
    exact_error: float = 0.0  # of the exact value itself (the circles' is known to 1e-7 only)


def gauss(x: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    norm = (alpha * math.sqrt(math.pi)) ** -x.shape[1]
    return norm * torch.exp(-((x - 0.5) ** 2).sum(1) / alpha**2)


def camel(x: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    norm = 0.5 * (alpha * math.sqrt(math.pi)) ** -x.shape[1]
    return norm * (torch.exp(-((x - 1 / 3) ** 2).sum(1) / alpha**2) + torch.exp(-((x - 2 / 3) ** 2).sum(1) / alpha**2))


def circles(x: torch.Tensor) -> torch.Tensor:
    """Two thin, overlapping circular ridges of radius 0.25, weighted by y^3 and (1 - y)^3."""
    dx, dy, r, w, e = 0.4, 0.6, 0.25, 1 / 0.004, 3.0
    a, b = x[:, 0], x[:, 1]
    first = b**e * torch.exp(-w * ((b - dy) ** 2 + (a - dx) ** 2 - r**2).abs())
    second = (1 - b) ** e * torch.exp(-w * ((b - 1 + dy) ** 2 + (a - 1 + dx) ** 2 - r**2).abs())
    return first + second


def annulus(x: torch.Tensor, inner: float = 0.2, outer: float = 0.45) -> torch.Tensor:
    """1 on the ring inner < |x - (1/2, 1/2)| < outer, 0 elsewhere: sharp edges, zero in most of the square."""
    r2 = ((x - 0.5) ** 2).sum(1)
    return ((r2 > inner**2) & (r2 < outer**2)).to(x.dtype)


def polynomial(x: torch.Tensor) -> torch.Tensor:
    return (x * (1 - x)).sum(1)


def get_integrand(name: str) -> TestIntegrand:
    """The test integrand called `name` (see the module docstring), or ValueError naming the known ones."""
    base, _, suffix = name.partition("-")
    if base in ("gauss", "camel", "polynomial"):
        if not suffix.isdigit() or int(suffix) < 1:
            raise ValueError(f"integrand {name!r}: give the dimension, e.g. {base}-4")
        d = int(suffix)
        if base == "gauss":
            return TestIntegrand(name, d, gauss, math.erf(1 / (2 * ALPHA)) ** d)
        if base == "camel":
            return TestIntegrand(name, d, camel, (0.5 * (math.erf(1 / (3 * ALPHA)) + math.erf(2 / (3 * ALPHA)))) ** d)
        return TestIntegrand(name, d, polynomial, d / 6)
    if name == "circles":
        return TestIntegrand(name, 2, circles, CIRCLES_EXACT, 1e-7)
    if name == "annulus":
        return TestIntegrand(name, 2, annulus, math.pi * (0.45**2 - 0.2**2))
    if name in ("triangle", "box"):
        from hadrinv.physics.loop_integrals import box, triangle

        if name == "triangle":
            loop = triangle(0.0, 0.0, 125.0**2, 175.0**2, 175.0**2, 175.0**2)
            exact = TRIANGLE_EXACT
        else:
            loop = box(0.0, 0.0, 0.0, 125.0**2, 130.0**2, -(130.0**2) / 2, *4 * [175.0**2])
            exact = BOX_EXACT
        return TestIntegrand(name, loop.dim, _RealPart(loop.integrand), exact)
    raise ValueError(
        f"unknown integrand {name!r}; known: gauss-D, camel-D, polynomial-D (D a dimension), circles, annulus, "
        "triangle, box"
    )


class _RealPart:
    """Below threshold a loop integrand is real: integrate its real part (a picklable wrapper, for Ray)."""

    def __init__(self, f: Callable[[torch.Tensor], torch.Tensor]):
        self.f = f

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x).real
