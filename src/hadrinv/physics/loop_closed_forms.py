"""Closed forms of one-loop scalar integrals with equal internal masses, valid above threshold.

Truth for the Feynman-parameter integrals of `loop_integrals`, derived and coded independently of them, in
complex128 numpy. Normalisation of LoopTools / COLLIER (D = 4, mu = 1):

    G = int d^4 k / (i pi^2) prod_j 1 / (q_j^2 - m^2 + i delta)
      = (-1)^N Gamma(N - 2) int_simplex 1 / (F - i delta)^(N - 2),   F = m^2 - sum_{i<j} x_i x_j (q_i - q_j)^2,

so that C0(0, 0, 0, m^2, m^2, m^2) = -1 / (2 m^2) and D0(0, ..., 0, m^2, ..., m^2) = 1 / (6 m^4). Every
invariant z carries z + i delta. With

    beta_z = sqrt(1 - 4 m^2 / z),   x_z = (beta_z - 1) / (beta_z + 1),   L_z = log x_z,

z + i delta puts beta_z = +i |beta_z| for 0 < z < 4 m^2 (x_z on the upper unit half-circle) and, above
threshold, x_z in (-1, 0) on the upper side of the cut: L_z = log|x_z| + i pi.

`c0_two_massless_legs(s, m_sq)` = C0(0, 0, s, m^2, m^2, m^2) = L_s^2 / (2 s) = -(2 / s) f(tau), tau = 4 m^2 / s,
the gluon-fusion triangle: f = arcsin^2(1 / sqrt(tau)) below threshold, -(1/4) [log((1 + beta) / (1 - beta))
- i pi]^2 above it, -(1/4) log^2((beta + 1) / (beta - 1)) for s < 0.

`d0_massless_legs(s, t, m_sq)` = D0(0, 0, 0, 0, s, t, m^2, m^2, m^2, m^2), the box of light-by-light scattering
and of gg -> HH with massless legs. Integrating x_1 (F is linear in it) and then one more parameter exactly,

    D0 = int_0^1 dxi [J(t xi) - J(s (1 - xi))] / (t xi - s (1 - xi)),   J(a) = int_0^1 drho / (m^2 - a rho (1 - rho))
       = 2 L_a / (a beta_a),

and with a -> x_a the integrand becomes log x [1 / (x - x*) - 1 / (x - 1 / x*)], x* = x_z at beta* = beta_st =
sqrt(1 - 4 m^2 (s + t) / (s t)), the pole a* = s t / (s + t) of the partial fractions. Hence

    D0 = 2 / (s t beta*) sum_{z = s, t} int_1^{x_z} dx log x [1 / (x - x*) - 1 / (x - 1 / x*)],

along the image of a in [0, z] (+ i delta): the segment (0, 1] for z < 0, then the upper half-circle, then
(-1, 0) from above. The primitives are chosen so that this path never meets their cuts:

    for 1 / x* (outside the unit disk):  F(x, c) = log x log(1 - x / c) + Li2(x / c), cut on the ray [c, oo);
    for x* when s t < 0:                 F2(x, c) = log^2 x / 2 + log x log(1 - c / x) - Li2(c / x), cut on [0, c];
    for x* when s, t < 0 or 0 < s, t < 4 m^2, the pole lies on both paths and only their sum is regular: there
    F(x, x*) with the principal value (s, t < 0) or, with x* on the half-circle, + 2 pi i log x*, the residue
    picked up by the one path that passes x* on the outside.

The shorter form without dilogarithms that circulates for this box, 1 / (s t beta*) [2 log^2((beta* + beta_s) /
(beta* + beta_t)) + log(...) log(...) - pi^2 / 2], does not agree with the Feynman-parameter integral at any
point tested, below or above threshold.

The one-minus arguments of Li2 and the logs are built from beta_s, beta_t, beta* without differences of nearly
equal numbers. What remains: a cancellation of order sqrt(m^2 / |z|) for an invariant small against m^2 (the
Taylor series in s and t takes over for |s|, |t| <= m^2, interpolation in z for one |z| < 1e-6 m^2, which also
gives z = 0), and at beta* -> 0 (only for s t < 0 with the positive invariant below 4 m^2) a removable 0 / 0,
bridged by interpolation in beta*^2.

Imaginary parts, fixed by the sign of i delta through 1 / (F - i delta) = P(1 / F) + i pi delta(F):
Im C0 = -pi int_simplex delta(F) < 0 above threshold (C0 = -int 1 / (F - i delta)); for t < 0 < s only J(s (1 - xi))
has a cut, Im J = pi int drho delta(m^2 - a rho (1 - rho)) > 0, and the denominator s (1 - xi) - t xi > 0, so
Im D0 = pi int dxi drho delta(m^2 - s (1 - xi) rho (1 - rho)) / (s (1 - xi) - t xi) > 0 above the s threshold.
Below threshold both vanish and are set to exactly 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import spence

# below this |s| / m^2 and |t| / m^2 the Taylor series in s and t replaces the closed form, whose cancellation
# grows like sqrt(m^2 / |z|): the series converges like (max(|s|, |t|) / (4 m^2))^n
_SERIES_RADIUS = 1.0
_SERIES_ORDER = 32
# node spacing in beta*^2 and nodes of the interpolation across the removable point beta* = 0
_LANDAU_WINDOW = 1e-3
_LANDAU_NODES = (-3.0, -2.0, -1.0, 1.0, 2.0, 3.0)
# an invariant below _TINY m^2 in size, where the closed form loses sqrt(m^2 / |z|), is reached by quadratic
# interpolation in it through -_TINY_STEP m^2 times 1, 2, 3 (D0 is analytic at z = 0)
_TINY = 1e-6
_TINY_STEP = 1e-5


def _li2_of_one_minus(w: np.ndarray) -> np.ndarray:
    """Li2(1 - w), accurate for small w: scipy's spence is Li2(1 - w) with the principal branch of Li2."""
    return spence(w)


