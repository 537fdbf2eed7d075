"""Physics checks of the s-wave Numerov solver and the femtoscopic correlation functions built on it.

Analytic cases (free, Bargmann, square well), low-energy quantities, the talk's N-Omega potential,
Lednicky-Lyuboshits identities and limits, the independent DOP853 reference (acceptance 1), gradients and
batching. Units MeV and fm.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import torch

from hadrinv.physics.femtoscopy import (
    HAL_N_OMEGA,
    GaussianYukawaPotential,
    amplitude_from_phase_shift,
    binding_energy,
    correlation_function,
    effective_range_fit,
    lednicky_lyuboshits,
    lednicky_lyuboshits_from_amplitude,
    scattering_length,
)
from hadrinv.physics.femtoscopy_reference import gaussian_yukawa_numpy, reference_correlation
from hadrinv.physics.schrodinger import HBARC_MEV_FM, StretchedGrid, solve_s_wave

DT = torch.float64
MU_P_OMEGA = 601.065
MU_LATTICE_N_OMEGA = 955.0 * 1712.0 / (955.0 + 1712.0)  # 613.03 MeV, the lattice masses of the HAL QCD fit
K_SCAN = torch.tensor([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0], dtype=DT)

# the talk's training ranges (multiples of the t/a = 11 values) and source sizes
PARAMETER_LOW = np.array([-2145.5, 0.739, -1064.0, 0.078])
PARAMETER_HIGH = np.array([1532.5, 147.761, 532.0, 154.422])


def to_fm(k_mev):
    return torch.as_tensor(k_mev, dtype=DT) / HBARC_MEV_FM


def mev_per_fm2(mu):
    """V in MeV of U = 1 fm^-2: (hbar c)^2 / (2 mu)."""
    return HBARC_MEV_FM**2 / (2.0 * mu)


def bargmann(b, th, mu=MU_P_OMEGA):
    """U = -2 b^2 sech^2(b r + th) (fm^-2, b in fm^-1) as a potential in MeV."""
    return lambda r: (-2.0 * b * b / torch.cosh(b * r + th) ** 2 * mev_per_fm2(mu))[None]


def bargmann_exact(b, th, k_fm):
    """delta (continuous, delta(0+) = pi if bound), nuclear a0 and r_eff, binding momentum (or None)."""
    a = b * math.tanh(th)
    delta = torch.atan(b / k_fm) - torch.atan(a / k_fm)
    return delta, -(b - a) / (a * b), 2.0 / (b - a), (-a if a < 0 else None)


# b >= 1.2 fm^-1 keeps the sech^2 tail below 1e-11 fm^-2 at the matching radius (11-12 fm)
BARGMANN_CASES = [(1.5, 0.5), (1.2, 1.0), (1.3, -0.4)]  # the last has one bound state (a < 0)


# ---------------------------------------------------------------------------------------------- analytic


def test_free_potential_gives_no_correlation():
    """V = 0: C = 1 and delta = 0 to 1e-8.

    The one thing that is not exactly zero is Numerov's phase error of the free wave, ~ k^5 h^4: on the
    default grid delta reaches 2.3e-8 rad at 300 MeV (3e-9 at 200 MeV), 16x less at half the step. So
    delta is held to 1e-8 up to 200 MeV on the default grid and up to 300 MeV on a grid with half the step,
    and the h^4 convergence is checked (a bug in the matching would not converge)."""
    zero = lambda r: torch.zeros(2, r.shape[0], dtype=DT)
    r0 = torch.tensor([0.7, 3.0], dtype=DT)
    C, delta = correlation_function(zero, K_SCAN, r0, MU_P_OMEGA)
    assert (C - 1.0).abs().max().item() < 1e-8
    assert delta[:, K_SCAN <= 200].abs().max().item() < 1e-8
    C_fine, delta_fine = correlation_function(zero, K_SCAN, r0, MU_P_OMEGA, grid=StretchedGrid(step_fm=0.01))
    assert (C_fine - 1.0).abs().max().item() < 1e-8
    assert delta_fine.abs().max().item() < 1e-8
    assert delta[0, -1].abs().item() > 10 * delta_fine[0, -1].abs().item()  # h^4: ratio 16


@pytest.mark.parametrize("b,th", BARGMANN_CASES)
def test_bargmann_phase_shifts(b, th):
    k = torch.cat([torch.tensor([1.0, 1.5, 3.0], dtype=DT), torch.linspace(5.0, 300.0, 60, dtype=DT)])
    exact, *_, kappa = bargmann_exact(b, th, to_fm(k))
    delta = solve_s_wave(bargmann(b, th), k, MU_P_OMEGA).delta[0]
    assert (delta - exact).abs().max().item() < 1e-6
    # Levinson: delta(0+) = n_bound pi; delta(k) - delta(0+) = -k (1/b + 1/|a|) + O(k^3), < 0.015 rad at 1 MeV
    n_bound = 1 if kappa is not None else 0
    assert abs(delta[0].item() - n_bound * math.pi) < 0.02


@pytest.mark.parametrize("V0,R", [(20.0, 1.0), (50.0, 2.0), (300.0, 1.0), (20.0, 3.0)])
def test_square_well_phase_shifts(V0, R):
    """tan(k R + delta) = (k/K) tan(K R), K = sqrt(k^2 + U0).

    Tolerance 1e-3 rad on a 4x finer grid (step 0.005 fm): the jump of V at R breaks Numerov's O(h^4)
    error (it assumes a smooth u''), leaving an O(h) error that depends on where R falls between nodes.
    Measured: up to 1.1e-3 rad on the default grid, up to 4.1e-4 rad with step 0.005 fm (V0 = 20 MeV,
    R = 3 fm); the same solver reaches 2e-8 on the smooth Bargmann potentials."""
    k = torch.cat([torch.tensor([1.0, 3.0], dtype=DT), torch.linspace(10.0, 300.0, 30, dtype=DT)])
    k_fm = to_fm(k)
    U0 = V0 / mev_per_fm2(MU_P_OMEGA)
    K = torch.sqrt(k_fm**2 + U0)
    well = lambda r: torch.where(r < R, -V0, 0.0).to(DT)[None]
    delta = solve_s_wave(well, k, MU_P_OMEGA, StretchedGrid(step_fm=0.005)).delta[0]
    exact_mod_pi = torch.atan(k_fm / K * torch.tan(K * R)) - k_fm * R
    diff = torch.remainder(delta - exact_mod_pi + math.pi / 2, math.pi) - math.pi / 2
    assert diff.abs().max().item() < 1e-3
    # Levinson's branch: bound states of the well = number of pi/2 + n pi below K(0) R
    n_bound = math.floor(math.sqrt(U0) * R / math.pi + 0.5)
    assert abs(delta[0].item() - n_bound * math.pi) < 0.05


# ----------------------------------------------------------------------------------- low-energy quantities


@pytest.mark.parametrize("b,th", BARGMANN_CASES)
def test_bargmann_scattering_length_and_effective_range(b, th):
    _, a0, r_eff, kappa = bargmann_exact(b, th, to_fm(1.0))
    fit = effective_range_fit(bargmann(b, th), MU_P_OMEGA)
    assert fit.a0_fm.item() == pytest.approx(a0, rel=1e-5)
    assert fit.r_eff_fm.item() == pytest.approx(r_eff, rel=1e-5)
    assert abs(fit.shape_fm3.item()) < 1e-3  # k cot delta is exactly quadratic in k
    a0_zero, n_bound = scattering_length(bargmann(b, th), MU_P_OMEGA)
    assert a0_zero.item() == pytest.approx(a0, rel=1e-5)
    assert n_bound.item() == (1 if kappa is not None else 0)


@pytest.mark.parametrize("b,th", BARGMANN_CASES)
def test_bargmann_binding_energy(b, th):
    *_, kappa = bargmann_exact(b, th, to_fm(1.0))
    B, n_bound = binding_energy(bargmann(b, th), MU_P_OMEGA)
    if kappa is None:
        assert math.isnan(B.item()) and n_bound.item() == 0
    else:
        assert B.item() == pytest.approx(kappa**2 * mev_per_fm2(MU_P_OMEGA), rel=1e-6)
        assert n_bound.item() == 1


def test_n_omega_low_energy_constants_match_hal_qcd():
    """Published (Iritani et al. 2019, lattice masses): a0 = 5.30 fm, r_eff = 1.26 fm, B = 1.54 MeV."""
    assert MU_LATTICE_N_OMEGA == pytest.approx(613.03, abs=0.01)
    potential = GaussianYukawaPotential(**HAL_N_OMEGA)
    fit = effective_range_fit(potential, MU_LATTICE_N_OMEGA)
    a0_zero, n_bound = scattering_length(potential, MU_LATTICE_N_OMEGA)
    B, n_bound_b = binding_energy(potential, MU_LATTICE_N_OMEGA)
    assert fit.a0_fm.item() == pytest.approx(5.30, rel=0.02)
    assert a0_zero.item() == pytest.approx(5.30, rel=0.02)
    assert fit.r_eff_fm.item() == pytest.approx(1.26, rel=0.03)
    assert B.item() == pytest.approx(1.54, rel=0.02)
    assert n_bound.item() == 1 and n_bound_b.item() == 1
    # the physical p-Omega reduced mass binds less: larger a0, smaller B
    B_phys, _ = binding_energy(potential, MU_P_OMEGA)
    assert B_phys.item() == pytest.approx(1.29, abs=0.01)
    # a0 from the zero-energy solution and from the effective-range fit agree
    assert a0_zero.item() == pytest.approx(fit.a0_fm.item(), rel=1e-5)


# ------------------------------------------------------------------------------- Lednicky-Lyuboshits


def asymptotic_koonin_pratt(k_mev: float, r0: float, delta: float) -> float:
    """1 + int_0^inf 4 pi S(r) [sin^2(k r + delta) - sin^2(k r)] / k^2 dr by adaptive quadrature
    (upper limit 16 r0: S < e^-64 S(0) beyond)."""
    k = k_mev / HBARC_MEV_FM
    norm = (4.0 * math.pi * r0 * r0) ** -1.5
    f = lambda r: (
        4.0
        * math.pi
        * norm
        * math.exp(-r * r / (4.0 * r0 * r0))
        * (math.sin(k * r + delta) ** 2 - math.sin(k * r) ** 2)
    )
    return 1.0 + scipy.integrate.quad(f, 0.0, 16.0 * r0, limit=500, epsabs=1e-15, epsrel=1e-13)[0] / k**2


@pytest.mark.parametrize("r0", [0.8, 2.5])
def test_ll_without_correction_is_koonin_pratt_of_asymptotic_wave(r0):
    k = torch.tensor([1.0, 7.0, 40.0, 120.0, 300.0], dtype=DT)
    b = torch.tensor([[HAL_N_OMEGA[n] for n in ("b1", "b2", "b3", "b4")], [-1500.0, 30.0, -600.0, 50.0]], dtype=DT)
    delta = solve_s_wave(GaussianYukawaPotential.from_parameters(b), k, MU_P_OMEGA).delta  # (2, K)
    assert delta[1, 0].item() > 2 * math.pi  # the second potential has several bound states
    ll = lednicky_lyuboshits_from_amplitude(k, torch.tensor([r0, r0], dtype=DT), amplitude_from_phase_shift(k, delta))
    for p in range(2):
        for j in range(len(k)):
            expected = asymptotic_koonin_pratt(k[j].item(), r0, delta[p, j].item())
            assert ll[p, j].item() == pytest.approx(expected, abs=1e-8)


def test_full_correlation_approaches_ll_only_at_large_sources():
    """At r0 = 5 fm the N-Omega C agrees with LL(a0, r_eff) to 2.1e-4 for k < 100 MeV (the LL error
    falls roughly as R^-5: 2.5e-3 at 3 fm, 4e-5 at 8 fm); tolerance 1e-3. At r0 = 1 fm they differ by 0.53:
    LL, even with its correction factor, is no ground truth for small sources."""
    potential = GaussianYukawaPotential(**HAL_N_OMEGA)
    fit = effective_range_fit(potential, MU_P_OMEGA)
    k = torch.linspace(1.0, 99.0, 50, dtype=DT)
    C5, _ = correlation_function(potential, k, 5.0, MU_P_OMEGA)
    ll5 = lednicky_lyuboshits(k, 5.0, fit.a0_fm, fit.r_eff_fm)
    assert (C5 - ll5).abs().max().item() < 1e-3
    C1, _ = correlation_function(potential, k, 1.0, MU_P_OMEGA)
    ll1 = lednicky_lyuboshits(k, 1.0, fit.a0_fm, fit.r_eff_fm)
    assert (C1 - ll1).abs().max().item() > 0.1
    # the r_eff correction matters: without it LL is far off even at 5 fm
    ll5_bare = lednicky_lyuboshits(k, 5.0, fit.a0_fm, fit.r_eff_fm, effective_range_correction=False)
    assert (C5 - ll5_bare).abs().max().item() > 1e-2


# -------------------------------------------------------------------------- independent reference


def test_against_independent_dop853_reference():
    """Acceptance 1 on random draws over the talk's ranges: |dC| <= 1e-3 max(1, |C|), |d delta| < 0.1 deg."""
    rng = np.random.default_rng(20240611)
    n = 4
    b = PARAMETER_LOW + (PARAMETER_HIGH - PARAMETER_LOW) * rng.random((n, 4))
    r0 = 0.5 + 3.5 * rng.random(n)
    k = np.array([1.0, 10.0, 50.0, 150.0, 300.0])
    C, delta = correlation_function(
        GaussianYukawaPotential.from_parameters(torch.tensor(b)), torch.tensor(k), torch.tensor(r0), MU_P_OMEGA
    )
    for p in range(n):
        C_ref, delta_ref = reference_correlation(gaussian_yukawa_numpy(*b[p]), k, r0[p], MU_P_OMEGA)
        dC = np.abs(C[p].numpy() - C_ref)
        assert (dC <= 1e-3 * np.maximum(1.0, np.abs(C_ref))).all(), (b[p], r0[p], dC)
        assert np.degrees(np.abs(delta[p].numpy() - delta_ref)).max() < 0.1, (b[p], delta[p], delta_ref)


