"""J/psi -> gamma pi pi helicity PWA: known angular distributions, Wigner functions, kinematics,
phase space and line shapes, each against a truth computed independently of the module."""

from __future__ import annotations

import cmath
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import factorial

from hadrinv.physics import pwa
from hadrinv.physics.pwa import (
    HELICITIES,
    M_JPSI,
    M_K0,
    M_K_CHARGED,
    M_PI0,
    M_PI_CHARGED,
    HelicityAngles,
    angular_amplitudes,
    blatt_weisskopf,
    breakup_momentum,
    breit_wigner,
    breit_wigner_running,
    e1_helicity_amplitudes,
    energy_momentum_violation,
    flatte,
    helicity_angles,
    intensity,
    invariant_mass,
    invariant_mass_squared,
    phase_space_events,
    running_width,
    two_body_phase_space_density,
    wigner_D,
    wigner_small_d,
)
from hadrinv.physics.quadrature import gauss_legendre, periodic_trapezoid

torch.set_num_threads(1)
DT = torch.float64
F2_MASS, F2_WIDTH = 1.2755, 0.1867  # f2(1270), GeV
F0_MASS, F0_GPIPI = 0.980, 0.107


def generator(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------
# Known angular distributions
# ---------------------------------------------------------------------------------------------------


def quadrature_grid(cos_gamma, n_cos=8, n_phi=8, m=1.0):
    """Angles on (cos_gamma) x (phi_gamma, cos_pi, phi_pi) product nodes and the weights of the last three."""
    phi, wphi = periodic_trapezoid(n_phi)
    cp, wcp = gauss_legendre(n_cos)
    grids = torch.meshgrid(torch.as_tensor(cos_gamma, dtype=DT), phi, cp, phi, indexing="ij")
    weights = wphi[:, None, None] * wcp[None, :, None] * wphi[None, None, :]
    angles = HelicityAngles.from_photon_angles(torch.full_like(grids[0], m).flatten(), *(g.flatten() for g in grids))
    return angles, weights, grids[0].shape


def integrate_over_phi_gamma_and_pion(values, weights, shape):
    return (values.reshape(shape) * weights).sum((1, 2, 3))


def integrated_intensity(cos_gamma, spin, h, m=1.0, line_shape=None):
    angles, weights, shape = quadrature_grid(cos_gamma, m=m)
    amp = angular_amplitudes(angles, [spin], [h])
    bw = (
        torch.ones(amp.shape[0], 1, dtype=torch.complex128)
        if line_shape is None
        else line_shape(angles.m_pipi)[:, None]
    )
    return integrate_over_phi_gamma_and_pion(intensity(amp, bw, torch.ones(1)), weights, shape)


def test_spin0_gives_one_plus_cos2_theta_gamma_on_quadrature_grid():
    c = torch.linspace(-1, 1, 9, dtype=DT)
    m = 0.95
    bw = flatte(torch.tensor(m, dtype=DT), F0_MASS, F0_GPIPI)
    got = integrated_intensity(c, 0, torch.tensor([1.0]), m=m, line_shape=lambda x: flatte(x, F0_MASS, F0_GPIPI))
    # sum_{M, lg} |d^1_{M,-lg}|^2 = 1 + c^2; int dphi_gamma = 2 pi; int dOmega_pi |D^0|^2 = 4 pi
    expected = 8 * math.pi**2 * (1 + c**2) * bw.abs() ** 2
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)


def test_spin2_pure_e1_gives_one_plus_cos2_over_13():
    c = torch.linspace(-1, 1, 9, dtype=DT)
    h = e1_helicity_amplitudes()
    # plain floats: pytest 9.2's approx iterates over a tensor expectation and fails on 0-d ones
    assert float(h[2].real) == pytest.approx(math.sqrt(2) * float(h[1].real), rel=1e-15)
    assert float(h[2].real) == pytest.approx(math.sqrt(6) * float(h[0].real), rel=1e-15)
    got = integrated_intensity(c, 2, h)
    shape = got / got[c.numel() // 2]  # normalised at cos = 0
    torch.testing.assert_close(shape, 1 + c**2 / 13, rtol=1e-10, atol=0)
    # absolute: 2 [ (|A0|^2 + |A2|^2)(1 + c^2)/2 + |A1|^2 (1 - c^2) ] * 2 pi * 4 pi / 5
    torch.testing.assert_close(got, 8 * math.pi**2 / 5 * (13 + c**2), rtol=1e-10, atol=0)


def test_spin2_general_helicity_amplitudes_integrate_to_the_incoherent_sum():
    c = torch.linspace(-1, 1, 7, dtype=DT)
    h = torch.tensor([0.3 + 0.2j, -1.1 + 0.5j, 0.4 - 0.9j], dtype=torch.complex128)
    a0, a1, a2 = (abs(x) ** 2 for x in h.tolist())
    got = integrated_intensity(c, 2, h)
    expected = 2 * ((a0 + a2) * (1 + c**2) / 2 + a1 * (1 - c**2)) * 2 * math.pi * 4 * math.pi / 5
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)


