"""pi pi scattering in definite isospin: inelastic partial waves, charge channels and the CFD parametrisation.

Partial waves are dimensionless, as in `partial_waves`: S_l = 1 + 2i f_l = eta_l exp(2i delta_l), so an elastic
wave (eta = 1) is f = exp(i delta) sin(delta). The isospin amplitudes are A_I(s, z) = sum_l (2l+1) P_l(z) f_l^I(s);
Bose symmetry of two pions leaves only even l for I = 0, 2 and only odd l for I = 1.

The realistic waves are the "constrained fit to data" (CFD) set of
R. Garcia-Martin, R. Kaminski, J. R. Pelaez, J. Ruiz de Elvira, F. J. Yndurain,
"The pion-pion scattering amplitude. IV", Phys. Rev. D 83, 074004 (2011), arXiv:1102.2183 (GKPY).
The formulas and CFD values below were read from two independent public implementations, which agree wherever
both give a number, except lambda_1 (1.39 vs 1.38): mmikhasenko/GKPY-2011 (src/s-wave.jl, src/odd-waves.jl,
src/kinematics.jl; S0 phase and P wave) and dwinney/analyticRT (src/core/pipi_scattering.cpp, "ported from
A. Jackura and N. Sherrill's fortran code"; all three waves and their eta). Above 2 m_K the P phase itself is the
quadratic in x (as in GKPY-2011.jl and in the fortran of the earlier KPY III paper), not cot delta as analyticRT
writes it. Equation numbers of the paper were not available to check.
Masses are the paper's: m_pi = 0.13957, m_K = 0.496, m_eta = 0.54751 GeV.
k = sqrt(s/4 - m_pi^2), k_2 = sqrt(|s/4 - m_K^2|), k_3 = sqrt(s/4 - m_eta^2),
w(s; s0) = (sqrt(s) - sqrt(s0 - s)) / (sqrt(s) + sqrt(s0 - s)).

S0 (I=0, l=0), s_M = 0.85^2 GeV^2:
  sqrt(s) <= 0.85: cot delta = sqrt(s)/(2k) m_pi^2/(s - z0^2/2) (z0^2/(m_pi sqrt(s)) + sum_n B_n w^n),
      w = w(s; 4 m_K^2), z0 = m_pi (Adler zero at z0^2/2), B_0..B_3 = 7.14, -25.3, -33.2, -26.2
      (so a_0^0 = 0.221 m_pi^-1).
  0.85 < sqrt(s) < 2 m_K: delta = d0 (1 - k_2/k_M)^2 + delta_M k_2/k_M (2 - k_2/k_M)
      + k_2 (k_M - k_2) (8 delta'_M + c (k_M - k_2)/m_K^3), k_M = k_2(s_M), delta_M = delta(s_M), delta'_M = d delta/ds
      at s_M (so delta and d delta/ds are continuous at 0.85 GeV); d0 = 226.5 deg, c = -81 deg.
  2 m_K <= sqrt(s) <= 1.42: delta = d0 + B k_2^2/m_K^2 + C k_2^4/m_K^4 + D theta(s - 4 m_eta^2) k_3^2/m_eta^2,
      B = 93.3, C = 48.7, D = -88.3 deg; eta = exp(-(k_2/sqrt(s)) (e1 + e2 k_2/sqrt(s) + e3 k_2^2/s)^2
      - e4 theta(s - 4 m_eta^2) k_3/sqrt(s)), e1..e4 = 4.9, -15.1, 4.7, 0.32 (eta from analyticRT only); eta = 1 below.
P (I=1, l=1):
  sqrt(s) < 2 m_K: cot delta = sqrt(s)/(2k^3) (M_rho^2 - s) (2 m_pi^3/(M_rho^2 sqrt(s)) + B0 + B1 w(s; 1.05^2)),
      M_rho = 0.7736 GeV, B0 = 1.043, B1 = 0.19.
  2 m_K <= sqrt(s) <= 1.42: delta = lambda0 + lambda1 x + lambda2 x^2 (radians), x = sqrt(s)/(2 m_K) - 1,
      lambda1 = 1.39, lambda2 = -1.70, lambda0 = the low-energy phase at 2 m_K; eta = 1 - e1 sqrt(1 - 4m_K^2/s)
      - e2 (1 - 4m_K^2/s), e1 = 0.00, e2 = 0.07.
S2 (I=2, l=0), s_l = 1.05^2, s_h = 1.42^2:
  cot delta = sqrt(s)/(2k) m_pi^2/(s - 2 z2^2) F(s), z2 = 0.1435; sqrt(s) <= 0.85: F = B0 + B1 w(s; s_l), B0 = -79.4,
      B1 = -63.0; above: F = Bh0 + Bh1 x + Bh2 x^2, x = w(s; s_h) - w(s_M; s_h), Bh2 = 32, Bh0 and Bh1 fixed by
      continuity of F and dF/ds at s_M.  eta = 1 - 0.28 (1 - s_l/s)^(3/2) above 1.05 GeV (analyticRT), 1 below.

Choices: the P wave switches to its high-energy form at 2 m_K, where lambda0 makes it continuous (GKPY-2011.jl
switches at 1.05 GeV with the same lambda0, a 0.37 deg step); its eta departs from 1 at the K Kbar threshold.
All three phases are then continuous from threshold to 1.42 GeV; the S0 phase has the square-root cusp of the
K Kbar threshold (infinite slope just below 2 m_K). Outside [2 m_pi, 1.42 GeV] the waves are held at the end values.
"""

