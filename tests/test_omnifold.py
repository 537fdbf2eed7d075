"""OmniFold against distributions known exactly: Gaussian truth smeared by a Gaussian detector.

The MC is generated from N(0.2, 0.8), the data from N(0, 1), both smeared by N(0, 0.5) noise; the unfolded MC must
reproduce the exact N(0, 1) bin probabilities, not the prior it started from. Samples of 20 000 events and small
networks keep each fit to a few seconds on one thread; the fits are module fixtures shared by the tests.
"""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from hadrinv.inference.unfolding.omnifold import OmniFoldResult, OmniFoldSettings, omnifold

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N = 20_000
EDGES = np.linspace(-3.0, 3.0, 21)
SMEAR = 0.5
REPLICAS = 10
FAST = dict(iterations=4, hidden=32, layers=2, epochs=10, patience=3)


def truth_density(edges, mean=0.0, sd=1.0):
    return np.diff(norm.cdf(edges, mean, sd)) / np.diff(edges)


def bootstrap_chi2_per_ndf(density, error, truth) -> float:
    """chi2/ndf of the unfolded density against the exact truth with the bootstrap errors.

    The errors come from only B replicas, so each squared pull follows F(1, B - 1), whose mean is
    (B - 1) / (B - 3), not one: dividing by it keeps the expectation at one for any B. The bootstrap covers the
    data and MC statistics; ndf is the number of bins (the bins do not hold all events, so no constraint)."""
    chi2 = np.sum(((density - truth) / error) ** 2)
    return chi2 / len(density) / ((REPLICAS - 1) / (REPLICAS - 3))


def weighted_moments(x, w):
    mean = np.average(x, weights=w)
    return mean, np.sqrt(np.average((x - mean) ** 2, weights=w))


def efficiency(gen):
    return 0.5 + 0.4 / (1 + np.exp(-gen))


def seen_density(edges):
    """The gen distribution of the data events the detector kept, phi(x) eff(x) normalised: what an unfolding
    that dropped the lost events would give."""
    x = np.linspace(-8.0, 8.0, 160_001)
    f = norm.pdf(x) * efficiency(x)
    cdf = np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2 * np.diff(x))])
    return np.diff(np.interp(edges, x, cdf / cdf[-1])) / np.diff(edges)


@pytest.fixture(scope="module")
def gaussian():
    rng = np.random.default_rng(1)
    gen = rng.normal(0.2, 0.8, N)
    data = rng.normal(0.0, 1.0, N) + rng.normal(0, SMEAR, N)
    settings = OmniFoldSettings(**FAST, bootstraps=REPLICAS)
    return gen, omnifold(gen, gen + rng.normal(0, SMEAR, N), data, settings=settings)


def inefficient_events():
    rng = np.random.default_rng(2)
    gen = rng.normal(0.2, 0.8, N)
    reco = gen + rng.normal(0, SMEAR, N)
    reco[rng.random(N) > efficiency(gen)] = np.nan
    truth = rng.normal(0.0, 1.0, N)
    passed = rng.random(N) < efficiency(truth)
    data = truth[passed] + rng.normal(0, SMEAR, passed.sum())
    return gen, reco, data


@pytest.fixture(scope="module", params=["reconstructed", "all"])
def inefficient(request):
    """Step 2 on the reconstructed events (four iterations) and on all events, the paper's choice: a lost MC event
    enters step 2 with a ratio of one, so each update is diluted by the efficiency (0.5-0.9) and convergence takes
    about 1 / efficiency as many iterations (eight here; four leave chi2/ndf near 4.5)."""
    gen, reco, data = inefficient_events()
    iterations = 4 if request.param == "reconstructed" else 8
    settings = OmniFoldSettings(**FAST | {"iterations": iterations}, bootstraps=REPLICAS, step2=request.param)
    return gen, omnifold(gen, reco, data, settings=settings)


