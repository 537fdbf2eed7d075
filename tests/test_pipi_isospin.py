"""pi pi isospin amplitudes: inelastic waves, charge channels, and the CFD (GKPY 2011) parametrisation."""

from __future__ import annotations

import math

import pytest
import torch

from hadrinv.physics.partial_waves import amplitude_from_waves, elastic_wave
from hadrinv.physics.pipi_isospin import (
    CHANNELS,
    M_K_GEV,
    M_PI_GEV,
    WAVES,
    allowed_l,
    cfd_inelasticity,
    cfd_phase_shift_deg,
    cfd_waves,
    channel_amplitude,
    channel_cross_section,
    inelastic_wave,
    isospin_amplitude,
    unitarity_excess,
    wave_phase_and_inelasticity,
)

DT = torch.float64
TWO_MK = 2 * M_K_GEV


def random_waves(generator, batch=(5,), n_l=(2, 2, 2)):
    """Random complex isospin waves, some of them inelastic, for the algebraic checks."""
    out = {}
    for isospin, n in enumerate(n_l):
        delta = torch.rand(*batch, n, generator=generator, dtype=DT) * math.pi
        eta = 0.3 + 0.7 * torch.rand(*batch, n, generator=generator, dtype=DT)
        out[isospin] = inelastic_wave(delta, eta)
    return out


# ---------------------------------------------------------------- (a) partial waves and unitarity


def test_elastic_wave_is_unitary_and_round_trips():
    delta = torch.linspace(0.01, math.pi - 0.01, 41, dtype=DT)
    f = inelastic_wave(delta, 1.0)
    torch.testing.assert_close(f, elastic_wave(delta), rtol=0, atol=1e-15)  # exp(i delta) sin(delta)
    assert unitarity_excess(f).abs().max() < 1e-15
    delta_back, eta_back = wave_phase_and_inelasticity(f)
    torch.testing.assert_close(delta_back, delta, rtol=0, atol=1e-12)
    torch.testing.assert_close(eta_back, torch.ones_like(delta), rtol=0, atol=1e-14)


def test_inelastic_wave_round_trips_and_violates_elastic_unitarity_downwards():
    generator = torch.Generator().manual_seed(3)
    delta = torch.rand(200, generator=generator, dtype=DT) * math.pi
    eta = torch.rand(200, generator=generator, dtype=DT) * 0.98 + 0.01
    f = inelastic_wave(delta, eta)
    # |1 + 2i f|^2 = 1 + 4 (|f|^2 - Im f), so the excess is (eta^2 - 1)/4 < 0
    torch.testing.assert_close(unitarity_excess(f), (eta**2 - 1) / 4, rtol=0, atol=1e-14)
    assert (unitarity_excess(f) < 0).all()
    delta_back, eta_back = wave_phase_and_inelasticity(f)
    torch.testing.assert_close(eta_back, eta, rtol=0, atol=1e-13)
    torch.testing.assert_close(delta_back, delta, rtol=0, atol=1e-12)


def test_phase_is_reduced_modulo_pi():
    delta, _ = wave_phase_and_inelasticity(inelastic_wave(torch.tensor([math.radians(200.0), -0.3], dtype=DT), 0.7))
    torch.testing.assert_close(delta, torch.tensor([math.radians(20.0), math.pi - 0.3], dtype=DT))


# ---------------------------------------------------------------- (b) isospin algebra


def clebsch_gordan(j1, m1, j2, m2, j, m):
    """<j1 m1; j2 m2 | j m> from Racah's formula (Condon-Shortley phases), integer spins."""
    if m1 + m2 != m or not abs(j1 - j2) <= j <= j1 + j2 or abs(m) > j:
        return 0.0
    f = math.factorial
    pre = (2 * j + 1) * f(j + j1 - j2) * f(j - j1 + j2) * f(j1 + j2 - j) / f(j1 + j2 + j + 1)
    pre *= f(j + m) * f(j - m) * f(j1 - m1) * f(j1 + m1) * f(j2 - m2) * f(j2 + m2)
    total = 0.0
    for k in range(0, j1 + j2 + j + 1):
        args = (k, j1 + j2 - j - k, j1 - m1 - k, j2 + m2 - k, j - j2 + m1 + k, j - j1 - m2 + k)
        if min(args) < 0:
            continue
        total += (-1) ** k / math.prod(f(a) for a in args)
    return math.sqrt(pre) * total


