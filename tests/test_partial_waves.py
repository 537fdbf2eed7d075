"""Partial waves, quadrature and the integral unitarity relation, checked against independent truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hadrinv.physics.partial_waves import (
    UnitarityRelation,
    amplitude_from_waves,
    elastic_wave,
    legendre_polynomials,
    monotonic_phase_loss,
    phase_shift,
    project_partial_waves,
    second_angle,
    select_rising_branch,
    unwrap_phase,
)
from hadrinv.physics.pipi import (
    RHO_770,
    S_THRESHOLD_GEV2,
    breit_wigner_phase_shifts,
    breit_wigner_wave,
    breit_wigner_waves,
)
from hadrinv.physics.quadrature import gauss_legendre, periodic_trapezoid, simpson

DT = torch.float64


def talk_energies(n: int = 64) -> torch.Tensor:
    """Energies strictly above threshold up to 1 GeV^2."""
    return torch.linspace(S_THRESHOLD_GEV2, 1.0, n + 1, dtype=DT)[1:]


def eval_angles(n: int = 64) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, n, dtype=DT)


# ----------------------------------------------------------------------------------------------
# Legendre polynomials
# ----------------------------------------------------------------------------------------------


def test_legendre_matches_numpy_legval_up_to_l6():
    z = torch.linspace(-1.0, 1.0, 201, dtype=DT)
    p = legendre_polynomials(z, 6)
    assert p.shape == (201, 7)
    for l in range(7):
        coefficients = np.zeros(l + 1)
        coefficients[l] = 1.0
        expected = np.polynomial.legendre.legval(z.numpy(), coefficients)
        np.testing.assert_allclose(p[..., l].numpy(), expected, rtol=0, atol=1e-14)


def test_legendre_endpoint_values_and_parity():
    # P_l(1) = 1, P_l(-1) = (-1)^l, P_l(-z) = (-1)^l P_l(z)
    ends = legendre_polynomials(torch.tensor([1.0, -1.0], dtype=DT), 6)
    l = torch.arange(7)
    torch.testing.assert_close(ends[0], torch.ones(7, dtype=DT), rtol=0, atol=1e-14)
    torch.testing.assert_close(ends[1], ((-1.0) ** l).to(DT), rtol=0, atol=1e-14)
    z = torch.linspace(0.0, 1.0, 17, dtype=DT)
    torch.testing.assert_close(
        legendre_polynomials(-z, 6), legendre_polynomials(z, 6) * (-1.0) ** l, rtol=0, atol=1e-14
    )


def test_legendre_orthogonality_by_gauss_legendre():
    # int_{-1}^{1} P_l P_l' dz = 2 / (2l + 1) delta_ll'; 8 nodes are exact up to degree 15 >= 12
    nodes, weights = gauss_legendre(8)
    p = legendre_polynomials(nodes, 6)
    gram = torch.einsum("k,kl,km->lm", weights, p, p)
    expected = torch.diag(2.0 / (2.0 * torch.arange(7, dtype=DT) + 1.0))
    torch.testing.assert_close(gram, expected, rtol=0, atol=1e-14)


def test_legendre_batched_shape_keeps_leading_dims():
    z = torch.rand(3, 5, dtype=DT) * 2 - 1
    p = legendre_polynomials(z, 4)
    assert p.shape == (3, 5, 5)
    torch.testing.assert_close(p[..., 2], 0.5 * (3 * z**2 - 1), rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# Quadrature
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 16])
def test_gauss_legendre_exact_for_degree_2n_minus_1(n):
    a, b = -0.3, 1.7
    nodes, weights = gauss_legendre(n, a, b)
    assert nodes.dtype == DT and weights.dtype == DT
    assert torch.all((nodes > a) & (nodes < b))
    for k in range(2 * n):
        exact = (b ** (k + 1) - a ** (k + 1)) / (k + 1)
        assert float((weights * nodes**k).sum()) == pytest.approx(exact, rel=1e-12, abs=1e-12), k


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_gauss_legendre_not_exact_for_degree_2n(n):
    # the degree bound is sharp: int_{-1}^{1} z^{2n} dz = 2 / (2n + 1) is missed
    nodes, weights = gauss_legendre(n)
    integral = float((weights * nodes ** (2 * n)).sum())
    assert abs(integral - 2.0 / (2 * n + 1)) > 1e-3


@pytest.mark.parametrize("n", [4, 10, 16])
def test_periodic_trapezoid_exact_for_trig_polynomials_below_n(n):
    nodes, weights = periodic_trapezoid(n)
    assert float(weights.sum()) == pytest.approx(2 * math.pi, rel=1e-15)
    for k in range(1, n):
        assert abs(float((weights * torch.cos(k * nodes)).sum())) < 1e-13, k
        assert abs(float((weights * torch.sin(k * nodes)).sum())) < 1e-13, k
    # int cos^2(k phi) = pi for 0 < k < n/2 (cos^2 has frequency 2k < n)
    for k in range(1, (n + 1) // 2):
        assert float((weights * torch.cos(k * nodes) ** 2).sum()) == pytest.approx(math.pi, rel=1e-13), k


@pytest.mark.parametrize("n", [4, 10])
def test_periodic_trapezoid_aliases_frequency_n(n):
    nodes, weights = periodic_trapezoid(n)
    # cos(n phi) = 1 at every node: integral 2 pi instead of 0
    assert float((weights * torch.cos(n * nodes)).sum()) == pytest.approx(2 * math.pi, rel=1e-12)


@pytest.mark.parametrize("n", [3, 5, 11, 65])
def test_simpson_odd_n_exact_for_cubics(n):
    a, b = 0.2, 2.0
    nodes, weights = simpson(n, a, b)
    assert nodes[0] == a and nodes[-1] == pytest.approx(b)
    for k in range(4):
        exact = (b ** (k + 1) - a ** (k + 1)) / (k + 1)
        assert float((weights * nodes**k).sum()) == pytest.approx(exact, rel=1e-13), k


def test_simpson_odd_n_matches_scipy():
    scipy_integrate = pytest.importorskip("scipy.integrate")
    nodes, weights = simpson(33, 0.0, 2.0)
    y = torch.exp(nodes) * torch.sin(3 * nodes)
    assert float((weights * y).sum()) == pytest.approx(scipy_integrate.simpson(y.numpy(), x=nodes.numpy()), rel=1e-13)


def test_simpson_fourth_order_convergence():
    exact = math.e - 1.0  # int_0^1 e^x dx
    errors = []
    for n in (9, 17, 33):
        nodes, weights = simpson(n, 0.0, 1.0)
        errors.append(abs(float((weights * torch.exp(nodes)).sum()) - exact))
    for coarse, fine in zip(errors, errors[1:]):
        assert 14.0 < coarse / fine < 18.0  # halving h divides the error by 16


def test_simpson_even_n_uses_trapezoid_on_last_interval():
    # weights sum to the length, linear functions exact; quadratics are not (trapezoid on the last interval)
    n, a, b = 10, 0.0, 2 * math.pi
    nodes, weights = simpson(n, a, b)
    h = (b - a) / (n - 1)
    assert float(weights.sum()) == pytest.approx(b - a, rel=1e-14)
    assert float((weights * nodes).sum()) == pytest.approx(0.5 * (b**2 - a**2), rel=1e-14)
    expected = torch.tensor([1, 4, 2, 4, 2, 4, 2, 4, 1, 0], dtype=DT) * h / 3
    expected[-2] += 0.5 * h
    expected[-1] += 0.5 * h
    torch.testing.assert_close(weights, expected, rtol=1e-15, atol=0)
    assert abs(float((weights * nodes**2).sum()) - (b**3 - a**3) / 3) > 1e-3


def test_simpson_needs_three_nodes():
    with pytest.raises(ValueError):
        simpson(2, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Amplitude and projection
# ----------------------------------------------------------------------------------------------


def test_amplitude_from_waves_matches_explicit_sum():
    # A = f0 + 3 f1 z + 5 f2 (3 z^2 - 1) / 2
    g = torch.Generator().manual_seed(3)
    waves = torch.complex(torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 3, generator=g, dtype=DT))
    z = torch.linspace(-1, 1, 9, dtype=DT)
    amplitude = amplitude_from_waves(waves[:, None, :], z)
    expected = waves[:, None, 0] + 3 * waves[:, None, 1] * z + 5 * waves[:, None, 2] * 0.5 * (3 * z**2 - 1)
    torch.testing.assert_close(amplitude, expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("n_nodes", [4, 8])
def test_projection_round_trip_on_gauss_legendre_nodes(n_nodes):
    # A has degree l_max = 3 in z, P_l A has degree <= 6 <= 2 n - 1 for n >= 4 nodes: exact
    l_max = 3
    g = torch.Generator().manual_seed(7)
    waves = torch.complex(
        torch.randn(5, l_max + 1, generator=g, dtype=DT), torch.randn(5, l_max + 1, generator=g, dtype=DT)
    )
    nodes, weights = gauss_legendre(n_nodes)
    amplitude = amplitude_from_waves(waves[:, None, :], nodes)  # (5, n_nodes)
    projected = project_partial_waves(amplitude, nodes, weights, l_max)
    torch.testing.assert_close(projected, waves, rtol=0, atol=1e-13)


def test_projection_of_bw_amplitude_recovers_bw_waves():
    s = talk_energies(16)
    waves = breit_wigner_waves(s)
    nodes, weights = gauss_legendre(6)
    projected = project_partial_waves(amplitude_from_waves(waves[:, None, :], nodes), nodes, weights, 3)
    torch.testing.assert_close(projected[:, :2], waves, rtol=0, atol=1e-14)
    torch.testing.assert_close(projected[:, 2:], torch.zeros_like(projected[:, 2:]), rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------------------------
# Elastic waves, Breit-Wigner waves, phase shifts
# ----------------------------------------------------------------------------------------------


def test_elastic_wave_is_unitary_and_has_its_phase_shift():
    delta = torch.linspace(-3.0, 3.0, 61, dtype=DT)
    f = elastic_wave(delta)
    torch.testing.assert_close(f.imag, f.abs() ** 2, rtol=0, atol=1e-15)
    torch.testing.assert_close(f, torch.exp(1j * delta) * torch.sin(delta), rtol=0, atol=1e-15)
    # phase shift is defined modulo pi, returned in [0, pi)
    d = phase_shift(f)
    assert torch.all((d >= 0) & (d < math.pi))
    wrapped = torch.remainder(d - delta + 0.5 * math.pi, math.pi) - 0.5 * math.pi
    # delta = 0 gives f = 0 whose phase is arbitrary; skip it
    nonzero = f.abs() > 1e-12
    torch.testing.assert_close(wrapped[nonzero], torch.zeros_like(wrapped[nonzero]), rtol=0, atol=1e-12)


def test_breit_wigner_wave_is_elastic_to_1e14():
    s = torch.linspace(S_THRESHOLD_GEV2, 1.5, 400, dtype=DT)
    for mass, width in [(0.475, 0.55), (0.77526, 0.1491), (1.0, 0.05)]:
        f = breit_wigner_wave(s, mass, width)
        assert f.dtype == torch.complex128
        assert float((f.imag - f.abs() ** 2).abs().max()) < 1e-14


def test_breit_wigner_phase_shift_is_atan2_mgamma_over_m2_minus_s():
    s = torch.linspace(S_THRESHOLD_GEV2, 1.5, 400, dtype=DT)
    for mass, width in [(0.475, 0.55), (0.77526, 0.1491)]:
        delta = phase_shift(breit_wigner_wave(s, mass, width))
        expected = torch.atan2(torch.full_like(s, mass * width), mass**2 - s)
        torch.testing.assert_close(delta, expected, rtol=0, atol=1e-14)
        # rising through 90 degrees at s = m^2 without a jump
        assert torch.all(torch.diff(delta) > 0)
    torch.testing.assert_close(phase_shift(breit_wigner_waves(s)), breit_wigner_phase_shifts(s), rtol=0, atol=1e-14)


def test_phase_shift_passes_90_degrees_without_a_jump_at_the_rho():
    s = torch.tensor([RHO_770.mass_gev**2 - 1e-6, RHO_770.mass_gev**2, RHO_770.mass_gev**2 + 1e-6], dtype=DT)
    delta = phase_shift(breit_wigner_wave(s, RHO_770.mass_gev, RHO_770.width_gev))
    assert float(delta[1]) == pytest.approx(math.pi / 2, abs=1e-15)
    assert delta[0] < delta[1] < delta[2]
    assert float(delta[2] - delta[0]) < 1e-3


def test_unwrap_phase_restores_a_phase_rising_past_pi():
    truth = torch.linspace(0.1, 2.6 * math.pi, 200, dtype=DT)
    wrapped = torch.remainder(truth, math.pi)
    assert float(torch.diff(wrapped).min()) < -3.0  # wrapping does produce jumps
    torch.testing.assert_close(unwrap_phase(wrapped), truth, rtol=0, atol=1e-12)
    # along another dimension, batched
    batched = torch.stack([wrapped, wrapped + 0.0], dim=-1)
    torch.testing.assert_close(unwrap_phase(batched, dim=0), torch.stack([truth, truth], dim=-1), rtol=0, atol=1e-12)


def test_second_angle_limits():
    theta = torch.linspace(0.0, math.pi, 7, dtype=DT)
    theta_p = torch.linspace(0.0, math.pi, 5, dtype=DT)
    z, zp = torch.cos(theta)[:, None], torch.cos(theta_p)[None, :]
    # phi = 0: z'' = cos(theta - theta'); phi = pi: cos(theta + theta')
    torch.testing.assert_close(
        second_angle(z, zp, torch.tensor(0.0, dtype=DT)),
        torch.cos(theta[:, None] - theta_p[None, :]),
        rtol=0,
        atol=1e-14,
    )
    torch.testing.assert_close(
        second_angle(z, zp, torch.tensor(math.pi, dtype=DT)),
        torch.cos(theta[:, None] + theta_p[None, :]),
        rtol=0,
        atol=1e-14,
    )
    # z = 1: z'' = z' for any phi; always within [-1, 1]
    phi = torch.linspace(0, 2 * math.pi, 11, dtype=DT)
    torch.testing.assert_close(
        second_angle(torch.tensor(1.0, dtype=DT), zp.reshape(-1, 1), phi),
        zp.reshape(-1, 1).expand(5, 11),
        rtol=0,
        atol=1e-15,
    )
    zz = torch.linspace(-1, 1, 41, dtype=DT)
    out = second_angle(zz[:, None, None], zz[None, :, None], phi[None, None, :])
    assert out.min() >= -1.0 and out.max() <= 1.0


# ----------------------------------------------------------------------------------------------
# Integral unitarity relation
# ----------------------------------------------------------------------------------------------


def test_unitarity_residual_vanishes_for_breit_wigner_s_and_p_waves():
    relation = UnitarityRelation(eval_angles(), l_max=1)
    waves = breit_wigner_waves(talk_energies())
    residual = relation.residual(waves)
    assert residual.shape == (64, 64)
    assert float(residual.abs().max()) < 1e-8
    assert float(relation.loss(waves)) < 1e-8


def test_unitarity_residual_vanishes_for_random_elastic_waves_l3():
    g = torch.Generator().manual_seed(11)
    delta = (torch.rand(20, 4, generator=g, dtype=DT) * 2 - 1) * math.pi
    waves = elastic_wave(delta)
    relation = UnitarityRelation(eval_angles(33), l_max=3, n_z=16, n_phi=16)
    assert float(relation.residual(waves).abs().max()) < 1e-8
    assert float(relation.loss(waves)) < 1e-8


def test_unitarity_kernel_is_addition_theorem():
    # 1/(4 pi) int dOmega' P_l(z') P_l'(z'') = delta_ll' P_l(z) / (2l + 1)
    z = eval_angles(21)
    l_max = 4
    relation = UnitarityRelation(z, l_max=l_max)
    p = legendre_polynomials(z, l_max)
    l = torch.arange(l_max + 1, dtype=DT)
    expected = torch.diag_embed(p / (2 * l + 1))
    assert relation.kernel.shape == (21, l_max + 1, l_max + 1)
    torch.testing.assert_close(relation.kernel, expected, rtol=0, atol=1e-14)


def test_unitarity_kernel_exact_at_documented_minimal_nodes():
    # exact for l_max < min(n_z, n_phi / 2)
    l_max = 3
    z = eval_angles(9)
    relation = UnitarityRelation(z, l_max=l_max, n_z=l_max + 1, n_phi=2 * l_max + 2)
    expected = torch.diag_embed(legendre_polynomials(z, l_max) / (2 * torch.arange(l_max + 1, dtype=DT) + 1))
    torch.testing.assert_close(relation.kernel, expected, rtol=0, atol=1e-14)


def test_unitarity_integral_equals_direct_double_sum():
    g = torch.Generator().manual_seed(5)
    l_max = 3
    waves = (
        torch.complex(
            torch.randn(6, l_max + 1, generator=g, dtype=DT), torch.randn(6, l_max + 1, generator=g, dtype=DT)
        )
        * 0.3
    )
    for kwargs in ({}, {"n_z": 7, "n_phi": 9}, {"rule": "simpson", "n_z": 64, "n_phi": 10}):
        relation = UnitarityRelation(eval_angles(17), l_max=l_max, **kwargs)

        def amplitude_fn(zz):
            return amplitude_from_waves(waves.reshape(6, *([1] * zz.dim()), l_max + 1), zz)

        direct = relation.integral_direct(amplitude_fn)
        fast = relation.integral(waves)
        assert fast.shape == direct.shape == (6, 17)
        torch.testing.assert_close(fast, direct, rtol=0, atol=1e-12)


def test_unitarity_integral_is_sum_of_squared_waves():
    # with an exact rule, I(z) = sum_l (2l + 1) |f_l|^2 P_l(z) for any waves
    g = torch.Generator().manual_seed(2)
    waves = torch.complex(torch.randn(3, 3, generator=g, dtype=DT), torch.randn(3, 3, generator=g, dtype=DT))
    z = eval_angles(11)
    relation = UnitarityRelation(z, l_max=2)
    expected = ((waves.abs() ** 2 * (2 * torch.arange(3, dtype=DT) + 1))[:, None, :] * legendre_polynomials(z, 2)).sum(
        -1
    )
    torch.testing.assert_close(relation.integral(waves), expected.to(torch.complex128), rtol=0, atol=1e-13)


def test_talk_simpson_64x10_setup_leaves_a_residual_on_a_unitary_amplitude():
    # documents the trap: Simpson with 64 x 10 nodes is not exact, the residual is of order 1e-3
    waves = breit_wigner_waves(talk_energies())
    relation = UnitarityRelation(eval_angles(), l_max=1, rule="simpson", n_z=64, n_phi=10)
    assert float(relation.residual(waves).abs().max()) > 1e-4
    exact = UnitarityRelation(eval_angles(), l_max=1)
    assert float(exact.residual(waves).abs().max()) < 1e-12


def test_unknown_quadrature_rule_is_rejected():
    with pytest.raises(ValueError, match="rule"):
        UnitarityRelation(eval_angles(5), l_max=1, rule="trapezoid")


def test_non_unitary_amplitude_gives_clearly_nonzero_loss():
    waves = breit_wigner_waves(talk_energies())
    relation = UnitarityRelation(eval_angles(), l_max=1)
    scaled = 0.9 * waves
    # Im(0.9 f) - |0.9 f|^2 = 0.09 |f|^2 per wave, so the residual is 0.09 I(z)
    residual = relation.residual(scaled)
    torch.testing.assert_close(residual, 0.09 * relation.integral(waves), rtol=1e-12, atol=1e-14)
    assert float(relation.loss(scaled)) > 1e-2


def test_amplitude_and_loss_invariant_under_minus_a_conjugate():
    s = talk_energies(32)
    z = eval_angles(32)
    g = torch.Generator().manual_seed(9)
    bw = breit_wigner_waves(s)
    noisy = bw * (1 + 0.2 * torch.randn(bw.shape, generator=g, dtype=DT))  # not unitary, loss > 0
    for waves in (bw, noisy):
        flipped = -waves.conj()
        a = amplitude_from_waves(waves[:, None, :], z)
        a_flipped = amplitude_from_waves(flipped[:, None, :], z)
        torch.testing.assert_close(a_flipped, -a.conj(), rtol=0, atol=1e-15)
        torch.testing.assert_close(a_flipped.abs() ** 2, a.abs() ** 2, rtol=1e-14, atol=0)
        for kwargs in ({}, {"rule": "simpson", "n_z": 64, "n_phi": 10}):
            relation = UnitarityRelation(z, l_max=1, **kwargs)
            assert float(relation.loss(flipped)) == pytest.approx(float(relation.loss(waves)), rel=1e-12, abs=1e-15)
    # -conj(elastic_wave(delta)) is elastic_wave(-delta): the ambiguity maps phase shifts to minus themselves
    delta = breit_wigner_phase_shifts(s)
    torch.testing.assert_close(-elastic_wave(delta).conj(), elastic_wave(-delta), rtol=0, atol=1e-15)
    assert float(UnitarityRelation(z, l_max=1).loss(noisy)) > 1e-3


def test_unitarity_loss_is_differentiable():
    waves = breit_wigner_waves(talk_energies(8)).clone().requires_grad_(True)
    relation = UnitarityRelation(eval_angles(8), l_max=1)
    loss = relation.loss(0.9 * waves)
    (grad,) = torch.autograd.grad(loss, waves)
    assert torch.all(torch.isfinite(grad.real)) and float(grad.abs().max()) > 0


# ----------------------------------------------------------------------------------------------
# The A -> -A* ambiguity: rising-branch selection and the monotonicity loss
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def bw_truth():
    return breit_wigner_phase_shifts(talk_energies())  # (64, 2), rising, in (0, pi)


def test_select_rising_branch_keeps_the_truth(bw_truth):
    torch.testing.assert_close(select_rising_branch(bw_truth), bw_truth, rtol=0, atol=1e-13)


def test_select_rising_branch_flips_negated_truth(bw_truth):
    torch.testing.assert_close(select_rising_branch(-bw_truth), bw_truth, rtol=0, atol=1e-13)


def test_select_rising_branch_from_phases_of_ambiguous_waves(bw_truth):
    # phases as a solver would return them: arg of -conj(f), in [0, pi)
    flipped = phase_shift(-elastic_wave(bw_truth).conj())
    torch.testing.assert_close(select_rising_branch(flipped), bw_truth, rtol=0, atol=1e-13)


def test_select_rising_branch_resolves_a_random_per_energy_mix(bw_truth):
    g = torch.Generator().manual_seed(1234)
    negate = torch.rand(bw_truth.shape[0], generator=g) < 0.5
    assert 10 < int(negate.sum()) < 54
    mixed = torch.where(negate[:, None], -bw_truth, bw_truth)
    torch.testing.assert_close(select_rising_branch(mixed), bw_truth, rtol=0, atol=1e-13)


def test_select_rising_branch_resolves_mixed_branches_with_a_batch_dimension(bw_truth):
    g = torch.Generator().manual_seed(42)
    s = talk_energies()
    from hadrinv.physics.pipi import Resonance

    truths = torch.stack(
        [
            bw_truth,
            breit_wigner_phase_shifts(s, (Resonance(0.5, 0.4), Resonance(0.8, 0.12))),
            breit_wigner_phase_shifts(s, (Resonance(0.45, 0.6), Resonance(0.75, 0.2))),
        ]
    )  # (3, 64, 2)
    negate = torch.rand(truths.shape[:2], generator=g) < 0.5
    mixed = torch.where(negate[..., None], -truths, truths)
    out = select_rising_branch(mixed)
    assert out.shape == truths.shape
    torch.testing.assert_close(out, truths, rtol=0, atol=1e-13)
    # two batch dimensions
    out2 = select_rising_branch(mixed.reshape(3, 1, 64, 2).expand(3, 2, 64, 2))
    torch.testing.assert_close(out2, truths[:, None].expand(3, 2, 64, 2), rtol=0, atol=1e-13)


def test_select_rising_branch_keeps_a_small_falling_step_rather_than_a_large_jump(bw_truth):
    # near 160 degrees |A| is small and the fit at a noisy energy can be 15 degrees low in one wave (seen
    # on 2% data); its mirror (-delta) would be a jump of +53 degrees: the path keeps it on its own branch
    noisy = bw_truth.clone()
    noisy[-1] = noisy[-2] + torch.tensor([-15.0, 5.0], dtype=DT).deg2rad()
    torch.testing.assert_close(select_rising_branch(noisy), noisy, rtol=0, atol=1e-13)


def test_rising_path_chooses_among_allowed_candidates_only(bw_truth):
    from hadrinv.physics.partial_waves import rising_path

    # candidate 0 leaves the curve at energy 30 (another minimum of equal chi^2), candidate 1 does not
    off = bw_truth.clone()
    off[30] = off[30] + torch.tensor([0.6, -0.4], dtype=DT)
    candidates = torch.stack([off, bw_truth])  # (2, 64, 2)
    allowed = torch.ones(2, 64, dtype=torch.bool)
    torch.testing.assert_close(rising_path(candidates, allowed=allowed), bw_truth, rtol=0, atol=1e-13)
    allowed[1, 30] = False  # the data exclude the smooth candidate there
    torch.testing.assert_close(rising_path(candidates, allowed=allowed), off, rtol=0, atol=1e-13)
    with_branches = torch.cat([candidates, -candidates])
    torch.testing.assert_close(
        rising_path(with_branches, allowed=torch.cat([allowed, allowed])), off, rtol=0, atol=1e-13
    )


def test_monotonic_phase_loss_zero_for_rising_phases(bw_truth):
    assert float(monotonic_phase_loss(bw_truth.T)) == 0.0
    assert float(monotonic_phase_loss(torch.linspace(0.0, 1.0, 10, dtype=DT))) == 0.0


def test_monotonic_phase_loss_positive_for_falling_phases(bw_truth):
    falling = torch.flip(bw_truth.T, dims=[-1])
    assert float(monotonic_phase_loss(falling)) > 0
    # analytic value: mean over steps of log(1 + |step|) for a uniformly falling phase
    delta = torch.linspace(1.0, 0.0, 11, dtype=DT)  # 10 steps of -0.1
    assert float(monotonic_phase_loss(delta)) == pytest.approx(math.log1p(0.1), rel=1e-12)


def test_monotonic_phase_loss_ignores_jumps_by_pi():
    rising = torch.linspace(0.1, 1.0, 10, dtype=DT)
    for jump in (math.pi, -math.pi):
        delta = rising.clone()
        delta[5:] += jump
        assert float(monotonic_phase_loss(delta)) < 1e-12, jump
    # a falling step hidden behind a pi jump is still penalised
    delta = rising.clone()
    delta[5:] += math.pi - 0.5
    assert float(monotonic_phase_loss(delta)) > 0.01


def test_trapezoid_weights_integrate_linear_functions_exactly_on_irregular_nodes():
    from hadrinv.physics.quadrature import trapezoid_weights

    nodes = torch.sort(torch.rand(17, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1).values
    nodes = torch.cat([torch.tensor([-1.0], dtype=torch.float64), nodes, torch.tensor([1.0], dtype=torch.float64)])
    w = trapezoid_weights(nodes)
    assert torch.isclose(w.sum(), torch.tensor(2.0, dtype=torch.float64))
    assert torch.isclose((w * (3 * nodes + 0.5)).sum(), torch.tensor(1.0, dtype=torch.float64))
