"""pi pi elastic scattering toy of talk 000: Breit-Wigner S and P waves, cross section in GeV^-2.

A(s, z) = f_0(s) + 3 f_1(s) z with f_l = m G / (m^2 - s - i m G) (s, m^2, m G in GeV^2), and
dsigma/dOmega = |A|^2 / (64 pi^2 s) in GeV^-2. These Breit-Wigner waves satisfy Im f = |f|^2 exactly,
with delta_l = atan2(m G, m^2 - s) in (0, pi).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PION_MASS_GEV = 0.13957039  # charged pion, PDG
S_THRESHOLD_GEV2 = 4.0 * PION_MASS_GEV**2  # (2 m_pi)^2 = 0.07792 GeV^2


@dataclass(frozen=True)
class Resonance:
    """A Breit-Wigner resonance: mass and width in GeV."""

    mass_gev: float
    width_gev: float


# f0(500): PDG 2024 pole region (400-550) - i (200-350) MeV; we take the middle, m = 475 MeV, Gamma = 550 MeV.
F0_500 = Resonance(mass_gev=0.475, width_gev=0.550)
# rho(770): PDG 2024 (charged-pion channel) m = 775.26 MeV, Gamma = 149.1 MeV.
RHO_770 = Resonance(mass_gev=0.77526, width_gev=0.1491)
DEFAULT_RESONANCES = (F0_500, RHO_770)


def breit_wigner_wave(
    s_gev2: torch.Tensor, mass_gev: float | torch.Tensor, width_gev: float | torch.Tensor
) -> torch.Tensor:
    """f = m G / (m^2 - s - i m G): dimensionless, elastic (Im f = |f|^2)."""
    s = torch.as_tensor(s_gev2)
    m_gamma = torch.as_tensor(mass_gev * width_gev, dtype=s.dtype, device=s.device)
    denominator = torch.complex(torch.as_tensor(mass_gev**2, dtype=s.dtype, device=s.device) - s, -m_gamma.expand_as(s))
    return m_gamma / denominator


def breit_wigner_phase_shift(s_gev2: torch.Tensor, mass_gev: float, width_gev: float) -> torch.Tensor:
    """delta = atan2(m G, m^2 - s) in (0, pi), radians."""
    s = torch.as_tensor(s_gev2)
    return torch.atan2(torch.full_like(s, mass_gev * width_gev), mass_gev**2 - s)


def breit_wigner_waves(s_gev2: torch.Tensor, resonances=DEFAULT_RESONANCES) -> torch.Tensor:
    """Partial waves f_l(s) for l = 0 .. len(resonances) - 1, shape (*s.shape, l_max + 1)."""
    return torch.stack([breit_wigner_wave(s_gev2, r.mass_gev, r.width_gev) for r in resonances], dim=-1)


def breit_wigner_phase_shifts(s_gev2: torch.Tensor, resonances=DEFAULT_RESONANCES) -> torch.Tensor:
    """delta_l(s) in radians, shape (*s.shape, l_max + 1)."""
    return torch.stack([breit_wigner_phase_shift(s_gev2, r.mass_gev, r.width_gev) for r in resonances], dim=-1)


def differential_cross_section(amplitude: torch.Tensor, s_gev2: torch.Tensor) -> torch.Tensor:
    """dsigma/dOmega = |A|^2 / (64 pi^2 s), GeV^-2 for s in GeV^2 and dimensionless A."""
    return amplitude.abs() ** 2 / (64.0 * math.pi**2 * s_gev2)