def test_reference_reproduces_bargmann():
    """The reference itself on an analytic case (so that acceptance 1 compares against something right)."""
    b, th = 1.3, -0.4
    k = np.array([1.0, 30.0, 200.0])
    V = lambda r: -2.0 * b * b / np.cosh(b * r + th) ** 2 * mev_per_fm2(MU_P_OMEGA)
    C_ref, delta_ref = reference_correlation(V, k, 1.2, MU_P_OMEGA)
    exact, *_ = bargmann_exact(b, th, to_fm(k))
    assert np.abs(delta_ref - exact.numpy()).max() < 1e-8
    C, _ = correlation_function(bargmann(b, th), torch.tensor(k), 1.2, MU_P_OMEGA)
    assert np.abs(C[0].numpy() - C_ref).max() < 1e-6


# -------------------------------------------------------------------------------- gradients, batching


def test_gradients_match_finite_differences():
    k = torch.tensor([5.0, 40.0, 150.0], dtype=DT)

    def C_of(b1, r0):
        potential = GaussianYukawaPotential(b1, HAL_N_OMEGA["b2"], HAL_N_OMEGA["b3"], HAL_N_OMEGA["b4"])
        return correlation_function(potential, k, r0, MU_P_OMEGA)[0][0]

    b1 = torch.tensor([HAL_N_OMEGA["b1"]], dtype=DT, requires_grad=True)
    r0 = torch.tensor([1.5], dtype=DT, requires_grad=True)
    C = C_of(b1, r0)
    jac = [torch.autograd.grad(C[j], (b1, r0), retain_graph=True) for j in range(len(k))]
    hb, hr = 1e-2, 1e-4
    with torch.no_grad():
        fd_b1 = (C_of(b1 + hb, r0) - C_of(b1 - hb, r0)) / (2 * hb)
        fd_r0 = (C_of(b1, r0 + hr) - C_of(b1, r0 - hr)) / (2 * hr)
    for j in range(len(k)):
        assert jac[j][0].item() == pytest.approx(fd_b1[j].item(), rel=1e-5)
        assert jac[j][1].item() == pytest.approx(fd_r0[j].item(), rel=1e-5)
        assert abs(jac[j][0].item()) > 1e-6 and abs(jac[j][1].item()) > 1e-6  # not trivially zero


