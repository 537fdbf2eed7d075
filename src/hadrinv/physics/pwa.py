"""Helicity-formalism partial-wave analysis of J/psi -> gamma X, X -> pi pi (pi+ pi- or pi0 pi0).

Units and frames. Energies, momenta and masses in GeV; angles in radians. Four-momenta are tensors of
shape (N, 4) ordered (E, px, py, pz) in the J/psi rest frame, with z along the e+ beam. Everything is
batched over events, differentiable and meant for float64 (complex128 for amplitudes).

Angles (`helicity_angles`). Omega_X = (theta_x, phi_x) is the flight direction of X = pi1 + pi2 in the
J/psi frame; the amplitude uses X's angles, not the photon's (the photon's, theta_gamma = pi - theta_x,
phi_gamma = phi_x + pi, are reported as well, computed from the photon momentum itself). The pion
angles (theta_pi, phi_pi) are those of pi1 (= pi+) in the Jacob-Wick helicity frame of X: the J/psi
frame rotated by R(phi_x, theta_x, 0) = R_z(phi_x) R_y(theta_x), so that z' = X direction,
y' = z x z' / |z x z'|, x' = y' x z', followed by a boost along z' into the pi pi rest frame. In that frame
the photon moves along -z' and the beam axis has components (-sin theta_x, 0, cos theta_x) before the
boost, so phi_pi is the angle between the production plane (beam, X) and the decay plane, with phi_pi = 0
on the side of x' = the direction of increasing theta_x. For X along the beam (theta_x = 0, pi) y' is
undefined; we set phi_x = 0 there, i.e. x' = +-x (any choice gives the same intensity, see the tests).

Amplitude. With J/psi spin projection M = +-1 on the beam (e+ e- -> J/psi through a virtual photon,
so M = 0 is absent), photon helicity lambda_gamma = +-1 and X helicity lambda_x,

    A(M, lambda_gamma) = sum_k c_k BW_k(m) sum_{lambda_x} H^k_{lambda_x, lambda_gamma}
                         D^{1*}_{M, lambda_x - lambda_gamma}(phi_x, theta_x, 0) D^{J_k *}_{lambda_x, 0}(phi_pi, theta_pi, 0),
    I = sum_{M, lambda_gamma} |A(M, lambda_gamma)|^2.

Parity: for a -> 1 2, H_{-l1,-l2} = eta_a eta_1 eta_2 (-1)^{J_a - J_1 - J_2} H_{l1,l2}; here
eta_psi eta_gamma eta_X (-1)^{1 - 1 - J} = (-1)(-1)(+1)(+1) = +1 for the J^{PC} = 0++, 2++ states (J even), so
H_{-lambda_x, -1} = H_{lambda_x, +1} and only the lambda_gamma = +1 amplitudes are free: one (A0) for
J = 0 and three (A0, A1, A2 for lambda_x = 0, 1, 2) for J = 2, since |lambda_x - lambda_gamma| <= J_psi = 1.
No sqrt((2J+1)/4pi) normalisation is attached to the D-functions: it is absorbed into the couplings.

Wigner functions follow Rose / Condon-Shortley: D^j_{m'm}(a, b, g) = exp(-i m' a) d^j_{m'm}(b) exp(-i m g),
d^1_{10}(b) = -sin(b)/sqrt(2) (the PDG table).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

# PDG masses in GeV.
M_JPSI = 3.0969
M_PI_CHARGED = 0.13957039
M_PI0 = 0.1349768
M_K_CHARGED = 0.493677
M_K0 = 0.497611

DEFAULT_BARRIER_RADIUS_INV_GEV = 3.0  # r in GeV^-1 (about 0.6 fm)
F0_980_GKK_OVER_GPIPI = 8.570  # default g_KK / g_pipi of the Flatte line shape

# Index order of the (M, lambda_gamma) axes of the angular amplitudes.
HELICITIES = (1, -1)


# ---------------------------------------------------------------------------------------------------
# Kinematics
# ---------------------------------------------------------------------------------------------------


def invariant_mass_squared(p: torch.Tensor) -> torch.Tensor:
    """m^2 = E^2 - |p|^2 in GeV^2 for four-momenta (..., 4)."""
    return p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)


def invariant_mass(p: torch.Tensor) -> torch.Tensor:
    """m = sqrt(E^2 - |p|^2) in GeV, clamped at 0 so a photon's rounding noise does not give NaN."""
    return torch.sqrt(torch.clamp(invariant_mass_squared(p), min=0.0))


def energy_momentum_violation(
    gamma: torch.Tensor, pi1: torch.Tensor, pi2: torch.Tensor, M: float = M_JPSI
) -> torch.Tensor:
    """max_mu |(gamma + pi1 + pi2)^mu - (M, 0, 0, 0)^mu| per event, GeV, shape (N,)."""
    total = gamma + pi1 + pi2
    target = torch.zeros_like(total)
    target[..., 0] = M
    return (total - target).abs().amax(-1)


