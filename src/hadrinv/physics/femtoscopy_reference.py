"""Independent, slow reference for s-wave femtoscopic correlation functions (units: MeV and fm).

This module is the independent accuracy check of the forward model (our batched Numerov solver in
``hadrinv.physics.schrodinger`` / ``hadrinv.physics.femtoscopy`` against a different method) and the
per-point baseline of the speed benchmark ``benchmarks/femto_solver.py``. It shares no code with the Numerov
solver (no stretched grid, no Liouville transform, no node counting on a grid, no Simpson weights, no
Gauss-Legendre tail): one potential, one momentum at a time, with scipy's adaptive DOP853 integrator and
scipy's QUADPACK.

For each k the system integrated from r = 1e-8 fm (u = r, u' = 1) to r_match is

    u'     = u'
    u''    = (U(r) - k^2) u,                U = 2 mu V / (hbar c)^2
    I'     = 4 pi S(r) u^2,                 S(r) = (4 pi r0^2)^(-3/2) exp(-r^2 / (4 r0^2))
    theta' = k - (U(r) / k) sin^2(theta),   the Pruefer phase: u = rho sin(theta), u' = k rho cos(theta)

theta only fixes the branch of delta: it increases through every node of u (theta' = k > 0 when
sin(theta) = 0), starts at ~k r, and equals k r + delta beyond the potential, so delta is continuous in k
with delta(0+) = n_bound pi (Levinson). Its value is taken from u and u' (exact up to 2 pi), with the
multiple of 2 pi from the integrated theta.

With A^2 = u^2 + (u'/k)^2 at r_match (u = A sin(k r + delta) there),

    C = 1 + [ I / A^2 - int_0^r_match 4 pi S sin^2(k r) dr
              + int_r_match^inf 4 pi S (sin^2(k r + delta) - sin^2(k r)) dr ] / k^2,

which is Koonin-Pratt, C = 1 + int 4 pi r^2 S [|u / (k r)|^2 - j0(k r)^2] dr, for u -> sin(k r + delta).
The last two integrals are done by ``scipy.integrate.quad`` (limit=500, relative tolerance 1e-13: the
division by k^2 amplifies absolute errors by up to 4e4 at k = 1 MeV, so the default absolute tolerance
would not do). The upper limit "inf" is r_match + 14 r0 + 10 fm: S is below e^-49 S(0) beyond.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.integrate import quad, solve_ivp

HBARC_MEV_FM = 197.3269804  # MeV fm (the same CODATA value as the solver, restated: no import)

R_START_FM = 1e-8
CORE_LEG_FM = 3.0  # the first leg [R_START, 3 fm] has its own (smaller) max_step


def gaussian_yukawa_numpy(
    b1: float, b2: float, b3: float, b4: float, m_pi_mev: float = 146.0, n_pi: float = 2.0
) -> Callable:
    """The talk's V(r) = b1 exp(-b2 r^2) + b3 (1 - exp(-b4 r^2)) (exp(-m_pi r)/r)^n_pi in MeV as a numpy
    function of r in fm (scalar or array), written independently of the torch version (r > 0)."""
    m_pi = m_pi_mev / HBARC_MEV_FM
    b1, b2, b3, b4 = float(b1), float(b2), float(b3), float(b4)

    def V(r):
        if isinstance(r, float):  # the ODE's right-hand side calls with one float: math is 5x faster
            return b1 * math.exp(-b2 * r * r) - b3 * math.expm1(-b4 * r * r) * (math.exp(-m_pi * r) / r) ** n_pi
        r = np.asarray(r, dtype=float)
        return b1 * np.exp(-b2 * r * r) - b3 * np.expm1(-b4 * r * r) * (np.exp(-m_pi * r) / r) ** n_pi

    return V


def _gaussian_source(r, r0):
    return (4.0 * math.pi * r0 * r0) ** -1.5 * np.exp(-(r * r) / (4.0 * r0 * r0))


def reference_point(
    V_fn_numpy: Callable,
    k_mev: float,
    r0_fm: float,
    reduced_mass_mev: float,
    r_match_fm: float = 12.0,
    rtol: float = 1e-11,
    max_step_core_fm: float = 0.02,
    max_step_fm: float = 0.25,
) -> tuple[float, float]:
    """C and delta (rad) for one potential at one momentum k (MeV) and source size r0 (fm).

    max_step_core_fm bounds DOP853's step on [1e-8, 3] fm (a quarter of the narrowest Gaussian width,
    1/sqrt(154) fm, in the talk's ranges), so that no feature of the core can be stepped over; beyond 3 fm
    max_step_fm. On the talk's ranges, caps 10x and 25x smaller (0.002 / 0.01 fm) change C by < 3e-10 and
    delta by < 2e-11 rad at 6x the cost (~30 ms per point with these defaults)."""
    k = float(k_mev) / HBARC_MEV_FM
    r0 = float(r0_fm)
    to_u = 2.0 * float(reduced_mass_mev) / HBARC_MEV_FM**2
    four_pi_s0 = 4.0 * math.pi * (4.0 * math.pi * r0 * r0) ** -1.5
    inv_4r02 = 1.0 / (4.0 * r0 * r0)
    k2 = k * k

    def rhs(r, y):
        u, up, _, theta = y
        U = to_u * float(V_fn_numpy(float(r)))
        s = math.sin(theta)
        return [up, (U - k2) * u, four_pi_s0 * math.exp(-r * r * inv_4r02) * u * u, k - U / k * s * s]

    # atol = 1e-14 * typical scale of each component (u ~ r ~ fm, u' ~ 1, I ~ 4 pi S(0) fm^3, theta ~ 1);
    # the equations are linear in (u, u', I), so rtol governs once the solution has grown from u = 1e-8
    atol = 1e-14 * np.array([1.0, 1.0, min(1.0, four_pi_s0), 1.0])
    y = np.array([R_START_FM, 1.0, four_pi_s0 * R_START_FM**3 / 3.0, math.atan2(k * R_START_FM, 1.0)])
    legs = [
        (R_START_FM, min(CORE_LEG_FM, r_match_fm), max_step_core_fm),
        (min(CORE_LEG_FM, r_match_fm), r_match_fm, max_step_fm),
    ]
    for a, b, max_step in legs:
        if b <= a:
            continue
        sol = solve_ivp(rhs, (a, b), y, method="DOP853", rtol=rtol, atol=atol, max_step=max_step)
        if not sol.success:
            raise RuntimeError(f"solve_ivp failed: {sol.message}")
        y = sol.y[:, -1]
    u, up, I, theta = y
    phase = math.atan2(u, up / k)  # k r_match + delta modulo 2 pi (rho > 0)
    phase += 2.0 * math.pi * round((theta - phase) / (2.0 * math.pi))
    delta = phase - k * r_match_fm
    A2 = u * u + (up / k) ** 2

    opts = dict(limit=500, epsabs=0.0, epsrel=1e-13)
    free_inner = quad(
        lambda r: 4.0 * math.pi * _gaussian_source(r, r0) * math.sin(k * r) ** 2, 0.0, r_match_fm, **opts
    )[0]
    r_end = r_match_fm + 14.0 * r0 + 10.0
    outer = quad(
        lambda r: 4.0 * math.pi * _gaussian_source(r, r0) * (math.sin(k * r + delta) ** 2 - math.sin(k * r) ** 2),
        r_match_fm,
        r_end,
        **opts,
    )[0]
    C = 1.0 + (I / A2 - free_inner + outer) / k2
    return C, delta


def reference_correlation(
    V_fn_numpy: Callable,
    k_mev,
    r0_fm: float,
    reduced_mass_mev: float,
    r_match_fm: float = 12.0,
    rtol: float = 1e-11,
    max_step_core_fm: float = 0.02,
    max_step_fm: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """Koonin-Pratt C(k) and delta(k) (rad), each (K,), for ONE potential ``V_fn_numpy`` (r_fm -> V in MeV,
    numpy) at every momentum of ``k_mev`` (MeV), one adaptive DOP853 integration per point.

    The independent accuracy check of the Numerov solver and the per-point baseline of the speed benchmark; slow
    (tens of ms per point). The potential must be negligible beyond r_match_fm."""
    k_all = np.atleast_1d(np.asarray(k_mev, dtype=float))
    if (k_all <= 0).any():
        raise ValueError("momenta must be positive (MeV)")
    out = np.array(
        [
            reference_point(V_fn_numpy, k, r0_fm, reduced_mass_mev, r_match_fm, rtol, max_step_core_fm, max_step_fm)
            for k in k_all
        ]
    )
    return out[:, 0], out[:, 1]
