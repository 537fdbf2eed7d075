"""The amortized estimators against an exact posterior, and the interface they share."""

from __future__ import annotations

import math

import pytest
import torch

from hadrinv.inference import INN, MDN, VAIM, AmortizedEstimator, ConditionalFlow
from hadrinv.inference.embeddings import SetEmbedding

# linear-Gaussian problem: theta ~ N(0, 1)^2, x = theta + N(0, 0.5^2): the posterior is
# N(0.8 x, 0.2) per component (precision 1 + 4 = 5)
POSTERIOR_SHRINK, POSTERIOR_STD = 0.8, math.sqrt(0.2)


def linear_gaussian(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(n, 2, generator=g)
    return theta, theta + 0.5 * torch.randn(n, 2, generator=g)


@pytest.fixture(scope="module")
def pairs():
    return linear_gaussian(4000)


FAST = {"max_epochs": 60, "patience": 8, "batch_size": 128}


@pytest.mark.parametrize(
    "cls, options, mean_tol, std_rel_tol",
    [
        (ConditionalFlow, {"hidden": 32, "transforms": 3}, 0.1, 0.15),
        (MDN, {"components": 3, "hidden": 64}, 0.1, 0.15),
        # the INN's MMD losses are batch statistics: looser
        (INN, {"hidden": 64, "transforms": 6}, 0.15, 0.2),
        # VAIM trades reconstruction against the KL with a learned width: looser, but the widths must be right
        # within 35%
        (VAIM, {"hidden": 64, "blocks": 2, "latent_dim": 4}, 0.15, 0.35),
    ],
)
def test_linear_gaussian_posterior_moments_match_the_analytic_posterior(pairs, cls, options, mean_tol, std_rel_tol):
    torch.manual_seed(0)
    theta, x = pairs
    estimator = cls(2, 2, **options)
    estimator.fit(theta, x, **{**FAST, "batch_size": 256 if cls is INN else 128})
    observations = torch.tensor([[0.5, -1.0], [1.5, 0.0]])
    samples = estimator.sample(observations, 4000)
    assert samples.shape == (2, 4000, 2)
    expected_mean = POSTERIOR_SHRINK * observations
    assert (samples.mean(1) - expected_mean).abs().max() < mean_tol
    assert ((samples.std(1) / POSTERIOR_STD) - 1).abs().max() < std_rel_tol


def test_cosine_schedule_follows_a_half_cosine_to_zero_and_still_finds_the_posterior(pairs):
    torch.manual_seed(0)
    theta, x = pairs
    epochs, rate = 12, 2e-3
    mdn = MDN(2, 2, components=3, hidden=64)
    history = mdn.fit(
        theta, x, max_epochs=epochs, patience=epochs, batch_size=128, learning_rate=rate, lr_schedule="cosine"
    )
    expected = [rate * (1 + math.cos(math.pi * (e + 1) / epochs)) / 2 for e in range(epochs)]
    assert history.learning_rate == pytest.approx(expected, rel=1e-6, abs=1e-12)
    samples = mdn.sample(torch.tensor([0.5, -1.0]), 4000)
    assert ((samples.std(0) / POSTERIOR_STD) - 1).abs().max() < 0.15
    constant = MDN(2, 2, components=1, hidden=16).fit(theta, x, max_epochs=3, patience=3, lr_decay=1.0)
    assert constant.learning_rate == [1e-3] * 3
    with pytest.raises(ValueError, match="lr_schedule"):
        MDN(2, 2).fit(theta, x, max_epochs=1, lr_schedule="linear")


def test_flow_log_prob_matches_the_analytic_gaussian_density(pairs):
    torch.manual_seed(0)
    theta, x = pairs
    flow = ConditionalFlow(2, 2, hidden=32, transforms=3)
    flow.fit(theta, x, **FAST)
    x_obs = torch.tensor([0.4, -0.6])
    points = POSTERIOR_SHRINK * x_obs + POSTERIOR_STD * torch.randn(500, 2)
    exact = torch.distributions.Normal(POSTERIOR_SHRINK * x_obs, POSTERIOR_STD).log_prob(points).sum(-1)
    difference = flow.log_prob(points, x_obs).detach() - exact
    # a 60-epoch flow: within ~20% of the density on average, and no overall offset (normalisation)
    assert difference.abs().mean() < 0.2
    assert abs(float(difference.mean())) < 0.1


def test_whitened_flow_matches_a_narrow_rotated_gaussian_posterior():
    # theta ~ N(0, 1)^2, x = A theta + noise, with theta0 + theta1 measured 25x better than theta0 - theta1:
    # the exact posterior is a Gaussian ridge along (1, -1), 0.014 wide across it. Measured
    # (benchmarks/whitened_flow_ridge.py): the whitened flow's widths across / along the ridge are 0.90 / 0.99
    # of the exact ones and its log density is within 0.17 on average; unwhitened, 3.2 / 1.17 and 0.35.
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    a, noise = torch.tensor([[1.0, 1.0], [1.0, -1.0]]), torch.tensor([0.02, 0.5])
    theta = torch.randn(6000, 2, generator=g)
    x = theta @ a.T + noise * torch.randn(6000, 2, generator=g)
    covariance = torch.linalg.inv(torch.eye(2) + a.T @ torch.diag(noise**-2) @ a)
    flow = ConditionalFlow(2, 2, hidden=32, transforms=3, whiten=True)
    flow.fit(theta, x, max_epochs=60, patience=8, batch_size=128)
    x_obs = torch.tensor([0.6, -0.4])
    exact = torch.distributions.MultivariateNormal(covariance @ a.T @ torch.diag(noise**-2) @ x_obs, covariance)
    points = exact.sample((500,))
    difference = flow.log_prob(points, x_obs).detach() - exact.log_prob(points)
    assert difference.abs().mean() < 0.3
    assert abs(float(difference.mean())) < 0.1
    samples = flow.sample(x_obs, 4000)
    for direction in (torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0])):
        direction = direction / direction.norm()
        width, exact_width = float((samples @ direction).std()), float(direction @ covariance @ direction) ** 0.5
        assert abs(width / exact_width - 1) < 0.2, (direction, width, exact_width)
    with pytest.raises(ValueError, match="whiten"):
        ConditionalFlow(2, 2, whiten=True, box_support=True, bounds=([0.0, 0.0], [1.0, 1.0]))