def test_spin2_e1_pion_distribution_is_5_minus_3_cos2_and_spin0_interference_integrates_away():
    # Integrating over Omega_X instead: sum_lambda |H_lambda|^2 d^2_{lambda 0}^2 = (10 - 6 cos^2 theta_pi) / 4
    # per photon helicity, i.e. dN/dcos(theta_pi) ~ 5 - 3 cos^2(theta_pi) for pure E1.
    cg, wcg = gauss_legendre(8)
    phi, wphi = periodic_trapezoid(8)
    cos_pi = torch.linspace(-1, 1, 7, dtype=DT)
    grids = torch.meshgrid(cg, phi, cos_pi, phi, indexing="ij")
    angles = HelicityAngles.from_photon_angles(torch.ones(grids[0].numel(), dtype=DT), *(g.flatten() for g in grids))
    amp = angular_amplitudes(angles, [0, 2], [torch.tensor([0.7 - 0.2j]), e1_helicity_amplitudes()])
    w = wcg[:, None, None, None] * wphi[None, :, None, None] * wphi[None, None, None, :]
    n = amp.shape[0]
    ones = torch.ones(n, 1, dtype=torch.complex128)
    only_f2 = (intensity(amp[:, 1:], ones, torch.ones(1)).reshape(grids[0].shape) * w).sum((0, 1, 3))
    # int dOmega_X sum_{M = +-1} |D^1_{M, lambda}|^2 = 8 pi / 3 for every lambda; int dphi_pi = 2 pi;
    # two photon helicities
    expected = 2 * (10 - 6 * cos_pi**2) / 4 * 8 * math.pi / 3 * 2 * math.pi
    torch.testing.assert_close(only_f2, expected, rtol=1e-10, atol=0)

    # Over the full solid angles, spin 0 and spin 2 do not interfere (orthogonal D^J).
    cp, wcp = gauss_legendre(8)
    grids = torch.meshgrid(cg, phi, cp, phi, indexing="ij")
    angles = HelicityAngles.from_photon_angles(torch.ones(grids[0].numel(), dtype=DT), *(g.flatten() for g in grids))
    amp = angular_amplitudes(angles, [0, 2], [torch.tensor([0.7 - 0.2j]), e1_helicity_amplitudes()])
    w = wcg[:, None, None, None] * wphi[None, :, None, None] * wcp[None, None, :, None] * wphi[None, None, None, :]
    couplings = torch.tensor([1.3 * cmath.exp(0.4j), 0.8 * cmath.exp(-2.0j)])
    ones = torch.ones(amp.shape[0], 1, dtype=torch.complex128)
    ones2 = torch.ones(amp.shape[0], 2, dtype=torch.complex128)
    both = (intensity(amp, ones2, couplings).reshape(grids[0].shape) * w).sum()
    separate = sum(
        (intensity(amp[:, k : k + 1], ones, couplings[k : k + 1]).reshape(grids[0].shape) * w).sum() for k in range(2)
    )
    torch.testing.assert_close(both, separate, rtol=1e-12, atol=0)


def weighted_moment(x, w):
    """Weighted mean of x and its standard error (ratio estimator)."""
    mean = (w * x).sum() / w.sum()
    err = torch.sqrt((w**2 * (x - mean) ** 2).sum()) / w.sum()
    return mean.item(), err.item()


@pytest.mark.parametrize(
    "spin, h, line_shape, alpha",
    [
        (0, torch.tensor([1.0]), lambda m: flatte(m, F0_MASS, F0_GPIPI), 1.0),
        (2, e1_helicity_amplitudes(), lambda m: breit_wigner_running(m, F2_MASS, F2_WIDTH, 2), 1.0 / 13.0),
    ],
)
def test_monte_carlo_cos_theta_gamma_moments_and_histogram(spin, h, line_shape, alpha):
    # The line shape concentrates the weights (effective size ~ 1/6 for the f2), hence 400k events.
    gamma, pi1, pi2 = phase_space_events(400_000, generator=generator(11 + spin))
    angles = helicity_angles(gamma, pi1, pi2)
    amp = angular_amplitudes(angles, [spin], [h])
    w = intensity(amp, line_shape(angles.m_pipi)[:, None], torch.ones(1))
    c = angles.cos_theta_gamma
    mean2, err2 = weighted_moment(c**2, w)
    expected2 = (1 / 3 + alpha / 5) / (1 + alpha / 3)  # <c^2> of 1 + alpha c^2: 0.4 and 0.34
    assert abs(mean2 - expected2) < 4 * err2
    assert abs(mean2 - 1 / 3) > 4 * err2  # the sample does resolve the anisotropy
    mean1, err1 = weighted_moment(c, w)
    assert abs(mean1) < 4 * err1
    # Weighted histogram against the integral of 1 + alpha c^2 over each bin.
    edges = torch.linspace(-1, 1, 21, dtype=DT)
    idx = torch.bucketize(c, edges[1:-1])
    sums = torch.zeros(20, dtype=DT).index_add_(0, idx, w)
    sums2 = torch.zeros(20, dtype=DT).index_add_(0, idx, w**2)
    cdf = edges + alpha * edges**3 / 3
    expected = w.sum() * torch.diff(cdf) / (cdf[-1] - cdf[0])
    chi2 = (((sums - expected) ** 2) / sums2).sum().item()
    assert stats.chi2.sf(chi2, 19) > 1e-3


