"""The closed forms of loop_closed_forms against the Feynman-parameter integrals they stand in for.

Below threshold F > 0 on the simplex and a Gauss-Legendre product rule of the cube integrand is exact to
rounding. Above threshold no contour deformation is used: the integral with a finite F - i delta is
evaluated for delta = h, 2h, ..., n h and extrapolated to delta -> 0 by a polynomial in delta, legitimate
because G(m^2 - i delta) is analytic in delta, with its nearest singularities at m^2 - i delta = 0 and s / 4:
the points above threshold keep s / 4 - m^2 >= m^2, so that h = m^2 / 20 and n = 8 leave ~1e-6.
"""

import math

import numpy as np
import pytest

from hadrinv.physics.loop_closed_forms import c0_two_massless_legs, d0_massless_legs

M_SQ = 175.0**2
# C0(0, 0, 125^2, 175^2, 175^2, 175^2), the value published with i-flow
IFLOW_C0 = -1.70721682537767509e-5


def _gauss_legendre(n_panels: int, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    edges = np.linspace(0.0, 1.0, n_panels + 1)
    half = 0.5 * np.diff(edges)[:, None]
    return (edges[:-1, None] + half * (x + 1)).ravel(), (half * w).ravel()


def _c0_feynman(s: float, m_sq: float, delta: float = 0.0, n_panels: int = 1, n_nodes: int = 64) -> complex:
    """-int_simplex 1 / (m^2 - s x1 x3 - i delta) with x1 = a u, x3 = a (1 - u), x2 = 1 - a (Jacobian a)."""
    x, w = _gauss_legendre(n_panels, n_nodes)
    a, u = x[:, None], x[None, :]
    return complex(-np.sum(np.outer(w, w) * a / (m_sq - 1j * delta - s * a * a * u * (1 - u))))


def _d0_feynman(s: float, t: float, m_sq: float, n_nodes: int = 48) -> complex:
    """int_simplex 1 / F^2, F = m^2 - s x1 x3 - t x2 x4, with x1 + x3 = a split by u, x2 + x4 = 1 - a by v."""
    x, w = _gauss_legendre(1, n_nodes)
    a, u, v = x[:, None, None], x[None, :, None], x[None, None, :]
    weight = w[:, None, None] * w[None, :, None] * w[None, None, :]
    f = m_sq - s * a * a * u * (1 - u) - t * (1 - a) ** 2 * v * (1 - v)
    return complex(np.sum(weight * a * (1 - a) / (f * f)))


def _d0_feynman_delta(s: float, t: float, m_sq: float, delta: float, n_panels: int = 30) -> complex:
    """int_simplex 1 / (F - i delta)^2 with x1 integrated exactly (F is linear in it) and the rest on a grid.

    x4 = 1 - x1 - x2 - x3, x2 = rho xi, x3 = rho (1 - xi):
    D0 = int drho dxi [1 / (M - t xi rho (1 - rho)) - 1 / (M - s (1 - xi) rho (1 - rho))] / (t xi - s (1 - xi)),
    M = m^2 - i delta; for s t < 0 the last factor never vanishes.
    """
    x, w = _gauss_legendre(n_panels, 16)
    rho, xi = x[:, None], x[None, :]
    big_m = m_sq - 1j * delta
    q = rho * (1 - rho)
    integrand = (1 / (big_m - t * xi * q) - 1 / (big_m - s * (1 - xi) * q)) / (t * xi - s * (1 - xi))
    return complex(np.sum(np.outer(w, w) * integrand))


def _extrapolate_to_zero(deltas: list[float], values: list[complex]) -> complex:
    """Neville's scheme for the interpolating polynomial in delta, evaluated at delta = 0."""
    p = list(values)
    for k in range(1, len(p)):
        for i in range(len(p) - k):
            p[i] = (deltas[i + k] * p[i] - deltas[i] * p[i + 1]) / (deltas[i + k] - deltas[i])
    return p[0]


def _zero_delta_limit(integral, m_sq: float) -> complex:
    deltas = [0.05 * m_sq * (k + 1) for k in range(8)]
    return _extrapolate_to_zero(deltas, [integral(d) for d in deltas])


def _rel(a: complex, b: complex) -> float:
    return abs(a - b) / abs(b)


def test_iflow_triangle_value():
    value = c0_two_massless_legs(125.0**2, M_SQ)
    assert isinstance(value, complex)
    assert _rel(value, IFLOW_C0) < 1e-12
    assert value.imag == 0.0


def test_triangle_limits_and_forms():
    assert c0_two_massless_legs(0.0, M_SQ) == pytest.approx(-0.5 / M_SQ, rel=1e-15)
    # below threshold -(2 / s) arcsin^2(sqrt(s) / (2 m)), above -(1/4) [log((1 + b) / (1 - b)) - i pi]^2
    s = 300.0**2
    assert _rel(c0_two_massless_legs(s, M_SQ), -2 / s * math.asin(math.sqrt(s / (4 * M_SQ))) ** 2) < 1e-14
    s = 600.0**2
    b = math.sqrt(1 - 4 * M_SQ / s)
    f = -0.25 * complex(math.log((1 + b) / (1 - b)), -math.pi) ** 2
    assert _rel(c0_two_massless_legs(s, M_SQ), -2 / s * f) < 1e-14
    values = c0_two_massless_legs(np.array([[-1e5], [2e5]]), np.array([M_SQ, 2 * M_SQ]))
    assert values.shape == (2, 2) and values.dtype == np.complex128


@pytest.mark.parametrize("s", [-(500.0**2), -(50.0**2), 300.0**2, 345.0**2])
def test_triangle_below_threshold_against_quadrature(s):
    assert _rel(c0_two_massless_legs(s, M_SQ), _c0_feynman(s, M_SQ, n_nodes=96)) < 1e-7


@pytest.mark.parametrize("s", [500.0**2, 700.0**2, 1000.0**2])
def test_triangle_above_threshold_against_finite_delta(s):
    closed = c0_two_massless_legs(s, M_SQ)
    n_panels = 30 if s < 6e5 else 60
    limit = _zero_delta_limit(lambda d: _c0_feynman(s, M_SQ, d, n_panels, 16), M_SQ)
    assert _rel(closed, limit) < 1e-4
    # Im C0 = -pi int delta(F) over the region F < 0 of the simplex: negative, in the limit as in closed form
    assert closed.imag < 0 and limit.imag < 0


@pytest.mark.parametrize(
    "s, t",
    [
        (130.0**2, -(130.0**2) / 2),  # below the s threshold, t < 0
        (-(300.0**2), -(200.0**2)),  # both spacelike
        (-(50.0**2), -1e5),
        (200.0**2, -(500.0**2)),  # s + t < 0
        (300.0**2, 100.0**2),  # both timelike below threshold
        (-(200.0**2), 300.0**2),
        (0.5 * M_SQ, 4 * M_SQ * 0.5 / (0.5 - 4)),  # beta_st = 0, a removable 0 / 0 of the closed form
        (0.3 * M_SQ, -0.2 * M_SQ),  # inside the radius of the Taylor series
    ],
)
def test_box_below_threshold_against_quadrature(s, t):
    closed = d0_massless_legs(s, t, M_SQ)
    assert closed.imag == 0.0
    assert _rel(closed, _d0_feynman(s, t, M_SQ)) < 1e-7


@pytest.mark.parametrize("s, t", [(500.0**2, -(200.0**2)), (700.0**2, -(400.0**2)), (500.0**2, -(600.0**2))])
def test_box_above_threshold_against_finite_delta(s, t):
    closed = d0_massless_legs(s, t, M_SQ)
    limit = _zero_delta_limit(lambda d: _d0_feynman_delta(s, t, M_SQ, d), M_SQ)
    assert _rel(closed, limit) < 1e-4
    # for t < 0 < s only the s-channel cut contributes: Im D0 = pi int delta(m^2 - s (1 - xi) rho (1 - rho))
    # / (s (1 - xi) - t xi) > 0, the positive cut of the two-propagator subloop times a positive weight
    assert closed.imag > 0 and limit.imag > 0


def test_box_symmetry_limits_and_shapes():
    assert d0_massless_legs(0.0, 0.0, M_SQ) == pytest.approx(1 / (6 * M_SQ**2), rel=1e-15)
    for s, t in [(500.0**2, -(200.0**2)), (130.0**2, -1e5), (-1e5, -3e4), (2e4, 9e4)]:
        assert _rel(d0_massless_legs(s, t, M_SQ), d0_massless_legs(t, s, M_SQ)) < 1e-13
    # the switch between Taylor series and closed form, and an invariant equal to 0, are seamless
    inside, outside = d0_massless_legs([M_SQ, M_SQ * (1 + 1e-12)], -M_SQ, M_SQ)
    assert _rel(inside, outside) < 1e-10
    near_zero, zero = d0_massless_legs(8 * M_SQ, [-1e-11 * M_SQ, 0.0], M_SQ)
    assert _rel(zero, near_zero) < 1e-9
    grid = d0_massless_legs(np.array([[1e5], [-1e5]]), np.array([-2e4, -3e5, 1e3]), M_SQ)
    assert grid.shape == (2, 3) and grid.dtype == np.complex128
    with pytest.raises(ValueError):
        d0_massless_legs(5 * M_SQ, 1.0, M_SQ)