def _beta_and_log(z: np.ndarray, m_sq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """beta_z and L_z = log x_z for real z != 0 with z + i delta, both complex128."""
    q = -4 * m_sq / z  # beta^2 - 1, kept apart from beta^2 so that beta - 1 never cancels
    y = (z - 4 * m_sq) / z  # exact difference near threshold
    root = np.sqrt(np.abs(y))
    beta = np.where(y >= 0, root + 0j, 1j * root)
    safe = np.where(root == 0, 1.0, root)
    # z < 0: x in (0, 1); log((beta - 1) / (beta + 1)) as -2 artanh(1 / beta) while beta is large, else from
    # beta - 1 = q / (beta + 1)
    log_spacelike = np.where(root >= 2, -2 * np.arctanh(1 / safe), np.log(np.abs(q) / (root + 1) ** 2))
    # z >= 4 m^2: x in (-1, 0] from above; 1 - beta = -q / (1 + beta)
    log_above = np.where(root < 0.5, -2 * np.arctanh(root), np.log(np.abs(q) / (1 + root) ** 2)) + 1j * math.pi
    # 0 < z < 4 m^2: x = exp(i theta), theta = 2 arctan(1 / |beta|) in (0, pi)
    log_below = 2j * np.arctan(1 / safe)
    log_x = np.where(y > 1, log_spacelike + 0j, np.where(y >= 0, log_above, log_below))
    return beta, log_x


def _as_output(value: np.ndarray):
    value = np.asarray(value, dtype=np.complex128)
    return value[()] if value.ndim == 0 else value


def c0_two_massless_legs(s, m_sq):
    """C0(0, 0, s, m^2, m^2, m^2) = log^2(x_s) / (2 s) for real s (array-like) and m^2 > 0, complex128.

    s < 0: real, negative; 0 < s < 4 m^2: -(2 / s) arcsin^2(sqrt(s) / (2 m)), real; s > 4 m^2: Im C0 < 0;
    s = 0: -1 / (2 m^2).
    """
    s, m_sq = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(m_sq, dtype=np.float64))
    if np.any(m_sq <= 0):
        raise ValueError("c0_two_massless_legs needs m_sq > 0")
    with np.errstate(divide="ignore", invalid="ignore"):
        s_safe = np.where(s == 0, -1.0, s)
        _, log_x = _beta_and_log(s_safe, m_sq)
        c0 = log_x * log_x / (2 * s_safe)
    c0 = np.where(s == 0, -0.5 / m_sq + 0j, c0)
    c0 = np.where(s <= 4 * m_sq, c0.real + 0j, c0)
    return _as_output(c0)