def test_bounded_parameters_never_leave_the_box_and_density_is_normalised():
    # theta ~ U(0, 1), x = theta + N(0, 0.3^2): a posterior cut by the prior's edges
    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    theta = torch.rand(4000, 1, generator=g)
    x = theta + 0.3 * torch.randn(4000, 1, generator=g)
    flow = ConditionalFlow(1, 1, hidden=32, transforms=2, bounds=([0.0], [1.0]))
    flow.fit(theta, x, **FAST)
    samples = flow.sample(torch.tensor([1.2]), 5000)
    assert samples.min() >= 0 and samples.max() <= 1
    grid = torch.linspace(0.0005, 0.9995, 1000).unsqueeze(-1)
    total = flow.log_prob(grid, torch.tensor([1.2])).detach().exp().mean()  # integral over a width-1 box
    assert abs(float(total) - 1) < 0.03


def test_box_support_flow_is_a_bijection_of_the_prior_box(tmp_path):
    """box_support: uniform base on zuko's spline box. Exact check before training (the flow is a product
    of box-preserving splines: density integrates to 1 over the prior box, samples stay inside, log_prob
    of a sample equals what the flow reports); after training on a 2-D posterior flat in one parameter,
    the density near that parameter's faces is as high as in the middle (the true posterior is flat there),
    and save/load keeps the mode."""
    g = torch.Generator().manual_seed(2)
    theta = torch.rand(4000, 2, generator=g) * torch.tensor([2.0, 4.0]) - torch.tensor(
        [1.0, 0.0]
    )  # box [-1, 1] x [0, 4]
    x = theta[:, :1] + 0.2 * torch.randn(4000, 1, generator=g)  # the data constrain theta_0 only
    bounds = ([-1.0, 0.0], [1.0, 4.0])
    torch.manual_seed(0)
    flow = ConditionalFlow(2, 1, hidden=32, transforms=2, bounds=bounds, box_support=True)
    flow._set_standardization(theta, x)
    flow.fitted.fill_(True)
    a, b = torch.meshgrid(torch.linspace(-0.999, 0.999, 300), torch.linspace(0.002, 3.998, 300), indexing="ij")
    grid = torch.stack([a.reshape(-1), b.reshape(-1)], -1)
    with torch.no_grad():
        total = flow.log_prob(grid, torch.tensor([0.3])).exp().mean() * 8.0  # box area 2 x 4
    assert abs(float(total) - 1) < 0.02
    flow.fit(theta, x, **FAST)
    samples = flow.sample(torch.tensor([0.3]), 4000)
    assert bool(((samples >= torch.tensor(bounds[0])) & (samples <= torch.tensor(bounds[1]))).all())
    with torch.no_grad():
        probe = torch.tensor([[0.3, 0.01], [0.3, 2.0], [0.3, 3.99]])
        lp = flow.log_prob(probe, torch.tensor([0.3]).expand(3, 1))
    assert float(lp.max() - lp.min()) < 0.5, (
        lp
    )  # flat in theta_1 up to its faces (0.22; the same flow with the logit map: 0.60)
    with pytest.raises(ValueError, match="box_support needs"):
        ConditionalFlow(2, 1, box_support=True)
    loaded = AmortizedEstimator.load(flow.save(tmp_path / "box.pt"))
    assert loaded.box_support
    with torch.no_grad():
        assert torch.allclose(loaded.log_prob(probe, torch.tensor([0.3]).expand(3, 1)), lp)