# ---------------------------------------------------------------------------------------------------
# Wigner functions
# ---------------------------------------------------------------------------------------------------


def wigner_d_general(j, mp, m, beta):
    """Wigner's sum formula (Rose / Condon-Shortley), numpy, any j."""
    total = np.zeros_like(beta)
    for k in range(2 * j + 1):
        a, b, c, d = j + m - k, k, j - k - mp, k - m + mp
        if min(a, b, c, d) < 0:
            continue
        num = (-1) ** (k - m + mp) * math.sqrt(
            factorial(j + mp) * factorial(j - mp) * factorial(j + m) * factorial(j - m)
        )
        den = factorial(a) * factorial(b) * factorial(c) * factorial(d)
        total = total + num / den * np.cos(beta / 2) ** (2 * j + m - mp - 2 * k) * np.sin(beta / 2) ** (mp - m + 2 * k)
    return total


def d_matrix(j, theta):
    ms = range(j, -j - 1, -1)
    return torch.stack([torch.stack([wigner_small_d(j, a, b, theta) for b in ms], -1) for a in ms], -2)


@pytest.mark.parametrize("j", [0, 1, 2])
def test_wigner_d_matches_general_formula(j):
    beta = torch.linspace(0, math.pi, 13, dtype=DT)
    for mp in range(-j, j + 1):
        for m in range(-j, j + 1):
            np.testing.assert_allclose(
                wigner_small_d(j, mp, m, beta).numpy(), wigner_d_general(j, mp, m, beta.numpy()), atol=1e-14
            )


@pytest.mark.parametrize("j", [0, 1, 2])
def test_wigner_d_unitarity_identity_and_pi(j):
    theta = torch.tensor([0.0, 0.3, 1.1, 2.0, math.pi], dtype=DT)
    d = d_matrix(j, theta)  # (5, 2j+1, 2j+1), rows m1 = j..-j
    eye = torch.eye(2 * j + 1, dtype=DT).expand_as(d)
    torch.testing.assert_close(
        (d**2).sum(-2), torch.ones(5, 2 * j + 1, dtype=DT), rtol=0, atol=1e-14
    )  # sum_m |d_{m m'}|^2
    torch.testing.assert_close(d @ d.transpose(-1, -2), eye, rtol=0, atol=1e-14)  # real orthogonal
    torch.testing.assert_close(d[0], eye[0], rtol=0, atol=0)  # d(0) = 1
    # d^j_{m'm}(pi) = (-1)^(j - m) delta_{m', -m}
    ms = list(range(j, -j - 1, -1))
    at_pi = torch.tensor([[(-1) ** (j - m) if mp == -m else 0 for m in ms] for mp in ms], dtype=DT)
    torch.testing.assert_close(d[-1], at_pi, rtol=0, atol=1e-15)


def test_wigner_d1_explicit_values():
    t = torch.tensor([0.7, math.pi / 2], dtype=DT)
    c, s, r2 = torch.cos(t), torch.sin(t), math.sqrt(2)
    explicit = {
        (1, 1): (1 + c) / 2, (1, 0): -s / r2, (1, -1): (1 - c) / 2,
        (0, 1): s / r2, (0, 0): c, (0, -1): -s / r2,
        (-1, 1): (1 - c) / 2, (-1, 0): s / r2, (-1, -1): (1 + c) / 2,
    }  # fmt: skip
    for (a, b), value in explicit.items():
        torch.testing.assert_close(wigner_small_d(1, a, b, t), value, rtol=0, atol=1e-15)
    assert wigner_small_d(1, 1, 0, torch.tensor(math.pi / 2, dtype=DT)).item() == pytest.approx(
        -1 / math.sqrt(2), abs=1e-15
    )


@pytest.mark.parametrize("j", [0, 1, 2])
def test_wigner_d_m0_normalisation(j):
    z, w = gauss_legendre(10)
    theta = torch.acos(z)  # int_0^pi f(theta) sin(theta) dtheta = int_{-1}^{1} f dz
    for m in range(-j, j + 1):
        assert (w * wigner_small_d(j, m, 0, theta) ** 2).sum().item() == pytest.approx(2 / (2 * j + 1), rel=1e-13)


def test_wigner_D1_is_the_rotation_matrix_in_the_spherical_basis():
    alpha, beta, gamma = 0.4, 1.3, -2.2

    def rz(a):
        return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])

    def ry(b):
        return np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])

    rot = rz(alpha) @ ry(beta) @ rz(gamma)  # active rotation
    basis = {
        1: -np.array([1, 1j, 0]) / math.sqrt(2),
        0: np.array([0, 0, 1.0]),
        -1: np.array([1, -1j, 0]) / math.sqrt(2),
    }
    for mp in (1, 0, -1):
        for m in (1, 0, -1):
            expected = np.vdot(basis[mp], rot @ basis[m])
            got = wigner_D(1, mp, m, alpha, beta, gamma)
            assert got.dtype == torch.complex128
            assert complex(got) == pytest.approx(expected, abs=1e-14)


# ---------------------------------------------------------------------------------------------------
# Kinematics
# ---------------------------------------------------------------------------------------------------


