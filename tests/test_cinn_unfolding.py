"""cINN unfolding: per-event posteriors calibrated on held-out MC, the efficiency correction restores the lost
events, the iterative cINN moves the unfolded distribution from the MC's prior towards the data's truth."""

import numpy as np
import pytest

from hadrinv.inference.unfolding.cinn import CINNSettings, calibration, cinn_unfold

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N = 12_000
FAST = dict(transforms=3, hidden=32, max_epochs=25, patience=5, samples=40)


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
    one = cinn_unfold(gen_mc[train], reco_mc[train], reco_data, settings=CINNSettings(**FAST))
    three = cinn_unfold(gen_mc[train], reco_mc[train], reco_data, settings=CINNSettings(**FAST, iterations=3))
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
    assert np.mean(np.abs(one.efficiency(x) - efficiency(x[:, 0]))) < 0.04


def test_the_iterative_cinn_moves_from_the_mc_prior_towards_the_data(gaussian_case):
    *_, one, three = gaussian_case
    mean1, width1 = moments(one)
    mean3, width3 = moments(three)
    # one pass stays between the MC's (0.2, 0.8) and the data's (0, 1); iterating moves it towards the data
    assert 0.0 < mean1 < 0.15 and 0.85 < width1 < 0.98, (mean1, width1)
    assert abs(mean3) < abs(mean1) and abs(width3 - 1) < abs(width1 - 1), (mean3, width3, mean1, width1)
    assert len(three.history) == 3 and not np.allclose(three.prior_weight, 1)
    # any binning after the fact: unit area, a covariance of the right shape
    for edges in (np.linspace(-3, 3, 13), np.linspace(-2, 2, 41)):
        density, covariance = three.histogram(0, edges)
        assert abs((density * np.diff(edges)).sum() - 1) < 1e-12 and covariance.shape == (len(edges) - 1,) * 2


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
