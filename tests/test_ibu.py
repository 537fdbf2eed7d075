"""Iterative Bayesian unfolding: pyunfold's own answer, closed forms (a perfect detector), the Gaussian benchmark
against its known truth, the efficiency correction, the reported covariance against the spread of data toys."""

import numpy as np
import pytest
from scipy.stats import norm

from hadrinv.inference.unfolding.ibu import IBUSettings, chi2, ibu, response_matrix

EDGES = np.linspace(-3, 3, 21)


def benchmark(seed: int, n: int = 100_000, efficiency=None):
    """MC truth N(0.2, 0.8), data truth N(0, 1), smearing N(0, 0.5); reco NaN where an event is lost."""
    rng = np.random.default_rng(seed)
    gen_mc, truth = rng.normal(0.2, 0.8, n), rng.normal(0.0, 1.0, n)
    reco_mc, reco_data = gen_mc + rng.normal(0, 0.5, n), truth + rng.normal(0, 0.5, n)
    if efficiency is not None:
        reco_mc[rng.uniform(size=n) > efficiency(gen_mc)] = np.nan
        reco_data = reco_data[rng.uniform(size=n) < efficiency(truth)]
    return gen_mc, reco_mc, reco_data


def truth_density(edges=EDGES):
    p = np.diff(norm.cdf(edges))
    return p / (p.sum() * np.diff(edges))


def test_the_same_numbers_as_pyunfold():
    import pyunfold

    gen_mc, reco_mc, reco_data = benchmark(1, 20_000)
    result = ibu(gen_mc, reco_mc, reco_data, EDGES, EDGES, settings=IBUSettings(iterations=5))
    data = np.histogram(reco_data, EDGES)[0].astype(float)
    response, response_error, _ = response_matrix(gen_mc, reco_mc, EDGES, EDGES, np.ones(len(gen_mc)))
    reference = pyunfold.iterative_unfold(
        data=data,
        data_err=np.sqrt(data),
        response=response,
        response_err=response_error,
        efficiencies=result.efficiency,
        efficiencies_err=np.sqrt(np.square(response_error).sum(0)),
        ts_stopping=0.0,
        max_iter=5,
        cov_type="poisson",
    )
    assert reference["num_iterations"] == 5
    assert np.allclose(result.counts, reference["unfolded"], rtol=1e-12, atol=0)
    assert np.allclose(np.sqrt(np.diag(result.covariance_stat)), reference["stat_err"], rtol=1e-10)
    assert np.allclose(np.sqrt(np.diag(result.covariance_mc)), reference["sys_err"], rtol=1e-10)


def test_a_perfect_detector_returns_the_data_histogram():
    rng = np.random.default_rng(2)
    gen = rng.normal(size=5000)
    data = rng.normal(0.3, 1.2, 4000)
    result = ibu(gen, gen, data, EDGES, EDGES, settings=IBUSettings(iterations=1))
    inside = np.histogram(data, EDGES)[0]
    assert np.allclose(result.response, np.eye(20)) and np.allclose(result.efficiency, 1)
    assert np.allclose(result.counts, inside, rtol=1e-12)
    # the Poisson errors of the data, untouched by an identity response
    assert np.allclose(np.diag(result.covariance_stat), inside, rtol=1e-9)


def test_tolerance_stops_at_the_first_iteration_that_moves_no_bin_by_more_than_its_fraction_of_the_error():
    gen_mc, reco_mc, reco_data = benchmark(3, 20_000)
    stopped = ibu(gen_mc, reco_mc, reco_data, EDGES, EDGES, settings=IBUSettings(iterations=200, tolerance=0.1))
    n = stopped.iterations
    assert 2 < n < 200

    def fixed(iterations):
        return ibu(gen_mc, reco_mc, reco_data, EDGES, EDGES, settings=IBUSettings(iterations=iterations))

    before, at, earlier = fixed(n - 1), fixed(n), fixed(n - 2)
    assert np.array_equal(at.counts, stopped.counts)
    assert np.all(np.abs(at.counts - before.counts) <= 0.1 * np.sqrt(np.diag(at.covariance_stat)))
    assert np.any(np.abs(before.counts - earlier.counts) > 0.1 * np.sqrt(np.diag(before.covariance_stat)))
    capped = ibu(gen_mc, reco_mc, reco_data, EDGES, EDGES, settings=IBUSettings(iterations=3, tolerance=1e-6))
    assert capped.iterations == 3 and np.array_equal(capped.counts, fixed(3).counts)