def test_phase_space_events_conserve_four_momentum_and_have_the_right_masses():
    for masses in [(0.0, M_PI_CHARGED, M_PI_CHARGED), (0.0, M_PI0, M_PI0)]:
        gamma, pi1, pi2 = phase_space_events(20_000, masses=masses, generator=generator(3))
        assert gamma.shape == (20_000, 4) and gamma.dtype == DT
        assert energy_momentum_violation(gamma, pi1, pi2).max().item() < 1e-12
        assert invariant_mass_squared(gamma).abs().max().item() < 1e-12
        for p, m in [(pi1, masses[1]), (pi2, masses[2])]:
            assert (invariant_mass(p) - m).abs().max().item() < 1e-12
    # The checker does see a violation.
    bad = pi1.clone()
    bad[:, 2] += 1e-3
    torch.testing.assert_close(
        energy_momentum_violation(gamma, bad, pi2), torch.full((20_000,), 1e-3, dtype=DT), rtol=0, atol=1e-12
    )


def lorentz_event(m_pipi, theta_x, phi_x, pion_dir_helicity):
    """Hand-built event via 4x4 matrices: pi+ along a unit vector given in the helicity axes of X."""
    m, mpi = m_pipi, M_PI_CHARGED
    p = (M_JPSI**2 - m**2) / (2 * M_JPSI)  # photon / X momentum
    q = math.sqrt(m**2 / 4 - mpi**2)
    e_pi = m / 2
    n = np.asarray(pion_dir_helicity, dtype=float)
    pi1_rest = np.array([e_pi, *(q * n)])
    pi2_rest = np.array([e_pi, *(-q * n)])
    ex = math.sqrt(m**2 + p**2)
    boost = np.eye(4)  # along z': X rest frame -> helicity frame
    boost[0, 0] = boost[3, 3] = ex / m
    boost[0, 3] = boost[3, 0] = p / m
    ct, st, cp, sp = math.cos(theta_x), math.sin(theta_x), math.cos(phi_x), math.sin(phi_x)
    rot = np.eye(4)
    rot[1:, 1:] = np.array([[cp, -sp, 0], [sp, cp, 0], [0, 0, 1]]) @ np.array([[ct, 0, st], [0, 1, 0], [-st, 0, ct]])
    pi1, pi2 = rot @ boost @ pi1_rest, rot @ boost @ pi2_rest
    gamma = np.array([M_JPSI, 0, 0, 0]) - pi1 - pi2
    return tuple(torch.tensor(v, dtype=DT)[None] for v in (gamma, pi1, pi2))


def test_hand_built_events_give_the_expected_helicity_angles():
    theta_x, phi_x, m = 2.1, -0.8, 0.9
    cases = [  # direction in (x', y', z') -> (cos_theta_pi, phi_pi)
        ((0, 0, 1), 1.0, None),
        ((0, 0, -1), -1.0, None),
        ((1, 0, 0), 0.0, 0.0),
        ((0, 1, 0), 0.0, math.pi / 2),
        ((0, -1, 0), 0.0, -math.pi / 2),
        ((math.sin(0.6) * math.cos(2.5), math.sin(0.6) * math.sin(2.5), math.cos(0.6)), math.cos(0.6), 2.5),
    ]
    for direction, cos_pi, phi_pi in cases:
        a = helicity_angles(*lorentz_event(m, theta_x, phi_x, direction))
        assert a.m_pipi.item() == pytest.approx(m, abs=1e-13)
        assert a.cos_theta_x.item() == pytest.approx(math.cos(theta_x), abs=1e-13)
        assert a.phi_x.item() == pytest.approx(phi_x, abs=1e-13)
        assert a.cos_theta_gamma.item() == pytest.approx(-math.cos(theta_x), abs=1e-13)
        assert a.phi_gamma.item() == pytest.approx(phi_x + math.pi, abs=1e-13)
        assert a.cos_theta_pi.item() == pytest.approx(cos_pi, abs=1e-12)
        if phi_pi is not None:
            assert a.phi_pi.item() == pytest.approx(phi_pi, abs=1e-12)
    # Photon along +z: X along -z.
    a = helicity_angles(*lorentz_event(m, math.pi, 0.0, (0.3, 0.4, math.sqrt(0.75))))
    assert a.cos_theta_gamma.item() == pytest.approx(1.0, abs=1e-15)
    assert a.cos_theta_x.item() == pytest.approx(-1.0, abs=1e-15)
    assert a.cos_theta_pi.item() == pytest.approx(math.sqrt(0.75), abs=1e-12)


