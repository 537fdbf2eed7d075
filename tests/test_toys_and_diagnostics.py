"""Exact posterior samplers of the inverse-problem toys against independent checks (importance-weighted
prior, brute-force rejection, closed forms), and the diagnostics (c2st, MMD, coverage) against known answers."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate, stats

from hadrinv.inference.diagnostics import (
    CoverageResult,
    c2st,
    ellipsoid_coverage,
    hpd_coverage,
    marginal_coverage,
    mmd,
    replica_band_factor,
)
from hadrinv.physics.toys import (
    TWO_MOONS_OBSERVATIONS,
    TWO_MOONS_TRUE_PARAMETERS,
    ring_posterior,
    ring_prior,
    ring_simulate,
    sum_of_squares_posterior,
    sum_of_squares_prior,
    sum_of_squares_simulate,
    two_moons_log_likelihood,
    two_moons_prior,
    two_moons_reference_posterior,
    two_moons_simulate,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _moon_radius(theta: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise radius r and u = p0 - 0.25 implied by (theta, x): p = x - g(theta)."""
    theta, x = theta.double(), x.double()
    p0 = x[..., 0] + (theta[..., 0] + theta[..., 1]).abs() / math.sqrt(2)
    p1 = x[..., 1] - (theta[..., 1] - theta[..., 0]) / math.sqrt(2)
    return torch.sqrt((p0 - 0.25) ** 2 + p1**2), p0 - 0.25


# ---------------------------------------------------------------------------------------------- two moons


def test_two_moons_published_observations_fit_their_true_parameters():
    r, u = _moon_radius(TWO_MOONS_TRUE_PARAMETERS, TWO_MOONS_OBSERVATIONS)
    assert TWO_MOONS_OBSERVATIONS.shape == TWO_MOONS_TRUE_PARAMETERS.shape == (10, 2)
    assert bool((u > 0).all()) and bool(((r - 0.1).abs() < 4 * 0.01).all())
    assert bool(torch.isfinite(two_moons_log_likelihood(TWO_MOONS_TRUE_PARAMETERS, TWO_MOONS_OBSERVATIONS)).all())


def test_two_moons_simulator_is_reproducible_and_its_likelihood_is_normalised():
    theta = two_moons_prior(5000, _gen(0))
    x1, x2 = two_moons_simulate(theta, _gen(1)), two_moons_simulate(theta, _gen(1))
    assert x1.shape == (5000, 2) and torch.equal(x1, x2)
    r, u = _moon_radius(theta, x1)
    assert bool((u > 0).all())
    assert abs(r.mean().item() - 0.1) < 5e-4 and abs(r.std().item() - 0.01) < 5e-4
    # the likelihood (with its 1/(pi r) polar Jacobian) integrates to one over x
    theta0 = torch.tensor([0.3, -0.5], dtype=torch.float64)  # shifts the moon by g = (-0.2, -0.8) / sqrt2
    step = 0.001
    gx, gy = torch.meshgrid(
        torch.arange(0.2, 0.4, step, dtype=torch.float64) - 0.2 / math.sqrt(2),
        torch.arange(-0.15, 0.15, step, dtype=torch.float64) - 0.8 / math.sqrt(2),
        indexing="ij",
    )
    density = two_moons_log_likelihood(theta0, torch.stack([gx, gy], -1)).exp()
    assert abs(density.sum().item() * step**2 - 1.0) < 0.01


@pytest.mark.parametrize("index", [0, 3, 6])
def test_two_moons_reference_posterior_matches_importance_weighted_prior(index):
    x = TWO_MOONS_OBSERVATIONS[index]
    reference = two_moons_reference_posterior(x, 20000, _gen(index)).double()
    assert reference.shape == (20000, 2) and bool((reference.abs() <= 1).all())
    prior = two_moons_prior(1_000_000, _gen(100 + index)).double()
    weights = two_moons_log_likelihood(prior, x).exp()
    weights = weights / weights.sum()
    ess = 1.0 / (weights**2).sum().item()
    assert ess > 3000

    # 8x8 histogram over the prior box: both moons with the right masses
    edges = torch.linspace(-1, 1, 9, dtype=torch.float64)[1:-1]

    def histogram(samples, w):
        cell = torch.bucketize(samples[:, 0].contiguous(), edges) * 8 + torch.bucketize(
            samples[:, 1].contiguous(), edges
        )
        return torch.zeros(64, dtype=torch.float64).index_add_(0, cell, w) / w.sum()

    h_ref = histogram(reference, torch.ones(len(reference), dtype=torch.float64))
    h_is = histogram(prior, weights)
    se = torch.sqrt(h_is * (1 - h_is) / ess + h_ref * (1 - h_ref) / len(reference)) + 1e-4
    assert bool(((h_ref - h_is).abs() < 5 * se).all()), (h_ref - h_is).abs().max()

    # the implied noise radius: sensitive to the width of the moons
    r_ref, _ = _moon_radius(reference, x)
    r_is, _ = _moon_radius(prior, x)
    mean_is = (weights * r_is).sum()
    std_is = (weights * (r_is - mean_is) ** 2).sum().sqrt()
    assert abs(r_ref.mean() - mean_is) < 5e-4
    assert abs(r_ref.std() - std_is) < 5e-4


