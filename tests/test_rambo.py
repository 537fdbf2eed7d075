"""RAMBO massless phase space: kinematics, the phase-space volume against independent integrations, flatness,
the cuts against a direct numpy computation, and argument checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hadrinv.physics.rambo import (
    cut_mask,
    generate_with_cuts,
    massless_phase_space_volume,
    pair_index,
    pair_invariants,
    rambo,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SQRT_S = 100.0


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _minkowski_square(p: torch.Tensor) -> torch.Tensor:
    return p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(dim=-1)


@pytest.mark.parametrize("n_final", [2, 3, 5, 8])
def test_momentum_conservation_masslessness_and_incoming(n_final):
    momenta, weights = rambo(n_final, SQRT_S, 2000, generator=_gen(1))
    assert momenta.shape == (2000, 2 + n_final, 4) and momenta.dtype == torch.float64
    assert weights.shape == (2000,)
    half = SQRT_S / 2
    expected_in = torch.tensor([[half, 0, 0, half], [half, 0, 0, -half]], dtype=torch.float64)
    assert torch.equal(momenta[:, :2], expected_in.expand(2000, 2, 4))
    final = momenta[:, 2:]
    imbalance = final.sum(dim=1) - momenta[:, :2].sum(dim=1)
    assert torch.max(torch.abs(imbalance)) / SQRT_S < 1e-12
    assert torch.max(torch.abs(_minkowski_square(final)) / final[..., 0] ** 2) < 1e-12
    assert bool((final[..., 0] > 0).all())


def test_weight_is_closed_form_volume():
    for n_final, sqrt_s in [(2, 7.0), (3, 91.2), (4, 13.0), (6, 500.0)]:
        _, weights = rambo(n_final, sqrt_s, 5, generator=_gen(2))
        assert torch.allclose(
            weights, torch.full((5,), massless_phase_space_volume(n_final, sqrt_s), dtype=torch.float64), rtol=1e-14
        )
    assert math.isclose(massless_phase_space_volume(2, 3.0), 1 / (8 * math.pi), rel_tol=1e-14)
    assert math.isclose(massless_phase_space_volume(3, 3.0), 9.0 / (256 * math.pi**3), rel_tol=1e-14)


def test_closed_form_obeys_phase_space_recursion():
    # Phi_n(s) = int_0^s ds' / (2 pi) Phi_2(s; sqrt(s'), 0) Phi_{n-1}(s'), Phi_2(s; m, 0) = (1 - m^2 / s) / (8 pi):
    # done here by Gauss-Legendre quadrature, exact for the polynomial integrand
    nodes, w = np.polynomial.legendre.leggauss(20)
    s = 37.0**2
    x = 0.5 * s * (nodes + 1)
    for n in range(3, 9):
        previous = np.array([massless_phase_space_volume(n - 1, math.sqrt(v)) for v in x])
        integral = 0.5 * s * np.sum(w * (1 - x / s) / (8 * math.pi) * previous) / (2 * math.pi)
        assert math.isclose(massless_phase_space_volume(n, math.sqrt(s)), integral, rel_tol=1e-12)


def _gaussian(x: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-0.5 * (x / width) ** 2) / (width * math.sqrt(2 * math.pi))


def test_two_body_volume_by_monte_carlo():
    # int d^3p / ((2 pi)^2 4 E^2) delta(sqrt_s - 2 E), p uniform in a cube, the delta a narrow Gaussian: the
    # p^2 of d^3p cancels the 1 / E^2, so the smearing leaves the estimate unbiased
    rng = np.random.default_rng(21)
    width = 0.02 * SQRT_S
    half = 0.5 * SQRT_S + 4 * width
    p = rng.uniform(-half, half, size=(2_000_000, 3))
    energy = np.linalg.norm(p, axis=-1)
    f = (2 * half) ** 3 * _gaussian(SQRT_S - 2 * energy, width) / ((2 * math.pi) ** 2 * 4 * energy**2)
    estimate, error = f.mean(), f.std() / math.sqrt(f.size)
    assert abs(estimate - 1 / (8 * math.pi)) < 4 * error
    assert error < 5e-3 * estimate
    assert math.isclose(rambo(2, SQRT_S, 1)[1].item(), 1 / (8 * math.pi), rel_tol=1e-14)


def test_three_body_volume_by_monte_carlo():
    # int d^3p1 d^3p2 / ((2 pi)^5 8 E1 E2 E3) delta(sqrt_s - E1 - E2 - E3), p3 = -p1 - p2; the Gaussian-smeared
    # delta averages Phi_3 ~ E^2 over E, which shifts s to s + width^2
    rng = np.random.default_rng(22)
    width = 0.02 * SQRT_S
    half = 0.5 * SQRT_S + 4 * width
    values = []
    for _ in range(6):
        p1 = rng.uniform(-half, half, size=(500_000, 3))
        p2 = rng.uniform(-half, half, size=(500_000, 3))
        e1, e2, e3 = (np.linalg.norm(p, axis=-1) for p in (p1, p2, -p1 - p2))
        values.append(_gaussian(SQRT_S - e1 - e2 - e3, width) / ((2 * math.pi) ** 5 * 8 * e1 * e2 * e3))
    f = (2 * half) ** 6 * np.concatenate(values)
    estimate, error = f.mean(), f.std() / math.sqrt(f.size)
    expected = massless_phase_space_volume(3, SQRT_S) * (SQRT_S**2 + width**2) / SQRT_S**2
    assert math.isclose(massless_phase_space_volume(3, SQRT_S), SQRT_S**2 / (256 * math.pi**3), rel_tol=1e-14)
    assert abs(estimate - expected) < 4 * error
    assert error < 1e-2 * estimate


def test_isotropy():
    momenta, _ = rambo(4, SQRT_S, 100_000, generator=_gen(3))
    final = momenta[:, 2:]
    cos_theta = (final[..., 3] / final[..., 0]).flatten()
    n = cos_theta.numel()
    assert abs(cos_theta.mean().item()) < 4 * math.sqrt(1 / 3 / n)
    # Var(cos^2) = 1/5 - 1/9 for cos uniform on [-1, 1]
    assert abs((cos_theta**2).mean().item() - 1 / 3) < 4 * math.sqrt((1 / 5 - 1 / 9) / n)
    phi = torch.atan2(final[..., 2], final[..., 1]).flatten()
    assert abs(torch.cos(phi).mean().item()) < 4 * math.sqrt(0.5 / n)
    assert abs(torch.sin(phi).mean().item()) < 4 * math.sqrt(0.5 / n)


def test_three_body_dalitz_plot_is_flat():
    # flat in (x1, x2) = 2 (E1, E2) / sqrt_s on the triangle x1, x2 <= 1 <= x1 + x2, so each x_i has the marginal
    # density 2 x on [0, 1]
    n_events, n_bins = 200_000, 20
    momenta, _ = rambo(3, SQRT_S, n_events, generator=_gen(4))
    x = (2 * momenta[:, 2:, 0] / SQRT_S).numpy()
    edges = np.linspace(0, 1, n_bins + 1)
    expected = n_events * (edges[1:] ** 2 - edges[:-1] ** 2)
    ndf = n_bins - 1
    for i in range(3):
        counts, _ = np.histogram(x[:, i], bins=edges)
        chi2 = np.sum((counts - expected) ** 2 / expected)
        assert chi2 < ndf + 5 * math.sqrt(2 * ndf)
    # and flat in two dimensions: a 10 x 10 grid of (x1, x2), cells wholly inside the triangle
    counts2, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=10, range=[[0, 1], [0, 1]])
    lo = np.arange(10) / 10
    inside = (lo[:, None] + lo[None, :]) >= 1.0 - 1e-12
    expected_cell = n_events * 0.01 / 0.5
    chi2 = np.sum((counts2[inside] - expected_cell) ** 2 / expected_cell)
    assert chi2 < inside.sum() + 5 * math.sqrt(2 * inside.sum())


def test_pair_invariants_and_index():
    assert pair_index(4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    momenta, _ = rambo(3, SQRT_S, 10, generator=_gen(5))
    s = pair_invariants(momenta)
    assert s.shape == (10, 10)
    p = momenta.numpy()
    metric = np.array([1.0, -1, -1, -1])
    for k, (i, j) in enumerate(pair_index(5)):
        q = p[:, i] + p[:, j]
        assert np.allclose(s[:, k].numpy(), (q * q * metric).sum(axis=-1), rtol=1e-12, atol=1e-9)
    assert torch.allclose(s[:, 0], torch.full((10,), SQRT_S**2, dtype=torch.float64))


def _numpy_cuts(p: np.ndarray, pt_min, y_max, dr_min) -> np.ndarray:
    keep = np.ones(p.shape[0], dtype=bool)
    final = p[:, 2:]
    pt = np.hypot(final[..., 1], final[..., 2])
    y = 0.5 * np.log((final[..., 0] + final[..., 3]) / (final[..., 0] - final[..., 3]))
    phi = np.arctan2(final[..., 2], final[..., 1])
    if pt_min is not None:
        keep &= np.all(pt >= pt_min, axis=1)
    if y_max is not None:
        keep &= np.all(np.abs(y) <= y_max, axis=1)
    if dr_min is not None:
        n = final.shape[1]
        for i in range(n):
            for j in range(i + 1, n):
                dphi = np.abs(phi[:, i] - phi[:, j])
                dphi = np.minimum(dphi, 2 * np.pi - dphi)
                keep &= np.hypot(y[:, i] - y[:, j], dphi) >= dr_min
    return keep


@pytest.mark.parametrize(
    "cuts", [(10.0, None, None), (None, 1.5, None), (None, None, 1.0), (8.0, 2.0, 0.9), (None, None, None)]
)
def test_cut_mask_matches_direct_computation(cuts):
    momenta, _ = rambo(4, SQRT_S, 400, generator=_gen(6))
    mask = cut_mask(momenta, 2, *cuts)
    expected = _numpy_cuts(momenta.numpy(), *cuts)
    assert mask.dtype == torch.bool and mask.shape == (400,)
    assert np.array_equal(mask.numpy(), expected)
    if cuts != (None, None, None):
        assert 0 < expected.sum() < 400  # the cut does something here


def test_generate_with_cuts():
    cuts = {"pt_min_gev": 10.0, "abs_rapidity_max": 2.0, "delta_r_min": 0.7}
    momenta, weights, pass_fraction = generate_with_cuts(3, SQRT_S, 3000, _gen(7), batch_size=1000, **cuts)
    assert momenta.shape == (3000, 5, 4) and weights.shape == (3000,)
    assert bool(cut_mask(momenta, 2, **cuts).all())
    assert torch.allclose(
        weights, torch.full((3000,), massless_phase_space_volume(3, SQRT_S), dtype=torch.float64), rtol=1e-14
    )
    plain, _ = rambo(3, SQRT_S, 50_000, generator=_gen(8))
    fraction = cut_mask(plain, 2, **cuts).double().mean().item()
    error = math.sqrt(fraction * (1 - fraction) / 50_000) + math.sqrt(fraction * (1 - fraction) / 3000)
    assert abs(pass_fraction - fraction) < 4 * error
    with pytest.raises(RuntimeError):
        generate_with_cuts(3, SQRT_S, 10, _gen(9), pt_min_gev=SQRT_S, max_points=20_000)


def test_reproducible_with_seed():
    a, _ = rambo(5, SQRT_S, 100, generator=_gen(10))
    b, _ = rambo(5, SQRT_S, 100, generator=_gen(10))
    c, _ = rambo(5, SQRT_S, 100, generator=_gen(11))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "args", [(1, SQRT_S, 10), (0, SQRT_S, 10), (3, 0.0, 10), (3, -5.0, 10), (3, float("nan"), 10), (3, SQRT_S, 0)]
)
def test_bad_arguments_raise(args):
    with pytest.raises(ValueError):
        rambo(*args)
    with pytest.raises(ValueError):
        generate_with_cuts(*args)
