"""Line shapes of the pi pi resonances: Breit-Wigner (constant and running width), Flatte, Blatt-Weisskopf
barrier factors, breakup momenta and the two-body phase-space factors rho = 2q/m.

Masses in GeV, barrier radii in GeV^-1; everything is batched, differentiable and meant for float64
(complex128 for amplitudes). `breit_wigner_parts` and `flatte_parts` give the same line shapes as real and
imaginary parts, for the real-arithmetic intensity of `hadrinv.physics.pwa.intensity_from_basis`.
"""

from __future__ import annotations

import torch

# PDG masses in GeV.
M_PI_CHARGED = 0.13957039
M_PI0 = 0.1349768
M_K_CHARGED = 0.493677
M_K0 = 0.497611

DEFAULT_BARRIER_RADIUS_INV_GEV = 3.0  # r in GeV^-1 (about 0.6 fm)
F0_980_GKK_OVER_GPIPI = 8.570  # default g_KK / g_pipi of the Flatte line shape


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


def breit_wigner_parts(m2: torch.Tensor, m0: torch.Tensor, gamma0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of `breit_wigner` from m^2 (GeV^2): (a, b) / (a^2 + b^2),
    a = m0^2 - m^2, b = m0 Gamma0."""
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