def test_gaussian_benchmark_unfolds_to_the_data_truth():
    gen_mc, reco_mc, reco_data = benchmark(3)
    result = ibu(gen_mc, reco_mc, reco_data, EDGES, EDGES, settings=IBUSettings(iterations=8))
    density, covariance = result.density()
    value, ndf = chi2(density, covariance, truth_density())
    assert value / ndf < 2, value / ndf
    centers = 0.5 * (EDGES[1:] + EDGES[:-1])
    weights = density * np.diff(EDGES)
    mean = float((weights * centers).sum())
    width = float(np.sqrt((weights * (centers - mean) ** 2).sum()))
    # the MC's (0.2, 0.8) moved to the data's (0, 1): binning widens the width by (0.3)^2 / 12 in quadrature
    assert abs(mean) < 0.02 and abs(width - np.sqrt(1 + 0.3**2 / 12)) < 0.03, (mean, width)
    # against the detector-level data the same chi2 is far off: unfolding did the work
    smeared = np.histogram(reco_data, EDGES, density=True)[0]
    assert chi2(smeared, covariance, truth_density())[0] > 20 * value


def test_the_efficiency_is_corrected():
    def efficiency(x):
        return 0.5 + 0.4 / (1 + np.exp(-2 * x))

    gen_mc, reco_mc, reco_data = benchmark(4, efficiency=efficiency)
    result = ibu(gen_mc, reco_mc, reco_data, EDGES, EDGES, settings=IBUSettings(iterations=8))
    density, covariance = result.density()
    value, ndf = chi2(density, covariance, truth_density())
    assert value / ndf < 2, value / ndf
    # the unfolded total counts the events before the losses: 1e5 data events less those outside the edges
    expected = 100_000 * (norm.cdf(3) - norm.cdf(-3))
    assert abs(result.counts.sum() - expected) < 4 * np.sqrt(result.covariance.sum()), result.counts.sum()
    # the efficiency the MC measured is the function it was made with
    centers = 0.5 * (EDGES[1:] + EDGES[:-1])
    well = (centers > -1.5) & (centers < 1.5)
    assert np.allclose(result.efficiency[well], efficiency(centers[well]), atol=0.03)


def test_the_reported_statistical_errors_match_the_spread_of_data_toys():
    gen_mc, reco_mc, _ = benchmark(5, 50_000)
    rng = np.random.default_rng(6)
    toys = []
    for _ in range(100):
        data = rng.normal(0, 1, 50_000) + rng.normal(0, 0.5, 50_000)
        toys.append(ibu(gen_mc, reco_mc, data, EDGES, EDGES).counts)
    reported = np.sqrt(np.diag(ibu(gen_mc, reco_mc, data, EDGES, EDGES).covariance_stat))
    ratio = np.std(toys, axis=0, ddof=1) / reported
    # Adye's first-order propagation through the iterations: right to about 25 % per bin, on average closer
    assert ((ratio > 0.6) & (ratio < 1.4)).all(), ratio
    assert 0.8 < ratio.mean() < 1.15, ratio


def test_bad_input_is_refused():
    gen, reco, data = benchmark(7, 2000)
    with pytest.raises(ValueError, match="must be paired"):
        ibu(gen, reco[:-1], data, EDGES, EDGES)
    with pytest.raises(ValueError, match="reco_data holds a non-finite value in row 3"):
        ibu(gen, reco, np.where(np.arange(len(data)) == 3, np.nan, data), EDGES, EDGES)
    with pytest.raises(ValueError, match=r"gen bin 0 \[-9, -8\) has no reconstructed MC event"):
        ibu(gen, reco, data, np.r_[-9, -8, EDGES], EDGES)
    with pytest.raises(ValueError, match="mc_weight must be finite and >= 0"):
        ibu(gen, reco, data, EDGES, EDGES, mc_weight=-np.ones(len(gen)))
    with pytest.raises(ValueError, match="increasing"):
        ibu(gen, reco, data, EDGES[::-1], EDGES)
    with pytest.raises(ValueError, match="iterations must be at least 1"):
        IBUSettings(iterations=0)
    with pytest.raises(ValueError, match="tolerance must be positive"):
        IBUSettings(tolerance=0.0)
