"""Toy DIS of talk 003: evolution variable, valence-like shapes, linear (u, d) inversion, gradients, batching,
the prior box, experiment kinematics, and the DIS CSV reader."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch
from scipy import integrate, special

from hadrinv.data.dis_toy import (
    EXPERIMENTS,
    OBSERVABLE_COLUMNS,
    W2_MIN_GEV2,
    DISData,
    experiment_bins,
    pad_point_clouds,
    padding_mask,
    point_cloud,
    read_dis_data,
    regular_grid,
    simulate,
    simulate_dis_data,
    write_dis_data,
)
from hadrinv.data.validation import DataError
from hadrinv.physics.dis import (
    DEFAULT_SPACE,
    LAMBDA2_GEV2,
    PARAMETER_NAMES,
    Q0_2_GEV2,
    SHAPE_NAMES,
    DISParameterSpace,
    cross_sections,
    evolution_variable,
    invariant_mass_squared,
    parton_distribution,
    quark_distributions_from_cross_sections,
    shape_parameters,
)


def random_full(n: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """Parameters with every one of the 20 non-trivial (gamma, delta and all slopes too), all q > 0."""
    g = torch.Generator().manual_seed(seed)
    full = DEFAULT_SPACE.full_parameters(DEFAULT_SPACE.sample_prior(n, g, dtype))
    extra = 0.3 * torch.rand(n, 8, generator=g, dtype=dtype)  # gamma, delta p0 and p1 in [0, 0.3]
    for k, name in enumerate(n for n in PARAMETER_NAMES if n.startswith(("gamma", "delta"))):
        full[:, PARAMETER_NAMES.index(name)] = extra[:, k]
    return full


def numpy_q(p: dict, x: np.ndarray, q2: float, flavour: str) -> np.ndarray:
    """Independent evaluation of q(x, Q2) from a name -> value dict."""
    s = math.log(math.log(q2 / 0.4) / math.log(1.0 / 0.4))
    v = {k: p[f"{k}_{flavour}0"] + p[f"{k}_{flavour}1"] * s for k in ("N", "alpha", "beta", "gamma", "delta")}
    return v["N"] * x ** v["alpha"] * (1 - x) ** v["beta"] * (1 + v["gamma"] * np.sqrt(x) + v["delta"] * x)


# ----------------------------------------------------------------------------------------------
# Physics of the forward model
# ----------------------------------------------------------------------------------------------


def test_parameter_layout_and_constants():
    assert len(PARAMETER_NAMES) == 20 and len(set(PARAMETER_NAMES)) == 20
    assert PARAMETER_NAMES[:6] == ("N_u0", "N_u1", "alpha_u0", "alpha_u1", "beta_u0", "beta_u1")
    assert PARAMETER_NAMES[10:12] == ("N_d0", "N_d1") and PARAMETER_NAMES[-1] == "delta_d1"
    assert (Q0_2_GEV2, LAMBDA2_GEV2) == (1.0, 0.4)


def test_evolution_variable_vanishes_at_q0_and_grows_like_loglog():
    assert evolution_variable(torch.tensor(Q0_2_GEV2, dtype=torch.float64)).item() == 0.0
    q2 = torch.tensor([1.5, 10.0, 200.0], dtype=torch.float64)
    expected = [math.log(math.log(q / 0.4) / math.log(2.5)) for q in q2.tolist()]
    torch.testing.assert_close(evolution_variable(q2), torch.tensor(expected, dtype=torch.float64), rtol=1e-14, atol=0)
    assert evolution_variable(200.0).item() == pytest.approx(1.9143, abs=1e-4)
    assert torch.isnan(evolution_variable(torch.tensor(0.3)))  # below Lambda^2: undefined


def test_shape_parameters_are_p0_at_q0_and_linear_in_s():
    full = random_full(4, seed=1)
    q2 = torch.tensor([Q0_2_GEV2, 5.0, 50.0], dtype=torch.float64)
    p = shape_parameters(full, q2)
    assert p.shape == (4, 3, 10)
    torch.testing.assert_close(p[:, 0], full[:, 0::2], rtol=0, atol=0)
    s = evolution_variable(q2)
    k = SHAPE_NAMES.index("beta_d")
    torch.testing.assert_close(
        p[:, 2, k], full[:, PARAMETER_NAMES.index("beta_d0")] + full[:, PARAMETER_NAMES.index("beta_d1")] * s[2]
    )


def test_parton_distributions_match_independent_formula():
    full = random_full(2, seed=2)
    x = np.geomspace(0.01, 0.9, 13)
    for q2 in (1.0, 7.0, 150.0):
        for flavour in ("u", "d"):
            got = parton_distribution(full, torch.as_tensor(x), torch.full((13,), q2, dtype=torch.float64), flavour)
            for b in range(2):
                ref = numpy_q(dict(zip(PARAMETER_NAMES, full[b].tolist())), x, q2, flavour)
                np.testing.assert_allclose(got[b].numpy(), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="flavour"):
        parton_distribution(full, torch.as_tensor(x), torch.ones(13, dtype=torch.float64), "s")


def test_linear_inversion_recovers_u_and_d():
    full = random_full(5, seed=3)
    x, q2 = regular_grid(7, 5)
    sigma = cross_sections(full, x, q2)
    u = parton_distribution(full, x, q2, "u")
    d = parton_distribution(full, x, q2, "d")
    # the proton and neutron combinations of the talk
    torch.testing.assert_close(sigma[..., 0], 4 * u + d, rtol=1e-14, atol=0)
    torch.testing.assert_close(sigma[..., 1], 4 * d + u, rtol=1e-14, atol=0)
    # and their inversion
    torch.testing.assert_close((4 * sigma[..., 0] - sigma[..., 1]) / 15, u, rtol=1e-12, atol=0)
    torch.testing.assert_close((4 * sigma[..., 1] - sigma[..., 0]) / 15, d, rtol=1e-12, atol=0)
    torch.testing.assert_close(
        quark_distributions_from_cross_sections(sigma), torch.stack([u, d], -1), rtol=1e-12, atol=0
    )
    # isospin: swapping u and d parameters swaps proton and neutron
    swapped = torch.cat([full[:, 10:], full[:, :10]], dim=1)
    torch.testing.assert_close(cross_sections(swapped, x, q2), sigma.flip(-1), rtol=1e-14, atol=0)


@pytest.mark.parametrize("q2", [Q0_2_GEV2, 30.0])
def test_number_integral_is_a_beta_function(q2):
    """int_0^1 N x^a (1-x)^b (1 + g sqrt(x) + e x) dx = N [B(a+1,b+1) + g B(a+3/2,b+1) + e B(a+2,b+1)]."""
    full = random_full(1, seed=4)[0]
    p = dict(zip(SHAPE_NAMES, shape_parameters(full, torch.tensor([q2], dtype=torch.float64))[0].tolist()))
    for flavour in ("u", "d"):
        n, a, b, g, e = (p[f"{k}_{flavour}"] for k in ("N", "alpha", "beta", "gamma", "delta"))
        assert g > 0 and e > 0  # the gamma and delta terms really contribute

        def q(x, flavour=flavour):
            return parton_distribution(
                full, torch.tensor([x], dtype=torch.float64), torch.tensor([q2], dtype=torch.float64), flavour
            ).item()

        numeric, _ = integrate.quad(q, 0.0, 1.0, epsabs=0, epsrel=1e-10, limit=200)
        analytic = n * (special.beta(a + 1, b + 1) + g * special.beta(a + 1.5, b + 1) + e * special.beta(a + 2, b + 1))
        assert numeric == pytest.approx(analytic, rel=1e-8)
        # gamma = delta = 0: just N B(alpha + 1, beta + 1)
        plain = full.clone()
        k = 0 if flavour == "u" else 10
        plain[k + 6 : k + 10] = 0.0

        def q_plain(x, plain=plain, flavour=flavour):
            return parton_distribution(
                plain, torch.tensor([x], dtype=torch.float64), torch.tensor([q2], dtype=torch.float64), flavour
            ).item()

        numeric, _ = integrate.quad(q_plain, 0.0, 1.0, epsabs=0, epsrel=1e-10, limit=200)
        assert numeric == pytest.approx(n * special.beta(a + 1, b + 1), rel=1e-8)


def test_autograd_matches_finite_differences_and_analytic_derivative():
    full = random_full(2, seed=5).requires_grad_(True)
    x = torch.tensor([0.02, 0.2, 0.6], dtype=torch.float64, requires_grad=True)
    q2 = torch.tensor([2.0, 20.0, 120.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p, xx: cross_sections(p, xx, q2), (full, x), eps=1e-6, atol=1e-8, rtol=1e-6)
    # d sigma_p / d N_u0 = 4 u / N_u(Q2) and d sigma_p / d N_u1 = 4 u s / N_u(Q2)
    sigma = cross_sections(full, x.detach(), q2)
    (grad,) = torch.autograd.grad(sigma[..., 0].sum(), full)
    with torch.no_grad():
        u = parton_distribution(full, x, q2, "u")
        n_u = shape_parameters(full, q2)[..., SHAPE_NAMES.index("N_u")]
        s = evolution_variable(q2)
    torch.testing.assert_close(grad[:, PARAMETER_NAMES.index("N_u0")], (4 * u / n_u).sum(-1))
    torch.testing.assert_close(grad[:, PARAMETER_NAMES.index("N_u1")], (4 * u * s / n_u).sum(-1))


def test_batched_shapes_broadcast_and_agree_with_single_evaluations():
    full = random_full(3, seed=6)
    x, q2 = (torch.as_tensor(a) for a in regular_grid(4, 3))
    shared = cross_sections(full, x, q2)
    assert shared.shape == (3, 12, 2)
    per_sample = cross_sections(full, x.expand(3, 12), q2.expand(3, 12))
    torch.testing.assert_close(per_sample, shared, rtol=0, atol=0)
    for b in range(3):
        torch.testing.assert_close(cross_sections(full[b], x, q2), shared[b], rtol=0, atol=0)
    # different kinematics per sample
    x2 = torch.stack([x, x.flip(0), x.roll(1)])
    out = cross_sections(full, x2, q2)
    torch.testing.assert_close(out[1], cross_sections(full[1], x.flip(0), q2), rtol=0, atol=0)
    # float32 in, float32 out, close to float64
    out32 = cross_sections(full.float(), x.float(), q2.float())
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), shared, rtol=1e-5, atol=0)
    assert parton_distribution(full, x, q2, "d").shape == (3, 12)


# ----------------------------------------------------------------------------------------------
# Parameter space and prior
# ----------------------------------------------------------------------------------------------


def test_default_space_layout_and_full_parameters():
    space = DEFAULT_SPACE
    assert space.n_free == 12 and len(space.free_names) == 12
    assert set(space.free_names) == {f"{p}_{q}{k}" for p in ("N", "alpha", "beta") for q in "ud" for k in (0, 1)}
    assert all(n.startswith(("gamma", "delta")) for n in space.fixed_names)
    assert torch.all(space.low < space.high)
    central = dict(zip(PARAMETER_NAMES, space.central))
    for name in ("N_u0", "alpha_u0", "beta_u0", "N_d0", "alpha_d0", "beta_d0"):  # +-20% boxes around the central p0
        lo, hi = space.low[space.free_names.index(name)].item(), space.high[space.free_names.index(name)].item()
        assert lo == pytest.approx(0.8 * central[name]) and hi == pytest.approx(1.2 * central[name])
    free = space.sample_prior(6, torch.Generator().manual_seed(0)).requires_grad_(True)
    full = space.full_parameters(free)
    assert full.shape == (6, 20)
    torch.testing.assert_close(full[:, list(space.free_index)], free, rtol=0, atol=0)
    fixed = [PARAMETER_NAMES.index(n) for n in space.fixed_names]
    torch.testing.assert_close(
        full[:, fixed], torch.tensor([space.central[i] for i in fixed], dtype=torch.float64).expand(6, -1)
    )
    full.sum().backward()  # differentiable w.r.t. the free parameters
    torch.testing.assert_close(free.grad, torch.ones_like(free))
    torch.testing.assert_close(space.free_parameters(full.detach()), free.detach())
    assert space.contains(free.detach()).all()
    assert not space.contains(space.high + 1e-3)
    with pytest.raises(ValueError, match="12 free"):
        space.full_parameters(torch.zeros(2, 11))


def test_parameter_space_validation():
    central = (0.0,) * 20
    with pytest.raises(ValueError, match="unknown"):
        DISParameterSpace(central, (("N_s0", 0.0, 1.0),))
    with pytest.raises(ValueError, match="twice"):
        DISParameterSpace(central, (("N_u0", 0.0, 1.0), ("N_u0", 0.0, 1.0)))
    with pytest.raises(ValueError, match="low < high"):
        DISParameterSpace(central, (("N_u0", 1.0, 1.0),))
    with pytest.raises(ValueError, match="20 values"):
        DISParameterSpace((0.0,) * 19, ())


def test_prior_samples_are_inside_the_box_and_reproducible():
    a = DEFAULT_SPACE.sample_prior(2000, torch.Generator().manual_seed(7))
    b = DEFAULT_SPACE.sample_prior(2000, torch.Generator().manual_seed(7))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert a.shape == (2000, 12)
    assert torch.all(a >= DEFAULT_SPACE.low) and torch.all(a <= DEFAULT_SPACE.high)
    # uniform: each marginal fills its box (mean near the centre, extremes near the edges)
    centre = (DEFAULT_SPACE.low + DEFAULT_SPACE.high) / 2
    width = DEFAULT_SPACE.high - DEFAULT_SPACE.low
    assert torch.all((a.mean(0) - centre).abs() < 0.05 * width)
    assert torch.all(a.min(0).values < DEFAULT_SPACE.low + 0.01 * width)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_corner_of_the_prior_box_gives_positive_finite_cross_sections(dtype):
    """sigma is monotone in each N and, for fixed x, log-linear in alpha and beta, so the extremes over
    the box are at its corners: checking all 2^12 corners on a dense (x, Q2) grid covers every prior draw."""
    space = DEFAULT_SPACE
    corners = torch.tensor(list(itertools.product(*zip(space.low.tolist(), space.high.tolist()))), dtype=dtype)
    assert corners.shape == (4096, 12)
    xs = torch.tensor(np.geomspace(0.01, 0.9, 25), dtype=dtype)
    q2s = torch.tensor(np.geomspace(1.0, 200.0, 12), dtype=dtype)
    x, q2 = (t.reshape(-1) for t in torch.meshgrid(xs, q2s, indexing="ij"))
    full = space.full_parameters(corners)
    sigma = cross_sections(full, x, q2)
    assert torch.isfinite(sigma).all() and (sigma > 0).all()
    ud = quark_distributions_from_cross_sections(sigma.double())
    assert (ud > 0).all()
    # N(Q2) stays positive over the box and kinematic range
    n = shape_parameters(full, q2)[..., [SHAPE_NAMES.index("N_u"), SHAPE_NAMES.index("N_d")]]
    assert n.min() > 0.3


def test_prior_samples_give_positive_finite_cross_sections_on_all_experiments():
    rng = np.random.default_rng(8)
    x, q2 = experiment_bins(rng=rng)
    free = DEFAULT_SPACE.sample_prior(500, torch.Generator().manual_seed(8), torch.float32)
    sigma = simulate(free, DEFAULT_SPACE, x, q2, relative_noise=0.0)
    assert sigma.shape == (500, len(x), 2)
    assert torch.isfinite(sigma).all() and (sigma > 0).all()


# ----------------------------------------------------------------------------------------------
# Kinematics, simulation and point clouds
# ----------------------------------------------------------------------------------------------


def test_regular_grid_spans_the_talk_phase_space():
    x, q2 = regular_grid()
    assert x.shape == q2.shape == (80,)
    np.testing.assert_allclose([x.min(), x.max(), q2.min(), q2.max()], [0.01, 0.8, 1.5, 100.0], rtol=1e-12)
    xs = np.unique(x)
    assert len(xs) == 10 and len(np.unique(q2)) == 8
    np.testing.assert_allclose(np.diff(np.log(xs)), np.log(80) / 9, rtol=1e-10)  # log-spaced


def test_experiment_bins_lie_in_their_regions_above_the_w2_cut():
    x, q2, labels = experiment_bins(rng=np.random.default_rng(9), return_labels=True)
    assert len(x) == sum(r.n_bins for r in EXPERIMENTS.values()) == 135
    w2 = invariant_mass_squared(torch.as_tensor(x), torch.as_tensor(q2)).numpy()
    np.testing.assert_allclose(w2, q2 * (1 - x) / x + 0.938**2, rtol=1e-14)
    assert (w2 > W2_MIN_GEV2).all()
    for name, region in EXPERIMENTS.items():
        sel = labels == name
        assert sel.sum() == region.n_bins
        assert (x[sel] >= region.x_min).all() and (x[sel] <= region.x_max).all()
        assert (q2[sel] >= region.q2_min_gev2).all() and (q2[sel] <= region.q2_max_gev2).all()
    assert x.min() >= 0.01 and q2.min() >= Q0_2_GEV2
    # the cut is active: in SLAC's corner of high x and low Q2 there are points it removes
    slac = EXPERIMENTS["SLAC"]
    xs, qs = experiment_bins("SLAC", np.random.default_rng(1), n_bins=2000)
    assert ((xs > 0.6) & (qs < 5.0)).sum() == 0  # W^2 < 4 GeV^2 there
    assert xs.max() > 0.7 and qs.min() < 2.0 and slac.x_max == 0.8
    # reproducible, and different for a different seed
    a = experiment_bins(["NMC", "HERA"], np.random.default_rng(3))
    b = experiment_bins(["NMC", "HERA"], np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    assert len(a[0]) == 55
    with pytest.raises(ValueError, match="unknown experiment"):
        experiment_bins(["E665"])


def test_training_cloud_layouts_keep_the_kinematic_cuts_and_vary_like_experiments():
    from hadrinv.models.dis import random_kinematics, region_kinematics

    x_range, q2_range = (0.01, 0.8), (1.5, 200.0)
    full = math.log(x_range[1] / x_range[0])
    g = torch.Generator().manual_seed(0)
    x, q2 = region_kinematics(2000, 100, x_range, q2_range, g)
    assert (
        (x >= x_range[0]).all() and (x <= x_range[1]).all() and (q2 >= q2_range[0]).all() and (q2 <= q2_range[1]).all()
    )
    assert (q2 * (1 - x) / x + 0.938**2 > 4.0).all()  # W^2 > 4 GeV^2 (M_p = 0.938 GeV)
    # one rectangle per set, spanning a quarter to all of the range: a set's bins cover less of log x than
    # log-uniform bins do, and the coverage differs from set to set as between experiments
    x1, _ = region_kinematics(2000, 100, x_range, q2_range, g, max_regions=1)
    xu, _ = random_kinematics(2000, 100, x_range, q2_range, g)
    extent, extent_uniform = x1.log().amax(1) - x1.log().amin(1), xu.log().amax(1) - xu.log().amin(1)
    assert float(extent.max()) <= full + 1e-9
    assert float(extent.median()) < 0.8 * float(extent_uniform.median())
    assert float(extent.std()) > 5 * float(extent_uniform.std())
    # limit: a single rectangle as large as the range is the log-uniform layout (same cuts)
    xr, qr = region_kinematics(2000, 100, x_range, q2_range, g, max_regions=1, min_fraction=1.0)
    for a, b in ((xr.log(), xu.log()), (qr.log(), random_kinematics(2000, 100, x_range, q2_range, g)[1].log())):
        assert abs(float(a.mean() - b.mean())) < 0.02 and abs(float(a.std() / b.std()) - 1) < 0.01


def test_simulated_noise_is_relative_gaussian():
    free = DEFAULT_SPACE.sample_prior(200, torch.Generator().manual_seed(10))
    x, q2 = regular_grid()
    observed, truth = simulate(
        free, DEFAULT_SPACE, x, q2, relative_noise=0.03, generator=torch.Generator().manual_seed(11), return_truth=True
    )
    assert observed.shape == truth.shape == (200, 80, 2)
    pulls = (observed / truth - 1.0) / 0.03
    assert abs(pulls.mean().item()) < 0.02  # 32000 unit pulls: std of the mean 0.0056
    assert pulls.std().item() == pytest.approx(1.0, abs=0.02)
    torch.testing.assert_close(truth, cross_sections(DEFAULT_SPACE.full_parameters(free), x, q2), rtol=0, atol=0)
    again = simulate(free, DEFAULT_SPACE, x, q2, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(again, observed, rtol=0, atol=0)


def test_point_cloud_features_and_nan_padding():
    free = DEFAULT_SPACE.sample_prior(3, torch.Generator().manual_seed(12))
    x, q2 = experiment_bins(rng=np.random.default_rng(12))
    sigma = simulate(free, DEFAULT_SPACE, x, q2)
    cloud = point_cloud(x, q2, sigma)
    assert cloud.shape == (3, len(x), 4)
    torch.testing.assert_close(cloud[..., 0], torch.log(torch.as_tensor(x)).expand(3, -1))
    torch.testing.assert_close(cloud[..., 1], torch.log(torch.as_tensor(q2)).expand(3, -1))
    torch.testing.assert_close(cloud[..., list(OBSERVABLE_COLUMNS)], sigma, rtol=0, atol=0)
    assert OBSERVABLE_COLUMNS == (2, 3)
    small = point_cloud(x[:10], q2[:10], sigma[0, :10])  # unbatched sigma -> batch of 1
    assert small.shape == (1, 10, 4)
    padded = pad_point_clouds([cloud, small, cloud[0, :20]])
    assert padded.shape == (5, len(x), 4)
    mask = padding_mask(padded)
    assert mask.sum(1).tolist() == [0, 0, 0, len(x) - 10, len(x) - 20]
    torch.testing.assert_close(padded[3, :10], small[0], rtol=0, atol=0)
    assert torch.isnan(padded[3, 10:]).all()
    assert pad_point_clouds([small], n_points=16).shape == (1, 16, 4)
    with pytest.raises(ValueError, match="smaller"):
        pad_point_clouds([cloud], n_points=5)


# ----------------------------------------------------------------------------------------------
# Reader and writer
# ----------------------------------------------------------------------------------------------

HEADER = "x,Q2,sigma_p,sigma_n,sigma_p_err,sigma_n_err\n"
GOOD = "0.1,4.0,1.2,0.6,0.03,0.02\n"

# (id, contents, expected row or None, regex the problem must match)
BAD_INPUTS = [
    ("missing_column", "x,Q2,sigma_p\n0.1,4.0,1.2\n", 1, r"missing column.*sigma_n"),
    ("duplicate_column", "x,Q2,sigma_p,sigma_n,x\n0.1,4,1,1,0.2\n", 1, r"x appear more than once"),
    ("non_numeric", HEADER + GOOD + "0.1,abc,1.2,0.6,0.03,0.02\n", 3, r"column Q2: 'abc' is not a number"),
    ("nan", HEADER + "0.1,4.0,nan,0.6,0.03,0.02\n", 2, r"sigma_p.*nan.*finite"),
    ("inf", HEADER + GOOD + GOOD + "0.1,4.0,1.2,-inf,0.03,0.02\n", 4, r"sigma_n.*-inf.*finite"),
    ("x_zero", HEADER + "0,4.0,1.2,0.6,0.03,0.02\n", 2, r"x = 0 is outside \(0, 1\)"),
    ("x_one", HEADER + GOOD + "1,4.0,1.2,0.6,0.03,0.02\n", 3, r"x = 1 is outside"),
    ("x_negative", HEADER + "-0.2,4.0,1.2,0.6,0.03,0.02\n", 2, r"x = -0.2 is outside"),
    ("q2_below_lambda", HEADER + "0.1,0.3,1.2,0.6,0.03,0.02\n", 2, r"Q2 = 0.3 GeV\^2 .*Lambda\^2 = 0.4"),
    ("q2_at_lambda", HEADER + "0.1,0.4,1.2,0.6,0.03,0.02\n", 2, r"at or below Lambda"),
    ("q2_below_q0", HEADER + GOOD + "0.1,0.9,1.2,0.6,0.03,0.02\n", 3, r"Q2 = 0.9 GeV\^2 is below Q0\^2 = 1"),
    ("sigma_p_negative", HEADER + "0.1,4.0,-1.2,0.6,0.03,0.02\n", 2, r"sigma_p = -1.2 is negative"),
    ("sigma_n_negative", HEADER + GOOD + "0.1,4.0,1.2,-0.01,0.03,0.02\n", 3, r"sigma_n = -0.01 is negative"),
    ("error_zero", HEADER + "0.1,4.0,1.2,0.6,0,0.02\n", 2, r"sigma_p_err = 0 must be positive"),
    ("error_negative", HEADER + GOOD + "0.1,4.0,1.2,0.6,0.03,-0.5\n", 3, r"sigma_n_err = -0.5 must be positive"),
    ("too_few_fields", HEADER + "0.1,4.0,1.2,0.6,0.03\n", 2, r"5 fields, header has 6"),
    ("too_many_fields", HEADER + GOOD + "0.1,4.0,1.2,0.6,0.03,0.02,9\n", 3, r"7 fields, header has 6"),
    ("row_after_comment", HEADER + "# note\n\n" + "0.1,4.0,1.2,0.6,0.03,0\n", 4, r"sigma_n_err = 0 must be positive"),
    ("empty", "", None, r"empty"),
    ("comments_only", "# nothing\n", None, r"empty file \(only comments\)"),
    ("header_only", HEADER, None, r"no data rows"),
]


@pytest.mark.parametrize(
    "contents, row, problem", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS]
)
def test_reader_rejects_bad_input_with_file_row_problem(tmp_path, contents, row, problem):
    path = tmp_path / "bad.csv"
    path.write_text(contents)
    with pytest.raises(DataError) as info:
        read_dis_data(path)
    message = str(info.value)
    assert "\n" not in message
    where = f"{path}:{row}: " if row is not None else f"{path}: "
    assert message.startswith(where), message
    assert info.value.row == row
    assert re.search(problem, info.value.problem), message


def test_reader_rejects_missing_and_binary_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_dis_data(tmp_path / "absent.csv")
    (tmp_path / "bin.csv").write_bytes(b"x,Q2\x00\xff\xfe")
    with pytest.raises(DataError, match="not a CSV text file"):
        read_dis_data(tmp_path / "bin.csv")


def test_reader_accepts_q0_reordered_columns_and_no_errors(tmp_path):
    path = tmp_path / "ok.csv"
    path.write_text("# user data\nsigma_n, Q2 ,x,sigma_p,comment\n0.5,1.0,0.3,2.0,first\n0,200,0.01,0,zero\n")
    data = read_dis_data(path)
    np.testing.assert_array_equal(data.x, [0.3, 0.01])
    np.testing.assert_array_equal(data.q2, [1.0, 200.0])
    np.testing.assert_array_equal(data.sigma, [[2.0, 0.5], [0.0, 0.0]])
    assert data.sigma_p_err is None and data.sigma_n_err is None and data.truth == {}
    assert data.point_cloud().shape == (1, 2, 4)


def test_write_read_round_trip_of_simulated_data(tmp_path):
    x, q2 = experiment_bins(rng=np.random.default_rng(13))
    free = DEFAULT_SPACE.sample_prior(1, torch.Generator().manual_seed(13))[0]
    data = simulate_dis_data(free, DEFAULT_SPACE, x, q2, relative_noise=0.03, seed=4)
    assert data.truth["model"] == "dis-toy" and list(data.truth["parameters"]) == list(DEFAULT_SPACE.free_names)
    path = write_dis_data(data, tmp_path / "dis.csv")
    assert path.read_text().splitlines()[0] == "x,Q2,sigma_p,sigma_n,sigma_p_err,sigma_n_err"
    back = read_dis_data(path)
    for name in ("x", "q2", "sigma_p", "sigma_n", "sigma_p_err", "sigma_n_err"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
    assert back.truth == data.truth and back.source == str(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dis.csv", "dis.csv.truth.json"]
    # the written truth reproduces the noiseless cross sections within the stated errors
    truth_free = torch.tensor(list(back.truth["parameters"].values()), dtype=torch.float64)
    sigma = cross_sections(DEFAULT_SPACE.full_parameters(truth_free), back.x, back.q2).numpy()
    np.testing.assert_allclose(back.sigma_p_err, 0.03 * sigma[:, 0], rtol=1e-12)
    pulls = (back.sigma - sigma) / np.stack([back.sigma_p_err, back.sigma_n_err], -1)
    assert np.abs(pulls).max() < 5.0


def test_round_trip_without_errors(tmp_path):
    data = DISData(
        x=np.array([0.05, 0.5]), q2=np.array([2.0, 50.0]), sigma_p=np.array([1.5, 0.1]), sigma_n=np.array([0.9, 1e-3])
    )
    path = write_dis_data(data, tmp_path / "plain.csv")
    assert path.read_text().splitlines()[0] == "x,Q2,sigma_p,sigma_n"
    back = read_dis_data(path)
    np.testing.assert_array_equal(back.sigma, data.sigma)
    assert back.sigma_p_err is None and back.truth == {}
