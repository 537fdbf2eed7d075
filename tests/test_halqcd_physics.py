"""Physics of the HAL QCD workflow against independent truth: the separable potential's closed forms, the
Numerov solver of the femtoscopy workflow, finite-difference convergence orders, the time-dependent equation."""

import math

import pytest
import torch
from scipy import optimize

from hadrinv.physics.halqcd import (
    HBARC_MEV_FM,
    LATTICE_SPACING_FM,
    OMEGA_MASS_LATTICE_MEV,
    OMEGA_OMEGA,
    effective_local_potential,
    lattice_noise,
    leading_order_potential,
    potential_action,
    radial_laplacian,
    stationary_lhs,
    synthetic_correlator,
    time_dependent_lhs,
    wall_source,
)
from hadrinv.physics.nonlocal_scattering import (
    RadialMesh,
    SeparablePotential,
    bound_state_energies,
    box_states,
    phase_shifts,
    scattering_length,
)
from hadrinv.physics.schrodinger import solve_s_wave, zero_energy_scattering_length

SEP = SeparablePotential()  # the talk's mu = 1, w = -0.017, m = 3.30
DEG = 180.0 / math.pi


def test_talk_k_cot_delta_equals_the_polynomial_form_of_the_notes():
    k = torch.linspace(0.0, 3.0, 31, dtype=torch.float64)
    mu, m, w = SEP.mu, SEP.mass, SEP.strength
    notes = (k**6 + 5 * mu**2 * k**4 + 15 * mu**4 * k**2 - 5 * mu**6) / (16 * mu**5) - (k**2 + mu**2) ** 4 / (
        32 * math.pi * m * w * mu**2
    )
    assert torch.allclose(SEP.k_cot_delta(k), notes, rtol=1e-12, atol=1e-12)
    assert SEP.scattering_length() == pytest.approx(7.397, abs=2e-3)  # the notes: a = +7.4/mu


def _equation_residual(step: float, r_from: float = 0.0) -> float:
    mesh = RadialMesh(step, 25.0)
    r = mesh.nodes()
    k = torch.tensor([0.1, 0.5, 1.0, 2.0], dtype=torch.float64)
    phi = SEP.wave_function(k, r)
    lhs = stationary_lhs(phi, k, step, SEP.mass, order=4)
    rhs = potential_action(SEP.matrix(r), phi, r, mesh.weights())[:, : lhs.shape[-1]]
    far = r[: lhs.shape[-1]] >= r_from
    return float((lhs - rhs)[:, far].abs().max() / rhs.abs().max())


def test_analytic_nbs_wave_function_solves_the_nonlocal_equation():
    # (E_k - H0) phi_k = int d^3r' U phi_k: the residual is discretisation error only. Away from r = 0 it
    # shrinks at least as step^2 (measured: step^4, the five-point Laplacian with an integrand that vanishes at
    # both ends of the trapezoid rule); at the first nodes phi's odd powers of r (from exp(-mu r)) make the
    # five-point Laplacian's odd extension first order, still small
    assert _equation_residual(0.05) < 1e-3
    coarse, fine = _equation_residual(0.1, r_from=1.0), _equation_residual(0.05, r_from=1.0)
    assert fine < 2e-4
    assert coarse / fine > 3.5


def test_wave_function_asymptotic_phase_and_solver_wave_function():
    k = torch.tensor([0.3, 1.2], dtype=torch.float64)
    r = torch.tensor([40.0, 40.5], dtype=torch.float64)
    phi = SEP.wave_function(k, r)
    delta = torch.atan2(k, SEP.k_cot_delta(k))
    assert torch.allclose(phi, torch.sin(k[:, None] * r + delta[:, None]) / (k[:, None] * r), atol=1e-12)


def test_nonlocal_solver_reproduces_the_closed_form_phase_shifts_and_scattering_length():
    mesh = RadialMesh(0.05, 25.0)
    U = SEP.matrix(mesh.nodes())
    k = torch.linspace(0.02, 2.0, 60, dtype=torch.float64)
    delta = phase_shifts(k, mesh, SEP.mass, U=U)
    assert float((delta - SEP.phase_shift(k)).abs().max()) * DEG < 0.01
    assert float(delta[0]) * DEG > 170  # Levinson: one bound state, delta(0) = 180 deg
    assert float(scattering_length(mesh, SEP.mass, U=U)) == pytest.approx(SEP.scattering_length(), rel=5e-4)


def test_separable_bound_state_matches_the_pole_of_the_closed_form():
    # pole of the amplitude at k = i kappa: k cot delta = -kappa, with k^2 = -kappa^2 in the polynomial form
    m, w = SEP.mass, SEP.strength  # mu = 1
    f = lambda kappa: (
        ((-(kappa**6) + 5 * kappa**4 - 15 * kappa**2 - 5) / 16 - (1 - kappa**2) ** 4 / (32 * math.pi * m * w)) + kappa
    )
    kappa = optimize.brentq(f, 1e-3, 0.9)
    energies = bound_state_energies(RadialMesh(0.05, 60.0), SEP.mass, U=SEP.matrix(RadialMesh(0.05, 60.0).nodes()))
    assert len(energies) == 1
    assert float(energies[0]) == pytest.approx(-(kappa**2) / (2 * m), rel=2e-3)