def test_gaussian_unfolds_to_exact_truth(gaussian):
    gen, result = gaussian
    density, error, covariance = result.histogram(gen, EDGES)
    truth = truth_density(EDGES)
    chi2 = bootstrap_chi2_per_ndf(density, error, truth)
    raw = chi2 * (REPLICAS - 1) / (REPLICAS - 3)
    print(f"\nGaussian: chi2/ndf = {chi2:.3f} ({raw:.3f} before the small-B correction), {result}")
    assert chi2 <= 2.0
    # the test has power: the MC prior and a half-way distribution fail it
    assert bootstrap_chi2_per_ndf(truth_density(EDGES, 0.2, 0.8), error, truth) > 20
    assert bootstrap_chi2_per_ndf(truth_density(EDGES, 0.1, 0.9), error, truth) > 5
    assert covariance.shape == (20, 20) and np.allclose(np.sqrt(np.diag(covariance)), error)
    assert result.bootstrap_weights.shape == (REPLICAS, N)


def test_gaussian_moments_move_to_data(gaussian):
    gen, result = gaussian
    mean, sd = weighted_moments(gen, result.event_weights)
    print(f"\nGaussian: unfolded mean {mean:.4f}, width {sd:.4f}")
    # statistical error of the unfolded mean: the data's reco mean, var 1.25 / N, and the MC's mean noise, 0.25 / N;
    # of the width about the same (0.006 from each); 0.04 is 4-5 sigma, a fifth of the distance from the prior,
    # and leaves room for the bias of stopping after four iterations (the width ends about 0.02 short)
    assert abs(mean) < 0.04 and abs(sd - 1.0) < 0.04
    expected = np.sqrt((1 + SMEAR**2) / N + SMEAR**2 / N)
    spread = np.std([weighted_moments(gen, w)[0] for w in result.bootstrap_weights], ddof=1)
    # the bootstrap reproduces that error; 10 replicas know a spread to about 25%
    assert 0.5 < spread / expected < 2.0, (spread, expected)


def test_null_case_leaves_weights_near_one():
    rng = np.random.default_rng(3)
    gen = rng.normal(0.2, 0.8, N)
    data = rng.normal(0.2, 0.8, N) + rng.normal(0, SMEAR, N)
    result = omnifold(gen, gen + rng.normal(0, SMEAR, N), data, settings=OmniFoldSettings(**FAST | {"iterations": 2}))
    assert result.ess_fraction > 0.9
    assert 0.5 < result.weight_range[0] and result.weight_range[1] < 2.0
    assert np.isclose(np.sum(result.event_weights), N)  # the documented normalisation
    assert all(row["step1_loss"] > 0.69 for row in result.iterations)  # ln 2: nothing to tell apart


def test_inefficient_events_are_pulled_along(inefficient):
    gen, result = inefficient
    density, error, _ = result.histogram(gen, EDGES)
    chi2 = bootstrap_chi2_per_ndf(density, error, truth_density(EDGES))
    raw = chi2 * (REPLICAS - 1) / (REPLICAS - 3)
    print(f"\nwith inefficiency: chi2/ndf = {chi2:.3f} ({raw:.3f} before the small-B correction), {result}")
    assert chi2 <= 2.0
    # what the detector saw is biased toward large gen (+0.12 in the mean): the unfolding must undo that
    assert bootstrap_chi2_per_ndf(seen_density(EDGES), error, truth_density(EDGES)) > 5
    mean, sd = weighted_moments(gen, result.event_weights)
    # about 14 000 data events survive, weighted up by 1 / efficiency: the unfolded mean and width have statistical
    # errors near 0.015 (the bootstrap spread), so 0.06 is 4 sigma and half the efficiency's bias of the mean
    assert abs(mean) < 0.06 and abs(sd - 1.0) < 0.06


def test_correlated_observables():
    rng = np.random.default_rng(4)
    cov_mc, cov_data = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.6], [0.6, 1.0]])
    gen = rng.multivariate_normal([0.0, 0.0], cov_mc, N)
    truth = rng.multivariate_normal([0.0, 0.0], cov_data, N)
    reco, data = gen + rng.normal(0, SMEAR, gen.shape), truth + rng.normal(0, SMEAR, truth.shape)
    result = omnifold(gen, reco, data, settings=OmniFoldSettings(**FAST))
    cov = np.cov(gen.T, aweights=result.event_weights)
    rho = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    print(f"\n2-d: unfolded correlation {rho:.3f} (MC 0, data truth 0.6), {result}")
    # the statistical error of a correlation from 20k events is about 0.01; four iterations leave some of the
    # prior's zero (about 0.07 of the 0.6)
    assert abs(rho - 0.6) < 0.1, rho