def _series_coefficients(order: int) -> np.ndarray:
    """c[j, k] = (j + k + 1)! j! k! / (2j + 2k + 3)!, zero for j + k > order."""
    c = np.zeros((order + 1, order + 1))
    for j in range(order + 1):
        for k in range(order + 1 - j):
            n = j + k
            c[j, k] = math.factorial(n + 1) * math.factorial(j) * math.factorial(k) / math.factorial(2 * n + 3)
    return c


_SERIES_COEFFICIENTS = _series_coefficients(_SERIES_ORDER)


def _d0_series(s: np.ndarray, t: np.ndarray, m_sq: np.ndarray) -> np.ndarray:
    """Taylor series of D0 in s and t from int_simplex (x1 x3)^j (x2 x4)^k = j!^2 k!^2 / (2j + 2k + 3)!."""
    powers = np.arange(_SERIES_ORDER + 1)
    sig = (s / m_sq)[:, None] ** powers
    tau = (t / m_sq)[:, None] ** powers
    return np.einsum("nj,jk,nk->n", sig, _SERIES_COEFFICIENTS, tau) / (m_sq * m_sq) + 0j


def _d0_closed(s: np.ndarray, t: np.ndarray, m_sq: np.ndarray) -> np.ndarray:
    """The dilogarithm form, for s, t != 0 in a supported region and beta* away from 0."""
    beta_s, log_s = _beta_and_log(s, m_sq)
    beta_t, log_t = _beta_and_log(t, m_sq)
    y_star = 1 - 4 * m_sq / s - 4 * m_sq / t
    root = np.sqrt(np.abs(y_star))
    beta_st = np.where(y_star >= 0, root + 0j, 1j * root)
    one_minus_xst = 2 / (beta_st + 1)
    opposite = s * t < 0
    a_sum = np.zeros_like(beta_st)
    b_sum = np.zeros_like(beta_st)
    for z, other, beta, log_x in ((s, t, beta_s, log_s), (t, s, beta_t, log_t)):
        # 1 - x x*, 1 - x* / x, 1 - x / x*, written without cancellations
        omega = 2 * (beta + beta_st) / ((beta + 1) * (beta_st + 1))
        kappa = -2 * z * (beta + 1) / (other * (beta + beta_st) * (beta_st + 1))
        lam = 2 * z * (beta_st + 1) / ((s + t) * (beta_st + beta) * (beta + 1))
        b_sum = b_sum + log_x * np.log(omega) + _li2_of_one_minus(omega)
        a_opposite = 0.5 * log_x * log_x + log_x * np.log(kappa) - _li2_of_one_minus(kappa)
        a_same = log_x * np.log(lam) + _li2_of_one_minus(lam)
        a_sum = a_sum + np.where(opposite, a_opposite, a_same)
    li2_xst = _li2_of_one_minus(one_minus_xst)
    b_sum = b_sum - 2 * li2_xst
    # 1 - 1 / x* = s t (beta* + 1) / (2 m^2 (s + t))
    mu = s * t * (beta_st + 1) / (2 * m_sq * (s + t))
    log_xst = 2j * np.arctan(1 / np.where(root == 0, 1.0, root))  # x* on the upper half-circle
    a_sum = np.where(
        opposite,
        a_sum + 2 * li2_xst,
        a_sum - 2 * _li2_of_one_minus(mu) + np.where(s > 0, 2j * math.pi * log_xst, 0.0),
    )
    bracket = a_sum - b_sum
    # s, t < 0: the two paths pass the pole on opposite sides and the real part is the principal value
    bracket = np.where((s < 0) & (t < 0), bracket.real + 0j, bracket)
    return 2 * bracket / (s * t * beta_st)