def test_nonlocal_solver_with_a_local_potential_agrees_with_numerov():
    mesh = RadialMesh(0.02, 8.0)
    m = OMEGA_MASS_LATTICE_MEV / 2 / HBARC_MEV_FM
    V = OMEGA_OMEGA(mesh.nodes()) / HBARC_MEV_FM
    k_mev = torch.linspace(5.0, 400.0, 40, dtype=torch.float64)
    delta = phase_shifts(k_mev / HBARC_MEV_FM, mesh, m, V=V)
    reference = solve_s_wave(lambda r: OMEGA_OMEGA(r)[None], k_mev, OMEGA_MASS_LATTICE_MEV / 2).delta[0]
    assert float((delta - reference).abs().max()) * DEG < 0.05
    a0_ref = float(zero_energy_scattering_length(lambda r: OMEGA_OMEGA(r)[None], OMEGA_MASS_LATTICE_MEV / 2)[0][0])
    assert float(scattering_length(mesh, m, V=V)) == pytest.approx(a0_ref, rel=2e-3)
    assert a0_ref == pytest.approx(4.6, abs=0.6)  # the published a0 = 4.6(6) fm


def test_local_potential_written_as_a_diagonal_kernel_gives_the_same_phase_shifts():
    mesh = RadialMesh(0.05, 8.0)
    r, w = mesh.nodes(), mesh.weights()
    m = OMEGA_MASS_LATTICE_MEV / 2 / HBARC_MEV_FM
    V = OMEGA_OMEGA(r) / HBARC_MEV_FM
    U = torch.diag(V / (4 * math.pi * r**2 * w))  # V(r) delta(r - r') / (4 pi r^2) on the mesh
    k = torch.linspace(0.05, 1.5, 20, dtype=torch.float64)
    assert torch.allclose(phase_shifts(k, mesh, m, U=U), phase_shifts(k, mesh, m, V=V), atol=1e-10)
    R = torch.exp(-r)
    assert torch.allclose(effective_local_potential(U, R, r, w), V, rtol=1e-10)


@pytest.mark.parametrize("order, ratio", [(2, 4.0), (4, 16.0)])
def test_radial_laplacian_converges_at_its_order(order, ratio):
    errors = []
    for step in (0.1, 0.05):
        r = RadialMesh(step, 6.0).nodes()
        f = torch.exp(-(r**2))
        lap = radial_laplacian(f, step, order)
        exact = ((4 * r**2 - 6) * f)[: lap.shape[-1]]
        errors.append(float((lap - exact).abs().max()))
    assert errors[0] / errors[1] == pytest.approx(ratio, rel=0.15)


def test_box_states_are_orthonormal_and_free_box_energies_approach_the_continuum():
    mesh = RadialMesh(0.01, 10.0 - 0.01)  # wall at r = 10
    energies, u = box_states(mesh, mass=0.5)
    assert torch.allclose(mesh.step * u.T @ u, torch.eye(len(energies), dtype=torch.float64), atol=1e-10)
    n = torch.arange(1, 4, dtype=torch.float64)
    assert torch.allclose(energies[:3], (n * math.pi / 10.0) ** 2, rtol=1e-4)  # E = k^2/(2m), k = n pi / L


def test_synthetic_correlator_obeys_the_time_dependent_equation():
    a = LATTICE_SPACING_FM
    mesh = RadialMesh(a, 96 * a)
    r = mesh.nodes()
    m_h = OMEGA_MASS_LATTICE_MEV / HBARC_MEV_FM
    V = OMEGA_OMEGA(r) / HBARC_MEV_FM
    R, spectrum = synthetic_correlator(mesh, m_h / 2, torch.arange(8, 16, dtype=torch.float64) * a, wall_source(r), V=V)
    assert float(spectrum["energies"][0]) * HBARC_MEV_FM == pytest.approx(
        -1.5, abs=0.2
    )  # the shallow Omega-Omega bound state
    # leading-order potential of exact data = the potential, up to the O(dW^3 a^2) error of the time differences
    V_lo = leading_order_potential(R, a, m_h, time_step=a) * HBARC_MEV_FM
    window = (r[:-1] >= 0.2) & (r[:-1] <= 2.0)
    assert (
        float((V_lo - OMEGA_OMEGA(r)[:-1])[:, window].abs().max()) < 1.0
    )  # MeV, against a 69 MeV well and a 220 MeV core at 0.2 fm
    # the same with the residual form and the local kernel
    lhs = time_dependent_lhs(R, a, m_h, time_step=a)
    assert torch.allclose(lhs, V[:-1] * R[1:-1, :-1], atol=2e-3 * float(lhs.abs().max()))


def test_lattice_noise_has_the_stated_size_and_averages_out():
    g = torch.Generator().manual_seed(0)
    R = torch.ones(6, 50, dtype=torch.float64)
    samples = lattice_noise(
        R, 4000, relative_error=0.02, growth_per_slice=0.1, correlation_length=0.3, step=0.1, generator=g
    )
    rel = (samples / R - 1).std(0).mean(-1)
    expected = 0.02 * torch.exp(0.1 * torch.arange(6, dtype=torch.float64))
    assert torch.allclose(rel, expected, rtol=0.05)
    assert float((samples.mean(0) - R).abs().max()) < 5 * float(expected.max()) / math.sqrt(4000)
    # smooth in r: neighbours 0.1 apart with correlation length 0.3 are strongly correlated
    e = (samples / R - 1)[:, 0]
    assert float(torch.corrcoef(torch.stack([e[:, 10], e[:, 11]]))[0, 1]) > 0.9


def test_phase_shift_solver_rejects_bad_input():
    mesh = RadialMesh(0.1, 5.0)
    with pytest.raises(ValueError, match="ascending"):
        phase_shifts(torch.tensor([0.5, 0.2]), mesh, 1.0, V=torch.zeros(50, dtype=torch.float64))
    with pytest.raises(ValueError, match="sampled on the mesh"):
        phase_shifts(torch.tensor([0.5]), mesh, 1.0, U=torch.zeros(10, 10))
    with pytest.raises(ValueError, match="non-finite"):
        phase_shifts(torch.tensor([0.5]), mesh, 1.0, V=torch.full((50,), float("nan"), dtype=torch.float64))