def test_pion_angles_match_an_independent_boost_and_the_lorentz_invariant_form():
    gamma, pi1, pi2 = phase_space_events(500, generator=generator(5))
    a = helicity_angles(gamma, pi1, pi2)
    g, p1, p2 = gamma.numpy(), pi1.numpy(), pi2.numpy()
    x = p1 + p2
    mx = np.sqrt(x[:, 0] ** 2 - (x[:, 1:] ** 2).sum(1))

    # Invariant form: in the X frame the photon flies along -z', so cos theta_pi = -p_gamma* . p_pi* / (|.||.|).
    def dot(u, v):
        return u[:, 0] * v[:, 0] - (u[:, 1:] * v[:, 1:]).sum(1)

    eg, ep = dot(g, x) / mx, dot(p1, x) / mx
    pg, pp = eg, np.sqrt(ep**2 - M_PI_CHARGED**2)
    cos_inv = -(eg * ep - dot(g, p1)) / (pg * pp)
    np.testing.assert_allclose(a.cos_theta_pi.numpy(), cos_inv, atol=1e-10)
    # General pure boost into the X rest frame, axes from the photon and the e+ beam there.
    beta = x[:, 1:] / x[:, :1]
    b2 = (beta**2).sum(1, keepdims=True)
    gam = 1 / np.sqrt(1 - b2)

    def boost(v):
        bp = (beta * v[:, 1:]).sum(1, keepdims=True)
        e = gam * (v[:, :1] - bp)
        vec = v[:, 1:] + ((gam - 1) * bp / b2 - gam * v[:, :1]) * beta
        return e, vec

    _, pi_star = boost(p1)
    _, g_star = boost(g)
    _, beam_star = boost(np.tile([1.0, 0, 0, 1.0], (len(g), 1)))
    zp = -g_star / np.linalg.norm(g_star, axis=1, keepdims=True)
    yp = np.cross(beam_star, zp)
    yp /= np.linalg.norm(yp, axis=1, keepdims=True)
    xp = np.cross(yp, zp)
    phi = np.arctan2((pi_star * yp).sum(1), (pi_star * xp).sum(1))
    np.testing.assert_allclose(np.cos(a.phi_pi.numpy() - phi), 1.0, atol=1e-10)


def test_flat_phase_space_angles_are_uniform():
    n = 100_000
    a = helicity_angles(*phase_space_events(n, generator=generator(7)))
    for c in (a.cos_theta_gamma, a.cos_theta_pi):
        assert abs(c.mean().item()) < 4 * math.sqrt(1 / 3 / n)
        assert abs((c**2).mean().item() - 1 / 3) < 4 * math.sqrt(4 / 45 / n)
    for phi in (a.phi_gamma, a.phi_pi):
        assert abs(torch.cos(phi).mean().item()) < 4 * math.sqrt(0.5 / n)
        assert abs(torch.sin(phi).mean().item()) < 4 * math.sqrt(0.5 / n)


def dalitz_limits_np(s23, m1=0.0, m2=M_PI_CHARGED, m3=M_PI_CHARGED, M=M_JPSI):
    m23 = np.sqrt(s23)
    e2 = (s23 - m3**2 + m2**2) / (2 * m23)
    e1 = (M**2 - s23 - m1**2) / (2 * m23)
    p1, p2 = np.sqrt(np.maximum(e1**2 - m1**2, 0)), np.sqrt(np.maximum(e2**2 - m2**2, 0))
    return (e1 + e2) ** 2 - (p1 + p2) ** 2, (e1 + e2) ** 2 - (p1 - p2) ** 2


def test_dalitz_plot_is_flat():
    n = 200_000
    gamma, pi1, pi2 = phase_space_events(n, generator=generator(9))
    s12 = invariant_mass_squared(gamma + pi1).numpy()
    s23 = invariant_mass_squared(pi1 + pi2).numpy()
    s23_range = ((2 * M_PI_CHARGED) ** 2, M_JPSI**2)
    s12_range = (M_PI_CHARGED**2, (M_JPSI - M_PI_CHARGED) ** 2)
    counts, e23, e12 = np.histogram2d(s23, s12, bins=12, range=[s23_range, s12_range])
    # Bins entirely inside the (convex) Dalitz region: test all four corners.
    lo_a, hi_a = dalitz_limits_np(e23[:-1])
    lo_b, hi_b = dalitz_limits_np(e23[1:])
    lo, hi = np.maximum(lo_a, lo_b)[:, None], np.minimum(hi_a, hi_b)[:, None]
    inside = (e12[None, :-1] >= lo) & (e12[None, 1:] <= hi)
    assert inside.sum() > 40
    z, w = np.polynomial.legendre.leggauss(200)
    s = 0.5 * (s23_range[1] - s23_range[0]) * z + 0.5 * (s23_range[1] + s23_range[0])
    lo_s, hi_s = dalitz_limits_np(s)
    area = 0.5 * (s23_range[1] - s23_range[0]) * (w * (hi_s - lo_s)).sum()
    bin_area = np.diff(e23)[0] * np.diff(e12)[0]
    expected = n * bin_area / area
    chi2 = (((counts[inside] - expected) ** 2) / expected).sum()
    assert stats.chi2.sf(chi2, inside.sum()) > 1e-3


def test_m_pipi_follows_two_body_phase_space():
    n = 200_000
    _, pi1, pi2 = phase_space_events(n, generator=generator(10))
    m = invariant_mass(pi1 + pi2).numpy()
    lo, hi = 2 * M_PI_CHARGED, M_JPSI
    edges = np.linspace(lo, hi, 31)
    counts, _ = np.histogram(m, bins=edges)

    def density(x):  # p* q / M: photon momentum in the J/psi frame, pion momentum in the pi pi frame
        p = (M_JPSI**2 - x**2) / (2 * M_JPSI)
        q = np.sqrt(np.maximum(x**2 / 4 - M_PI_CHARGED**2, 0))
        return p * q / M_JPSI

    z, w = np.polynomial.legendre.leggauss(40)
    per_bin = np.array(
        [0.5 * (b - a) * (w * density(0.5 * (b - a) * z + 0.5 * (a + b))).sum() for a, b in itertools.pairwise(edges)]
    )
    expected = n * per_bin / per_bin.sum()
    chi2 = (((counts - expected) ** 2) / expected).sum()
    assert stats.chi2.sf(chi2, len(counts) - 1) > 1e-3
    grid = np.linspace(lo + 1e-3, hi - 1e-3, 50)
    np.testing.assert_allclose(
        two_body_phase_space_density(torch.tensor(grid, dtype=DT)).numpy(), density(grid), rtol=1e-12
    )