def random_batch(n, seed):
    rng = np.random.default_rng(seed)
    b = PARAMETER_LOW + (PARAMETER_HIGH - PARAMETER_LOW) * rng.random((n, 4))
    return torch.tensor(b), torch.tensor(0.5 + 3.5 * rng.random(n))


def test_batch_consistency():
    b, r0 = random_batch(5, 7)
    k = K_SCAN
    C_all, d_all = correlation_function(GaussianYukawaPotential.from_parameters(b), k, r0, MU_P_OMEGA)
    for p in range(len(b)):
        C_one, d_one = correlation_function(
            GaussianYukawaPotential.from_parameters(b[p : p + 1]), k, r0[p : p + 1], MU_P_OMEGA
        )
        assert (C_one[0] - C_all[p]).abs().max().item() < 1e-12
        assert (d_one[0] - d_all[p]).abs().max().item() < 1e-12


def test_chunk_size_independence():
    b, r0 = random_batch(7, 11)
    potential = GaussianYukawaPotential.from_parameters(b)
    C_ref, d_ref = correlation_function(potential, K_SCAN, r0, MU_P_OMEGA, chunk=128)
    for chunk in (1, 3, 4):
        C, d = correlation_function(potential, K_SCAN, r0, MU_P_OMEGA, chunk=chunk)
        assert C.shape == C_ref.shape
        assert (C - C_ref).abs().max().item() < 1e-12
        assert (d - d_ref).abs().max().item() < 1e-12


def test_a_nan_parameter_is_an_error_not_a_free_potential():
    potential = GaussianYukawaPotential(torch.tensor([-300.0, float("nan")]), 73.9, -266.0, 0.78)
    with pytest.raises(ValueError, match="potential 1 is nan"):
        correlation_function(potential, torch.tensor([10.0, 50.0]), 1.3)


def test_momenta_beyond_the_matching_resolution_are_refused():
    potential = GaussianYukawaPotential(-300.0, 73.9, -266.0, 0.78)
    with pytest.raises(ValueError, match="match_separation_fm"):
        correlation_function(potential, torch.tensor([10.0, 600.0]), 1.3)