from __future__ import annotations

import math

import torch

from hadrinv.physics.partial_waves import legendre_polynomials
from hadrinv.physics.pipi import differential_cross_section

# ---------------------------------------------------------------- partial waves and unitarity


def inelastic_wave(delta: torch.Tensor, eta: torch.Tensor | float = 1.0) -> torch.Tensor:
    """f = (eta exp(2i delta) - 1) / (2i): complex, dimensionless; delta in radians, 0 <= eta <= 1."""
    delta = torch.as_tensor(delta)
    delta, eta = torch.broadcast_tensors(delta, torch.as_tensor(eta, dtype=delta.dtype, device=delta.device))
    return (torch.polar(eta, 2.0 * delta) - 1.0) * (-0.5j)


def wave_phase_and_inelasticity(wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(delta, eta) of f: delta = arg(1 + 2i f)/2 modulo pi in [0, pi) (radians), eta = |1 + 2i f|."""
    s_matrix = 1.0 + 2.0j * wave
    return torch.remainder(0.5 * torch.angle(s_matrix), math.pi), s_matrix.abs()


def unitarity_excess(wave: torch.Tensor) -> torch.Tensor:
    """|f|^2 - Im f = (eta^2 - 1)/4: zero for an elastic wave, negative when flux leaves to other channels.

    Unitarity with open inelastic channels is an inequality, so a model can be penalised by relu of this.
    """
    return wave.real**2 + wave.imag**2 - wave.imag


def common_phase_interval(waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The rotations f_l -> exp(i phi) f_l of all waves at once that keep every wave unitary, (lo, hi) radians.

    Every observable |A|^2 of every charge channel is unchanged by a common phase of all amplitudes, so
    with inelasticity free the cross sections fix the waves at one energy only up to phi; only the
    inequality Im f >= |f|^2 (eta <= 1) bounds it: sin(arg f + phi) >= |f| for each wave. waves: complex
    (..., n_waves), each unitary (then lo <= 0 <= hi). An elastic wave pins one end at 0.
    """
    r = waves.abs().clamp(max=1.0)
    angle = torch.angle(waves)
    lo = torch.arcsin(r) - angle
    hi = math.pi - torch.arcsin(r) - angle
    return lo.max(-1).values, hi.min(-1).values


def unitary_rotation(waves: torch.Tensor, atol: float = 1e-12) -> tuple[torch.Tensor, torch.Tensor]:
    """The common phase of smallest |phi| that makes every wave unitary, (phi, found), each (...,).

    Wave l allows the arc sin(arg f_l + phi) >= |f_l| of phi (modulo 2 pi); the nearest point to 0 of the
    arcs' intersection is 0 itself or one of their ends. `found` is false where the arcs do not intersect
    (some |f_l| > 1, or waves too far from unitary), and phi is 0 there. Rotating by phi changes no
    channel's cross section, so it enforces eta <= 1 without leaving the data.
    """
    r = waves.abs()
    start = torch.arcsin(r.clamp(max=1.0)) - torch.angle(waves)  # (..., n_waves): each arc [start, start + width]
    width = (math.pi - 2.0 * torch.arcsin(r.clamp(max=1.0))).masked_fill(r > 1.0, -1.0)
    ends = torch.cat([start, start + width], -1)
    wrapped = torch.remainder(ends + math.pi, 2 * math.pi) - math.pi  # in [-pi, pi)
    candidates = torch.cat([torch.zeros_like(ends[..., :1]), wrapped], -1)
    offset = torch.remainder(candidates[..., :, None] - start[..., None, :], 2 * math.pi)  # (..., candidates, waves)
    inside = ((offset <= width[..., None, :] + atol) | (offset >= 2 * math.pi - atol)).all(-1)
    cost = torch.where(inside, candidates.abs(), torch.inf)
    best = cost.argmin(-1, keepdim=True)
    found = torch.isfinite(cost.gather(-1, best)).squeeze(-1)
    return torch.where(found, candidates.gather(-1, best).squeeze(-1), 0.0), found


def rotate_waves(waves: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """exp(i phi) f_l for phi (...,) and waves (..., n_waves): the same cross sections in every channel."""
    return waves * torch.polar(torch.ones_like(phi), phi)[..., None]


# ---------------------------------------------------------------- isospin and charge channels

# A(channel) = sum_I c_I A_I with the pi+ = -|1, +1> phase convention; the sign of the charge-exchange amplitude
# depends on that convention, |A|^2 does not.
CHANNELS: dict[str, tuple[float, float, float]] = {
    "pi+pi-": (1.0 / 3.0, 1.0 / 2.0, 1.0 / 6.0),
    "pi0pi0": (1.0 / 3.0, 0.0, 2.0 / 3.0),
    "pi+pi-_pi0pi0": (1.0 / 3.0, 0.0, -1.0 / 3.0),
    "pi+pi0": (0.0, 1.0 / 2.0, 1.0 / 2.0),
    "pi+pi+": (0.0, 0.0, 1.0),
}


# Observables of the inelastic flux itself, one number per energy: "S0-inelastic" is 1 - (eta_0^0)^2, the
# probability that an S0 pi pi pair leaves pi pi, which fixes the common phase that the pi pi channels leave
# free. Where K Kbar is the only open inelastic channel (below the eta eta threshold, 1.095 GeV, 4 pi aside)
# it is |S(pi pi -> K Kbar)|^2 of the S0 wave, which pi pi -> K Kbar experiments measure; above, the eta eta
# flux adds to it (in CFD its term lowers eta_0^0 by a factor 0.9 at 1.4 GeV).
INELASTIC_CHANNELS: dict[str, int] = {"S0-inelastic": 0}  # name -> index of the wave (S0, P, S2)
ALL_CHANNELS = (*CHANNELS, *INELASTIC_CHANNELS)


def inelastic_flux(waves: torch.Tensor) -> torch.Tensor:
    """1 - eta^2 = 1 - |1 + 2i f|^2 of each wave (dimensionless, in [0, 1] for a unitary wave)."""
    s_matrix = 1.0 + 2.0j * waves
    return 1.0 - (s_matrix.real**2 + s_matrix.imag**2)


def allowed_l(isospin: int, n_waves: int) -> list[int]:
    """The angular momenta held by waves[isospin]: even l for I = 0, 2, odd l for I = 1, increasing."""
    if isospin not in (0, 1, 2):
        raise ValueError(f"pi pi isospin is 0, 1 or 2, got {isospin}")
    return [isospin % 2 + 2 * i for i in range(n_waves)]


def isospin_amplitude(waves: torch.Tensor, z: torch.Tensor, isospin: int) -> torch.Tensor:
    """A_I(s, z) = sum_l (2l+1) P_l(z) f_l^I; waves complex (..., n_l) over allowed_l(isospin), z broadcastable."""
    ls = allowed_l(isospin, waves.shape[-1])
    z = torch.as_tensor(z, dtype=waves.real.dtype, device=waves.device)
    if not ls:
        return torch.zeros(torch.broadcast_shapes(waves.shape[:-1], z.shape), dtype=waves.dtype, device=waves.device)
    basis = legendre_polynomials(z, ls[-1])[..., ls]
    degeneracy = torch.tensor([2 * l + 1 for l in ls], dtype=z.dtype, device=z.device)
    return (waves * (basis * degeneracy)).sum(-1)


def channel_amplitude(waves: dict[int, torch.Tensor], z: torch.Tensor, channel: str) -> torch.Tensor:
    """A(s, z) of a charge channel from isospin waves; an isospin absent from `waves` counts as zero.

    z = cos(theta) of the outgoing pi+ relative to the incoming pi+ (the outgoing pi0 relative to the incoming pi+
    for pi+pi- -> pi0pi0, whose pi0s are identical, so the choice does not matter).
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; known: {sorted(CHANNELS)}")
    if not waves:
        raise ValueError("no isospin waves given")
    coefficients = CHANNELS[channel]
    return sum(coefficients[i] * isospin_amplitude(w, z, i) for i, w in sorted(waves.items()))


def channel_cross_section(
    waves: dict[int, torch.Tensor], z: torch.Tensor, s_gev2: torch.Tensor, channel: str
) -> torch.Tensor:
    """dsigma/dOmega = |A|^2 / (64 pi^2 s) in GeV^-2, the toy normalisation of `pipi.differential_cross_section`.

    The 1/2 for identical final particles (pi0pi0, pi+pi+) is not applied: a convention, the same for the truth
    and for any model compared with it, so it cancels in fits.
    """
    return differential_cross_section(channel_amplitude(waves, z, channel), s_gev2)


# ---------------------------------------------------------------- CFD parametrisation (GKPY 2011)

M_PI_GEV, M_K_GEV, M_ETA_GEV, M_RHO_GEV = 0.13957, 0.496, 0.54751, 0.7736
S_PI_GEV2, S_K_GEV2, S_ETA_GEV2 = 4 * M_PI_GEV**2, 4 * M_K_GEV**2, 4 * M_ETA_GEV**2
S_MATCH_GEV2, S_LOW_GEV2, S_HIGH_GEV2 = 0.85**2, 1.05**2, 1.42**2
S0_B, S0_Z0_GEV, S0_D0_DEG, S0_C_DEG = (7.14, -25.3, -33.2, -26.2), M_PI_GEV, 226.5, -81.0
S0_HIGH_DEG = (93.3, 48.7, -88.3)  # B, C, D
S0_ETA_EPS = (4.9, -15.1, 4.7, 0.32)
P_B, P_LAMBDA, P_ETA_EPS = (1.043, 0.19), (1.39, -1.70), (0.00, 0.07)
S2_B, S2_Z2_GEV, S2_BH2, S2_ETA_EPS = (-79.4, -63.0), 0.1435, 32.0, 0.28
WAVES = ("S0", "P", "S2")
_TINY = 1e-30  # keeps sqrt differentiable at thresholds, where its slope is infinite


def _root(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.clamp(x, min=_TINY))


def _conformal(s: torch.Tensor, s0: float) -> torch.Tensor:
    a, b = torch.sqrt(s), _root(s0 - s)
    return (a - b) / (a + b)


def _conformal_slope(s: float, s0: float) -> float:
    """dw/ds = s0 / (sqrt(s) sqrt(s0 - s) (sqrt(s) + sqrt(s0 - s))^2)."""
    a, b = math.sqrt(s), math.sqrt(s0 - s)
    return s0 / (a * b * (a + b) ** 2)


def _s0_low_deg(s: torch.Tensor) -> torch.Tensor:
    w = _conformal(s, S_K_GEV2)
    bracket = S0_Z0_GEV**2 / (M_PI_GEV * torch.sqrt(s)) + sum(b * w**n for n, b in enumerate(S0_B))
    # atan2 of the numerator and denominator of tan(delta): no division by k at threshold, delta in (0, pi)
    k = _root(s / 4 - M_PI_GEV**2)
    return torch.rad2deg(torch.atan2(2 * k * (s - S0_Z0_GEV**2 / 2), torch.sqrt(s) * M_PI_GEV**2 * bracket))


def _p_low_rad(s: torch.Tensor) -> torch.Tensor:
    k = _root(s / 4 - M_PI_GEV**2)
    bracket = 2 * M_PI_GEV**3 / (M_RHO_GEV**2 * torch.sqrt(s)) + P_B[0] + P_B[1] * _conformal(s, S_LOW_GEV2)
    return torch.atan2(2 * k**3, torch.sqrt(s) * (M_RHO_GEV**2 - s) * bracket)


def _s0_matching() -> tuple[float, float]:
    """delta_M (deg) and delta'_M (deg/GeV^2) at s_M, by autograd rather than a finite difference."""
    s = torch.tensor(S_MATCH_GEV2, dtype=torch.float64, requires_grad=True)
    delta = _s0_low_deg(s)
    (slope,) = torch.autograd.grad(delta, s)
    return delta.item(), slope.item()


_S0_DELTA_M_DEG, _S0_SLOPE_M_DEG_PER_GEV2 = _s0_matching()
_P_LAMBDA0_RAD = _p_low_rad(torch.tensor(S_K_GEV2, dtype=torch.float64)).item()
_S2_BH0 = S2_B[0] + S2_B[1] * _conformal(torch.tensor(S_MATCH_GEV2, dtype=torch.float64), S_LOW_GEV2).item()
_S2_BH1 = S2_B[1] * _conformal_slope(S_MATCH_GEV2, S_LOW_GEV2) / _conformal_slope(S_MATCH_GEV2, S_HIGH_GEV2)
_S2_WH_M = _conformal(torch.tensor(S_MATCH_GEV2, dtype=torch.float64), S_HIGH_GEV2).item()


def _piece(s: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """s clamped into one piece's interval, so every piece is finite (and has finite gradients) everywhere and
    torch.where can pick between them without NaN leaking into the backward pass."""
    return torch.clamp(s, min=lo, max=hi)


def _s0_phase_deg(s: torch.Tensor) -> torch.Tensor:
    low = _s0_low_deg(_piece(s, S_PI_GEV2 * (1 + 1e-12), S_MATCH_GEV2))
    k_m = math.sqrt(M_K_GEV**2 - S_MATCH_GEV2 / 4)
    k2 = _root(M_K_GEV**2 - _piece(s, S_MATCH_GEV2, S_K_GEV2) / 4)
    r = k2 / k_m
    mid = (
        S0_D0_DEG * (1 - r) ** 2
        + _S0_DELTA_M_DEG * r * (2 - r)
        + k2 * (k_m - k2) * (8 * _S0_SLOPE_M_DEG_PER_GEV2 + S0_C_DEG * (k_m - k2) / M_K_GEV**3)
    )
    s_hi = _piece(s, S_K_GEV2, S_HIGH_GEV2)
    x = (s_hi / 4 - M_K_GEV**2) / M_K_GEV**2
    x_eta = torch.clamp(s_hi / 4 - M_ETA_GEV**2, min=0) / M_ETA_GEV**2
    b, c, d = S0_HIGH_DEG
    high = S0_D0_DEG + b * x + c * x**2 + d * x_eta
    return torch.where(s <= S_MATCH_GEV2, low, torch.where(s < S_K_GEV2, mid, high))


def _p_phase_deg(s: torch.Tensor) -> torch.Tensor:
    low = _p_low_rad(_piece(s, S_PI_GEV2 * (1 + 1e-12), S_K_GEV2))
    x = torch.sqrt(_piece(s, S_K_GEV2, S_HIGH_GEV2)) / (2 * M_K_GEV) - 1
    high = _P_LAMBDA0_RAD + P_LAMBDA[0] * x + P_LAMBDA[1] * x**2
    return torch.rad2deg(torch.where(s < S_K_GEV2, low, high))


def _s2_phase_deg(s: torch.Tensor) -> torch.Tensor:
    s_c = _piece(s, S_PI_GEV2 * (1 + 1e-12), S_HIGH_GEV2 * (1 - 1e-12))
    x = _conformal(s_c, S_HIGH_GEV2) - _S2_WH_M
    # the low form only up to s_M: w(s; s_l) is complex above s_l
    low = S2_B[0] + S2_B[1] * _conformal(torch.clamp(s_c, max=S_MATCH_GEV2), S_LOW_GEV2)
    poly = torch.where(s_c <= S_MATCH_GEV2, low, _S2_BH0 + _S2_BH1 * x + S2_BH2 * x**2)
    k = _root(s_c / 4 - M_PI_GEV**2)
    # poly < 0 throughout, so atan2(-y, -x) = atan(y/x) keeps the repulsive phase in (-90, 0] deg without dividing
    return torch.rad2deg(torch.atan2(-2 * k * (s_c - 2 * S2_Z2_GEV**2), -torch.sqrt(s_c) * M_PI_GEV**2 * poly))


def _inelasticity(s: torch.Tensor, wave: str) -> torch.Tensor:
    s_c = _piece(s, S_PI_GEV2, S_HIGH_GEV2)
    one = torch.ones_like(s_c)
    if wave == "S0":
        q = _root(s_c / 4 - M_K_GEV**2) / torch.sqrt(s_c)
        q_eta = _root(s_c / 4 - M_ETA_GEV**2) / torch.sqrt(s_c)
        e1, e2, e3, e4 = S0_ETA_EPS
        exponent = -q * (e1 + e2 * q + e3 * q**2) ** 2 - torch.where(s_c > S_ETA_GEV2, e4 * q_eta, 0 * q_eta)
        return torch.where(s_c > S_K_GEV2, torch.exp(exponent), one)
    if wave == "P":
        x = torch.clamp(1 - S_K_GEV2 / s_c, min=0)
        return torch.where(s_c > S_K_GEV2, 1 - P_ETA_EPS[0] * _root(x) - P_ETA_EPS[1] * x, one)
    if wave == "S2":
        return 1 - S2_ETA_EPS * torch.clamp(1 - S_LOW_GEV2 / s_c, min=0) ** 1.5
    raise ValueError(f"unknown wave {wave!r}; use one of {WAVES}")


def _as_s(sqrt_s_gev) -> torch.Tensor:
    sqrt_s = torch.as_tensor(sqrt_s_gev, dtype=torch.float64)
    return sqrt_s * sqrt_s


def cfd_phase_shift_deg(sqrt_s_gev: torch.Tensor, wave: str) -> torch.Tensor:
    """CFD phase shift in degrees at sqrt(s) in GeV, wave in ("S0", "P", "S2"); continuous, not reduced mod 180."""
    phases = {"S0": _s0_phase_deg, "P": _p_phase_deg, "S2": _s2_phase_deg}
    if wave not in phases:
        raise ValueError(f"unknown wave {wave!r}; use one of {WAVES}")
    return phases[wave](_as_s(sqrt_s_gev))


def cfd_inelasticity(sqrt_s_gev: torch.Tensor, wave: str) -> torch.Tensor:
    """CFD inelasticity eta in [0, 1] at sqrt(s) in GeV, wave in ("S0", "P", "S2")."""
    return _inelasticity(_as_s(sqrt_s_gev), wave)


def cfd_waves(s_gev2: torch.Tensor) -> dict[int, torch.Tensor]:
    """{0: S0, 1: P, 2: S2} as complex waves of shape (*s.shape, 1), ready for `channel_amplitude`.

    Only these three waves: the paper's D and F waves are left out (small below 1 GeV, the D0 wave grows towards
    the f2(1270) above).
    """
    sqrt_s = torch.sqrt(torch.as_tensor(s_gev2, dtype=torch.float64))
    out = {}
    for isospin, wave in zip((0, 1, 2), WAVES):
        delta = torch.deg2rad(cfd_phase_shift_deg(sqrt_s, wave))
        out[isospin] = inelastic_wave(delta, cfd_inelasticity(sqrt_s, wave)).unsqueeze(-1)
    return out