def test_weighted_phase_space_reproduces_flat_phase_space():
    """Importance-sampled events (m_pipi following a peaked spectrum) with their weights: the weighted
    m_pipi spectrum is the two-body phase-space density (chi^2 with the weights' variance), the weighted
    Dalitz s12 at fixed s23 is flat, momenta are conserved, and the peak gets more events than flat
    sampling would give it."""
    from hadrinv.physics.pwa import weighted_phase_space_events

    n = 200_000
    edges = torch.linspace(2 * M_PI_CHARGED, M_JPSI, 201, dtype=DT)
    centres = 0.5 * (edges[1:] + edges[:-1])
    spectrum = 1.0 / ((centres - 1.5223) ** 2 + 0.043**2) + 1.0 / ((centres - 0.98) ** 2 + 0.03**2)
    gamma, pi1, pi2, w = weighted_phase_space_events(n, edges, spectrum / spectrum.sum(), generator=generator(12))
    total = gamma + pi1 + pi2
    np.testing.assert_allclose(total.numpy(), np.tile([M_JPSI, 0, 0, 0], (n, 1)), atol=1e-9)
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-12) and bool((w > 0).all())
    m = invariant_mass(pi1 + pi2).numpy()
    bins = np.linspace(2 * M_PI_CHARGED, M_JPSI, 31)
    counts = np.histogram(m, bins=bins, weights=w.numpy())[0]
    variance = np.histogram(m, bins=bins, weights=w.numpy() ** 2)[0]
    z, q = np.polynomial.legendre.leggauss(40)
    density = lambda x: two_body_phase_space_density(torch.tensor(x, dtype=DT)).numpy()
    per_bin = np.array(
        [0.5 * (b - a) * (q * density(0.5 * (b - a) * z + 0.5 * (a + b))).sum() for a, b in itertools.pairwise(bins)]
    )
    expected = n * per_bin / per_bin.sum()
    chi2 = (((counts - expected) ** 2) / variance).sum()
    assert stats.chi2.sf(chi2, len(counts) - 1) > 1e-3, chi2
    flat_share = per_bin[np.abs(0.5 * (bins[1:] + bins[:-1]) - 1.5223) < 0.05].sum() / per_bin.sum()
    assert (np.abs(m - 1.5223) < 0.05).mean() > 2 * flat_share
    s12 = invariant_mass_squared(gamma + pi1)
    lo, hi = dalitz_limits_np(invariant_mass_squared(pi1 + pi2).numpy())
    assert np.average((s12.numpy() - lo) / (hi - lo), weights=w.numpy()) == pytest.approx(0.5, abs=0.005)
    # no spectrum: s23 uniform, so the weight is the Dalitz s12 range at that s23 (up to the normalisation)
    _, a, b, flat = weighted_phase_space_events(1000, generator=generator(13))
    lo, hi = dalitz_limits_np(invariant_mass_squared(a + b).numpy())
    ratio = flat.numpy() / (hi - lo)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-8)


# ---------------------------------------------------------------------------------------------------
# Symmetries of the full intensity (frames and parity together)
# ---------------------------------------------------------------------------------------------------


def interfering_intensity(gamma, pi1, pi2):
    a = helicity_angles(gamma, pi1, pi2)
    spins = [0, 2]
    h = [torch.tensor([1.0]), torch.tensor([1.0, 0.7 - 0.4j, -0.3 + 1.1j], dtype=torch.complex128)]
    ls = torch.stack([flatte(a.m_pipi, F0_MASS, F0_GPIPI), breit_wigner_running(a.m_pipi, F2_MASS, F2_WIDTH, 2)], -1)
    return intensity(angular_amplitudes(a, spins, h), ls, torch.tensor([1.0, 0.8 * cmath.exp(1.1j)]))


def transformed(events, matrix):
    m = torch.as_tensor(matrix, dtype=DT)
    return tuple(torch.cat([p[:, :1], p[:, 1:] @ m.T], dim=-1) for p in events)