def test_sampling_in_row_bounded_chunks_keeps_every_observation_apart(pairs):
    """rows bounds observations x samples per network call (memory); with one observation per call the
    batch must still come back in order: each observation's samples follow its own posterior."""
    theta, x = pairs
    flow = ConditionalFlow(2, 2, hidden=32, transforms=2)
    flow.fit(theta[:2000], x[:2000], max_epochs=5)
    probes = torch.stack([x[0], x[1], x[2]])
    torch.manual_seed(4)
    one_per_call = flow.sample(probes, 400, rows=400)
    torch.manual_seed(4)
    all_at_once = flow.sample(probes, 400)
    assert one_per_call.shape == all_at_once.shape == (3, 400, 2)
    assert torch.allclose(one_per_call.mean(1), all_at_once.mean(1), atol=0.15)


def test_save_and_load_reproduce_the_estimator(tmp_path, pairs):
    theta, x = pairs
    mdn = MDN(2, 2, components=2, hidden=32)
    mdn.fit(theta[:1000], x[:1000], max_epochs=3)
    path = mdn.save(tmp_path / "mdn.pt")
    loaded = AmortizedEstimator.load(path)
    assert isinstance(loaded, MDN)
    torch.manual_seed(3)
    a = mdn.sample(x[:2], 10)
    torch.manual_seed(3)
    b = loaded.sample(x[:2], 10)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="not a ConditionalFlow"):
        ConditionalFlow.load(path)


def test_errors_are_clear(pairs):
    theta, x = pairs
    flow = ConditionalFlow(2, 2)
    with pytest.raises(RuntimeError, match="not trained"):
        flow.sample(x[0], 5)
    with pytest.raises(ValueError, match="expected \\(n, 2\\)"):
        flow.fit(theta[:, :1], x)
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        flow.fit(theta, bad)
    with pytest.raises(ValueError, match="outside the bounds"):
        ConditionalFlow(2, 2, bounds=([-1, -1], [1, 1])).fit(theta * 10, x)
    with pytest.raises(NotImplementedError, match="no tractable density"):
        vaim = VAIM(2, 2, hidden=16, blocks=1)
        vaim.fit(theta[:200], x[:200], max_epochs=1)
        vaim.log_prob(theta[:2], x[0])