@dataclass(frozen=True)
class HelicityAngles:
    """Per-event variables of J/psi -> gamma X(-> pi1 pi2), each of shape (N,); see the module docstring.

    m_pipi in GeV; theta_x, phi_x: X direction in the J/psi frame (what the amplitude uses);
    cos_theta_gamma, phi_gamma: photon direction in the J/psi frame; theta_pi, phi_pi: pi1 in the
    helicity frame of X. Polar angles are kept as angles (from atan2) rather than cosines so that the
    d-functions stay differentiable at theta = 0, pi; phi in (-pi, pi].
    """

    m_pipi: torch.Tensor
    cos_theta_gamma: torch.Tensor
    phi_gamma: torch.Tensor
    theta_x: torch.Tensor
    phi_x: torch.Tensor
    theta_pi: torch.Tensor
    phi_pi: torch.Tensor

    @property
    def cos_theta_pi(self) -> torch.Tensor:
        return torch.cos(self.theta_pi)

    @property
    def cos_theta_x(self) -> torch.Tensor:
        return torch.cos(self.theta_x)

    @classmethod
    def from_photon_angles(cls, m_pipi, cos_theta_gamma, phi_gamma, cos_theta_pi, phi_pi) -> HelicityAngles:
        """Build angles on a grid (for quadrature): X back to back with the photon, as in the J/psi frame."""
        tensors = torch.broadcast_tensors(
            *(
                torch.as_tensor(t, dtype=torch.float64)
                for t in (m_pipi, cos_theta_gamma, phi_gamma, cos_theta_pi, phi_pi)
            )
        )
        m, cg, pg, cp, pp = tensors
        theta_x = math.pi - torch.acos(torch.clamp(cg, -1.0, 1.0))
        phi_x = _wrap_angle(pg + math.pi)
        return cls(m, cg, pg, theta_x, phi_x, torch.acos(torch.clamp(cp, -1.0, 1.0)), pp)


def _wrap_angle(phi: torch.Tensor) -> torch.Tensor:
    """Map to (-pi, pi], the range of atan2."""
    return math.pi - torch.remainder(math.pi - phi, 2.0 * math.pi)