def test_intensity_symmetries_pin_frames_and_parity():
    events = phase_space_events(2000, generator=generator(12))
    i0 = interfering_intensity(*events)
    c, s = math.cos(0.7), math.sin(0.7)
    invariances = {
        "mirror y -> -y (parity; needs H_{-l,-1} = +H_{l,1})": np.diag([1.0, -1.0, 1.0]),
        "rotation about the beam": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
        "rotation by pi about x (M -> -M)": np.diag([1.0, -1.0, -1.0]),
    }
    for name, matrix in invariances.items():
        i1 = interfering_intensity(*transformed(events, matrix))
        assert ((i1 - i0).abs() / i0).max().item() < 1e-10, name
    # A rotation that tilts the beam is not a symmetry, so the checks above can fail.
    tilt = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    assert ((interfering_intensity(*transformed(events, tilt)) - i0).abs() / i0).max().item() > 0.1
    # Bose symmetry: exchanging the pions maps theta_pi -> pi - theta_pi, phi_pi -> phi_pi + pi; even J only.
    gamma, pi1, pi2 = events
    a, b = helicity_angles(gamma, pi1, pi2), helicity_angles(gamma, pi2, pi1)
    torch.testing.assert_close(b.cos_theta_pi, -a.cos_theta_pi, rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.cos(b.phi_pi - a.phi_pi), -torch.ones(2000, dtype=DT), rtol=0, atol=1e-10)
    torch.testing.assert_close(interfering_intensity(gamma, pi2, pi1), i0, rtol=1e-12, atol=0)


def test_angular_amplitude_layout_and_gradients():
    gamma, pi1, pi2 = phase_space_events(50, generator=generator(13))
    amp = angular_amplitudes(helicity_angles(gamma, pi1, pi2), [0, 2], [[1.0], e1_helicity_amplitudes()])
    assert amp.shape == (50, 2, len(HELICITIES), len(HELICITIES)) and amp.dtype == torch.complex128
    with pytest.raises(ValueError):
        angular_amplitudes(helicity_angles(gamma, pi1, pi2), [1], [[1.0]])

    def fn(m0, g0, re_c, im_c, p1):
        a = helicity_angles(gamma[:5], p1, pi2[:5])
        ang = angular_amplitudes(a, [0, 2], [[1.0], e1_helicity_amplitudes()])
        ls = torch.stack([flatte(a.m_pipi, F0_MASS, F0_GPIPI), breit_wigner_running(a.m_pipi, m0, g0, 2)], -1)
        return intensity(ang, ls, torch.stack([torch.ones((), dtype=torch.complex128), torch.complex(re_c, im_c)]))

    args = (
        torch.tensor(F2_MASS, dtype=DT),
        torch.tensor(F2_WIDTH, dtype=DT),
        torch.tensor(0.5, dtype=DT),
        torch.tensor(-0.3, dtype=DT),
        pi1[:5].clone(),
    )
    assert torch.autograd.gradcheck(fn, tuple(x.requires_grad_() for x in args))


# ---------------------------------------------------------------------------------------------------
# Line shapes
# ---------------------------------------------------------------------------------------------------


def test_constant_width_breit_wigner_peak_and_half_maximum():
    m0, g0 = F2_MASS, F2_WIDTH
    m = torch.linspace(m0 - 0.3, m0 + 0.3, 60001, dtype=DT)
    p = breit_wigner(m, m0, g0).abs() ** 2
    assert m[p.argmax()].item() == pytest.approx(m0, abs=1e-5)
    assert breit_wigner(torch.tensor(m0, dtype=DT), m0, g0).item() == pytest.approx(1j / (m0 * g0), rel=1e-15)
    peak = 1 / (m0 * g0) ** 2
    for sign in (-1, 1):
        m_half = torch.tensor(math.sqrt(m0**2 + sign * m0 * g0), dtype=DT)
        assert (breit_wigner(m_half, m0, g0).abs() ** 2).item() == pytest.approx(0.5 * peak, rel=1e-12)
    # numerically, the half-maximum crossings sit at those m^2
    above = m[p >= 0.5 * peak]
    assert above[0].item() ** 2 == pytest.approx(m0**2 - m0 * g0, abs=3e-5)
    assert above[-1].item() ** 2 == pytest.approx(m0**2 + m0 * g0, abs=3e-5)


@pytest.mark.parametrize("L", [0, 1, 2])
def test_running_width(L):
    m0, g0 = F2_MASS, F2_WIDTH
    assert running_width(torch.tensor(m0, dtype=DT), m0, g0, L).item() == pytest.approx(g0, rel=1e-14)
    assert breit_wigner_running(torch.tensor(m0, dtype=DT), m0, g0, L).item() == pytest.approx(
        1j / (m0 * g0), rel=1e-14
    )
    # threshold behaviour: Gamma ~ q^(2L+1)
    eps = torch.tensor([1e-6, 4e-6], dtype=DT)
    m = 2 * M_PI_CHARGED + eps
    q = breakup_momentum(m, M_PI_CHARGED, M_PI_CHARGED).real
    ratio = running_width(m, m0, g0, L) / q ** (2 * L + 1)
    assert ratio[0].item() == pytest.approx(ratio[1].item(), rel=1e-4)
    assert running_width(torch.tensor(0.2, dtype=DT), m0, g0, L).item() == 0.0  # below threshold