# pion states as (phase, I_3): pi+ = -|1, +1>, pi0 = |1, 0>, pi- = |1, -1>
PION = {"+": (-1, 1), "0": (1, 0), "-": (1, -1)}
CHANNEL_STATES = {
    "pi+pi-": ("+-", "+-"),
    "pi0pi0": ("00", "00"),
    "pi+pi-_pi0pi0": ("+-", "00"),
    "pi+pi0": ("+0", "+0"),
    "pi+pi+": ("++", "++"),
}


@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_channel_coefficients_are_clebsch_gordan_products(channel):
    initial, final = CHANNEL_STATES[channel]
    (pa, ma), (pb, mb) = PION[initial[0]], PION[initial[1]]
    (pc, mc), (pd, md) = PION[final[0]], PION[final[1]]
    expected = [
        pa * pb * pc * pd * clebsch_gordan(1, ma, 1, mb, i, ma + mb) * clebsch_gordan(1, mc, 1, md, i, mc + md)
        for i in range(3)
    ]
    assert CHANNELS[channel] == pytest.approx(expected, abs=1e-14)


def test_isospin_amplitude_uses_bose_allowed_l():
    generator = torch.Generator().manual_seed(0)
    z = torch.linspace(-1, 1, 11, dtype=DT)
    waves = random_waves(generator, batch=(), n_l=(3, 2, 2))
    assert allowed_l(0, 3) == [0, 2, 4] and allowed_l(1, 2) == [1, 3] and allowed_l(2, 2) == [0, 2]
    for isospin, w in waves.items():
        # the same waves placed in a dense l = 0..l_max array, summed by the generic partial-wave sum
        dense = torch.zeros(2 * w.shape[-1] + 1, dtype=w.dtype)
        dense[isospin % 2 :: 2][: w.shape[-1]] = w
        torch.testing.assert_close(isospin_amplitude(w, z, isospin), amplitude_from_waves(dense, z))


def test_only_isospin_two_gives_its_channel_fractions():
    generator = torch.Generator().manual_seed(1)
    z = torch.linspace(-1, 1, 9, dtype=DT)
    waves = random_waves(generator, batch=(4, 1))
    waves[0], waves[1] = torch.zeros_like(waves[0]), torch.zeros_like(waves[1])
    dense = torch.zeros(4, 1, 3, dtype=waves[2].dtype)
    dense[..., 0], dense[..., 2] = waves[2][..., 0], waves[2][..., 1]
    a2 = amplitude_from_waves(dense, z)
    fractions = {"pi+pi+": 1.0, "pi0pi0": 2 / 3, "pi+pi-": 1 / 6, "pi+pi0": 1 / 2, "pi+pi-_pi0pi0": -1 / 3}
    for channel, fraction in fractions.items():
        torch.testing.assert_close(channel_amplitude(waves, z, channel), fraction * a2)
    # an absent isospin counts as zero
    torch.testing.assert_close(channel_amplitude({2: waves[2]}, z, "pi0pi0"), 2 / 3 * a2)


def test_charge_channel_relations():
    generator = torch.Generator().manual_seed(2)
    z = torch.linspace(-1, 1, 7, dtype=DT)
    waves = random_waves(generator, batch=(6, 1))
    a = {c: channel_amplitude(waves, z, c) for c in CHANNELS}
    # A(+- -> +-) = A(+- -> 00) + A(+0 -> +0) and A(00 -> 00) = A(+- -> 00) + A(++ -> ++)
    torch.testing.assert_close(a["pi+pi-"], a["pi+pi-_pi0pi0"] + a["pi+pi0"])
    torch.testing.assert_close(a["pi0pi0"], a["pi+pi-_pi0pi0"] + a["pi+pi+"])
    assert (a["pi+pi-"] - a["pi0pi0"]).abs().max() > 1e-3  # the relations are not trivially satisfied