def test_set_embedding_ignores_point_order_and_padding():
    torch.manual_seed(0)
    embedding = SetEmbedding(4, features=8, hidden=16)
    cloud = torch.randn(1, 7, 4)
    shuffled = cloud[:, torch.randperm(7)]
    padded = torch.cat([cloud, torch.full((1, 3, 4), float("nan"))], 1)
    reference = embedding(cloud)
    assert torch.allclose(reference, embedding(shuffled), atol=1e-6)
    assert torch.allclose(reference, embedding(padded), atol=1e-6)


def test_set_embedding_of_a_padded_batch_equals_each_cloud_encoded_alone():
    # the batched encoder runs the point MLP on the real points only and scatters them back to their clouds;
    # each cloud, trimmed of its padding and pooled by hand, must give the same features and gradients
    torch.manual_seed(0)
    embedding = SetEmbedding(3, features=5, hidden=16, count_feature=True)
    sizes = [1, 4, 9, 6]
    batch = torch.full((len(sizes), 9, 3), float("nan"))
    for i, n in enumerate(sizes):
        batch[i, torch.randperm(9)[:n]] = torch.randn(n, 3)  # padding anywhere in the cloud, not only at its end
    by_cloud = []
    for cloud in batch:
        h = embedding.point_net(cloud[~torch.isnan(cloud).any(-1)])
        by_cloud.append(embedding.head(torch.cat([h.mean(0), h.amax(0), torch.tensor([float(len(h))]).log()])))
    by_cloud = torch.stack(by_cloud)
    batched = embedding(batch)
    assert torch.allclose(batched, by_cloud, atol=1e-6)
    weights = list(embedding.parameters())
    for a, b in zip(
        torch.autograd.grad(batched.square().sum(), weights), torch.autograd.grad(by_cloud.square().sum(), weights)
    ):
        assert torch.allclose(a, b, atol=1e-5)


def test_set_embedding_sees_the_number_of_points_only_with_the_count_feature():
    torch.manual_seed(0)
    cloud = torch.randn(1, 7, 4)
    doubled = torch.cat([cloud, cloud], 1)  # the same measurements, twice as many of them
    blind, counting = SetEmbedding(4, features=8, hidden=16), SetEmbedding(4, features=8, hidden=16, count_feature=True)
    assert torch.allclose(blind(cloud), blind(doubled), atol=1e-6)
    assert not torch.allclose(counting(cloud), counting(doubled), atol=1e-3)
    padded = torch.cat([cloud, torch.full((1, 3, 4), float("nan"))], 1)
    assert torch.allclose(counting(cloud), counting(padded), atol=1e-6)


def test_set_embedding_can_hand_the_count_to_the_estimator_directly():
    torch.manual_seed(0)
    embedding = SetEmbedding(4, features=8, hidden=16, count_feature=True, count_output=True)
    assert embedding.features == 9
    clouds = torch.randn(2, 7, 4)
    clouds[1, 3:] = float("nan")
    out = embedding(clouds)
    assert out.shape == (2, 9)
    assert torch.allclose(out[:, -1], torch.tensor([7.0, 3.0]).log())
    flow = ConditionalFlow(2, 4, embedding="set", embedding_options={"features": 8, "hidden": 16, "count_output": True})
    assert flow.context_dim == 9


def test_posterior_width_shrinks_with_the_number_of_points_given_the_count_feature():
    # Bernoulli outcomes with success probability p: mean pooling gives the success fraction, max pooling
    # only whether both outcomes occur, so only the count can tell 4 of 8 from 32 of 64. The exact posterior
    # (flat prior) is Beta(k + 1, n - k + 1), of standard deviation 0.151 at 4/8 and 0.061 at 32/64.
    # Count-blind, the same network gives 0.096 for both.
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n, m = 8000, 64
    p = torch.rand(n, 1, generator=g) * 0.8 + 0.1
    cloud = (torch.rand(n, m, generator=g) < p).float().unsqueeze(-1)
    counts = torch.randint(4, m + 1, (n,), generator=g)
    cloud[torch.arange(m) >= counts.unsqueeze(-1)] = float("nan")
    mdn = MDN(
        1,
        1,
        components=1,
        hidden=32,
        hidden_layers=2,
        embedding="set",
        embedding_options={"features": 8, "hidden": 32, "count_feature": True},
    )
    mdn.fit(p, cloud, max_epochs=40, patience=8)
    for points in (8, 64):
        half_successes = (torch.arange(points) % 2).float().reshape(points, 1)
        samples = mdn.sample(half_successes, 4000)
        exact = (0.25 / (points + 3)) ** 0.5
        assert abs(float(samples.mean()) - 0.5) < 0.03
        assert abs(float(samples.std()) / exact - 1) < 0.15, (points, float(samples.std()), exact)


