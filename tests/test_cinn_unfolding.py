"""cINN unfolding: per-event posteriors calibrated on held-out MC, the efficiency correction restores the lost
events, the iterative cINN moves the unfolded distribution from the MC's prior towards the data's truth, and the
prior update, given exact posteriors, converges to the truth within its replicas' errors."""

import numpy as np
import pytest
from scipy.stats import norm

from hadrinv.inference.unfolding.cinn import CINNSettings, CINNUnfolding, _update_prior, calibration, cinn_unfold
from hadrinv.inference.unfolding.member_classifiers import ClassifierSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N = 12_000
FAST = dict(transforms=3, hidden=32, max_epochs=25, patience=5, samples=40, replica_samples=10)


def efficiency(x):
    return 0.5 + 0.4 / (1 + np.exp(-2 * x))


@pytest.fixture(scope="module")
def gaussian_case():
    """MC truth N(0.2, 0.8), data truth N(0, 1), smearing N(0, 0.5); events lost with a gen-dependent efficiency."""
    rng = np.random.default_rng(0)
    gen_mc = rng.normal(0.2, 0.8, N)
    reco_mc = gen_mc + rng.normal(0, 0.5, N)
    reco_mc[rng.uniform(size=N) > efficiency(gen_mc)] = np.nan
    truth = rng.normal(0, 1, N)
    reco_data = (truth + rng.normal(0, 0.5, N))[rng.uniform(size=N) < efficiency(truth)]
    held = slice(10_000, N)  # MC events the flows never see: the calibration's
    train = slice(0, 10_000)
    one = cinn_unfold(
        gen_mc[train], reco_mc[train], reco_data, settings=CINNSettings(**FAST, iterations=1, flows=1, bootstraps=0)
    )
    three = cinn_unfold(
        gen_mc[train], reco_mc[train], reco_data, settings=CINNSettings(**FAST, iterations=3, flows=2, bootstraps=4)
    )
    return gen_mc, reco_mc, held, one, three


def moments(result):
    x, w = result.samples[:, :, 0], result.sample_weight
    mean = float((x * w).sum() / w.sum())
    return mean, float(np.sqrt(((x - mean) ** 2 * w).sum() / w.sum()))


def test_per_event_posteriors_are_calibrated_on_held_out_mc(gaussian_case):
    gen_mc, reco_mc, held, one, _ = gaussian_case
    result = calibration(one.estimator, gen_mc[held], reco_mc[held], samples=300)
    assert result["events"] > 1000  # the reconstructed held-out events
    for level in (0.68, 0.95):
        assert abs(result["marginal"][level][0] - level) < 0.05, result
        assert abs(result["joint"][level] - level) < 0.05, result


def test_the_efficiency_correction_restores_the_lost_events(gaussian_case):
    *_, one, three = gaussian_case
    for result in (one, three):
        # the data kept about 70 % of N truth events; the weights count them all again
        assert abs(result.sample_weight.sum() / N - 1) < 0.03, result.sample_weight.sum()
    # the learned efficiency is the function the MC was made with, on average over the MC's own events (trees
    # are piecewise constant: a single point can be off by a step)
    x = np.random.default_rng(1).normal(0.2, 0.8, (5000, 1))
    # one flow: its efficiency from all the MC; two flows: each from its half, and the samples' correction is their
    # average
    pooled = np.mean([learned(x) for learned in three.efficiencies], 0)
    for learned in (one.efficiencies[0](x), pooled):
        assert np.mean(np.abs(learned - efficiency(x[:, 0]))) < 0.04


