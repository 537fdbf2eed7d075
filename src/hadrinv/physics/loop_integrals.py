"""One-loop scalar integrals in Feynman-parameter form, and closed forms to check them against.

Normalisation, the one of COLLIER and LoopTools (D = 4, scale mu = 1, UV pole Delta = 0):

    G = int d^D k / (i pi^(D/2)) prod_j 1 / (q_j^2 - m_j^2 + i delta),

with q_1 = k, q_2 = k + p1, q_3 = k + p1 + p2, q_4 = k + p1 + p2 + p3 and the mass m_j on q_j. With the
invariants s_ij = (q_i - q_j)^2 and Feynman parameters x on the simplex,

    G = (-1)^N Gamma(N - D/2) int_simplex delta(1 - sum x) U^(N - D) / (F - i delta)^(N - D/2),
    U = sum_i x_i,   F = U sum_i x_i m_i^2 - sum_{i<j} x_i x_j s_ij,

so C0(0, 0, 0, m^2, m^2, m^2) = -1 / (2 m^2) and D0 = int 1 / F^2. For N = 2 the Gamma function has the
UV pole; B0 here is its finite part, -int_0^1 log(F - i delta) dx.

Arguments follow LoopTools, squared invariants and squared masses (GeV^2 when they are physical):
`bubble(p2, m1sq, m2sq)`, `triangle(p1sq, p2sq, p12sq, m1sq, m2sq, m3sq)` with p12sq = (p1 + p2)^2, and
`box(p1sq, p2sq, p3sq, p4sq, s12, s23, m1sq, m2sq, m3sq, m4sq)`. Each returns a `OneLoop` whose `F(t)` and
`integrand(t)` live on the unit hypercube [0, 1]^(N-1) through the stick-breaking map
x_1 = t_1, x_2 = (1 - t_1) t_2, ..., x_N = prod_k (1 - t_k): it is polynomial in t, so U = 1 identically
and F stays a polynomial, whose holomorphic continuation to complex t is what a deformed contour needs.

Closed forms, as truth independent of the Feynman-parameter integrals: `b0` (any p^2, positive masses)
and `c0_massless` (massless internal lines, the Usyukina-Davydychev function); the equal-mass triangle and
box with lightlike legs are in `loop_closed_forms`. `li2` is the complex dilogarithm they use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Bernoulli numbers B_2, B_4, ..., B_30 for the series of Li2 in u = -log(1 - z)
_BERNOULLI_EVEN = (
    1 / 6,
    -1 / 30,
    1 / 42,
    -1 / 30,
    5 / 66,
    -691 / 2730,
    7 / 6,
    -3617 / 510,
    43867 / 798,
    -174611 / 330,
    854513 / 138,
    -236364091 / 2730,
    8553103 / 6,
    -23749461029 / 870,
    8615841276005 / 14322,
)
_ZETA2 = math.pi**2 / 6


def _f64(*values) -> list[torch.Tensor]:
    return list(torch.broadcast_tensors(*(torch.as_tensor(v, dtype=torch.float64) for v in values)))


def _li2_series(u: torch.Tensor) -> torch.Tensor:
    """Li2(u) for |u| <= 1, Re u <= 1/2, where |log(1 - u)| < 1.3 and 15 Bernoulli terms reach 1e-17."""
    y = -torch.log(1 - u)
    y2 = y * y
    term, total = y, y - y2 / 4
    for k, b in enumerate(_BERNOULLI_EVEN, start=1):
        term = term * y2 / ((2 * k) * (2 * k + 1))
        total = total + b * term
    return total


def li2(z) -> torch.Tensor:
    """The dilogarithm Li2(z) = -int_0^z log(1 - t) / t dt on the principal sheet, complex128.

    Its cut is z in (1, inf); there the sign of the imaginary zero decides the side, as for torch.log
    (z = x + 0j is z + i0). Reduced to |z| <= 1 by Li2(z) = -Li2(1/z) - pi^2/6 - log(-z)^2 / 2, then to
    Re z <= 1/2 by Li2(z) = -Li2(1 - z) + pi^2/6 - log z log(1 - z), then summed as a Bernoulli series.
    """
    z = z.to(torch.complex128) if isinstance(z, torch.Tensor) else torch.as_tensor(z, dtype=torch.complex128)
    one = torch.ones_like(z)
    big = z.abs() > 1
    w = torch.where(big, 1 / torch.where(big, z, one), z)
    right = w.real > 0.5
    u = torch.where(right, 1 - w, w)
    li_u = _li2_series(u)
    # w = 1 exactly: log w log(1 - w) = 0 * inf, but Li2(1) = pi^2 / 6 is what the reflection gives in the limit
    at_one = w == 1
    w_safe = torch.where(at_one, 0.5 * one, w)
    reflected = torch.where(at_one, _ZETA2 * one, -li_u + _ZETA2 - torch.log(w_safe) * torch.log(1 - w_safe))
    li_w = torch.where(right, reflected, li_u)
    log_minus_z = torch.log(-torch.where(big, z, -one))
    return torch.where(big, -li_w - _ZETA2 - 0.5 * log_minus_z**2, li_w)


def b0(p2, m1sq, m2sq) -> torch.Tensor:
    """Finite part of B0(p^2, m1^2, m2^2) (Delta = 0, mu = 1), complex128; masses must be positive.

    B0 = 2 - log(m1 m2) + (m1^2 - m2^2) / p^2 log(m2 / m1) - m1 m2 / p^2 (1/r - r) log r, with r and 1/r
    the roots of r^2 - (m1^2 + m2^2 - p^2 - i delta) / (m1 m2) r + 1 = 0. In terms of the Kallen function
    lambda(p^2, m1^2, m2^2) = m1^2 m2^2 (b^2 - 4): above threshold, p^2 > (m1 + m2)^2, r is negative and
    log r = log|r| + i pi, giving Im B0 = pi sqrt(lambda) / p^2 (= pi beta for equal masses); between the
    thresholds lambda < 0, |r| = 1 and B0 is real; below the pseudo-threshold, r is in (0, 1). p^2 = 0 takes
    the limit 1 - (m1^2 log m1^2 - m2^2 log m2^2) / (m1^2 - m2^2) (-log m^2 for equal masses).
    """
    p2, m1sq, m2sq = _f64(p2, m1sq, m2sq)
    m1, m2 = m1sq.sqrt(), m2sq.sqrt()
    p2_safe = torch.where(p2 == 0, torch.ones_like(p2), p2)
    b = (m1sq + m2sq - p2) / (m1 * m2)
    disc = b * b - 4
    root = disc.abs().sqrt()
    real_root = 0.5 * (b - torch.sign(b) * root)  # the root of modulus <= 1
    r = torch.complex(torch.where(disc >= 0, real_root, 0.5 * b), torch.where(disc >= 0, 0.0 * b, -0.5 * root))
    # above threshold the -i delta puts r on the upper side of the negative axis: + i pi
    phase = torch.where((disc >= 0) & (b < 0), torch.full_like(b, math.pi), torch.atan2(r.imag, r.real))
    log_r = torch.complex(r.abs().log(), phase)
    b0_p = 2 - (m1 * m2).log() + (m1sq - m2sq) / p2_safe * (m2 / m1).log() - m1 * m2 / p2_safe * (1 / r - r) * log_r
    equal = (m1sq - m2sq).abs() <= 1e-14 * (m1sq + m2sq)
    dm = torch.where(equal, torch.ones_like(m1sq), m1sq - m2sq)
    b0_zero = torch.where(equal, -m1sq.log(), 1 - (m1sq * m1sq.log() - m2sq * m2sq.log()) / dm)
    return torch.where(p2 == 0, b0_zero.to(torch.complex128), b0_p)


def c0_massless(p1sq, p2sq, p12sq) -> torch.Tensor:
    """C0(p1^2, p2^2, p12^2, 0, 0, 0) with massless internal lines (finite in D = 4), complex128.

    Usyukina-Davydychev: C0 = Phi(x, y) / s3, x = s1 / s3, y = s2 / s3, s3 the invariant of largest modulus,
    Phi = [2 Li2(-rho x) + 2 Li2(-rho y) + log(y / x) log((1 + rho y) / (1 + rho x)) + log(rho x) log(rho y)
           + pi^2 / 3] / lambda,   lambda = sqrt((1 - x - y)^2 - 4 x y),   rho = 2 / (1 - x - y + lambda).
    Region of validity: all three invariants nonzero (p_i^2 -> 0 is a collinear divergence). Same signs:
    all < 0 (Euclidean, C0 < 0 and real; lambda^2 of either sign, its imaginary parts cancel, lambda = 0
    included) or all > 0, where homogeneity of degree -1 gives C0(s) = -C0(-s), real. Mixed signs (an
    imaginary part; lambda^2 > 0 there): the formula on principal branches at s_i + i eta |s_i|, eta = 1e-13,
    which is the physical sheet s + i delta. That continuation was checked against the real-contour
    integral at complex invariants Im s_i = eps |s_i|, eps = 1 down to 0.01, where it has no pole (agreement
    to 1e-10), and against the deformed contour at real invariants.
    """
    p1sq, p2sq, p12sq = _f64(p1sq, p2sq, p12sq)
    if bool(((p1sq == 0) | (p2sq == 0) | (p12sq == 0)).any()):
        raise ValueError("c0_massless needs p1^2, p2^2, p12^2 nonzero (a zero one is a collinear divergence)")
    same = ((p1sq > 0) == (p2sq > 0)) & ((p2sq > 0) == (p12sq > 0))
    # C0 is symmetric in the three invariants here; dividing by the largest one keeps 0 < x, y <= 1 for one
    # sign, so that rho > 0 when lambda^2 > 0 and no argument lands on a cut
    order = torch.stack([p1sq, p2sq, p12sq], -1).abs().argsort(-1)
    s1, s2, s3 = torch.stack([p1sq, p2sq, p12sq], -1).gather(-1, order).unbind(-1)
    eta = torch.where(same, 0.0, 1e-13).to(torch.float64)
    s1, s2, s3 = (torch.complex(v, eta * v.abs()) for v in (s1, s2, s3))
    x, y = s1 / s3, s2 / s3
    x = torch.where(same, x.real.to(torch.complex128), x)  # exact +0 imaginary parts
    y = torch.where(same, y.real.to(torch.complex128), y)
    # lambda = 0 (sqrt(-p1^2) + sqrt(-p2^2) = sqrt(-p12^2) and permutations, one sign only) is a removable
    # 0 / 0: there the mean of two neighbours, which is analytic, replaces it with an error of order 1e-10
    near = ((1 - x - y) ** 2 - 4 * x * y).abs() < 1e-9
    step = torch.where(near, 1e-5, 0.0).to(torch.float64)
    value = 0.5 * (_phi(x * (1 + step), y) + _phi(x * (1 - step), y)) / s3
    return torch.where(same, value.real.to(torch.complex128), value)


def _phi(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    lam = ((1 - x - y) ** 2 - 4 * x * y).sqrt()
    rho = 2 / (1 - x - y + lam)
    return (
        2 * li2(-rho * x)
        + 2 * li2(-rho * y)
        + torch.log(y / x) * torch.log((1 + rho * y) / (1 + rho * x))
        + torch.log(rho * x) * torch.log(rho * y)
        + 2 * _ZETA2
    ) / lam


@dataclass(frozen=True)
class OneLoop:
    """A one-loop scalar integral: squared masses [N] and invariants s_ij = (q_i - q_j)^2 [N, N].

    `dim` = N - 1 hypercube variables; `F(t)` and `integrand(t)` take t of shape [n, dim], real or complex,
    and their integral over [0, 1]^dim is the integral G of the module docstring (the finite part for N = 2).
    """

    masses_sq: torch.Tensor
    invariants: torch.Tensor
    name: str = ""

    @property
    def n_propagators(self) -> int:
        return len(self.masses_sq)

    @property
    def dim(self) -> int:
        return self.n_propagators - 1

    def feynman_parameters(self, t: torch.Tensor) -> torch.Tensor:
        """x [n, N] on the simplex from t [n, dim] by stick breaking: x_k = t_k prod_{j<k} (1 - t_j)."""
        rest = torch.ones_like(t[..., 0])
        xs = []
        for k in range(self.dim):
            xs.append(rest * t[..., k])
            rest = rest * (1 - t[..., k])
        xs.append(rest)
        return torch.stack(xs, -1)

    def jacobian(self, t: torch.Tensor) -> torch.Tensor:
        """|dx / dt| of the stick-breaking map, prod_k (1 - t_k)^(dim - 1 - k), a polynomial in t."""
        jac = torch.ones_like(t[..., 0])
        for k in range(self.dim - 1):
            jac = jac * (1 - t[..., k]) ** (self.dim - 1 - k)
        return jac

    def F(self, t: torch.Tensor) -> torch.Tensor:
        """The second Symanzik polynomial at x(t), with U = 1; real for real t, complex for complex t."""
        x = self.feynman_parameters(t)
        m2 = self.masses_sq.to(x.dtype)
        s = self.invariants.to(x.dtype)
        return (x * m2).sum(-1) - 0.5 * torch.einsum("...i,ij,...j->...", x, s, x)

    def integrand(self, t: torch.Tensor) -> torch.Tensor:
        """(-1)^N Gamma(N - 2) jac(t) / F(t)^(N - 2), or -log(F - i delta) for the bubble; complex128 [n]."""
        F = self.F(t).to(torch.complex128)
        jac = self.jacobian(t).to(torch.complex128)
        n = self.n_propagators
        if n == 2:
            # F real and negative (on the real contour, or where a deformation leaves Im F = 0): -i delta side
            imag = torch.where(F.imag == 0, torch.full_like(F.imag, -0.0), F.imag)
            return -torch.complex(F.abs().log(), torch.atan2(imag, F.real)) * jac
        return (-1) ** n * math.gamma(n - 2) * jac / F ** (n - 2)


def _one_loop(masses_sq, pairs: dict[tuple[int, int], object], name: str) -> OneLoop:
    m = torch.stack(_f64(*masses_sq))
    s = torch.zeros(len(m), len(m), dtype=torch.float64)
    for (i, j), value in pairs.items():
        s[i, j] = s[j, i] = torch.as_tensor(value, dtype=torch.float64)  # tensors keep their graph
    return OneLoop(m, s, name)


def bubble(p2, m1sq, m2sq) -> OneLoop:
    """B0(p^2, m1^2, m2^2) as a 1-dimensional integral; its integral is the finite part `b0` gives."""
    return _one_loop((m1sq, m2sq), {(0, 1): p2}, "bubble")


def triangle(p1sq, p2sq, p12sq, m1sq, m2sq, m3sq) -> OneLoop:
    """C0(p1^2, p2^2, (p1 + p2)^2, m1^2, m2^2, m3^2) as a 2-dimensional integral."""
    return _one_loop((m1sq, m2sq, m3sq), {(0, 1): p1sq, (1, 2): p2sq, (0, 2): p12sq}, "triangle")


def box(p1sq, p2sq, p3sq, p4sq, s12, s23, m1sq, m2sq, m3sq, m4sq) -> OneLoop:
    """D0(p1^2, p2^2, p3^2, p4^2, (p1 + p2)^2, (p2 + p3)^2, m1^2, ..., m4^2) as a 3-dimensional integral."""
    pairs = {(0, 1): p1sq, (1, 2): p2sq, (2, 3): p3sq, (0, 3): p4sq, (0, 2): s12, (1, 3): s23}
    return _one_loop((m1sq, m2sq, m3sq, m4sq), pairs, "box")