def _d0_regular(s: np.ndarray, t: np.ndarray, m_sq: np.ndarray) -> np.ndarray:
    """`_d0_closed` with the removable point beta* = 0 bridged by polynomial interpolation in beta*^2."""
    y_star = 1 - 4 * m_sq / s - 4 * m_sq / t
    # beta* = 0 needs s t < 0 with the positive invariant p below 4 m^2; moving the negative one, the nearest
    # singularity in beta*^2 is at beta_p^2 (the negative invariant at infinity), which sets the window
    pos = np.maximum(s, t)
    window = _LANDAU_WINDOW * np.minimum(1.0, np.abs(1 - 4 * m_sq / pos))
    near = (s * t < 0) & (pos < 4 * m_sq) & (np.abs(y_star) < max(_LANDAU_NODES) * window)
    value = _d0_closed(s, t, m_sq)
    if not near.any():
        return value
    pn, mn, yn, hn = pos[near], m_sq[near], y_star[near], window[near]
    nodes = _LANDAU_NODES
    vals = [_d0_closed(pn, 4 * mn / (1 - 4 * mn / pn - node * hn), mn) for node in nodes]
    interp = np.zeros_like(vals[0])
    for i, node_i in enumerate(nodes):
        weight = np.ones_like(yn)
        for j, node_j in enumerate(nodes):
            if j != i:
                weight = weight * (yn / hn - node_j) / (node_i - node_j)
        interp = interp + weight * vals[i]
    value = value.copy()
    value[near] = interp
    return value


def d0_massless_legs(s, t, m_sq):
    """D0(0, 0, 0, 0, s, t, m^2, m^2, m^2, m^2) for real s, t (array-like) and m^2 > 0, complex128.

    Covered: s t < 0 with either invariant on either side of its threshold (the physical s > 4 m^2, t < 0
    among them), s, t < 0, 0 < s, t < 4 m^2, and s or t = 0. Both invariants positive with one at or above
    4 m^2 raises ValueError. Real (imaginary part exactly 0) when neither invariant is above threshold;
    Im D0 > 0 for s > 4 m^2 > 0 > t. Relative accuracy 1e-12 or better where tested against the same form in
    60-digit arithmetic.
    """
    s, t, m_sq = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (s, t, m_sq)))
    if np.any(m_sq <= 0):
        raise ValueError("d0_massless_legs needs m_sq > 0")
    if np.any((s > 0) & (t > 0) & (np.maximum(s, t) >= 4 * m_sq)):
        raise ValueError("d0_massless_legs: s, t > 0 with one of them at or above 4 m^2 is not covered")
    shape = s.shape
    s, t, m_sq = s.ravel(), t.ravel(), m_sq.ravel()
    out = np.empty(s.shape, dtype=np.complex128)
    small = np.maximum(np.abs(s), np.abs(t)) <= _SERIES_RADIUS * m_sq
    with np.errstate(divide="ignore", invalid="ignore"):
        out[small] = _d0_series(s[small], t[small], m_sq[small])
        tiny = ~small & (np.minimum(np.abs(s), np.abs(t)) < _TINY * m_sq)
        plain = ~small & ~tiny
        out[plain] = _d0_regular(s[plain], t[plain], m_sq[plain])
        if tiny.any():
            s_is_tiny = np.abs(s[tiny]) <= np.abs(t[tiny])
            big = np.where(s_is_tiny, t[tiny], s[tiny])
            z = np.where(s_is_tiny, s[tiny], t[tiny]) / (_TINY_STEP * m_sq[tiny])
            nodes = (-1.0, -2.0, -3.0)
            acc = np.zeros(big.shape, dtype=np.complex128)
            for i, node_i in enumerate(nodes):
                weight = np.ones_like(z)
                for j, node_j in enumerate(nodes):
                    if j != i:
                        weight = weight * (z - node_j) / (node_i - node_j)
                acc = acc + weight * _d0_regular(big, node_i * _TINY_STEP * m_sq[tiny], m_sq[tiny])
            out[tiny] = acc
    below = np.maximum(s, t) <= 4 * m_sq
    out = np.where(below, out.real + 0j, out)
    return _as_output(out.reshape(shape))
