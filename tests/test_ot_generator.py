"""The optimal-transport attention event generator and its Johnson-SU (sinh-arcsinh) transform.

Independent truths: samples of the sinh-arcsinh family drawn directly (X = xi + lambda sinh((asinh(Z) - eps) /
delta), Z standard normal) with a log-density written out here and checked to integrate to one; scipy's
kurtosis; the moments of the training events. scipy.stats.johnsonsu is the other member of the family
(a + b asinh((X - loc) / scale) is normal, where here sinh(eps + delta asinh((X - xi) / lambda)) is), so its
(a, b) have no exact counterpart in (eps, delta); its samples serve as heavy-tailed data that the transform
must bring close to normal.

Tolerances of the trained generators (d_model 16, one block, 300 steps of 256 events, ~10 s each on one
core) come from seven to nine data/training seeds of each set. The unweighted bimodal set gave correlations 0.84-0.87
(data 0.885), standard deviations within 3 %, means within 0.05 sigma and 6-10 % of events in the gap between
the modes (data 2 %, the untrained Gaussian start 25 %). The weighted set gave correlations 0.025-0.065 below
the weighted data's 0.80 and standard deviations within 5.5 %: at this size the training is noisy (the
correlation wanders by +-0.05 between steps once the loss reaches its floor) and a little biased. Hence 0.08
and 0.1 on the correlations, 6 % and 8 % on standard deviations; an untrained generator, or one that ignores
the weights, has correlation 0.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from hadrinv.inference.ot_generator import (
    JohnsonSU,
    OTAttentionGenerator,
    OTGeneratorSettings,
    excess_kurtosis,
    peaked_features,
)

SMALL = {"d_model": 16, "heads": 2, "layers": 1, "batch": 256, "lr": 3e-3, "blur": 0.05, "scaling": 0.5}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # batches of 256 events in two dimensions: extra threads only contend on a shared machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---- the sinh-arcsinh family, written out independently of the module ----
def sas_sample(params, n: int, rng: np.random.Generator) -> np.ndarray:
    xi, lam, eps, delta = params
    return xi + lam * np.sinh((np.arcsinh(rng.standard_normal(n)) - eps) / delta)


def sas_log_density(x, xi, log_lam, eps, log_delta):
    """log p(x) for Z = sinh(eps + delta asinh((x - xi) / lam)) standard normal: log phi(z) |dz/dx|."""
    lam, delta = torch.exp(log_lam), torch.exp(log_delta)
    u = (x - xi) / lam
    s = eps + delta * torch.asinh(u)
    z = torch.sinh(s)
    dz_dx = torch.cosh(s) * delta / torch.sqrt(1 + u**2) / lam
    return -0.5 * z**2 - 0.5 * math.log(2 * math.pi) + torch.log(dz_dx)


def test_sas_log_density_is_normalised():
    # guards the reference density used for the parameter errors below
    theta = [torch.tensor(v, dtype=torch.float64) for v in (0.5, math.log(0.2), 0.6, math.log(0.4))]
    total, _ = integrate.quad(
        lambda v: math.exp(sas_log_density(torch.tensor(v, dtype=torch.float64), *theta)), -np.inf, np.inf, limit=200
    )
    assert total == pytest.approx(1.0, abs=1e-7)


# ---- JohnsonSU ----
def _transform(features, xi, lam, eps, delta) -> JohnsonSU:
    t = JohnsonSU(features)
    t.xi, t.lam = torch.tensor(xi, dtype=torch.float64), torch.tensor(lam, dtype=torch.float64)
    t.epsilon, t.delta = torch.tensor(eps, dtype=torch.float64), torch.tensor(delta, dtype=torch.float64)
    return t


def test_johnson_su_round_trip_and_monotone():
    # delta at both bounds of the fit (0.05 and 10) and in between; column 1 is not selected
    t = _transform([0, 2, 3], [0.3, -1.0, 2.0], [0.5, 2.0, 0.01], [0.4, -0.7, 1.5], [0.05, 2.5, 10.0])
    magnitudes = torch.logspace(-6, 6, 2000, dtype=torch.float64)
    grid = torch.cat([-magnitudes.flip(0), magnitudes])
    x = torch.stack([grid, 3 * grid + 1, grid - 1.0, grid + 2.0], 1)
    z = t.forward(x)
    assert torch.isfinite(z).all()
    assert torch.equal(z[:, 1], x[:, 1])  # unselected columns are copied
    assert (z[1:, [0, 2, 3]] > z[:-1, [0, 2, 3]]).all()  # strictly increasing
    back = t.inverse(z)
    assert ((back - x).abs() / x.abs().clamp(min=1.0)).max() < 1e-10
    # and from network space: z up to 40 (far beyond any generated value) with delta = 0.05 maps to 1e35
    zz = torch.linspace(-40, 40, 4001, dtype=torch.float64).unsqueeze(1).expand(-1, 4).contiguous()
    xx = t.inverse(zz)
    assert torch.isfinite(xx).all()
    assert ((t.forward(xx) - zz).abs() / zz.abs().clamp(min=1.0)).max() < 1e-10
    assert t.forward(x[:0]).shape == (0, 4)
    empty = JohnsonSU([])
    assert torch.equal(empty.inverse(empty.forward(x)), x)


@pytest.mark.parametrize("truth", [(0.5, 0.2, 0.6, 0.4), (-1.0, 2.0, -0.3, 1.5)])
def test_johnson_su_fit_recovers_parameters(truth):
    rng = np.random.default_rng(11)
    x = sas_sample(truth, 5000, rng)
    fit = JohnsonSU([0]).fit(torch.tensor(x)[:, None])
    estimate = torch.tensor(
        [fit.xi.item(), math.log(fit.lam.item()), fit.epsilon.item(), math.log(fit.delta.item())], dtype=torch.float64
    )
    # statistical errors from the observed information (Hessian of the total negative log-likelihood)
    data = torch.tensor(x)
    hessian = torch.autograd.functional.hessian(lambda p: -sas_log_density(data, *p).sum(), estimate)
    sigma = torch.linalg.inv(hessian).diagonal().sqrt()
    true = torch.tensor([truth[0], math.log(truth[1]), truth[2], math.log(truth[3])], dtype=torch.float64)
    pulls = (estimate - true) / sigma
    assert pulls.abs().max() < 4, f"pulls {pulls.tolist()}, sigma {sigma.tolist()}"
    # the fitted transform makes the column standard normal
    z = fit.forward(data[:, None])[:, 0].numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_johnson_su_weighted_fit_equals_replicated_fit():
    rng = np.random.default_rng(5)
    x = sas_sample((0.0, 1.0, 0.3, 0.6), 1500, rng)
    counts = rng.integers(0, 4, x.size)
    weighted = JohnsonSU([0]).fit(torch.tensor(x)[:, None], torch.tensor(counts, dtype=torch.float64))
    replicated = JohnsonSU([0]).fit(torch.tensor(np.repeat(x, counts))[:, None])
    for name in ("xi", "lam", "epsilon", "delta"):
        assert getattr(weighted, name).item() == pytest.approx(getattr(replicated, name).item(), abs=2e-3), name


def test_johnson_su_tames_heavy_tails_and_peaks():
    rng = np.random.default_rng(3)
    # scipy's Johnson SU (the other family member) and a narrow Breit-Wigner on a little flat background
    jsu = stats.johnsonsu.rvs(1.0, 0.7, loc=1.0, scale=0.5, size=8000, random_state=rng)
    peak = stats.cauchy.rvs(loc=3.097, scale=0.005, size=8000, random_state=rng)
    mass = np.concatenate([peak[(peak > 2.5) & (peak < 3.6)], rng.uniform(2.5, 3.6, 800)])
    for column, raw_min in ((jsu, 50.0), (mass, 5.0)):
        x = torch.tensor(column)[:, None]
        raw = excess_kurtosis(x).item()
        transformed = excess_kurtosis(JohnsonSU([0]).fit(x).forward(x)).item()
        assert raw > raw_min
        assert abs(transformed) < 2.0 and abs(transformed) < raw / 5, (raw, transformed)


def test_johnson_su_fit_validates_input():
    with pytest.raises(ValueError, match="NaN"):
        JohnsonSU([0]).fit(torch.tensor([[1.0], [float("nan")], [2.0]]))
    with pytest.raises(ValueError, match="weight"):
        JohnsonSU([0]).fit(torch.randn(10, 1), -torch.ones(10))


# ---- excess_kurtosis and peaked_features ----
def test_excess_kurtosis_matches_scipy():
    rng = np.random.default_rng(7)
    x = np.stack([rng.standard_normal(3000), rng.standard_t(5, 3000), rng.uniform(size=3000)], 1)
    np.testing.assert_allclose(excess_kurtosis(x).numpy(), stats.kurtosis(x, axis=0, fisher=True, bias=True), 1e-10)
    counts = rng.integers(0, 5, 3000)
    replicated = stats.kurtosis(np.repeat(x, counts, axis=0), axis=0, fisher=True, bias=True)
    np.testing.assert_allclose(excess_kurtosis(x, torch.tensor(counts, dtype=torch.float64)).numpy(), replicated, 1e-10)
    assert excess_kurtosis(x[:, 1]).shape == (1,)  # a single column
    # constant columns, also where the mean of the repeated value is not exact in floating point
    assert torch.isnan(excess_kurtosis(np.full((5000, 3), [1.0, 2.0, 3.097]))).all()


def test_peaked_features_picks_the_peak_only():
    rng = np.random.default_rng(8)
    n = 5000
    peak = stats.cauchy.rvs(loc=3.097, scale=0.005, size=n, random_state=rng).clip(2.9, 3.3)
    x = np.stack([rng.normal(1, 0.3, n), peak, rng.uniform(-1, 1, n), np.full(n, 2.0), rng.logistic(size=n)], 1)
    assert peaked_features(x) == [1]
    # the weights enter: weight zero on every event in the peak's core leaves a flat column
    weight = torch.tensor(np.abs(peak - 3.097) > 0.05, dtype=torch.float64)
    assert peaked_features(x, weight=weight) == []
    assert peaked_features(x, kurtosis_threshold=-0.5) == [0, 1, 4]


# ---- the generator, trained ----
def _bimodal(seed: int, n: int = 6000) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    sign = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0).double()
    x0 = 1.5 * sign + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    x1 = 0.6 * x0 + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    return torch.stack([10 + 2 * x0, x1 - 3], 1)


@pytest.fixture(scope="module")
def bimodal_generator():
    x, x_val = _bimodal(100), _bimodal(101, 1000)
    settings = OTGeneratorSettings(**SMALL, steps=300, seed=0, validate_every=100, validation_rows=512)
    lines = []
    gen = OTAttentionGenerator(2, settings)
    assert gen.fit(x, x_val=x_val, log=lines.append) is gen
    return gen, x, lines


def _corr(x) -> float:
    return float(np.corrcoef(np.asarray(x).T)[0, 1])


def test_generator_learns_bimodal_correlated_events(bimodal_generator):
    gen, x, lines = bimodal_generator
    y, w = gen.sample(20_000, generator=torch.Generator().manual_seed(1))
    assert y.shape == (20_000, 2) and y.dtype == torch.float64
    assert torch.equal(w, torch.ones(20_000, dtype=torch.float64))
    std = x.std(0)
    assert ((y.mean(0) - x.mean(0)).abs() / std).max() < 0.1
    assert ((y.std(0) / std - 1).abs()).max() < 0.06
    assert abs(_corr(y) - _corr(x)) < 0.08
    # the shape, not just the moments: the modes at +-1.5 (sd 0.5) leave 2 % of the events in |x0| < 0.5,
    # a Gaussian with the same variance (the untrained network) 25 %
    x0 = (y[:, 0] - 10) / 2
    assert (x0.abs() < 0.5).double().mean() < 0.15
    assert abs((x0 > 0).double().mean() - 0.5) < 0.05
    # training made progress and was recorded
    history = gen.history
    assert len(history.loss) == len(history.seconds) == 300
    assert np.mean(history.loss[:10]) > 3 * np.mean(history.loss[-30:])
    assert history.validation_step == [100, 200, 300]
    assert all(math.isfinite(v) and v >= -1e-3 for v in history.validation_loss)
    assert len(lines) == 3 and lines[-1].startswith("step 300/300") and "validation" in lines[-1]
    assert history.johnson_su_features == []  # nothing peaked here
    assert gen.sample(0)[0].shape == (0, 2)


def test_generator_learns_from_weights():
    # unweighted events are uncorrelated (a broad product Gaussian); the weights p / q turn them into a
    # Gaussian with correlation 0.8, which the generator can only learn from the weights
    g = torch.Generator().manual_seed(204)
    n, rho = 6000, 0.8
    q = 1.6 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    log_p = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), cov).log_prob(q)
    weight = (log_p - torch.distributions.Normal(0.0, 1.6).log_prob(q).sum(1)).exp()
    x = q * torch.tensor([1.0, 3.0], dtype=torch.float64) + torch.tensor([0.0, 1.0], dtype=torch.float64)
    gen = OTAttentionGenerator(2, OTGeneratorSettings(**SMALL, steps=300, seed=4, validate_every=1000))
    gen.fit(x.numpy(), weight=weight.numpy())  # numpy input works too
    y, _ = gen.sample(20_000, generator=torch.Generator().manual_seed(1))
    mean = np.average(x.numpy(), axis=0, weights=weight.numpy())
    cov_w = np.cov(x.numpy().T, aweights=weight.numpy(), bias=True)
    std = np.sqrt(np.diag(cov_w))
    assert abs(_corr(x)) < 0.05  # the unweighted events carry no correlation
    assert np.abs((y.mean(0).numpy() - mean) / std).max() < 0.1
    assert np.abs(y.std(0).numpy() / std - 1).max() < 0.08
    assert abs(_corr(y) - cov_w[0, 1] / (std[0] * std[1])) < 0.1


def test_johnson_su_lets_the_generator_produce_a_narrow_peak():
    # a J/psi-like Breit-Wigner (width 0.01) with 10 % flat background in [2.9, 3.3], and a smooth column
    rng = np.random.default_rng(300)
    n, m0, gamma = 6000, 3.097, 0.01
    peak = stats.cauchy.rvs(loc=m0, scale=gamma / 2, size=2 * n, random_state=rng)
    mass = np.concatenate([peak[(peak > 2.9) & (peak < 3.3)][: int(0.9 * n)], rng.uniform(2.9, 3.3, n // 10)])
    x = torch.tensor(np.stack([mass, rng.normal(1.0, 0.3, mass.size)], 1))
    results = {}
    for johnson_su in (True, False):
        settings = OTGeneratorSettings(**SMALL, steps=40, seed=0, johnson_su=johnson_su, validate_every=1000)
        gen = OTAttentionGenerator(2, settings).fit(x)
        assert gen.history.johnson_su_features == ([0] if johnson_su else [])
        # the data <-> network map is exact, transform included
        back = gen.from_network(gen.to_network(x))
        assert ((back - x).abs() / x.abs()).max() < 1e-12
        y = gen.sample(20_000, generator=torch.Generator().manual_seed(1))[0].numpy()
        results[johnson_su] = (stats.ks_2samp(mass, y[:, 0]).statistic, np.mean(np.abs(y[:, 0] - m0) < gamma))
    in_window = np.mean(np.abs(mass - m0) < gamma)  # ~0.65
    assert results[True][0] < 0.07 and abs(results[True][1] - in_window) < 0.1, results
    # without the transform the network starts from (and in a short training stays near) a Gaussian as wide as
    # the background: a fifth of the events in the peak's window
    assert results[False][0] > 0.15 and results[False][1] < 0.35, results


# ---- determinism and persistence ----
def test_sampling_is_deterministic_and_survives_save_load(bimodal_generator, tmp_path):
    gen = bimodal_generator[0]
    first = gen.sample(3000, generator=torch.Generator().manual_seed(7))[0]
    assert torch.equal(first, gen.sample(3000, generator=torch.Generator().manual_seed(7))[0])
    assert not torch.equal(first, gen.sample(3000, generator=torch.Generator().manual_seed(8))[0])
    path = gen.save(tmp_path / "gen.pt")
    state = torch.load(path, weights_only=True)  # tensors and plain values only
    assert state["format"] == "hadrinv.OTAttentionGenerator" and state["fitted"]
    loaded = OTAttentionGenerator.load(path)
    assert loaded.fitted and loaded.settings == gen.settings and loaded.history == gen.history
    assert torch.equal(first, loaded.sample(3000, generator=torch.Generator().manual_seed(7))[0])


def test_save_load_keeps_the_johnson_su_transform(tmp_path):
    rng = np.random.default_rng(1)
    x = torch.tensor(np.stack([stats.cauchy.rvs(scale=0.01, size=600, random_state=rng), rng.normal(size=600)], 1))
    gen = OTAttentionGenerator(2, OTGeneratorSettings(**{**SMALL, "batch": 64}, steps=2)).fit(x)
    assert gen.johnson_su.features == [0]
    loaded = OTAttentionGenerator.load(gen.save(tmp_path / "gen.pt"))
    assert loaded.johnson_su.features == [0]
    for name in ("xi", "lam", "epsilon", "delta"):
        assert torch.equal(getattr(loaded.johnson_su, name), getattr(gen.johnson_su, name))
    a = gen.sample(500, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(a, loaded.sample(500, generator=torch.Generator().manual_seed(3))[0])


def test_load_refuses_other_files(tmp_path):
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a saved OTAttentionGenerator"):
        OTAttentionGenerator.load(tmp_path / "other.pt")
    unfitted = OTAttentionGenerator(2, OTGeneratorSettings(**SMALL))
    loaded = OTAttentionGenerator.load(unfitted.save(tmp_path / "unfitted.pt"))
    with pytest.raises(RuntimeError, match="fit or load"):
        loaded.sample(10)


# ---- validation ----
def test_input_validation():
    gen = OTAttentionGenerator(2, OTGeneratorSettings(**{**SMALL, "batch": 16}, steps=1))
    with pytest.raises(RuntimeError, match="fit or load"):
        gen.sample(10)
    x = torch.randn(100, 2, dtype=torch.float64)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite values in 1 rows"):
        gen.fit(bad)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        gen.fit(bad)
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        gen.fit(torch.randn(100, 3))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        gen.fit(torch.randn(100))
    with pytest.raises(ValueError, match="fewer than one batch"):
        gen.fit(x[:10])
    with pytest.raises(ValueError, match="at least 2"):
        gen.fit(x[:1])
    with pytest.raises(ValueError, match=r"weight must have shape \(100,\)"):
        gen.fit(x, weight=torch.ones(99))
    for weight in (-torch.ones(100), torch.zeros(100), torch.full((100,), float("nan"))):
        with pytest.raises(ValueError, match="non-negative with a positive sum"):
            gen.fit(x, weight=weight)
    with pytest.raises(ValueError, match="x_val must have shape"):
        gen.fit(x, x_val=torch.randn(50, 3))
    with pytest.raises(ValueError, match="weight_val"):
        gen.fit(x, x_val=x[:50], weight_val=torch.ones(49))
    with pytest.raises(ValueError, match="cannot change the architecture"):
        gen.fit(x, settings=dataclasses.replace(gen.settings, d_model=32))
    assert not gen.fitted
    gen.fit(x, settings=dataclasses.replace(gen.settings, steps=2))  # training settings may change
    assert gen.fitted and len(gen.history.loss) == 2
    with pytest.raises(ValueError, match="non-negative"):
        gen.sample(-1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"d_model": 10, "heads": 4}, "divisible"),
        ({"layers": 0}, ">= 1"),
        ({"batch": 1}, "batch >= 2"),
        ({"blur": 0.0}, "blur > 0"),
        ({"scaling": 1.0}, "scaling < 1"),
        ({"lr": -1e-3}, "lr > 0"),
        ({"noise_dim": 0}, "noise_dim"),
        ({"feedforward": -1}, "feedforward"),
        ({"final_lr_fraction": -0.1}, "final_lr_fraction"),
        ({"johnson_su_rows": 0}, "johnson_su_rows"),
    ],
)
def test_bad_settings(change, message):
    with pytest.raises(ValueError, match=message):
        OTAttentionGenerator(2, OTGeneratorSettings(**{**SMALL, **change}))


def test_constant_column_keeps_scale_one():
    # the sum of 5000 times 3.097 is not exact: the variance must still come out 0, and the scale 1
    x = torch.stack([torch.randn(5000, dtype=torch.float64), torch.full((5000,), 3.097, dtype=torch.float64)], 1)
    gen = OTAttentionGenerator(2, OTGeneratorSettings(**{**SMALL, "batch": 64}, steps=1)).fit(x)
    assert gen.mean[1].item() == 3.097 and gen.scale[1].item() == 1.0
    assert gen.history.johnson_su_features == []
    assert torch.equal(gen.to_network(x)[:, 1], torch.zeros(5000, dtype=torch.float64))


def test_bad_features():
    with pytest.raises(ValueError, match="features must be at least 1"):
        OTAttentionGenerator(0)