def test_two_moons_batched_posterior_shape():
    samples = two_moons_reference_posterior(TWO_MOONS_OBSERVATIONS[:3], 50, _gen(0))
    assert samples.shape == (3, 50, 2) and bool((samples.abs() <= 1).all())


# ------------------------------------------------------------------------------------------ sum of squares


def _brute_force_sum_of_squares(y, d, sigma, n_prior, generator):
    theta = sum_of_squares_prior(n_prior, d, generator).double()
    f = theta.pow(2).sum(-1)
    keep = torch.rand(n_prior, generator=generator, dtype=torch.float64) < torch.exp(-0.5 * ((y - f) / sigma) ** 2)
    return theta[keep]


@pytest.mark.parametrize("d, y", [(2, 1.0), (10, 3.0)])
def test_sum_of_squares_posterior_matches_brute_force_rejection(d, y):
    brute = _brute_force_sum_of_squares(y, d, 0.05, 300_000 if d == 2 else 200_000, _gen(7))
    assert len(brute) > 3000
    fast = sum_of_squares_posterior(y, d, 20000, 0.05, _gen(8)).double()
    assert fast.shape == (20000, d) and bool((fast.abs() <= 1).all())
    for statistic in (lambda t: t.pow(2).sum(-1), lambda t: t[:, 0], lambda t: t.abs().max(-1).values):
        assert stats.ks_2samp(statistic(fast).numpy(), statistic(brute).numpy()).pvalue > 1e-3


def test_sum_of_squares_posterior_of_f_matches_quadrature_in_ten_dimensions():
    """For y = 1 in d = 10 the posterior of s = |theta|^2 is s^4 N(1; s, sigma^2) (the box barely cuts the
    sphere at s ~ 1): its mean is shifted by ~ 4 sigma^2 / y = 0.2 sigma from y, the residual (f - y) is not
    simply N(0, sigma^2); compare mean and std with quadrature."""
    sigma, y = 0.05, 1.0
    samples = sum_of_squares_posterior(torch.tensor([[y], [y]]), 10, 20000, sigma, _gen(3))
    assert samples.shape == (2, 20000, 10)
    f = samples[0].double().pow(2).sum(-1)
    density = lambda s: s**4 * math.exp(-0.5 * ((y - s) / sigma) ** 2)
    norm = integrate.quad(density, 0.5, 1.5)[0]
    mean = integrate.quad(lambda s: s * density(s), 0.5, 1.5)[0] / norm
    std = math.sqrt(integrate.quad(lambda s: (s - mean) ** 2 * density(s), 0.5, 1.5)[0] / norm)
    assert mean - y > 0.008  # the s^4 volume factor matters at this precision
    assert abs(f.mean().item() - mean) < 4 * std / math.sqrt(len(f))
    assert abs(f.std().item() / std - 1) < 0.03
    simulated = sum_of_squares_simulate(samples[1], sigma, _gen(4))
    assert simulated.shape == (20000, 1)


# -------------------------------------------------------------------------------------------------- ring


def test_ring_posterior_is_a_truncated_normal_in_radius_squared_with_uniform_angle():
    z, sigma, radius = 3.93, 0.05, 2.0
    samples = ring_posterior(z, 20000, radius, sigma, _gen(5)).double()
    s = samples.pow(2).sum(-1).numpy()
    assert samples.shape == (20000, 2) and s.max() <= radius**2 + 1e-5
    a, b = (0 - z) / sigma, (radius**2 - z) / sigma
    assert stats.ks_1samp(s, stats.truncnorm(a, b, loc=z, scale=sigma).cdf).pvalue > 1e-3
    angle = torch.atan2(samples[:, 1], samples[:, 0]).numpy()
    assert stats.ks_1samp(angle, stats.uniform(-math.pi, 2 * math.pi).cdf).pvalue > 1e-3


def test_ring_posterior_matches_brute_force_rejection():
    z, sigma = 1.0, 0.05
    theta = ring_prior(300_000, 2.0, _gen(9)).double()
    keep = torch.rand(len(theta), generator=_gen(10), dtype=torch.float64) < torch.exp(
        -0.5 * ((z - theta.pow(2).sum(-1)) / sigma) ** 2
    )
    brute = theta[keep]
    fast = ring_posterior(torch.tensor([[z], [2.0]]), 10000, generator=_gen(11))
    assert fast.shape == (2, 10000, 2)
    assert stats.ks_2samp(fast[0, :, 0].numpy(), brute[:, 0].numpy()).pvalue > 1e-3
    assert stats.ks_2samp(fast[0].pow(2).sum(-1).numpy(), brute.pow(2).sum(-1).numpy()).pvalue > 1e-3
    assert ring_simulate(theta[:7], sigma, _gen(0)).shape == (7, 1)