def _polar_azimuth(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(theta, phi) of 3-vectors (..., 3) via atan2: accurate near the poles, unlike acos(z / |v|).

    On the z axis phi is set to 0: atan2 would return 0 or +-pi there depending on the signs of zeros.
    """
    transverse_sq = v[..., 0] ** 2 + v[..., 1] ** 2
    on_axis = transverse_sq == 0
    # sqrt has an infinite derivative at 0; feed it 1 on the axis and mask, so gradients stay finite.
    transverse = torch.where(
        on_axis,
        torch.zeros_like(transverse_sq),
        torch.sqrt(torch.where(on_axis, torch.ones_like(transverse_sq), transverse_sq)),
    )
    safe_x = torch.where(on_axis, torch.ones_like(transverse_sq), v[..., 0])
    phi = torch.where(on_axis, torch.zeros_like(transverse_sq), torch.atan2(v[..., 1], safe_x))
    return torch.atan2(transverse, v[..., 2]), phi


def helicity_angles(gamma: torch.Tensor, pi1: torch.Tensor, pi2: torch.Tensor) -> HelicityAngles:
    """Helicity angles of J/psi -> gamma X, X -> pi1 pi2 from J/psi-frame four-momenta (N, 4) in GeV.

    X = pi1 + pi2 defines Omega_X and the pion frame (so the pion angles are right even if the event
    does not conserve momentum exactly); the photon angles come from the photon momentum.
    """
    x = pi1 + pi2
    theta_x, phi_x = _polar_azimuth(x[..., 1:])
    theta_g, phi_g = _polar_azimuth(gamma[..., 1:])
    ct, st = torch.cos(theta_x), torch.sin(theta_x)
    cp, sp = torch.cos(phi_x), torch.sin(phi_x)
    # Components of pi1 along the helicity axes x' = R e_x, y' = R e_y, z' = R e_z, R = R_z(phi) R_y(theta).
    p = pi1[..., 1:]
    p_xh = ct * cp * p[..., 0] + ct * sp * p[..., 1] - st * p[..., 2]
    p_yh = -sp * p[..., 0] + cp * p[..., 1]
    p_zh = st * cp * p[..., 0] + st * sp * p[..., 1] + ct * p[..., 2]
    # Boost along z' into the X rest frame: transverse components are unchanged.
    m_x = invariant_mass(x)
    x_mom = torch.sqrt((x[..., 1:] ** 2).sum(-1))
    p_zh_star = (x[..., 0] * p_zh - x_mom * pi1[..., 0]) / m_x  # gamma (p_z' - beta E)
    theta_pi, phi_pi = _polar_azimuth(torch.stack([p_xh, p_yh, p_zh_star], dim=-1))
    return HelicityAngles(
        m_pipi=m_x,
        cos_theta_gamma=torch.cos(theta_g),
        phi_gamma=phi_g,
        theta_x=theta_x,
        phi_x=phi_x,
        theta_pi=theta_pi,
        phi_pi=phi_pi,
    )


# ---------------------------------------------------------------------------------------------------
# Wigner functions
# ---------------------------------------------------------------------------------------------------


def _d_canonical(j: int, m1: int, m2: int, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """d^j_{m1 m2} for m1 >= |m2| from c = cos(beta), s = sin(beta) (PDG table)."""
    if j == 0:
        return torch.ones_like(c)
    if j == 1:
        table = {
            (1, 1): lambda: 0.5 * (1 + c),
            (1, 0): lambda: -s / math.sqrt(2.0),
            (1, -1): lambda: 0.5 * (1 - c),
            (0, 0): lambda: c,
        }
    else:
        table = {
            (2, 2): lambda: 0.25 * (1 + c) ** 2,
            (2, 1): lambda: -0.5 * (1 + c) * s,
            (2, 0): lambda: math.sqrt(6.0) / 4.0 * s**2,
            (2, -1): lambda: -0.5 * (1 - c) * s,
            (2, -2): lambda: 0.25 * (1 - c) ** 2,
            (1, 1): lambda: 0.5 * (1 + c) * (2 * c - 1),
            (1, 0): lambda: -math.sqrt(1.5) * s * c,
            (1, -1): lambda: 0.5 * (1 - c) * (2 * c + 1),
            (0, 0): lambda: 0.5 * (3 * c**2 - 1),
        }
    return table[(m1, m2)]()


def _small_d_cs(j: int, m1: int, m2: int, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """d^j_{m1 m2}(beta) from cos and sin, mapping any (m1, m2) onto m1 >= |m2| by the symmetries
    d_{m'm} = (-1)^{m-m'} d_{mm'} = d_{-m,-m'}."""
    if j not in (0, 1, 2):
        raise NotImplementedError(f"explicit d-functions only for j = 0, 1, 2, not {j}")
    if abs(m1) > j or abs(m2) > j:
        raise ValueError(f"|m| <= j violated: j={j}, m1={m1}, m2={m2}")
    if abs(m1) >= abs(m2):
        if m1 >= 0:
            return _d_canonical(j, m1, m2, c, s)
        return (-1) ** ((m1 - m2) % 2) * _d_canonical(j, -m1, -m2, c, s)
    if m2 > 0:
        return (-1) ** ((m2 - m1) % 2) * _d_canonical(j, m2, m1, c, s)
    return _d_canonical(j, -m2, -m1, c, s)


def _times_phase(real: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """real * exp(i angle) for a real factor of either sign (the backward of torch.polar assumes abs >= 0)."""
    return torch.complex(real * torch.cos(angle), real * torch.sin(angle))


def wigner_small_d(j: int, m1: int, m2: int, theta: torch.Tensor) -> torch.Tensor:
    """d^j_{m1 m2}(theta) for j in {0, 1, 2}, Rose / Condon-Shortley phases; theta in radians, any shape."""
    theta = torch.as_tensor(theta, dtype=torch.float64)
    return _small_d_cs(j, m1, m2, torch.cos(theta), torch.sin(theta))


def wigner_D(j: int, m1: int, m2: int, alpha, beta, gamma) -> torch.Tensor:
    """D^j_{m1 m2}(alpha, beta, gamma) = exp(-i m1 alpha) d^j_{m1 m2}(beta) exp(-i m2 gamma), complex128."""
    alpha, beta, gamma = torch.broadcast_tensors(
        *(torch.as_tensor(a, dtype=torch.float64) for a in (alpha, beta, gamma))
    )
    d = wigner_small_d(j, m1, m2, beta)
    return _times_phase(d, -(m1 * alpha + m2 * gamma))


# ---------------------------------------------------------------------------------------------------
# Line shapes
# ---------------------------------------------------------------------------------------------------


def breakup_momentum_squared(m, m1: float, m2: float) -> torch.Tensor:
    """q^2 = (m^2 - (m1 + m2)^2)(m^2 - (m1 - m2)^2) / (4 m^2) in GeV^2; negative below threshold."""
    m = torch.as_tensor(m, dtype=torch.float64)
    return (m**2 - (m1 + m2) ** 2) * (m**2 - (m1 - m2) ** 2) / (4.0 * m**2)


def breakup_momentum(m, m1: float, m2: float) -> torch.Tensor:
    """Two-body breakup momentum q(m) in GeV, complex: real above threshold, i |q| below.

    The +i branch is the one reached from above threshold through the upper half of the s plane
    (the physical sheet), so that rho(m) = 2q/m makes a channel below threshold shift the mass.
    """
    q2 = breakup_momentum_squared(m, m1, m2)
    root = torch.sqrt(q2.abs())
    zero = torch.zeros_like(root)
    return torch.complex(torch.where(q2 >= 0, root, zero), torch.where(q2 < 0, root, zero))


def phase_space_factor(m, m1: float, m2: float) -> torch.Tensor:
    """rho(m) = 2 q(m) / m, complex (i |rho| below threshold); -> 1 for m >> m1 + m2."""
    m = torch.as_tensor(m, dtype=torch.float64)
    return 2.0 * breakup_momentum(m, m1, m2) / m


def blatt_weisskopf(q, L: int, r: float = DEFAULT_BARRIER_RADIUS_INV_GEV) -> torch.Tensor:
    """Blatt-Weisskopf damping factor B_L(q), normalised to B_L(0) = 1, for L = 0, 1, 2.

    z = (q r)^2 with q in GeV, r in GeV^-1: B_0 = 1, B_1 = sqrt(1 / (1 + z)), B_2 = sqrt(9 / (9 + 3z + z^2)).
    The von Hippel-Quigg factors are F_L = (q r)^L B_L up to a constant (F_1^2 = 2z / (1 + z),
    F_2^2 = 13 z^2 / ((z - 3)^2 + 9z)); the threshold power q^L is kept out of B_L so that the running
    width below can show it as (q / q0)^(2L + 1).
    """
    q = torch.as_tensor(q, dtype=torch.float64)
    z = (q * r) ** 2
    if L == 0:
        return torch.ones_like(z)
    if L == 1:
        return torch.sqrt(1.0 / (1.0 + z))
    if L == 2:
        return torch.sqrt(9.0 / (9.0 + 3.0 * z + z**2))
    raise NotImplementedError(f"Blatt-Weisskopf factors only for L = 0, 1, 2, not {L}")


def breit_wigner(m, m0, gamma0) -> torch.Tensor:
    """Relativistic Breit-Wigner with constant width, 1 / (m0^2 - m^2 - i m0 Gamma0), GeV^-2.

    |BW|^2 peaks at m = m0 and falls to half at m^2 = m0^2 +- m0 Gamma0.
    """
    m = torch.as_tensor(m, dtype=torch.float64)
    m0 = torch.as_tensor(m0, dtype=torch.float64)
    gamma0 = torch.as_tensor(gamma0, dtype=torch.float64)
    real, imag = torch.broadcast_tensors(m0**2 - m**2, -m0 * gamma0)
    return 1.0 / torch.complex(real, imag)


def _real_momentum(m, m1: float, m2: float) -> torch.Tensor:
    """q in GeV, set to 0 below threshold (where a decay width has to vanish)."""
    return torch.sqrt(torch.clamp(breakup_momentum_squared(m, m1, m2), min=0.0))


def running_width(
    m, m0, gamma0, L: int, m1: float = M_PI_CHARGED, m2: float = M_PI_CHARGED, r: float = DEFAULT_BARRIER_RADIUS_INV_GEV
) -> torch.Tensor:
    """Gamma(m) = Gamma0 (q / q0)^(2L+1) (m0 / m) (B_L(q) / B_L(q0))^2 in GeV, q0 = q(m0); 0 below threshold."""
    m = torch.as_tensor(m, dtype=torch.float64)
    m0 = torch.as_tensor(m0, dtype=torch.float64)
    q, q0 = _real_momentum(m, m1, m2), _real_momentum(m0, m1, m2)
    return gamma0 * (q / q0) ** (2 * L + 1) * (m0 / m) * (blatt_weisskopf(q, L, r) / blatt_weisskopf(q0, L, r)) ** 2


def breit_wigner_running(
    m, m0, gamma0, L: int, m1: float = M_PI_CHARGED, m2: float = M_PI_CHARGED, r: float = DEFAULT_BARRIER_RADIUS_INV_GEV
) -> torch.Tensor:
    """BW(m) = (q / q0)^L (B_L(q) / B_L(q0)) / (m0^2 - m^2 - i m0 Gamma(m)), GeV^-2.

    The numerator is the decay vertex X -> m1 m2 in wave L, F_L(q) / F_L(q0) in von Hippel-Quigg
    terms, normalised to 1 at m = m0 so that BW(m0) = i / (m0 Gamma0) as for the constant width.
    """
    m = torch.as_tensor(m, dtype=torch.float64)
    m0 = torch.as_tensor(m0, dtype=torch.float64)
    q, q0 = _real_momentum(m, m1, m2), _real_momentum(m0, m1, m2)
    vertex = (q / q0) ** L * blatt_weisskopf(q, L, r) / blatt_weisskopf(q0, L, r)
    width = running_width(m, m0, gamma0, L, m1, m2, r)
    real, imag = torch.broadcast_tensors(m0**2 - m**2, -m0 * width)
    return vertex / torch.complex(real, imag)


def rho_pipi(m) -> torch.Tensor:
    """Isospin-averaged pi pi phase space for an I = 0 state: 2/3 rho(pi+ pi-) + 1/3 rho(pi0 pi0)."""
    return (2.0 / 3.0) * phase_space_factor(m, M_PI_CHARGED, M_PI_CHARGED) + (1.0 / 3.0) * phase_space_factor(
        m, M_PI0, M_PI0
    )


def rho_kk(m) -> torch.Tensor:
    """Isospin-averaged K Kbar phase space: 1/2 rho(K+ K-) + 1/2 rho(K0 K0bar), i |rho| below threshold."""
    return 0.5 * phase_space_factor(m, M_K_CHARGED, M_K_CHARGED) + 0.5 * phase_space_factor(m, M_K0, M_K0)


def flatte(m, m0, g_pipi, g_kk=None) -> torch.Tensor:
    """Flatte line shape of the f0(980): 1 / (m0^2 - m^2 - i (g_pipi rho_pipi(m) + g_KK rho_KK(m))).

    rho = 2q/m from `rho_pipi` / `rho_kk` (isospin-averaged thresholds), continued below threshold as
    i |rho|, so under the K Kbar threshold the K Kbar term is real and pulls the mass; g_KK defaults to
    8.570 g_pipi. The couplings are added to m0^2 - m^2 and so carry GeV^2 in this formula. Example
    with the talk's f0(980) 'width 0.107', which the notes identify with g_pipi (quoted in GeV; we use the
    number as it stands): flatte(m, 0.980, 0.107), i.e. g_pipi = 0.107, g_KK = 0.917.
    """
    m = torch.as_tensor(m, dtype=torch.float64)
    m0 = torch.as_tensor(m0, dtype=torch.float64)
    g_pipi = torch.as_tensor(g_pipi, dtype=torch.float64)
    g_kk = F0_980_GKK_OVER_GPIPI * g_pipi if g_kk is None else torch.as_tensor(g_kk, dtype=torch.float64)
    width_term = g_pipi * rho_pipi(m) + g_kk * rho_kk(m)
    return 1.0 / ((m0**2 - m**2) - 1j * width_term)


# ---------------------------------------------------------------------------------------------------
# Amplitude and intensity
# ---------------------------------------------------------------------------------------------------


def e1_helicity_amplitudes(dtype=torch.complex128) -> torch.Tensor:
    """(A0, A1, A2) of a 2++ state in pure E1 radiation, A2 = sqrt(2) A1 = sqrt(6) A0, A0 = 1.

    Signs are convention dependent; they do not enter the cos(theta_gamma) distribution, 1 + cos^2 / 13.
    """
    return torch.tensor([1.0, math.sqrt(3.0), math.sqrt(6.0)], dtype=dtype)


def _x_helicities(spin: int) -> tuple[int, ...]:
    """lambda_x values for lambda_gamma = +1: |lambda_x| <= J and |lambda_x - 1| <= 1."""
    if spin < 0 or spin % 2:
        raise ValueError(f"X -> pi pi from J/psi -> gamma X needs even J (C = +); got J = {spin}")
    return tuple(l for l in (0, 1, 2) if l <= spin)


def angular_amplitudes(angles: HelicityAngles, spins: Sequence[int], helicity_amplitudes: Sequence) -> torch.Tensor:
    """Angular parts of the amplitude, without couplings and line shapes, shape (N, K, 2, 2), complex128.

    out[n, k, i, j] = sum_{lambda_x} H^k_{lambda_x, lg} D^{1*}_{M, lambda_x - lg}(phi_x, theta_x, 0)
    D^{J_k*}_{lambda_x, 0}(phi_pi, theta_pi, 0) with M = HELICITIES[i], lg = HELICITIES[j].
    helicity_amplitudes[k] holds H^k_{lambda_x, +1} for lambda_x = 0 (J = 0) or 0, 1, 2 (J = 2); the
    lambda_gamma = -1 ones follow from parity, H_{-lambda_x, -1} = H_{lambda_x, +1}. They depend on angles
    only, so a fit can compute them once while masses, widths and couplings float.
    """
    tx, px, tp, pp = angles.theta_x, angles.phi_x, angles.theta_pi, angles.phi_pi
    cx, sx, cp, sp = torch.cos(tx), torch.sin(tx), torch.cos(tp), torch.sin(tp)
    per_resonance = []
    for spin, h in zip(spins, helicity_amplitudes):
        lambdas = _x_helicities(spin)
        h = torch.as_tensor(h).to(torch.complex128).reshape(-1)
        if h.numel() != len(lambdas):
            raise ValueError(
                f"J = {spin} needs {len(lambdas)} helicity amplitudes (lambda_x = {lambdas}), got {h.numel()}"
            )
        rows = []
        for big_m in HELICITIES:
            cols = []
            for lg in HELICITIES:
                total = torch.zeros(tx.shape, dtype=torch.complex128, device=tx.device)
                for i, lam in enumerate(lambdas):
                    lx = lam * lg  # lambda_gamma = -1 uses H_{-lambda, -1} = H_{lambda, +1}
                    # D^{j*}_{m1 m2}(phi, theta, 0) = exp(+i m1 phi) d^j_{m1 m2}(theta)
                    production = _times_phase(_small_d_cs(1, big_m, lx - lg, cx, sx), big_m * px)
                    decay = _times_phase(_small_d_cs(spin, lx, 0, cp, sp), lx * pp)
                    total = total + h[i] * production * decay
                cols.append(total)
            rows.append(torch.stack(cols, dim=-1))
        per_resonance.append(torch.stack(rows, dim=-2))
    return torch.stack(per_resonance, dim=-3)


def intensity(angular, line_shapes, couplings) -> torch.Tensor:
    """I = sum_{M, lambda_gamma} |sum_k c_k BW_k(m) A_k[:, M, lambda_gamma]|^2, shape (N,).

    angular: (N, K, 2, 2) from `angular_amplitudes` (or a sequence of K tensors (N, 2, 2));
    line_shapes: (N, K) complex (or a sequence of K tensors (N,)); couplings: (K,) complex.
    """
    if not torch.is_tensor(angular):
        angular = torch.stack(list(angular), dim=-3)
    if not torch.is_tensor(line_shapes):
        line_shapes = torch.stack([torch.as_tensor(b) for b in line_shapes], dim=-1)
    couplings = torch.as_tensor(couplings).to(torch.complex128)
    weights = couplings * line_shapes.to(torch.complex128)  # (N, K)
    amplitude = (weights[..., None, None] * angular).sum(-3)  # (N, 2, 2)
    return (amplitude.real**2 + amplitude.imag**2).sum((-2, -1))


def real_amplitude_basis(angular: torch.Tensor) -> torch.Tensor:
    """The angular amplitudes (N, K, 2, 2) as one real tensor W (N, 4, 2K) = [Re A^T | Im A^T] for
    `intensity_from_basis`: fits evaluate the intensity millions of times, and two real batched matrix
    products with autograd are 3-4x faster on a CPU than the same sums in complex arithmetic (measured:
    benchmarks/pwa_nll.py)."""
    A = angular.reshape(angular.shape[0], angular.shape[1], 4).transpose(1, 2)  # (N, 4, K)
    return torch.cat([A.real, A.imag], -1).contiguous()


def intensity_from_basis(basis: torch.Tensor, z_re: torch.Tensor, z_im: torch.Tensor) -> torch.Tensor:
    """I = sum_{M, lambda_gamma} |sum_k z_k A_k|^2 with z_k = c_k BW_k(m) per event given as real and
    imaginary parts (N, K), and `basis` from `real_amplitude_basis`. Equals `intensity` to rounding.
    One batched product with two right-hand columns (real and imaginary parts): 2.9x faster than two
    matrix-vector products on 1e6 events with autodiff (measured)."""
    columns = torch.stack([torch.cat([z_re, -z_im], -1), torch.cat([z_im, z_re], -1)], -1)  # (N, 2K, 2)
    amplitude = torch.bmm(basis, columns)  # (N, 4, 2): real and imaginary part of each (M, lambda_gamma)
    return (amplitude * amplitude).sum((-2, -1))


def breit_wigner_parts(m2: torch.Tensor, m0: torch.Tensor, gamma0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of `breit_wigner` from m^2 (GeV^2): (a, b) / (a^2 + b^2), a = m0^2 - m^2, b = m0 Gamma0."""
    a = m0 * m0 - m2
    b = m0 * gamma0
    d = a * a + b * b
    return a / d, b / d