def test_blatt_weisskopf_against_von_hippel_quigg():
    q = torch.linspace(0, 2, 21, dtype=DT)
    r = 3.0
    z = (q * r) ** 2
    torch.testing.assert_close(blatt_weisskopf(q, 0, r), torch.ones_like(q))
    torch.testing.assert_close(2 * z * blatt_weisskopf(q, 1, r) ** 2, 2 * z / (1 + z), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(
        13 / 9 * z**2 * blatt_weisskopf(q, 2, r) ** 2, 13 * z**2 / ((z - 3) ** 2 + 9 * z), rtol=1e-14, atol=1e-15
    )


def test_breakup_momentum_real_above_imaginary_below_threshold():
    m1, m2 = M_K_CHARGED, M_PI_CHARGED
    m = torch.tensor([0.5, 0.8, 1.5], dtype=DT)
    q = breakup_momentum(m, m1, m2)
    # independent: q = |p| of either daughter from E1 = (m^2 + m1^2 - m2^2) / 2m
    e1 = (m**2 + m1**2 - m2**2) / (2 * m)
    q2 = e1**2 - m1**2
    assert q[0].real.item() == 0 and q[0].imag.item() == pytest.approx(math.sqrt(-q2[0].item()), rel=1e-12)
    torch.testing.assert_close(q[1:].real, torch.sqrt(q2[1:]), rtol=1e-13, atol=0)
    assert (q[1:].imag == 0).all()
    assert breakup_momentum(torch.tensor(m1 + m2, dtype=DT), m1, m2).abs().item() < 1e-7


def test_flatte_is_continuous_across_the_kk_thresholds():
    for threshold in (2 * M_K_CHARGED, 2 * M_K0):
        jumps = []
        for eps in (1e-6, 1e-10):
            below = flatte(torch.tensor(threshold - eps, dtype=DT), F0_MASS, F0_GPIPI)
            above = flatte(torch.tensor(threshold + eps, dtype=DT), F0_MASS, F0_GPIPI)
            jumps.append((above - below).abs().item() / below.abs().item())
        assert jumps[1] < 1e-4 and jumps[1] < 0.02 * jumps[0]  # shrinks like sqrt(eps)
    # Below both KK thresholds the KK term is real: -Im(1/f) is the pi pi width term alone.
    m = torch.tensor(0.9, dtype=DT)
    rho_pp = 2 / 3 * math.sqrt(1 - 4 * M_PI_CHARGED**2 / 0.81) + 1 / 3 * math.sqrt(1 - 4 * M_PI0**2 / 0.81)
    inverse = 1 / flatte(m, F0_MASS, F0_GPIPI)
    assert -inverse.imag.item() == pytest.approx(F0_GPIPI * rho_pp, rel=1e-13)
    rho_kk = 0.5 * math.sqrt(4 * M_K_CHARGED**2 / 0.81 - 1) + 0.5 * math.sqrt(4 * M_K0**2 / 0.81 - 1)
    assert inverse.real.item() == pytest.approx(F0_MASS**2 - 0.81 + 8.570 * F0_GPIPI * rho_kk, rel=1e-13)


def test_fast_real_path_equals_the_complex_intensity_and_its_gradient():
    """The fit path (real basis, line-shape parts with cached phase space) against the reference functions."""
    gamma, pi1, pi2 = pwa.phase_space_events(2000, generator=torch.Generator().manual_seed(11))
    angles = pwa.helicity_angles(gamma, pi1, pi2)
    angular = pwa.angular_amplitudes(
        angles,
        [0, 2, 2],
        [
            torch.ones(1, dtype=torch.complex128),
            pwa.e1_helicity_amplitudes(),
            torch.tensor([0.3 + 0.1j, -0.7, 1.2j], dtype=torch.complex128),
        ],
    )
    m = angles.m_pipi
    rho_pp, rho_kk = pwa.rho_pipi(m), pwa.rho_kk(m)
    basis = pwa.real_amplitude_basis(angular)
    p = torch.tensor(
        [0.979, 0.107, 1.5223, 0.0858, 1.29, 0.196, 0.4, -0.2, 0.1, 0.3], dtype=torch.float64, requires_grad=True
    )

    def reference(p):
        shapes = torch.stack(
            [pwa.flatte(m, p[0], p[1]), pwa.breit_wigner(m, p[2], p[3]), pwa.breit_wigner(m, p[4], p[5])], -1
        )
        c = torch.stack([torch.ones((), dtype=torch.complex128), torch.complex(p[6], p[7]), torch.complex(p[8], p[9])])
        return torch.log(pwa.intensity(angular, shapes, c)).sum()

    def fast(p):
        parts = [
            pwa.flatte_parts(m * m, p[0], p[1], rho_pp, rho_kk),
            pwa.breit_wigner_parts(m * m, p[2], p[3]),
            pwa.breit_wigner_parts(m * m, p[4], p[5]),
        ]
        br = torch.stack([q[0] for q in parts], -1)
        bi = torch.stack([q[1] for q in parts], -1)
        cr = torch.stack([torch.ones((), dtype=torch.float64), p[6], p[8]])
        ci = torch.stack([torch.zeros((), dtype=torch.float64), p[7], p[9]])
        return torch.log(pwa.intensity_from_basis(basis, cr * br - ci * bi, cr * bi + ci * br)).sum()

    v_ref, v_fast = reference(p), fast(p)
    (g_ref,) = torch.autograd.grad(v_ref, p)
    (g_fast,) = torch.autograd.grad(v_fast, p)
    assert float(v_fast) == pytest.approx(float(v_ref), rel=1e-13)
    assert torch.allclose(g_fast, g_ref, rtol=1e-10, atol=1e-10)