def test_the_iterative_cinn_moves_from_the_mc_prior_towards_the_data(gaussian_case):
    *_, one, three = gaussian_case
    mean1, width1 = moments(one)
    mean3, width3 = moments(three)
    # one pass stays between the MC's (0.2, 0.8) and the data's (0, 1); iterating moves it towards the data
    assert 0.0 < mean1 < 0.15 and 0.85 < width1 < 0.98, (mean1, width1)
    assert abs(mean3) < abs(mean1) and abs(width3 - 1) < abs(width1 - 1), (mean3, width3, mean1, width1)
    assert len(three.history) == 2 and [u["iteration"] for u in three.updates] == [2, 3]
    assert three.replica_weight.shape == (4, len(three.samples), 10)
    assert all(0.5 < u["ess_fraction"] <= 1 for u in three.updates)
    # any binning after the fact: unit area, a positive covariance of the right shape
    for result in (one, three):
        for edges in (np.linspace(-3, 3, 13), np.linspace(-2, 2, 41)):
            density, covariance = result.histogram(0, edges)
            assert abs((density * np.diff(edges)).sum() - 1) < 1e-12 and covariance.shape == (len(edges) - 1,) * 2
            assert (np.diag(covariance)[np.abs(edges[:-1]) < 1.5] > 0).all()


def test_the_prior_update_with_exact_posteriors_reaches_the_truth_within_its_errors():
    """With the MC's exact posterior (Gaussian prior N(0.2, 0.8), smearing 0.5) in place of a flow, the reweighting
    iterations alone must unfold data of truth N(0, 1): one pass is many errors away, four are within the replicas'
    errors."""
    rng = np.random.default_rng(3)
    m, samples = 12_000, 40
    gen_mc = rng.normal(0.2, 0.8, (m, 1))
    reco_data = rng.normal(0, 1, m) + rng.normal(0, 0.5, m)
    variance = 1 / (1 / 0.8**2 + 1 / 0.5**2)
    mean = variance * (0.2 / 0.8**2 + reco_data / 0.5**2)
    drawn = (mean[:, None] + np.sqrt(variance) * rng.normal(size=(m, samples)))[:, :, None]
    edges = np.linspace(-2.5, 2.5, 11)
    p = np.diff(norm.cdf(edges))
    truth = p / p.sum() / np.diff(edges)

    def chi2(iterations):
        s = CINNSettings(
            iterations=iterations,
            flows=1,
            samples=samples,
            bootstraps=10,
            replica_samples=20,
            prior_classifier=ClassifierSettings(epochs=20, hidden=32, layers=2),
        )
        weight, replicas, _ = _update_prior(gen_mc, np.ones(m), drawn, np.full((m, samples), 1 / samples), s)
        result = CINNUnfolding(_Pooled(1), drawn, weight, replicas, None, [])
        density, covariance = result.histogram(0, edges)
        return float(np.sum((density - truth) ** 2 / np.diag(covariance)) / (len(truth) - 1))

    first, fourth = chi2(1), chi2(4)
    assert first > 20, first
    assert fourth < 3, fourth  # 10 replicas: a squared pull scatters like F(1, 9), mean 1.29


class _Pooled(list):
    """Stands in for the flows' mixture: the histogram needs only their number."""

    def __init__(self, flows: int):
        super().__init__([None] * flows)


def test_bad_input_is_refused():
    x = np.zeros((3000, 1))
    with pytest.raises(ValueError, match="must be paired"):
        cinn_unfold(x, x[:-1], x)
    with pytest.raises(ValueError, match=r"reco_data has shape \(3000, 2\); expected \(N, 1\)"):
        cinn_unfold(x, x, np.zeros((3000, 2)))
    with pytest.raises(ValueError, match="gen_mc holds a non-finite value in row 0"):
        cinn_unfold(np.full((3000, 1), np.nan), x, x)
    with pytest.raises(ValueError, match="reconstructed MC events; need at least"):
        cinn_unfold(x[:100], x[:100], x)
    with pytest.raises(ValueError, match="iterations must be at least 1"):
        CINNSettings(iterations=0)
    with pytest.raises(ValueError, match=r"samples must be at least 2 per flow \(8\), got 6"):
        CINNSettings(samples=6, flows=4)
    with pytest.raises(ValueError, match="bootstraps must be 0 or at least 2"):
        CINNSettings(bootstraps=1)