def test_bose_symmetry_in_z():
    generator = torch.Generator().manual_seed(4)
    z = torch.linspace(0.05, 1, 8, dtype=DT)
    waves = random_waves(generator, batch=(3, 1), n_l=(3, 3, 3))
    for isospin, sign in ((0, 1), (1, -1), (2, 1)):
        torch.testing.assert_close(
            isospin_amplitude(waves[isospin], -z, isospin), sign * isospin_amplitude(waves[isospin], z, isospin)
        )
    # identical pions: pi0pi0 and pi+pi+ are even in z; pi+pi0 is not
    for channel in ("pi0pi0", "pi+pi+"):
        torch.testing.assert_close(channel_amplitude(waves, -z, channel), channel_amplitude(waves, z, channel))
    assert (channel_amplitude(waves, -z, "pi+pi0") - channel_amplitude(waves, z, "pi+pi0")).abs().max() > 1e-3


def test_cross_section_normalisation_and_errors():
    generator = torch.Generator().manual_seed(5)
    s = torch.tensor([[0.3], [0.6]], dtype=DT)
    z = torch.linspace(-1, 1, 5, dtype=DT)
    waves = random_waves(generator, batch=(2, 1))
    amplitude = channel_amplitude(waves, z, "pi+pi-")
    torch.testing.assert_close(
        channel_cross_section(waves, z, s, "pi+pi-"), amplitude.abs() ** 2 / (64 * math.pi**2 * s)
    )
    with pytest.raises(ValueError, match="unknown channel"):
        channel_amplitude(waves, z, "pi-pi-")
    with pytest.raises(ValueError, match="isospin"):
        isospin_amplitude(waves[0], z, 3)


# ---------------------------------------------------------------- (c) CFD parametrisation


def scattering_length(wave, k_gev=1e-4):
    """delta / k at small k, in units of 1/m_pi."""
    sqrt_s = torch.tensor(2 * math.sqrt(M_PI_GEV**2 + k_gev**2), dtype=DT)
    return math.radians(cfd_phase_shift_deg(sqrt_s, wave).item()) / k_gev * M_PI_GEV


def test_scattering_lengths_match_the_paper():
    # GKPY 2011 CFD: a_0^0 = 0.220 +- 0.008, a_0^2 = -0.042 +- 0.004 (in 1/m_pi)
    assert scattering_length("S0") == pytest.approx(0.220, abs=0.01)
    assert scattering_length("S2") == pytest.approx(-0.042, abs=0.005)
    assert scattering_length("S0", 1e-5) == pytest.approx(scattering_length("S0", 1e-4), rel=1e-5)  # a limit


def test_rho_phase_crosses_90_degrees_at_the_parametrisation_mass():
    assert cfd_phase_shift_deg(torch.tensor(0.7736, dtype=DT), "P").item() == pytest.approx(90.0, abs=0.5)
    below, above = cfd_phase_shift_deg(torch.tensor([0.70, 0.85], dtype=DT), "P").tolist()
    assert below < 45 and above > 120  # a narrow resonance, not a slow rise


def test_values_of_an_independent_implementation():
    # mmikhasenko/GKPY-2011 (Julia), docstring and test/runtests.jl: delta_0(s = 0.25) in degrees, delta_1(s) in
    # radians at s = 0.1, 0.5, 1.5 GeV^2 (the last one in the high-energy P-wave form)
    s0 = cfd_phase_shift_deg(torch.tensor(0.5, dtype=DT), "S0").item()
    assert s0 == pytest.approx(39.86680197881492, rel=1e-9)
    p = torch.deg2rad(cfd_phase_shift_deg(torch.sqrt(torch.tensor([0.1, 0.5, 1.5], dtype=DT)), "P"))
    expected = [0.005348662528080389, 0.7547425109417016, 2.9163793203966426]
    assert p.tolist() == pytest.approx(expected, rel=1e-9)


def fine_grid(n=60001):
    return torch.linspace(2 * M_PI_GEV, 1.42, n, dtype=DT)