def test_point_cloud_vaim_learns_from_clouds_of_different_sizes():
    # theta = slope of y = theta * t at random t; clouds of 5-12 points; the posterior of the slope is narrow
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    n, m = 3000, 12
    theta = torch.rand(n, 1, generator=g) * 2 - 1
    t = torch.rand(n, m, generator=g)
    y = theta * t + 0.05 * torch.randn(n, m, generator=g)
    cloud = torch.stack([t, y], -1)
    counts = torch.randint(5, m + 1, (n,), generator=g)
    cloud[torch.arange(m) >= counts.unsqueeze(-1)] = float("nan")
    vaim = VAIM(
        1,
        2,
        embedding="set",
        embedding_options={"features": 16, "hidden": 32},
        kinematic_columns=1,
        hidden=64,
        blocks=2,
        latent_dim=2,
    )
    vaim.fit(theta, cloud, max_epochs=40, patience=6)
    t_obs = torch.linspace(0, 1, 9)
    observed = torch.stack([t_obs, 0.6 * t_obs], -1)  # a 9-point cloud, a size and bins not in training
    samples = vaim.sample(observed, 2000)
    assert abs(float(samples.mean()) - 0.6) < 0.1
    predicted = vaim.predict_observables(torch.tensor([[0.6]]), t_obs.reshape(1, -1, 1))
    assert (predicted[0, :, 0] - 0.6 * t_obs).abs().max() < 0.1


def test_mixture_is_the_average_density_of_its_members(tmp_path, pairs):
    from hadrinv.inference import EstimatorMixture
    from hadrinv.workflows.amortized_runs import build_estimator

    theta, x = pairs
    torch.manual_seed(4)
    mixture = build_estimator("flow", 2, 2, {"members": 2, "hidden": 16, "transforms": 1})
    assert isinstance(mixture, EstimatorMixture) and len(mixture) == 2 and mixture.has_log_prob
    mixture.fit(theta[:1500], x[:1500], max_epochs=3)
    a, b = mixture.members
    probe_theta, probe_x = theta[:7], x[:7]
    with torch.no_grad():
        expected = torch.logaddexp(a.log_prob(probe_theta, probe_x), b.log_prob(probe_theta, probe_x)) - math.log(2)
        assert torch.allclose(mixture.log_prob(probe_theta, probe_x), expected, atol=1e-6)
        assert not torch.allclose(
            a.log_prob(probe_theta, probe_x), b.log_prob(probe_theta, probe_x)
        )  # independent members
        per_obs = mixture.log_prob_per_observation(theta[:6].reshape(3, 2, 2), x[:3])
        assert torch.allclose(
            per_obs, mixture.log_prob(theta[:6], x[:3].repeat_interleave(2, 0)).reshape(3, 2), atol=1e-5
        )
        # a mixture of one member twice is that member
        same = EstimatorMixture([a, a])
        assert torch.allclose(same.log_prob(probe_theta, probe_x), a.log_prob(probe_theta, probe_x), atol=1e-6)
    assert mixture.sample(x[0], 101).shape == (101, 2) and mixture.sample(x[:3], 10).shape == (3, 10, 2)
    loaded = AmortizedEstimator.load(mixture.save(tmp_path / "mixture.pt"))
    assert isinstance(loaded, EstimatorMixture)
    with torch.no_grad():
        assert torch.allclose(loaded.log_prob(probe_theta, probe_x), mixture.log_prob(probe_theta, probe_x))
    with pytest.raises(ValueError, match="at least one member"):
        EstimatorMixture([])