# ----------------------------------------------------------------------------------------- c2st and mmd


def test_c2st_is_chance_for_equal_distributions_and_high_for_shifted_ones():
    g = _gen(12)
    same = c2st(torch.randn(1000, 2, generator=g), torch.randn(1000, 2, generator=g))
    assert abs(same - 0.5) < 0.05
    shifted = c2st(torch.randn(1000, 1, generator=g), 1.0 + torch.randn(1000, 1, generator=g))
    assert shifted > 0.6  # the Bayes-optimal accuracy is Phi(1/2) = 0.69


def test_mmd_is_zero_for_equal_distributions_and_positive_otherwise():
    g = _gen(13)
    same = mmd(torch.randn(1500, 2, generator=g), torch.randn(1500, 2, generator=g))
    shifted = mmd(torch.randn(1500, 2, generator=g), torch.randn(1500, 2, generator=g) + torch.tensor([1.0, 0.0]))
    assert abs(same) < 0.01
    assert shifted > 0.1
    # an explicit bandwidth and unequal set sizes work, blockwise sums agree with the direct formula
    p, q = torch.randn(300, 3, generator=g).double(), torch.randn(200, 3, generator=g).double() + 0.5
    k = lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / 2)
    direct = ((k(p, p).sum() - 300) / (300 * 299) + (k(q, q).sum() - 200) / (200 * 199) - 2 * k(p, q).mean()).item()
    assert mmd(p, q, bandwidth=1.0) == pytest.approx(direct, rel=1e-9)


# --------------------------------------------------------------------------------------------- coverage


def _conjugate_gaussian_cases(m, generator, noise=0.5, d=2):
    """theta ~ N(0, I), x = theta + N(0, noise^2 I): posterior N(x / (1 + noise^2), noise^2 / (1 + noise^2) I)."""
    theta = torch.randn(m, d, generator=generator)
    x = theta + noise * torch.randn(m, d, generator=generator)
    return theta, x, x / (1 + noise**2), math.sqrt(noise**2 / (1 + noise**2))


def test_marginal_coverage_is_nominal_for_an_exact_posterior_and_low_for_an_overconfident_one():
    g = _gen(14)
    theta, _, mean, std = _conjugate_gaussian_cases(400, g)
    noise = torch.randn(400, 1000, 2, generator=g)
    exact = marginal_coverage(mean.unsqueeze(1) + std * noise, theta, levels=(0.5, 0.68, 0.95))
    assert isinstance(exact, CoverageResult) and exact.n_cases == 400
    for level, value in exact.items():
        assert abs(value - level) < 0.04, (level, value)
        assert len(exact.per_parameter[level]) == 2
    overconfident = marginal_coverage(mean.unsqueeze(1) + 0.5 * std * noise, theta)
    assert overconfident[0.68] < 0.68 - 0.15 and overconfident[0.95] < 0.95 - 0.1
    assert [row[0] for row in exact.as_table()] == [0.5, 0.68, 0.95]


class _GaussianPosterior:
    """A fake amortized estimator: posterior N(x / (1 + noise^2), (scale * std)^2 I)."""

    has_log_prob = True

    def __init__(self, noise: float, scale: float = 1.0, seed: int = 0):
        self.shrink, self.std = 1 / (1 + noise**2), scale * math.sqrt(noise**2 / (1 + noise**2))
        self.generator = _gen(seed)

    def sample(self, x, n):
        x = torch.as_tensor(x, dtype=torch.float32)
        single = x.dim() == 1
        batch = x.unsqueeze(0) if single else x
        samples = batch.unsqueeze(1) * self.shrink + self.std * torch.randn(
            batch.shape[0], n, batch.shape[1], generator=self.generator
        )
        return samples[0] if single else samples

    def log_prob(self, theta, x):
        return torch.distributions.Normal(x * self.shrink, self.std).log_prob(theta).sum(-1)


def test_hpd_coverage_is_nominal_for_an_exact_density_and_high_for_an_underconfident_one():
    theta, x, _, _ = _conjugate_gaussian_cases(500, _gen(15))
    exact = hpd_coverage(
        _GaussianPosterior(0.5, seed=1), theta, x, levels=(0.68, 0.95), n_samples=500, cases_per_batch=128
    )
    for level, value in exact.items():
        assert abs(value - level) < 3 * exact.standard_error(level) + 0.01, (level, value)
    assert exact.ranks.shape == (500,)
    underconfident = hpd_coverage(_GaussianPosterior(0.5, scale=2.0, seed=2), theta, x, n_samples=500)
    assert underconfident[0.68] > 0.9
    overconfident = hpd_coverage(_GaussianPosterior(0.5, scale=0.5, seed=3), theta, x, n_samples=500)
    assert overconfident[0.95] < 0.7