def test_determinism_and_binning_after_the_fact(gaussian):
    rng = np.random.default_rng(5)
    gen = rng.normal(0.2, 0.8, 2000)
    reco, data = gen + rng.normal(0, SMEAR, 2000), rng.normal(0, 1.0, 2000) + rng.normal(0, SMEAR, 2000)
    small = dict(iterations=2, hidden=16, layers=2, epochs=3, batch=256)
    first_settings = OmniFoldSettings(**small)
    first = omnifold(gen, reco, data, settings=first_settings)
    assert np.array_equal(first.weights, omnifold(gen, reco, data, settings=OmniFoldSettings(**small)).weights)
    assert not np.allclose(first.weights, omnifold(gen, reco, data, settings=OmniFoldSettings(**small, seed=1)).weights)
    assert np.array_equal(
        first.weights, omnifold(*map(torch.as_tensor, (gen, reco, data)), settings=first_settings).weights
    )
    # the nominal run does not depend on the replicas training beside it
    with_replicas = omnifold(gen, reco, data, settings=OmniFoldSettings(**small, bootstraps=2))
    assert np.allclose(first.weights, with_replicas.weights, rtol=1e-4)

    gen, result = gaussian
    fine, fine_error, _ = result.histogram(gen, EDGES)
    coarse, coarse_error, _ = result.histogram(gen, EDGES[::5])  # four bins, each five fine ones
    assert np.allclose(coarse, fine.reshape(4, 5).mean(1))
    assert np.all(coarse_error > 0)
    uneven = np.array([-5.0, -1.0, 0.0, 0.25, 2.0, 5.0])
    density, _, _ = result.histogram(gen, uneven)
    assert np.isclose(np.sum(density * np.diff(uneven)), 1.0)  # every event inside


def test_histogram_errors_without_bootstrap():
    # unit weights: the sum-w^2 covariance of a normalised histogram is the multinomial one
    rng = np.random.default_rng(6)
    x = rng.normal(size=5000)
    result = OmniFoldResult(np.ones(5000), [], None, 1.0, (1.0, 1.0), np.ones(5000))
    edges = np.array([-1.0, 0.0, 0.5, 2.0])
    density, error, covariance = result.histogram(x, edges)
    p = np.histogram(x, edges)[0] / 5000
    expected = (np.diag(p) - np.outer(p, p)) / 5000 / np.outer(np.diff(edges), np.diff(edges))
    assert np.allclose(density, p / np.diff(edges))
    assert np.allclose(covariance, expected) and np.allclose(error, np.sqrt(np.diag(expected)))


def with_nan(shape, row):
    a = np.zeros(shape)
    a[row] = np.nan
    return a


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("gen_mc", with_nan((50, 1), 7), "gen_mc has a non-finite value in row 7"),
        ("reco_data", np.ones((40, 2)), "reco_data has 2 columns but reco_mc has 1"),
        ("reco_mc", np.ones((49, 1)), "reco_mc has 49 rows but gen_mc has 50"),
        ("reco_mc", np.full((50, 1), np.nan), "reco_mc has no reconstructed event"),
        ("reco_mc", np.where(np.arange(50)[:, None] == 2, np.inf, 0.0), "reco_mc has a non-finite value in row 2"),
        ("mc_weight", np.where(np.arange(50) == 3, -1.0, 1.0), "mc_weight has a negative value in row 3"),
        ("data_weight", -np.ones(40), "data_weight has a negative value in row 0"),
        ("data_weight", np.ones(39), r"data_weight must have shape \(40,\)"),
        ("reco_data", np.zeros((0, 1)), "reco_data is empty"),
        ("reco_data", with_nan((40, 1), 5), "reco_data has a non-finite value in row 5"),
    ],
)
def test_bad_input(name, value, message):
    rng = np.random.default_rng(7)
    arrays = dict(gen_mc=rng.normal(size=(50, 1)), reco_mc=rng.normal(size=(50, 1)), reco_data=rng.normal(size=(40, 1)))
    with pytest.raises(ValueError, match=message):
        omnifold(**arrays | {name: value})


@pytest.mark.parametrize(
    "options",
    [
        dict(iterations=0),
        dict(lr=0.0),
        dict(validation_fraction=1.0),
        dict(weight_clip=(2.0, 1.0)),
        dict(bootstraps=1),
        dict(step2="some"),
    ],
)
def test_bad_settings(options):
    with pytest.raises(ValueError, match=next(iter(options))):
        OmniFoldSettings(**options)