@pytest.mark.parametrize("wave", WAVES)
def test_phases_are_continuous_from_threshold_to_1420_mev(wave):
    # steps of 0.02 MeV: the S0 cusp at 2 m_K (infinite slope from below) still moves less than 5 degrees a step
    delta = cfd_phase_shift_deg(fine_grid(), wave)
    assert torch.isfinite(delta).all()
    assert delta.diff().abs().max() < 5.0


@pytest.mark.parametrize(("wave", "sqrt_s_gev"), [("S0", 0.85), ("S0", TWO_MK), ("P", TWO_MK), ("S2", 0.85)])
def test_pieces_join_at_their_matching_points(wave, sqrt_s_gev):
    eps = 1e-14  # the S0 phase has a square-root cusp at 2 m_K: a left limit needs a tiny step
    left, right = cfd_phase_shift_deg(torch.tensor([sqrt_s_gev - eps, sqrt_s_gev + eps], dtype=DT), wave).tolist()
    assert left == pytest.approx(right, abs=1e-3)


def test_s0_slope_is_continuous_at_850_mev_and_phase_is_d0_at_kk_threshold():
    def slope(sqrt_s):
        x = torch.tensor(sqrt_s, dtype=DT, requires_grad=True)
        (g,) = torch.autograd.grad(cfd_phase_shift_deg(x, "S0"), x)
        return g.item()

    assert slope(0.85 - 1e-7) == pytest.approx(slope(0.85 + 1e-7), rel=1e-4)
    assert cfd_phase_shift_deg(torch.tensor(TWO_MK, dtype=DT), "S0").item() == pytest.approx(226.5, abs=1e-9)


def test_s0_inelasticity_opens_at_kk_threshold():
    grid = fine_grid(4001)
    eta = cfd_inelasticity(grid, "S0")
    assert (eta[grid < TWO_MK] == 1).all()
    window = (grid > 1.0) & (grid < 1.4)
    assert eta[window].min() < 0.9
    for wave in WAVES:
        eta = cfd_inelasticity(grid, wave)
        assert ((eta >= 0) & (eta <= 1)).all()


def test_cfd_waves_respect_unitarity():
    s = fine_grid(2001) ** 2
    waves = cfd_waves(s)
    assert sorted(waves) == [0, 1, 2] and all(w.shape == (2001, 1) for w in waves.values())
    excess = {i: unitarity_excess(w[..., 0]) for i, w in waves.items()}
    assert all((e <= 1e-15).all() for e in excess.values())
    elastic = s < TWO_MK**2
    assert excess[0][elastic].abs().max() < 1e-15 and excess[1][elastic].abs().max() < 1e-15
    assert excess[0][~elastic].min() < -0.1  # the S0 dip above K Kbar
    delta, eta = wave_phase_and_inelasticity(waves[1][..., 0])
    expected = torch.remainder(torch.deg2rad(cfd_phase_shift_deg(torch.sqrt(s), "P")), math.pi)
    torch.testing.assert_close(delta, expected, rtol=0, atol=1e-9)


