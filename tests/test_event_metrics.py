from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from hadrinv.inference.event_metrics import (
    classifier_two_sample_test,
    histogram_comparison,
    ratio_panel,
    time_per_event,
    triangular_discriminator,
    weight_summary,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N = 10_000


def _importance_sample(rng, n, scale=1.3, dim=3):
    """Draws from N(0, scale^2) per coordinate with the weights that map them exactly onto N(0, 1)."""
    x = rng.normal(scale=scale, size=(n, dim))
    weight = np.prod(norm.pdf(x) / norm.pdf(x, scale=scale), axis=1)
    return x, weight


def test_c2st_same_distribution_is_chance():
    rng = np.random.default_rng(1)
    truth, generated = rng.normal(size=(N, 3)), torch.from_numpy(rng.normal(size=(N, 3)))
    result = classifier_two_sample_test(truth, generated, seed=1)
    assert abs(result.auc - 0.5) < 0.03
    assert result.auc_weighted is None
    assert result.n_train + result.n_test == 2 * N
    assert result.auc_null_std == pytest.approx(math.sqrt((N + 1) / (12 * (N / 2) ** 2)), rel=1e-3)
    assert set(result.as_dict()) >= {"auc", "auc_weighted", "n_truth", "n_generated"}


def test_c2st_detects_shift_up_to_the_bayes_limit():
    rng = np.random.default_rng(2)
    truth = rng.normal(size=(N, 3))
    generated = rng.normal(size=(N // 2, 3))  # unequal sizes: class weights must keep the test unbiased
    generated[:, 0] += 0.5
    result = classifier_two_sample_test(truth, generated, seed=2)
    # The best possible AUC for a mean shift delta of unit Gaussians is Phi(delta / sqrt(2)) = 0.638 here.
    bayes = norm.cdf(0.5 / math.sqrt(2.0))
    assert 0.59 < result.auc < bayes + 4 * result.auc_null_std
    far = rng.normal(size=(N // 2, 3)) + 1.0
    assert classifier_two_sample_test(truth, far, seed=2).auc > 0.75


def test_c2st_exact_importance_weights_restore_chance():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(N, 3))
    generated, weight = _importance_sample(rng, N)
    result = classifier_two_sample_test(truth, generated, generated_weight=weight, seed=3)
    assert result.auc > 0.6
    assert abs(result.auc_weighted - 0.5) < 0.03


def test_weight_summary_known_values():
    ones = weight_summary(np.ones(500))
    assert ones.fraction_in_band == 1.0
    assert ones.ess == pytest.approx(500.0)
    assert ones.ess_fraction == pytest.approx(1.0)
    assert ones.max_over_mean == pytest.approx(1.0)
    assert ones.fraction_nonpositive == 0.0

    # 300 weights of 1 and 100 of 5: mean 2, normalised 0.5 and 2.5; ESS = 800^2 / 2800.
    summary = weight_summary(torch.tensor([1.0] * 300 + [5.0] * 100))
    assert summary.ess == pytest.approx(800.0**2 / 2800.0)
    assert summary.ess_fraction == pytest.approx(800.0**2 / 2800.0 / 400.0)
    assert summary.fraction_in_band == pytest.approx(0.75)
    assert summary.max_over_mean == pytest.approx(2.5)

    signed = weight_summary(np.array([2.0, 2.0, 0.0, -1.0]))
    assert signed.fraction_nonpositive == pytest.approx(0.5)
    assert all(isinstance(value, float) for value in signed.as_dict().values())


def test_histogram_comparison_same_distribution():
    rng = np.random.default_rng(4)
    comparison = histogram_comparison(rng.normal(size=20_000), rng.normal(size=20_000), bins=30, range=(-3, 3))
    assert comparison.ndf == 29
    assert np.sum(comparison.truth * np.diff(comparison.edges)) == pytest.approx(1.0)
    assert abs(comparison.chi2 - comparison.ndf) < 4 * math.sqrt(2 * comparison.ndf)
    central = comparison.truth_count > 1000
    assert np.all(np.abs(comparison.ratio[central] - 1) < 4 * comparison.ratio_error[central])

    # Weighted errors: an importance-weighted proposal against the truth is still consistent, chi2 ~ ndf.
    generated, weight = _importance_sample(rng, 20_000, dim=1)
    weighted = histogram_comparison(rng.normal(size=20_000), generated[:, 0], 30, weight, range=(-3, 3))
    assert abs(weighted.chi2 - weighted.ndf) < 4 * math.sqrt(2 * weighted.ndf)
    unweighted = histogram_comparison(rng.normal(size=20_000), generated[:, 0], 30, range=(-3, 3))
    assert unweighted.chi2 > 10 * unweighted.ndf


def test_max_relative_deviation_flags_a_bump():
    rng = np.random.default_rng(5)
    truth = rng.uniform(size=200_000)
    generated = rng.uniform(size=200_000)
    null = histogram_comparison(truth, generated, bins=10, range=(0, 1))
    assert null.max_relative_deviation(1000) < 0.05

    # 10 % more weight in the fourth bin; the unit-area normalisation moves the others down by 1 %.
    weight = np.where((generated >= 0.3) & (generated < 0.4), 1.1, 1.0)
    bumped = histogram_comparison(truth, generated, bins=10, generated_weight=weight, range=(0, 1))
    deviation = bumped.max_relative_deviation(1000)
    assert deviation > 0.05
    assert np.argmax(np.abs(bumped.ratio - 1)) == 3
    assert math.isnan(bumped.max_relative_deviation(min_count=10**6))
    assert bumped.as_dict()["max_relative_deviation"] == pytest.approx(deviation)
    # the pull tells a statistical deviation from a real one: 20 000 events a bin, ratio error about 1 %
    assert null.max_pull(1000) < 4 and bumped.max_pull(1000) > 6
    assert bumped.max_ratio_error(1000) == pytest.approx(math.sqrt(2 / 20_000), rel=0.1)
    assert bumped.as_dict()["max_pull"] == pytest.approx(bumped.max_pull(1000))


def test_triangular_discriminator():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=2000), rng.normal(loc=0.3, size=3000)
    assert triangular_discriminator(a, a, bins=20) == 0.0
    assert triangular_discriminator(a, b, bins=20) == pytest.approx(triangular_discriminator(b, a, bins=20))

    # Fractions p = (0.5, 0.3, 0.2), q = (0.2, 0.3, 0.5): Delta = 1/2 (0.09/0.7 + 0 + 0.09/0.7) = 0.09/0.7.
    p = np.array([0.5] * 5 + [1.5] * 3 + [2.5] * 2)
    q = np.array([0.5] * 2 + [1.5] * 3 + [2.5] * 5)
    assert triangular_discriminator(p, q, bins=[0, 1, 2, 3]) == pytest.approx(0.09 / 0.7)
    # Same through weights, with an empty fourth bin that must be skipped.
    q_weighted = triangular_discriminator(p, np.array([0.5, 1.5, 2.5]), [0, 1, 2, 3, 4], generated_weight=[2, 3, 5])
    assert q_weighted == pytest.approx(0.09 / 0.7)
    assert triangular_discriminator(np.zeros(10), np.ones(10), bins=[-0.5, 0.5, 1.5]) == pytest.approx(1.0)


def test_ratio_panel_draws_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(7)
    comparison = histogram_comparison(rng.normal(size=5000), rng.normal(size=5000), bins=25)
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ratio_panel(top, bottom, comparison, label="x")
    path = tmp_path / "panel.png"
    fig.savefig(path)
    plt.close(fig)
    assert path.stat().st_size > 1000


def test_time_per_event():
    calls = []
    per_event = time_per_event(lambda n: calls.append(n) or torch.randn(n, 3), 1000, repeats=2)
    assert calls == [1000, 1000]
    assert 0.0 < per_event < 1e-3
    with pytest.raises(ValueError, match="repeats"):
        time_per_event(lambda n: None, 10, repeats=0)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: classifier_two_sample_test(np.full((20, 2), np.nan), np.zeros((20, 2))), "non-finite"),
        (lambda: classifier_two_sample_test(np.zeros((20, 2)), np.zeros((20, 3))), "features"),
        (lambda: classifier_two_sample_test(np.zeros((20, 2)), np.zeros((20, 2)), np.ones(19)), "one weight"),
        (lambda: classifier_two_sample_test(np.zeros((20, 2)), np.zeros((20, 2)), -np.ones(20)), "negative"),
        (lambda: classifier_two_sample_test(np.zeros((0, 2)), np.zeros((20, 2))), "empty"),
        (lambda: weight_summary([]), "empty"),
        (lambda: weight_summary([1.0, np.inf]), "non-finite"),
        (lambda: weight_summary([-1.0, 0.5]), "mean"),
        (lambda: histogram_comparison(np.zeros(10), np.zeros(10), 5, generated_weight=np.ones(9)), "one weight"),
        (lambda: histogram_comparison(np.array([]), np.zeros(10), 5), "empty"),
        (lambda: histogram_comparison(np.zeros(10), [0.0, np.nan], 5), "non-finite"),
        (lambda: histogram_comparison(np.zeros((10, 2)), np.zeros(10), 5), "one observable"),
        (lambda: histogram_comparison(np.zeros(10), np.zeros(10), 5, range=(2, 3)), "range"),
        (lambda: triangular_discriminator(np.zeros(10), np.zeros(10), bins=[0, 1, 1]), "increasing"),
    ],
)
def test_bad_inputs_raise_one_line_value_errors(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)
