"""Unbinned maximum-likelihood fits of weighted events (hadrinv.inference.unbinned) on toys with known
answers: parameter recovery and pull widths, Newton = MINUIT, analytic Gaussian constraints, chunking,
sandwich errors for background-subtracted (negative-weight) data, random restarts, non-finite regions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from hadrinv.inference.fit import (
    NEGATIVE_LOG_LIKELIHOOD,
    FitResult,
    covariance_from_hessian,
    hessian,
)
from hadrinv.inference.unbinned import (
    UnbinnedFitResult,
    UnbinnedNLL,
    fit_unbinned,
    gaussian_constraint,
    random_restarts,
    slice_events,
)

torch.set_num_threads(1)
F64 = torch.float64
TRUE_AB = (0.5, 0.3)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def accept_reject(density, n: int, generator: torch.Generator, bound: float) -> torch.Tensor:
    """n events on [-1, 1] with probability density proportional to density(x) <= bound."""
    kept, count = [], 0
    while count < n:
        x = 2.0 * torch.rand(2 * n, generator=generator, dtype=F64) - 1.0
        u = bound * torch.rand(2 * n, generator=generator, dtype=F64)
        keep = x[u < density(x)]
        kept.append(keep)
        count += keep.numel()
    return torch.cat(kept)[:n]


def midpoint_grid(n: int, lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    """'MC' as a midpoint grid: the normalisation integral of a polynomial is exact to O(1/n^2), so toy
    pulls test the data fluctuations only (random MC would add a fixed bias ~ sqrt(N_data / N_mc) sigma)."""
    h = (hi - lo) / n
    return lo + h * (torch.arange(n, dtype=F64) + 0.5)


def poly(params, x):
    """1 + a x + b x^2 (top level: picklable)."""
    return 1.0 + params[0] * x + params[1] * x**2


def poly_density(a, b):
    return lambda x: 1.0 + a * x + b * x**2


def make_poly_nll(data, mc, weights=None):
    """A picklable NLL factory for random_restarts."""
    return UnbinnedNLL(poly, data, mc, data_weights=weights)


# ------------------------------------------------------------------------------------- (1) 1-D toy


@pytest.fixture(scope="module")
def poly_fits():
    g = _gen(1)
    data = accept_reject(poly_density(*TRUE_AB), 5000, g, 1.0 + sum(TRUE_AB))
    mc = 2.0 * torch.rand(200_000, generator=g, dtype=F64) - 1.0  # accepted phase-space MC: uniform
    nll = UnbinnedNLL(poly, data, mc)
    return (
        nll,
        fit_unbinned(nll, [0.0, 0.0], names=["a", "b"]),
        fit_unbinned(nll, [0.0, 0.0], method="minuit", names=["a", "b"]),
    )


def test_polynomial_fit_recovers_parameters_within_three_sigma(poly_fits):
    nll, newton, _ = poly_fits
    assert isinstance(newton, FitResult) and isinstance(newton, UnbinnedFitResult)
    assert newton.is_valid and newton.has_accurate_covar and newton.edm < 1e-8
    assert np.all(np.abs(newton.values - np.array(TRUE_AB)) < 3.0 * newton.errors), str(newton)
    # covariance = H^-1 of -lnL (errordef 0.5): the exact Hessian of the objective at the minimum
    h = hessian(nll, newton.values)
    np.testing.assert_allclose(newton.covariance, np.linalg.inv(h), rtol=1e-10)
    np.testing.assert_allclose(newton.covariance, covariance_from_hessian(h, NEGATIVE_LOG_LIKELIHOOD)[0], rtol=1e-10)
    assert newton.sandwich_covariance is None  # unweighted
    assert newton.fval == pytest.approx(float(nll(torch.tensor(newton.values))), rel=1e-12)


def test_newton_and_minuit_agree(poly_fits):
    _, newton, minuit = poly_fits
    assert minuit.is_valid and minuit.method == "minuit"
    np.testing.assert_allclose(newton.values, minuit.values, atol=1e-4, rtol=0)
    np.testing.assert_allclose(newton.errors, minuit.errors, atol=1e-4, rtol=0)
    assert newton.fval == pytest.approx(minuit.fval, abs=1e-6)


def test_hessian_errors_match_the_spread_over_toys():
    """40 toys of 2000 events: pulls (estimate - truth) / Hessian error have mean 0 and width 1.

    With 40 toys the pull mean has a standard error 0.16 and the width ~0.11: windows |mean| < 0.5 and
    width in [0.7, 1.3] are ~3 standard errors.
    """
    g = _gen(2)
    mc = midpoint_grid(20_000)
    values, errors = [], []
    for _ in range(40):
        data = accept_reject(poly_density(*TRUE_AB), 2000, g, 1.0 + sum(TRUE_AB))
        result = fit_unbinned(UnbinnedNLL(poly, data, mc), [0.0, 0.0])
        assert result.is_valid
        values.append(result.values)
        errors.append(result.errors)
    values, errors = np.array(values), np.array(errors)
    pulls = (values - np.array(TRUE_AB)) / errors
    assert np.all(np.abs(pulls.mean(0)) < 0.5), pulls.mean(0)
    assert np.all((pulls.std(0, ddof=1) > 0.7) & (pulls.std(0, ddof=1) < 1.3)), pulls.std(0, ddof=1)
    spread_over_error = values.std(0, ddof=1) / errors.mean(0)
    assert np.all((spread_over_error > 0.7) & (spread_over_error < 1.3)), spread_over_error


# ------------------------------------------------------------------------- (2) Gaussian constraint


def gaussian_shape(params, x):
    return torch.exp(-0.5 * (x - params[0]) ** 2)


def test_gaussian_constraint_moves_the_minimum_as_computed_analytically():
    """Unit Gaussian of mean mu, MC a fine grid on [-15, 15]: <I>_MC does not depend on mu (to ~1e-15),
    so -lnL = sum (x_i - mu)^2 / 2 + const, a parabola of curvature N with its minimum at mean(x).
    Adding (mu - m)^2 / (2 s^2) moves the minimum to (N mean(x) + m / s^2) / (N + 1 / s^2), error
    1 / sqrt(N + 1 / s^2)."""
    g = _gen(3)
    data = 0.3 + torch.randn(500, generator=g, dtype=F64)
    mc = midpoint_grid(30_000, -15.0, 15.0)
    m, s = 1.0, 0.05
    constrained = UnbinnedNLL(gaussian_shape, data, mc, penalties={"mu constraint": gaussian_constraint(0, m, s)})
    free = UnbinnedNLL(gaussian_shape, data, mc)
    n, mean = data.numel(), float(data.mean())

    unconstrained_fit = fit_unbinned(free, [0.0])
    assert unconstrained_fit.values[0] == pytest.approx(mean, abs=1e-9)
    assert unconstrained_fit.errors[0] == pytest.approx(1.0 / math.sqrt(n), rel=1e-9)

    for method in ("newton", "minuit"):
        fit = fit_unbinned(constrained, [0.0], method=method)
        expected = (n * mean + m / s**2) / (n + 1.0 / s**2)
        assert fit.is_valid
        assert fit.values[0] == pytest.approx(expected, abs=1e-9 if method == "newton" else 1e-6)
        assert fit.errors[0] == pytest.approx(1.0 / math.sqrt(n + 1.0 / s**2), rel=1e-7)
        # the result reports -lnL without penalties and each penalty separately
        assert fit.penalties["mu constraint"] == pytest.approx(0.5 * ((fit.values[0] - m) / s) ** 2, rel=1e-9)
        assert fit.fval == pytest.approx(fit.nll + fit.penalties["mu constraint"], rel=1e-12)

    # nll_only excludes the penalty; gradient and Hessian include it unless asked not to
    p = torch.tensor([0.7], dtype=F64)
    penalty = 0.5 * ((0.7 - m) / s) ** 2
    assert float(constrained(p) - constrained.nll_only(p)) == pytest.approx(penalty, rel=1e-10)
    assert float(constrained.nll_only(p)) == float(free(p))
    assert float(constrained.gradient(p)[0] - free.gradient(p)[0]) == pytest.approx((0.7 - m) / s**2, rel=1e-9)
    assert float(constrained.gradient(p, include_penalties=False)[0]) == float(free.gradient(p)[0])
    assert float(constrained.hessian(p)[0, 0] - free.hessian(p)[0, 0]) == pytest.approx(1.0 / s**2, rel=1e-9)


# ----------------------------------------------------------------------------------- (3) chunking


@dataclasses.dataclass
class Basis:
    cos: torch.Tensor
    sin: torch.Tensor


def wave_intensity(params, cache):
    """|p0 + (p1 + i p2) x + p3 e^{i phi(x)} g|^2 on a structured cache (dict + dataclass + lookup table)."""
    x, basis, table = cache["x"], cache["basis"], cache["table"]
    re = params[0] + params[1] * x + params[3] * table[0] * basis.cos
    im = params[2] * x + params[3] * table[0] * basis.sin
    return re**2 + im**2 + table[1]


def _wave_cache(x):
    return {
        "x": x,
        "basis": Basis(torch.cos(2.0 * x), torch.sin(2.0 * x)),
        "table": torch.tensor([0.7, 1e-3, 5.0], dtype=F64),
    }


@pytest.mark.parametrize("extended", [False, True])
def test_chunked_and_unchunked_evaluations_agree(extended):
    g = _gen(4)
    x_data, x_mc = 2 * torch.rand(5003, generator=g, dtype=F64) - 1, 2 * torch.rand(12_001, generator=g, dtype=F64) - 1
    w = 0.5 + torch.rand(5003, generator=g, dtype=F64)
    w[::7] = -0.4  # mixed signs
    v = 0.8 + 0.4 * torch.rand(12_001, generator=g, dtype=F64)
    kwargs = {
        "data_weights": w,
        "mc_weights": v,
        "extended": extended,
        "volume": 3000.0,
        "penalties": {"c": gaussian_constraint(1, 0.2, 0.5)},
    }
    whole = UnbinnedNLL(wave_intensity, _wave_cache(x_data), _wave_cache(x_mc), **kwargs)
    chunked = UnbinnedNLL(wave_intensity, _wave_cache(x_data), _wave_cache(x_mc), chunk_size=777, **kwargs)
    assert len(chunked._data_chunks) == 7 and len(chunked._mc_chunks) == 16
    p = torch.tensor([1.0, 0.3, -0.4, 0.8], dtype=F64)

    assert torch.equal(whole(p), chunked(p)) and torch.equal(whole.nll_only(p), chunked.nll_only(p))  # bitwise
    torch.testing.assert_close(chunked.gradient(p), whole.gradient(p), rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(chunked.hessian(p), whole.hessian(p), rtol=1e-11, atol=1e-8)
    torch.testing.assert_close(chunked.event_scores(p), whole.event_scores(p), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(chunked.score_covariance(p), whole.score_covariance(p), rtol=1e-11, atol=1e-9)
    # against plain autograd of the value (and finite differences for the formula itself)
    torch.testing.assert_close(whole.gradient(p), torch.func.grad(whole)(p), rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(whole.hessian(p), torch.func.hessian(whole)(p), rtol=1e-10, atol=1e-8)
    eps = 1e-6
    fd = torch.stack([(whole(p + eps * e) - whole(p - eps * e)) / (2 * eps) for e in torch.eye(4, dtype=F64)])
    torch.testing.assert_close(whole.gradient(p), fd, rtol=1e-6, atol=1e-4)
    # per-event scores: d ln(I_i / <I>) / dp (non-extended) or d ln I_i / dp (extended)
    q = p.clone().requires_grad_(True)
    log_i = torch.log(wave_intensity(q, _wave_cache(x_data[:3])))
    target = log_i if extended else log_i - torch.log(whole.mc_average(q))
    rows = torch.stack([torch.autograd.grad(target[i], q, retain_graph=True)[0] for i in range(3)])
    torch.testing.assert_close(whole.event_scores(p)[:3], rows, rtol=1e-12, atol=1e-12)


def test_slice_events_cuts_event_leaves_only():
    cache = _wave_cache(torch.arange(10, dtype=F64))
    part = slice_events(cache, 2, 5, 10)
    assert torch.equal(part["x"], torch.tensor([2.0, 3.0, 4.0], dtype=F64))
    assert isinstance(part["basis"], Basis) and part["basis"].cos.shape == (3,)
    assert part["table"].shape == (3,) and torch.equal(part["table"], cache["table"])  # not an event leaf: whole


def test_extended_and_plain_fits_agree_when_the_scale_floats():
    """With a free overall scale s (I = s (1 + a x)), the extended fit gives the same shape parameters and
    s <I>_MC = sum w; -lnL_ext = -lnL + W - W ln W at the minimum."""
    g = _gen(5)
    data = accept_reject(poly_density(0.4, 0.0), 3000, g, 1.4)
    mc = midpoint_grid(10_000)
    scaled = lambda p, x: p[0] * (1.0 + p[1] * x)
    extended = fit_unbinned(UnbinnedNLL(scaled, data, mc, extended=True), [1000.0, 0.0])
    plain = fit_unbinned(UnbinnedNLL(line, data, mc), [0.0])
    assert extended.is_valid and plain.is_valid
    assert extended.values[1] == pytest.approx(plain.values[0], abs=1e-7)
    assert extended.values[0] == pytest.approx(3000.0, rel=1e-7)  # <1 + a x>_MC = 1 on the symmetric grid
    assert extended.errors[1] == pytest.approx(plain.errors[0], rel=1e-6)
    assert extended.errors[0] == pytest.approx(math.sqrt(3000.0), rel=1e-6)  # Poisson error of the yield
    assert extended.fval == pytest.approx(plain.fval + 3000.0 - 3000.0 * math.log(3000.0), rel=1e-10)


# ----------------------------------------------------------------- (4) negative weights, sandwich


def background_density(x):
    return 1.0 - 0.7 * x


def _subtracted_sample(generator, n_signal=1500, n_background=1500, sideband_factor=2.0):
    """Signal-region events (signal + background, weight +1) and a sideband of sideband_factor times as
    many background events with weight -1 / sideband_factor: a background-subtracted weighted sample."""
    n_s = int(torch.poisson(torch.tensor(float(n_signal)), generator=generator))
    n_b = int(torch.poisson(torch.tensor(float(n_background)), generator=generator))
    n_side = int(torch.poisson(torch.tensor(sideband_factor * n_background), generator=generator))
    signal = accept_reject(poly_density(*TRUE_AB), n_s, generator, 1.0 + sum(TRUE_AB))
    background = accept_reject(background_density, n_b, generator, 1.7)
    sideband = accept_reject(background_density, n_side, generator, 1.7)
    x = torch.cat([signal, background, sideband])
    w = torch.cat([torch.ones(n_s + n_b, dtype=F64), torch.full((n_side,), -1.0 / sideband_factor, dtype=F64)])
    return x, w


def test_negative_weight_fit_is_unbiased_and_sandwich_errors_cover():
    g = _gen(6)
    mc = midpoint_grid(20_000)
    values, hessian_errors, sandwich_errors = [], [], []
    for _ in range(40):
        x, w = _subtracted_sample(g)
        nll = UnbinnedNLL(poly, x, mc, data_weights=w)
        assert nll.weighted and nll.has_negative_weights
        result = fit_unbinned(nll, [0.0, 0.0])
        assert result.is_valid and result.sandwich_covariance is not None
        values.append(result.values)
        hessian_errors.append(result.errors)
        sandwich_errors.append(result.sandwich_errors)
        np.testing.assert_array_equal(result.recommended_errors, result.sandwich_errors)
    values, hessian_errors, sandwich_errors = map(np.array, (values, hessian_errors, sandwich_errors))
    residual = values - np.array(TRUE_AB)
    sandwich_pulls, hessian_pulls = residual / sandwich_errors, residual / hessian_errors
    # unbiased: the mean residual is within 3 standard errors of the mean (pull mean within +-0.5)
    assert np.all(np.abs(sandwich_pulls.mean(0)) < 0.5), sandwich_pulls.mean(0)
    # the sandwich errors cover: pull width ~ 1
    width = sandwich_pulls.std(0, ddof=1)
    assert np.all((width > 0.7) & (width < 1.3)), width
    # the inverse Hessian does not: the background cancels in H but its fluctuations do not
    assert np.all(sandwich_errors.mean(0) / hessian_errors.mean(0) > 1.3), sandwich_errors.mean(
        0
    ) / hessian_errors.mean(0)
    assert np.all(hessian_pulls.std(0, ddof=1) > 1.3), hessian_pulls.std(0, ddof=1)


def test_sandwich_equals_inverse_hessian_asymptotically_for_unit_weights():
    g = _gen(7)
    data = accept_reject(poly_density(*TRUE_AB), 20_000, g, 1.8)
    nll = UnbinnedNLL(poly, data, midpoint_grid(20_000))
    fit = fit_unbinned(nll, [0.0, 0.0], sandwich=True)
    np.testing.assert_allclose(fit.sandwich_errors, fit.errors, rtol=0.05)


# ---------------------------------------------------------------------------- (5) random restarts


def two_wave(params, x):
    """|1 + r e^{i phi} x|^2 = 1 + 2 r cos(phi) x + r^2 x^2: phi -> -phi gives the same intensity."""
    r, phi = params[0], params[1]
    return 1.0 + 2.0 * r * torch.cos(phi) * x + r**2 * x**2


def make_two_wave_nll(data, mc):
    return UnbinnedNLL(two_wave, data, mc)


def ellipse(params, x):
    """1 + 0.5 cos(phi) x + 0.3 sin(phi) x^2: a closed curve of shapes; fitted to data with a = 0,
    b = 0.06 (inside the curve, nearer phi = pi/2) -lnL(phi) has a deep minimum near pi/2 and a shallow
    local one near -pi/2."""
    return 1.0 + 0.5 * torch.cos(params[0]) * x + 0.3 * torch.sin(params[0]) * x**2


def make_ellipse_nll(data, mc):
    return UnbinnedNLL(ellipse, data, mc)


def _uniform_start(low, high):
    def sample(generator):
        return torch.tensor(low, dtype=F64) + (
            torch.tensor(high, dtype=F64) - torch.tensor(low, dtype=F64)
        ) * torch.rand(len(low), generator=generator, dtype=F64)

    return sample


def test_random_restarts_find_both_symmetric_solutions():
    g = _gen(8)
    r, phi = 0.8, 1.0
    data = accept_reject(lambda x: 1 + 2 * r * math.cos(phi) * x + r**2 * x**2, 3000, g, 1 + 2 * r + r**2)
    outcome = random_restarts(
        make_two_wave_nll,
        _uniform_start([0.2, -3.0], [1.5, 3.0]),
        10,
        executor="serial",
        seed=1,
        nll_kwargs={"data": data, "mc": midpoint_grid(10_000)},
        names=["r", "phi"],
    )
    fits, best, k = outcome
    assert [f.fval for f in fits] == sorted(f.fval for f in fits)
    assert best is fits[0] and best.is_valid
    assert k == outcome.n_valid == 10, outcome.summary()
    # one intensity (r cos(phi) and r^2 fixed) ...
    r_cos = np.array([f.values[0] * math.cos(f.values[1]) for f in fits])
    np.testing.assert_allclose(r_cos, r * math.cos(phi), atol=0.05)
    np.testing.assert_allclose(r_cos, r_cos[0], atol=1e-6)
    np.testing.assert_allclose(np.abs([f.values[0] for f in fits]), abs(fits[0].values[0]), atol=1e-6)
    signs = {int(np.sign(math.sin(f.values[1]) * f.values[0])) for f in fits}
    assert signs == {-1, 1}  # ... reached from both sides of the phi -> -phi ambiguity
    assert outcome.summary().startswith("10 of 10 restarts reached the minimum")


def test_random_restarts_count_the_fits_reaching_the_global_minimum(tmp_path):
    g = _gen(9)
    data = accept_reject(poly_density(0.0, 0.06), 3000, g, 1.06)
    mc = midpoint_grid(10_000)
    outcome = random_restarts(
        make_ellipse_nll,
        _uniform_start([-math.pi], [math.pi]),
        12,
        executor="serial",
        seed=2,
        nll_kwargs={"data": data, "mc": mc},
        checkpoint_dir=tmp_path,
        names=["phi"],
    )
    fits, best, k = outcome
    # the global minimum from a scan
    scan = torch.linspace(-math.pi, math.pi, 4001, dtype=F64)
    nll = make_ellipse_nll(data, mc)
    with torch.no_grad():
        values = torch.stack([nll(p.reshape(1)) for p in scan])
    assert best.fval == pytest.approx(float(values.min()), abs=1e-4)
    assert math.sin(best.values[0]) > 0.99
    assert 1 <= k < 12, outcome.summary()
    others = [f for f in fits[k:] if f.is_valid]
    assert others and all(f.fval > best.fval + 1.0 and math.sin(f.values[0]) < -0.99 for f in others)
    assert outcome.summary().startswith(f"{k} of 12 restarts reached the minimum")
    print(outcome.summary())

    # resume: results come from the checkpoints, the factory is not called again
    def must_not_run(**_):
        raise AssertionError("task rerun despite its checkpoint")

    again = random_restarts(
        must_not_run,
        _uniform_start([-math.pi], [math.pi]),
        12,
        executor="serial",
        seed=2,
        checkpoint_dir=tmp_path,
        resume=True,
        names=["phi"],
    )
    assert again.n_at_best == k and again.best.fval == best.fval
    np.testing.assert_array_equal(again.best.covariance, best.covariance)


# -------------------------------------------------------------------------- (6) non-finite values


def line(params, x):
    return 1.0 + params[0] * x  # negative somewhere on [-1, 1] when |a| > 1: ln I = NaN there


@pytest.mark.parametrize("method", ["newton", "minuit"])
def test_steps_into_a_non_finite_region_are_rejected(method):
    g = _gen(10)
    data = accept_reject(poly_density(0.97, 0.0), 2000, g, 1.97)
    nll = UnbinnedNLL(line, data, midpoint_grid(10_000))
    assert not math.isfinite(float(nll(torch.tensor([1.5], dtype=F64))))
    reference = fit_unbinned(nll, [0.9], method="newton")
    result = fit_unbinned(nll, [-0.9], method=method)  # the first steps overshoot past a = 1
    assert result.is_valid, str(result)
    assert "non-finite objective were rejected" in result.message
    assert result.values[0] == pytest.approx(reference.values[0], abs=1e-4)
    assert abs(result.values[0]) < 1.0


@pytest.mark.parametrize("method", ["newton", "minuit"])
def test_a_start_in_the_non_finite_region_gives_an_invalid_fit_not_an_error(method):
    g = _gen(11)
    data = accept_reject(poly_density(0.5, 0.0), 1000, g, 1.5)
    nll = UnbinnedNLL(line, data, midpoint_grid(5000))
    result = fit_unbinned(nll, [3.0], method=method)
    assert not result.is_valid and math.isinf(result.fval)
    assert "not finite at the starting point" in result.message
    # restarts from a range that is partly non-finite: the failures are reported and sorted last
    outcome = random_restarts(nll, _uniform_start([-3.0], [3.0]), 8, executor="serial", seed=3, method=method)
    assert 0 < outcome.n_valid < 8 and outcome.n_at_best == outcome.n_valid
    assert all(not f.is_valid for f in outcome.fits[outcome.n_valid :])


def test_value_and_gradient_in_one_pass_equals_the_separate_calls():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3000, generator=g, dtype=torch.float64) * 2 - 1
    mc = torch.linspace(-1, 1, 5001, dtype=torch.float64)
    weights = torch.where(torch.rand(3000, generator=g, dtype=torch.float64) < 0.2, -0.5, 1.0).to(torch.float64)
    intensity = lambda p, cache: 1.0 + p[0] * cache + p[1] * cache**2
    penalties = {"c": gaussian_constraint(1, 0.2, 0.1)}
    for extended in (False, True):
        nll = UnbinnedNLL(
            intensity, x, mc, data_weights=weights, penalties=penalties, extended=extended, chunk_size=700
        )
        p = torch.tensor([0.3, 0.1], dtype=torch.float64)
        value, grad = nll.value_and_gradient(p)
        assert float(value) == pytest.approx(float(nll(p)), rel=1e-13)
        assert torch.allclose(grad, nll.gradient(p), rtol=1e-11, atol=1e-12)
