"""pi pi Breit-Wigner toy: cross section, resonance poles, differentiability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hadrinv.physics.partial_waves import amplitude_from_waves
from hadrinv.physics.pipi import (
    DEFAULT_RESONANCES,
    F0_500,
    PION_MASS_GEV,
    RHO_770,
    S_THRESHOLD_GEV2,
    Resonance,
    breit_wigner_phase_shift,
    breit_wigner_wave,
    breit_wigner_waves,
    differential_cross_section,
)

DT = torch.float64


def talk_grid():
    """The talk's 64 x 64 grid: s = linspace((2 m_pi)^2, 1, 64) GeV^2, cos theta = linspace(-1, 1, 64)."""
    s = torch.linspace(S_THRESHOLD_GEV2, 1.0, 64, dtype=DT)
    z = torch.linspace(-1.0, 1.0, 64, dtype=DT)
    return torch.meshgrid(s, z, indexing="ij")


def test_threshold_is_two_pion_masses_squared():
    assert S_THRESHOLD_GEV2 == pytest.approx((2 * 0.13957039) ** 2, rel=1e-15)
    assert S_THRESHOLD_GEV2 == pytest.approx(0.07792, abs=1e-5)
    assert PION_MASS_GEV == pytest.approx(0.13957, abs=1e-5)


def test_cross_section_is_abs_amplitude_squared_over_64_pi2_s():
    s, z = talk_grid()
    # independent numpy evaluation of A = f0 + 3 f1 z
    s_np, z_np = s.numpy(), z.numpy()

    def bw(r):
        mg = r.mass_gev * r.width_gev
        return mg / (r.mass_gev**2 - s_np - 1j * mg)

    a_np = bw(F0_500) + 3 * bw(RHO_770) * z_np
    expected = np.abs(a_np) ** 2 / (64 * math.pi**2 * s_np)
    amplitude = amplitude_from_waves(breit_wigner_waves(s), z)
    np.testing.assert_allclose(amplitude.numpy(), a_np, rtol=1e-13, atol=1e-15)
    xs = differential_cross_section(amplitude, s)
    assert xs.dtype == DT
    np.testing.assert_allclose(xs.numpy(), expected, rtol=1e-12)


def test_cross_section_positive_and_in_documented_range_on_talk_grid():
    s, z = talk_grid()
    xs = differential_cross_section(amplitude_from_waves(breit_wigner_waves(s), z), s)
    assert torch.all(torch.isfinite(xs))
    assert torch.all(xs > 0)
    # documented range ~1e-9 .. 0.04 GeV^-2 (minimum near the S-P interference zero at z = -1/3)
    assert 1e-10 < float(xs.min()) < 1e-8
    assert 0.03 < float(xs.max()) < 0.04


def test_cross_section_of_pure_unitary_s_wave_bounded_by_unitarity():
    # |f| <= 1 for an elastic wave: dsigma/dOmega <= 1 / (64 pi^2 s), reached at s = m^2 where f = i
    s = torch.linspace(S_THRESHOLD_GEV2, 1.0, 200, dtype=DT)
    f = breit_wigner_wave(s, F0_500.mass_gev, F0_500.width_gev)
    xs = differential_cross_section(f, s)
    assert torch.all(xs <= 1.0 / (64 * math.pi**2 * s) * (1 + 1e-14))


def test_p_wave_is_exactly_i_at_the_rho_mass():
    s = torch.tensor(RHO_770.mass_gev**2, dtype=DT)
    f = breit_wigner_wave(s, RHO_770.mass_gev, RHO_770.width_gev)
    assert f.real.item() == 0.0
    assert f.imag.item() == 1.0
    waves = breit_wigner_waves(s.reshape(1))
    assert waves[0, 1] == 1j
    assert breit_wigner_phase_shift(s, RHO_770.mass_gev, RHO_770.width_gev).item() == pytest.approx(
        math.pi / 2, abs=1e-15
    )


def test_p_wave_modulus_peaks_at_rho_mass_with_half_width():
    # |f|^2 = (m G)^2 / ((m^2 - s)^2 + (m G)^2) is 1/2 at s = m^2 +- m G
    m, g = RHO_770.mass_gev, RHO_770.width_gev
    s = torch.tensor([m**2 - m * g, m**2, m**2 + m * g], dtype=DT)
    f = breit_wigner_wave(s, m, g)
    torch.testing.assert_close(f.abs() ** 2, torch.tensor([0.5, 1.0, 0.5], dtype=DT), rtol=1e-14, atol=0)
    torch.testing.assert_close(
        breit_wigner_phase_shift(s, m, g),
        torch.tensor([math.pi / 4, math.pi / 2, 3 * math.pi / 4], dtype=DT),
        rtol=1e-14,
        atol=0,
    )


def test_default_resonances_are_f0_500_and_rho_770():
    assert DEFAULT_RESONANCES == (F0_500, RHO_770)
    assert RHO_770 == Resonance(0.77526, 0.1491)
    s = torch.linspace(0.1, 1.0, 5, dtype=DT)
    assert breit_wigner_waves(s).shape == (5, 2)
    assert breit_wigner_waves(s.reshape(5, 1)).shape == (5, 1, 2)


def test_gradcheck_breit_wigner_wave_wrt_mass():
    s = torch.linspace(S_THRESHOLD_GEV2, 1.0, 7, dtype=DT)

    def f(mass):
        return breit_wigner_wave(s, mass, RHO_770.width_gev)

    mass = torch.tensor(RHO_770.mass_gev, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(f, (mass,))


def test_gradcheck_breit_wigner_wave_wrt_mass_and_width():
    s = torch.linspace(S_THRESHOLD_GEV2, 1.0, 7, dtype=DT)
    mass = torch.tensor(F0_500.mass_gev, dtype=DT, requires_grad=True)
    width = torch.tensor(F0_500.width_gev, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda m, w: breit_wigner_wave(s, m, w), (mass, width))


def test_cross_section_gradient_wrt_mass_matches_finite_difference():
    s, z = talk_grid()

    def total(mass):
        waves = torch.stack(
            [breit_wigner_wave(s, F0_500.mass_gev, F0_500.width_gev), breit_wigner_wave(s, mass, RHO_770.width_gev)],
            dim=-1,
        )
        return differential_cross_section(amplitude_from_waves(waves, z), s).sum()

    mass = torch.tensor(RHO_770.mass_gev, dtype=DT, requires_grad=True)
    (grad,) = torch.autograd.grad(total(mass), mass)
    h = 1e-6
    with torch.no_grad():
        fd = (total(mass + h) - total(mass - h)) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-6)
    assert float(grad) != 0.0