def test_cfd_channel_amplitude_is_differentiable():
    def total(s):
        z = torch.tensor([-0.5, 0.3], dtype=DT)
        return channel_amplitude(cfd_waves(s[:, None]), z, "pi+pi-").abs()

    # points inside each piece: low S0/S2, intermediate S0, above K Kbar and above 2 m_eta
    s = torch.tensor([0.2, 0.8, 1.0, 1.3, 1.9], dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(total, (s,))
    # finite gradients everywhere on the range, thresholds and matching points included
    grid = torch.cat([fine_grid(301), torch.tensor([0.85, TWO_MK, 1.05], dtype=DT)]).requires_grad_(True)
    (g,) = torch.autograd.grad(total(grid**2).sum(), grid)
    assert torch.isfinite(g).all()


def test_a_common_phase_of_all_waves_leaves_every_channel_unchanged_and_unitarity_bounds_it():
    from hadrinv.physics.pipi_isospin import (
        CHANNELS,
        channel_cross_section,
        common_phase_interval,
        inelastic_wave,
        rotate_waves,
        wave_phase_and_inelasticity,
    )

    generator = torch.Generator().manual_seed(7)
    delta = torch.rand(50, 3, generator=generator, dtype=torch.float64) * math.pi
    eta = 0.3 + 0.7 * torch.rand(50, 3, generator=generator, dtype=torch.float64)
    waves = inelastic_wave(delta, eta)
    lo, hi = common_phase_interval(waves)
    assert bool((lo <= 0).all() and (hi >= 0).all() and (hi > lo).all())
    z, s = torch.linspace(-1, 1, 50, dtype=torch.float64), torch.full((50,), 0.9, dtype=torch.float64)
    for phi in (lo, hi, 0.3 * lo + 0.7 * hi):
        rotated = rotate_waves(waves, phi)
        for channel in CHANNELS:  # the symmetry is exact in every channel, l <= 1 here
            a = channel_cross_section({0: waves[:, :1], 1: waves[:, 1:2], 2: waves[:, 2:]}, z, s, channel)
            b = channel_cross_section({0: rotated[:, :1], 1: rotated[:, 1:2], 2: rotated[:, 2:]}, z, s, channel)
            torch.testing.assert_close(a, b, rtol=1e-12, atol=0)
        assert float(wave_phase_and_inelasticity(rotated)[1].max()) <= 1 + 1e-9
    # at each end one wave is elastic, and a step beyond breaks unitarity
    for end, step in ((lo, -1e-3), (hi, 1e-3)):
        at_end = wave_phase_and_inelasticity(rotate_waves(waves, end))[1].max(-1).values
        torch.testing.assert_close(at_end, torch.ones_like(at_end), rtol=0, atol=1e-9)
        beyond = wave_phase_and_inelasticity(rotate_waves(waves, end + step))[1].max(-1).values
        assert bool((beyond > 1).all())


def test_unitary_rotation_moves_waves_back_inside_unitarity_without_changing_any_channel():
    from hadrinv.physics.pipi_isospin import (
        CHANNELS,
        channel_cross_section,
        common_phase_interval,
        inelastic_wave,
        rotate_waves,
        unitary_rotation,
        wave_phase_and_inelasticity,
    )

    generator = torch.Generator().manual_seed(3)
    delta = torch.rand(200, 3, generator=generator, dtype=torch.float64) * math.pi
    eta = 0.4 + 0.6 * torch.rand(200, 3, generator=generator, dtype=torch.float64)
    eta[:, 1] = 1.0  # one elastic wave pins an end of the interval at 0
    waves = inelastic_wave(delta, eta)
    phi, found = unitary_rotation(waves)
    assert bool(found.all()) and float(phi.abs().max()) == 0.0  # already unitary: untouched
    lo, hi = common_phase_interval(waves)
    for end, push in ((lo, -0.04), (hi, 0.04)):
        outside = rotate_waves(waves, end + push)
        assert float(wave_phase_and_inelasticity(outside)[1].max(-1).values.min()) > 1.0
        phi, found = unitary_rotation(outside)
        assert bool(found.all())
        torch.testing.assert_close(phi, -torch.full_like(phi, push), rtol=0, atol=1e-9)  # the nearest point
        back = rotate_waves(outside, phi)
        assert float(wave_phase_and_inelasticity(back)[1].max()) <= 1 + 1e-9
        z, s = torch.linspace(-1, 1, 200, dtype=torch.float64), torch.full((200,), 1.2, dtype=torch.float64)
        for channel in CHANNELS:
            split = lambda w: {0: w[:, :1], 1: w[:, 1:2], 2: w[:, 2:]}  # noqa: E731
            torch.testing.assert_close(
                channel_cross_section(split(back), z, s, channel),
                channel_cross_section(split(outside), z, s, channel),
                rtol=1e-12,
                atol=0,
            )
    # |f| > 1 cannot be made unitary by any rotation
    phi, found = unitary_rotation(torch.tensor([[1.2j, 0.1 + 0.1j, 0.0j]], dtype=torch.complex128))
    assert not bool(found.any()) and float(phi.abs().max()) == 0.0