def flatte_parts(
    m2: torch.Tensor,
    m0: torch.Tensor,
    g_pipi: torch.Tensor,
    rho_pipi_m: torch.Tensor,
    rho_kk_m: torch.Tensor,
    g_kk: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of `flatte` with the phase-space factors rho_pipi(m), rho_kk(m) (complex,
    parameter-free) computed once per event by the caller."""
    g_kk = F0_980_GKK_OVER_GPIPI * g_pipi if g_kk is None else g_kk
    width = g_pipi * rho_pipi_m + g_kk * rho_kk_m  # complex: rho_kk is imaginary below the K Kbar threshold
    a = m0 * m0 - m2 + width.imag
    b = width.real
    d = a * a + b * b
    return a / d, b / d


# ---------------------------------------------------------------------------------------------------
# Phase space
# ---------------------------------------------------------------------------------------------------


def dalitz_s12_limits(
    s23: torch.Tensor, masses: Sequence[float], M: float = M_JPSI
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kinematic range of s12 = m12^2 at given s23 = m23^2 (GeV^2), from the energies in the 23 rest frame."""
    m1, m2, m3 = masses
    m23 = torch.sqrt(s23)
    e2 = (s23 - m3**2 + m2**2) / (2.0 * m23)
    e1 = (M**2 - s23 - m1**2) / (2.0 * m23)
    p2 = torch.sqrt(torch.clamp(e2**2 - m2**2, min=0.0))
    p1 = torch.sqrt(torch.clamp(e1**2 - m1**2, min=0.0))
    return (e1 + e2) ** 2 - (p1 + p2) ** 2, (e1 + e2) ** 2 - (p1 - p2) ** 2


def _rotate(v: torch.Tensor, phi: torch.Tensor, theta: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """R_z(phi) R_y(theta) R_z(psi) applied to 3-vectors (N, 3)."""

    def rz(a, x, y):
        return torch.cos(a) * x - torch.sin(a) * y, torch.sin(a) * x + torch.cos(a) * y

    x, y = rz(psi, v[..., 0], v[..., 1])
    z = v[..., 2]
    x, z = torch.cos(theta) * x + torch.sin(theta) * z, -torch.sin(theta) * x + torch.cos(theta) * z
    x, y = rz(phi, x, y)
    return torch.stack([x, y, z], dim=-1)


def phase_space_events(
    n: int, masses: Sequence[float] = (0.0, M_PI_CHARGED, M_PI_CHARGED), M: float = M_JPSI, generator=None
):
    """n events uniform in three-body Lorentz-invariant phase space of M -> 1 2 3, J/psi rest frame.

    Returns the four-momenta (p1, p2, p3), each (n, 4) in GeV, i.e. (gamma, pi1, pi2) by default.
    d Phi_3 is proportional to ds12 ds23 dOmega_1 dpsi, so we draw (s12, s23) uniform in the enclosing
    rectangle, keep the points inside the Dalitz boundary (batch rejection), and orient the event by
    R_z(phi) R_y(theta) R_z(psi) with cos(theta), phi and psi uniform (psi: rotation about particle 1).
    """
    m1, m2, m3 = (float(x) for x in masses)
    if M < m1 + m2 + m3:
        raise ValueError("decay below threshold")
    opts = {"dtype": torch.float64, "generator": generator}
    s23_lo, s23_hi = (m2 + m3) ** 2, (M - m1) ** 2
    s12_lo, s12_hi = (m1 + m2) ** 2, (M - m3) ** 2
    kept_s12, kept_s23, count = [], [], 0
    while count < n:  # a loop over batches; the acceptance is about 1/2 for gamma pi pi
        batch = max(2 * (n - count) + 1000, 1000)
        s23 = s23_lo + (s23_hi - s23_lo) * torch.rand(batch, **opts)
        s12 = s12_lo + (s12_hi - s12_lo) * torch.rand(batch, **opts)
        lo, hi = dalitz_s12_limits(s23, (m1, m2, m3), M)
        inside = (s12 >= lo) & (s12 <= hi)
        kept_s12.append(s12[inside])
        kept_s23.append(s23[inside])
        count += int(inside.sum())
    s12 = torch.cat(kept_s12)[:n]
    s23 = torch.cat(kept_s23)[:n]
    return _events_from_dalitz(s12, s23, (m1, m2, m3), M, generator)


def _events_from_dalitz(
    s12: torch.Tensor, s23: torch.Tensor, masses: Sequence[float], M: float, generator
) -> tuple[torch.Tensor, ...]:
    """Four-momenta (p1, p2, p3) of Dalitz points (s12, s23), with an isotropic orientation."""
    m1, m2, m3 = masses
    n = s12.shape[0]
    opts = {"dtype": torch.float64, "generator": generator}
    e1 = (M**2 + m1**2 - s23) / (2.0 * M)
    e3 = (M**2 + m3**2 - s12) / (2.0 * M)
    e2 = M - e1 - e3
    p1 = torch.sqrt(torch.clamp(e1**2 - m1**2, min=0.0))
    p2 = torch.sqrt(torch.clamp(e2**2 - m2**2, min=0.0))
    p3_sq = torch.clamp(e3**2 - m3**2, min=0.0)
    # p3 = -(p1 + p2) fixes the opening angle between particles 1 and 2.
    cos12 = torch.clamp((p3_sq - p1**2 - p2**2) / torch.clamp(2.0 * p1 * p2, min=1e-300), -1.0, 1.0)
    sin12 = torch.sqrt(1.0 - cos12**2)
    zero = torch.zeros_like(p1)
    v1 = torch.stack([zero, zero, p1], dim=-1)
    v2 = torch.stack([p2 * sin12, zero, p2 * cos12], dim=-1)

    cos_theta = 2.0 * torch.rand(n, **opts) - 1.0
    phi = 2.0 * math.pi * torch.rand(n, **opts)
    psi = 2.0 * math.pi * torch.rand(n, **opts)
    theta = torch.acos(cos_theta)
    v1, v2 = _rotate(v1, phi, theta, psi), _rotate(v2, phi, theta, psi)
    v3 = -(v1 + v2)
    return (
        torch.cat([e1[:, None], v1], dim=-1),
        torch.cat([e2[:, None], v2], dim=-1),
        torch.cat([e3[:, None], v3], dim=-1),
    )


def weighted_phase_space_events(
    n: int,
    m_edges: torch.Tensor | None = None,
    m_probabilities: torch.Tensor | None = None,
    flat_fraction: float = 0.2,
    masses: Sequence[float] = (0.0, M_PI_CHARGED, M_PI_CHARGED),
    M: float = M_JPSI,
    generator=None,
):
    """n weighted three-body phase-space events whose m23 follows a given spectrum (importance sampling).

    s23 = m23^2 is drawn from a mixture: ``flat_fraction`` uniform on its range, the rest from the
    histogram (``m_edges`` (B + 1,) in GeV, ``m_probabilities`` (B,), m uniform inside a bin); s12 is
    uniform in its range at that s23, the orientation isotropic. The weight w = (s12 range at s23) / g(s23),
    normalised to mean 1, makes sum w f / sum w an estimate of the flat phase-space average of any f. With
    the histogram shaped like the data's m23 spectrum (`data.pwa_model.model_m_spectrum`), an MC average of
    the intensity has about the data's own per-event variance, where flat events leave narrow resonances
    with few events and the normalisation's MC noise scatters their fitted masses and widths by a sizeable
    fraction of their statistical errors (measured: benchmarks/pwa_mc_noise.py). Without a histogram, s23
    is uniform. Returns (p1, p2, p3, weights)."""
    m1, m2, m3 = (float(x) for x in masses)
    opts = {"dtype": torch.float64, "generator": generator}
    lo, hi = (m2 + m3) ** 2, (M - m1) ** 2
    if m_edges is None:
        flat_fraction = 1.0
    elif not 0.0 < flat_fraction <= 1.0:
        raise ValueError(f"flat_fraction must be in (0, 1], got {flat_fraction}")
    u = torch.rand(n, **opts)
    s23 = lo + (hi - lo) * u
    density = torch.full_like(s23, flat_fraction / (hi - lo))
    if flat_fraction < 1.0:
        edges = torch.as_tensor(m_edges, dtype=torch.float64).clamp(math.sqrt(lo), math.sqrt(hi))
        prob = torch.as_tensor(m_probabilities, dtype=torch.float64).clamp(min=0.0)
        prob = prob / prob.sum()
        from_histogram = torch.rand(n, **opts) >= flat_fraction
        k = torch.multinomial(prob, int(from_histogram.sum()), replacement=True, generator=generator)
        m = edges[k] + (edges[k + 1] - edges[k]) * u[from_histogram]
        s23[from_histogram] = m * m
        m_all = torch.sqrt(s23)
        b = torch.searchsorted(edges, m_all, right=True).clamp(1, len(prob)) - 1
        inside = (m_all >= edges[0]) & (m_all <= edges[-1])
        # dN/ds23 of the histogram part: p_b / (bin width in m) / (2 m)
        hist = torch.where(inside, prob[b] / (edges[b + 1] - edges[b]) / (2.0 * m_all), torch.zeros_like(m_all))
        density = density + (1.0 - flat_fraction) * hist
    s12_lo, s12_hi = dalitz_s12_limits(s23, (m1, m2, m3), M)
    s12 = s12_lo + (s12_hi - s12_lo) * torch.rand(n, **opts)
    weights = (s12_hi - s12_lo) / density
    return (*_events_from_dalitz(s12, s23, (m1, m2, m3), M, generator), weights / weights.mean())


def two_body_phase_space_density(
    m_pipi, masses: Sequence[float] = (0.0, M_PI_CHARGED, M_PI_CHARGED), M: float = M_JPSI
) -> torch.Tensor:
    """dN/dm23 of flat phase space, unnormalised: p q / M (p: particle 1 in the M frame, q: particle 2 in
    the 23 frame, both GeV); 0 outside the kinematic range."""
    m = torch.as_tensor(m_pipi, dtype=torch.float64)
    m1, m2, m3 = masses
    p = _real_momentum(torch.full_like(m, M), m1, m)
    q = _real_momentum(m, m2, m3)
    return p * q / M