def test_ellipsoid_coverage_is_nominal_for_an_exact_posterior_and_catches_wrong_correlations():
    """Truth and observation from a correlated Gaussian, so the exact posterior is a correlated
    Gaussian (correlation 0.87): the ellipsoid test is nominal for it. Samples with the right marginals
    but too narrow across the correlation pass the marginal test and fail this one; so does an
    overconfident posterior.
    A skewed exact posterior (not Gaussian) is nominal too: the regions need no Gaussianity."""
    g = _gen(16)
    m, n, noise, rho = 600, 600, 1.0, 0.95
    cov = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    theta = torch.randn(m, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    x = theta + noise * torch.randn(m, 2, generator=g, dtype=torch.float64)
    post_cov = torch.linalg.inv(torch.linalg.inv(cov) + torch.eye(2, dtype=torch.float64) / noise**2)  # conjugate
    mean = x @ (post_cov / noise**2).T
    z = torch.randn(m, n, 2, generator=g, dtype=torch.float64)
    exact = mean.unsqueeze(1) + z @ torch.linalg.cholesky(post_cov).T
    levels = (0.3, 0.68, 0.95)
    cover = ellipsoid_coverage(exact, theta, levels)
    assert cover.ranks.shape == (m,)
    for level, value in cover.items():
        assert abs(value - level) < 3 * cover.standard_error(level) + 0.01, (level, value)
    # the right marginals, too narrow across the correlation (0.995 instead of 0.87)
    sd = post_cov.diagonal().sqrt()
    narrow_cov = torch.outer(sd, sd) * torch.tensor([[1.0, 0.995], [0.995, 1.0]], dtype=torch.float64)
    too_narrow = mean.unsqueeze(1) + z @ torch.linalg.cholesky(narrow_cov).T
    marginal = marginal_coverage(too_narrow, theta)
    assert abs(marginal[0.68] - 0.68) < 0.04 and abs(marginal[0.95] - 0.95) < 0.03
    joint = ellipsoid_coverage(too_narrow, theta)
    assert joint[0.68] < 0.68 - 0.2 and joint[0.95] < 0.95 - 0.2, joint
    assert ellipsoid_coverage(mean.unsqueeze(1) + 0.5 * z @ torch.linalg.cholesky(post_cov).T, theta)[0.68] < 0.68 - 0.2
    # skewed: theta ~ Exp(1) per parameter, exact posterior samples are fresh draws from the same law
    skewed = ellipsoid_coverage(
        torch.empty(m, n, 3, dtype=torch.float64).exponential_(generator=g),
        torch.empty(m, 3, dtype=torch.float64).exponential_(generator=g),
        levels,
    )
    for level, value in skewed.items():
        assert abs(value - level) < 3 * skewed.standard_error(level) + 0.01, (level, value)


def test_ellipsoid_coverage_needs_enough_samples_for_a_covariance():
    with pytest.raises(ValueError, match="at least 8 samples"):
        ellipsoid_coverage(torch.zeros(4, 6, 3), torch.zeros(4, 3))


def test_hpd_coverage_refuses_estimators_without_density():
    class NoDensity(_GaussianPosterior):
        has_log_prob = False

    with pytest.raises(ValueError, match="no tractable density"):
        hpd_coverage(NoDensity(0.5), torch.zeros(3, 2), torch.zeros(3, 2))


@pytest.mark.parametrize("members", [3, 4, 10])
def test_replica_band_covers_the_truth_at_its_level_for_members_fitted_to_replicas(members):
    # data = truth + noise; member k estimates data + its own replica noise; the band mean +- f * std
    # must contain the truth in 68.3% of experiments (independent Monte Carlo of that set-up)
    g = torch.Generator().manual_seed(members)
    trials = 200_000
    data = torch.randn(trials, 1, generator=g, dtype=torch.float64)
    estimates = data + torch.randn(trials, members, generator=g, dtype=torch.float64)
    half = replica_band_factor(members) * estimates.std(dim=1)
    covered = (estimates.mean(dim=1).abs() <= half).double().mean()
    assert abs(float(covered) - 0.6827) < 0.005
    naive = (estimates.mean(dim=1).abs() <= estimates.std(dim=1)).double().mean()
    assert float(naive) < 0.6827 - 0.04, "the plain spread of the members is too narrow a band"
    assert replica_band_factor(400) == pytest.approx(1.0, abs=0.005)
    with pytest.raises(ValueError, match="at least 2"):
        replica_band_factor(1)
