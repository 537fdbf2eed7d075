"""Conditional diffusion (DDPM/DDIM) and flow matching against problems with known answers.

Linear-Gaussian benchmark: theta ~ N(0, I_2), x = theta + N(0, 0.5^2 I_2), so the posterior is
N(0.8 x, 0.2 I) (precision 1 + 1/0.25 = 5), std sqrt(0.2) = 0.447 in each parameter.

Tolerances for the trained estimators (small networks, 4000 pairs, seconds of training): with 2000
samples the Monte Carlo error is 0.01 on a mean and 1.6 % on a std, so the tolerances measure the
estimator's own error. Over 12 initialisation/data seeds the largest errors were 0.07 (flow matching)
and 0.12 (diffusion, which learns the conditional mean through noise predictions whose sensitivity to it
vanishes at large t) on a posterior mean, and 13 % on a std; hence 0.1 and 0.15 on means (a third of the
posterior std at most) and 20 % on stds. Ignoring the observation, a wrong schedule coefficient or a
sign error in an update gives errors of order one. The samplers and the density integration are also
checked without training, with exact noise predictions / velocity fields, to much tighter tolerances.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.inference.diffusion import ConditionalDiffusion, linear_beta_schedule
from hadrinv.inference.film import FiLMResidualMLP
from hadrinv.inference.flow_matching import FlowMatching

POSTERIOR_STD = math.sqrt(0.2)
X_OBS = torch.tensor([[0.0, 0.0], [1.5, -1.0]])
N_SAMPLES = 2000
SMALL = {"hidden": 64, "blocks": 2}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # these tensors are a few thousand rows of 64 features: extra threads only synchronise, and on a
    # shared machine their spin-waiting made this file up to ten times slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def linear_gaussian():
    generator = torch.Generator().manual_seed(1234)
    theta = torch.randn(4000, 2, generator=generator)
    return theta, theta + 0.5 * torch.randn(4000, 2, generator=generator)


def _train(cls: type[AmortizedEstimator], theta, x) -> AmortizedEstimator:
    torch.manual_seed(0)  # the initial weights; fit() seeds only the training itself
    estimator = cls(2, 2, **SMALL)
    # fit() has a constant learning rate; a second, short pass at a tenth-to-thirtieth of it averages
    # out the gradient noise that otherwise leaves ~0.1-0.2 errors in the posterior mean (what a decay
    # schedule or weight averaging does in longer trainings)
    estimator.fit(theta, x, max_epochs=30, batch_size=128, learning_rate=3e-3, patience=30, seed=0)
    estimator.fit(theta, x, max_epochs=15, batch_size=128, learning_rate=1e-4, patience=15, seed=0)
    return estimator


@pytest.fixture(scope="module")
def diffusion(linear_gaussian):
    return _train(ConditionalDiffusion, *linear_gaussian)


@pytest.fixture(scope="module")
def flow_matching(linear_gaussian):
    return _train(FlowMatching, *linear_gaussian)


@pytest.fixture(scope="module")
def ancestral_samples(diffusion):
    torch.manual_seed(11)
    return diffusion.sample(X_OBS, N_SAMPLES)


def _assert_posterior_moments(samples: torch.Tensor, label: str, mean_tolerance: float) -> None:
    assert samples.shape == (2, N_SAMPLES, 2)
    mean, std = samples.mean(1), samples.std(1)
    print(
        f"\n{label}: mean {mean.tolist()} (truth {(0.8 * X_OBS).tolist()}), "
        f"std {std.tolist()} (truth {POSTERIOR_STD:.3f})"
    )
    assert torch.allclose(mean, 0.8 * X_OBS, atol=mean_tolerance), mean
    assert torch.allclose(std, torch.full_like(std, POSTERIOR_STD), rtol=0.2), std


# ---- noise schedule ----
def test_linear_schedule_matches_closed_form():
    model = ConditionalDiffusion(2, 2, hidden=8, blocks=1)
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    alpha_bar_T = math.prod(1 - b for b in betas)
    assert 4.0e-5 < alpha_bar_T < 4.1e-5  # ~4.04e-5: u_T is N(0, I) up to a 0.6 % admixture of the data
    assert model.alpha_bar[-1].item() == pytest.approx(alpha_bar_T, rel=1e-4)
    assert model.alpha_bar[0].item() == pytest.approx(1 - 1e-4, abs=1e-7)
    assert model.betas[0].item() == pytest.approx(1e-4) and model.betas[-1].item() == pytest.approx(0.02)
    _, alpha_bar = linear_beta_schedule(1000, 1e-4, 0.02)
    assert bool((alpha_bar[1:] < alpha_bar[:-1]).all())


# ---- samplers with the exact noise prediction of a Gaussian, no training ----
class _GaussianNoiseOracle(nn.Module):
    """E[eps | u_t] for data u ~ N(m, diag s^2): sqrt(1 - a) (u_t - sqrt(a) m) / (a s^2 + 1 - a)."""

    def __init__(self, steps: int, alpha_bar: torch.Tensor, m: torch.Tensor, s: torch.Tensor):
        super().__init__()
        self.steps, self.alpha_bar, self.m, self.s = steps, alpha_bar, m, s

    def forward(self, u, t, context):
        a = self.alpha_bar[(t * self.steps).round().long() - 1].unsqueeze(-1)
        return (1 - a).sqrt() * (u - a.sqrt() * self.m) / (a * self.s**2 + 1 - a)


@pytest.mark.parametrize("sampling_steps, rtol", [(None, 0.03), (1000, 0.03), (100, 0.06)])
def test_diffusion_samplers_reproduce_gaussian_with_exact_noise(sampling_steps, rtol):
    model = ConditionalDiffusion(
        2, 2, hidden=8, blocks=1, sampling_steps=sampling_steps, ema_decay=None
    )  # samples with model.net
    model.fitted.fill_(True)
    m, s = torch.tensor([1.0, -0.5]), torch.tensor([0.3, 2.0])
    model.net = _GaussianNoiseOracle(model.steps, model.alpha_bar, m, s)
    torch.manual_seed(0)
    samples = model.sample(torch.zeros(2), 20000)
    # Monte Carlo: 0.002 and 0.014 on the means, 0.5 % on the stds; DDIM on 100 steps shrinks the
    # narrow direction by ~4 % (its discretisation error), which the larger tolerance allows
    assert torch.allclose(samples.mean(0), m, atol=0.05)
    assert torch.allclose(samples.std(0), s, rtol=rtol)


# ---- trained estimators on the linear-Gaussian problem ----
def test_diffusion_ancestral_posterior_moments(ancestral_samples):
    _assert_posterior_moments(ancestral_samples, "DDPM ancestral", 0.15)


def test_ddim_matches_ancestral(diffusion, ancestral_samples):
    torch.manual_seed(12)
    ddim = diffusion.sample(X_OBS, N_SAMPLES, sampling_steps=50)
    assert diffusion.sampling_steps is None  # the per-call override does not stick
    _assert_posterior_moments(ddim, "DDIM 50 steps", 0.15)
    assert torch.allclose(ddim.mean(1), ancestral_samples.mean(1), atol=0.1)
    assert torch.allclose(ddim.std(1), ancestral_samples.std(1), rtol=0.2)
    # eta = 0: the same starting noise gives the same samples
    torch.manual_seed(13)
    first = diffusion.sample(X_OBS[1], 100, sampling_steps=50)
    torch.manual_seed(13)
    assert torch.equal(first, diffusion.sample(X_OBS[1], 100, sampling_steps=50))


def test_flow_matching_posterior_moments(flow_matching):
    torch.manual_seed(14)
    _assert_posterior_moments(flow_matching.sample(X_OBS, N_SAMPLES), "flow matching", 0.1)


def test_flow_matching_density_of_trained_model(flow_matching):
    x = X_OBS[1]
    mean = 0.8 * x
    grid = torch.linspace(-6, 6, 61) * POSTERIOR_STD
    a, b = torch.meshgrid(mean[0] + grid, mean[1] + grid, indexing="ij")
    theta = torch.stack([a.reshape(-1), b.reshape(-1)], -1)
    log_p = flow_matching.log_prob(theta, x)
    weights = log_p.exp() * (grid[1] - grid[0]) ** 2
    total = weights.sum().item()
    # any exact flow integrates to 1; the midpoint rule with 50 steps was off by 3e-4 here
    assert total == pytest.approx(1.0, abs=0.02)
    # the density belongs to the same model as the sampler: its moments by quadrature match the samples'
    # (Monte Carlo error 0.003 on a mean, 0.002 on a variance; the two ODE solutions differ by ~0.005)
    weights = weights / total
    grid_mean = weights @ theta
    grid_cov = (theta - grid_mean).T @ ((theta - grid_mean) * weights[:, None])
    torch.manual_seed(15)
    samples = flow_matching.sample(x, 20000)
    print(
        f"\nflow matching: integral {total:.4f}; mean {grid_mean.tolist()} by quadrature, "
        f"{samples.mean(0).tolist()} sampled"
    )
    assert torch.allclose(grid_mean, samples.mean(0), atol=0.02)
    assert torch.allclose(grid_cov, torch.cov(samples.T), atol=0.015)
    # and is close to the analytic posterior where it has its mass (the moment errors allowed above,
    # 0.1 and 20 %, correspond to |log p - exact| of up to ~0.5 at 2 std; measured means 0.14-0.16)
    exact = torch.distributions.Normal(mean, POSTERIOR_STD).log_prob(theta).sum(-1)
    inside = (theta - mean).norm(dim=-1) < 2 * POSTERIOR_STD
    error = (log_p - exact)[inside].abs()
    print(f"flow matching: |log p - exact| within 2 std: mean {error.mean():.3f}, max {error.max():.3f}")
    assert error.mean() < 0.25


# ---- flow-matching ODE and divergence with an exact velocity field, no training ----
class _AffineField(nn.Module):
    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, u, t, context):
        return u @ self.a.T + self.b


def test_flow_matching_ode_and_divergence_are_exact_for_affine_field():
    # du/dt = A u + b carries N(0, I) to N(c, M M^T) with M = exp(A), c = A^-1 (M - I) b; the divergence is tr A
    a = torch.tensor([[0.3, 0.5], [-0.2, -0.4]])
    b = torch.tensor([0.7, -0.3])
    model = FlowMatching(2, 2, hidden=8, blocks=1)
    model.fitted.fill_(True)
    model.net = _AffineField(a, b)
    m = torch.linalg.matrix_exp(a.double())
    c = torch.linalg.solve(a.double(), (m - torch.eye(2, dtype=torch.float64)) @ b.double())
    target = torch.distributions.MultivariateNormal(c.float(), covariance_matrix=(m @ m.T).float())
    torch.manual_seed(0)
    theta = target.sample((500,))
    # midpoint rule, error O(h^2) with h = 1/50
    assert torch.allclose(model.log_prob(theta, torch.zeros(2)), target.log_prob(theta), atol=2e-3)
    samples = model.sample(torch.zeros(2), 20000)
    assert torch.allclose(samples.mean(0), c.float(), atol=0.03)
    assert torch.allclose(torch.cov(samples.T), (m @ m.T).float(), atol=0.05)


def test_exact_divergence_matches_jacobian_trace():
    torch.manual_seed(0)
    model = FlowMatching(3, 2, hidden=16, blocks=2)
    for p in model.net.parameters():  # FiLM and residual outputs start at zero; make the field non-trivial
        nn.init.normal_(p, std=0.3)
    u, context = torch.randn(5, 3), torch.randn(5, 2)
    _, divergence = model._velocity_and_divergence(u, 0.37, context)
    for row in range(5):
        jacobian = torch.autograd.functional.jacobian(
            lambda v, row=row: model.velocity(v[None], 0.37, context[row : row + 1])[0], u[row]
        )
        assert divergence[row].item() == pytest.approx(jacobian.trace().item(), rel=1e-4, abs=1e-5)


# ---- persistence ----
def test_diffusion_save_load_round_trip(diffusion, tmp_path):
    loaded = AmortizedEstimator.load(diffusion.save(tmp_path / "diffusion.pt"))
    assert isinstance(loaded, ConditionalDiffusion) and loaded.sampling_steps is None
    for steps in (None, 20):
        diffusion.sampling_steps = loaded.sampling_steps = steps
        torch.manual_seed(21)
        expected = diffusion.sample(X_OBS, 64)
        torch.manual_seed(21)
        assert torch.equal(loaded.sample(X_OBS, 64), expected)
    diffusion.sampling_steps = None
    # a sampler chosen after loading is saved with the estimator
    loaded.sampling_steps = 25
    assert AmortizedEstimator.load(loaded.save(tmp_path / "ddim.pt")).sampling_steps == 25
    with pytest.raises(ValueError):
        loaded.sampling_steps = 0


def test_flow_matching_save_load_round_trip(flow_matching, tmp_path):
    loaded = AmortizedEstimator.load(flow_matching.save(tmp_path / "fm.pt"))
    assert isinstance(loaded, FlowMatching) and loaded.ode_steps == flow_matching.ode_steps
    torch.manual_seed(22)
    expected = flow_matching.sample(X_OBS, 64)
    torch.manual_seed(22)
    assert torch.equal(loaded.sample(X_OBS, 64), expected)
    theta = torch.tensor([[0.0, 0.0], [1.2, -0.8]])
    assert torch.equal(loaded.log_prob(theta, X_OBS[1]), flow_matching.log_prob(theta, X_OBS[1]))


def test_film_network_shapes_and_conditioning():
    torch.manual_seed(0)
    net = FiLMResidualMLP(3, 4, hidden=16, blocks=2, time_features=9)
    for p in net.parameters():
        nn.init.normal_(p, std=0.3)
    x, context = torch.randn(7, 3), torch.randn(7, 4)
    t = torch.rand(7)
    out = net(x, t, context)
    assert out.shape == (7, 3)
    # the output depends on both the time and the context
    assert not torch.allclose(out, net(x, torch.rand(7), context))
    assert not torch.allclose(out, net(x, t, torch.randn(7, 4)))
    assert torch.allclose(net(x[:1], t[0], context[:1]), out[:1], atol=1e-6)  # a scalar time broadcasts


# ---- weight averaging (EMA) ----
class _ZeroNoise(nn.Module):
    def forward(self, u, t, context):
        return torch.zeros_like(u)


def test_diffusion_samples_with_averaged_weights_and_trains_the_raw_ones():
    assert ConditionalDiffusion(2, 2, hidden=8, blocks=1).ema is None  # off by default
    model = ConditionalDiffusion(2, 2, hidden=8, blocks=1, sampling_steps=100, ema_decay=0.999)
    assert model.ema_decay == 0.999 and model.hparams["ema_decay"] == 0.999
    model.fitted.fill_(True)
    m, s = torch.tensor([1.0, -0.5]), torch.tensor([0.3, 2.0])
    model.ema["net"] = _GaussianNoiseOracle(model.steps, model.alpha_bar, m, s)
    model.net = _ZeroNoise()  # what the raw weights would sample: u_T / sqrt(alpha_bar_T), std ~160
    torch.manual_seed(0)
    samples = model.sample(torch.zeros(2), 5000)
    assert torch.allclose(samples.mean(0), m, atol=0.1)
    assert torch.allclose(samples.std(0), s, rtol=0.1)
    u, context = torch.randn(4, 2), torch.zeros(4, 2)
    model.train()
    assert torch.equal(model.predict_noise(u, 10, context), torch.zeros(4, 2))  # training sees the raw network
    model.eval()
    assert not torch.equal(model.predict_noise(u, 10, context), torch.zeros(4, 2))


def test_diffusion_ema_update_count_and_save_load(linear_gaussian, tmp_path):
    theta, x = linear_gaussian[0][:600], linear_gaussian[1][:600]
    torch.manual_seed(0)
    model = ConditionalDiffusion(
        2,
        2,
        hidden=16,
        blocks=1,
        ema_decay=0.9,
        sampling_steps=10,
        embedding="mlp",
        embedding_options={"features": 4, "hidden": 8},
    )
    history = model.fit(theta, x, max_epochs=3, batch_size=100, patience=3, validation_fraction=0.1, seed=0)
    # one update per optimiser step (540 training pairs: 6 batches per epoch), kept with the best epoch
    assert int(model.ema_updates) == 6 * (history.best_epoch + 1)
    raw = torch.cat([p.flatten() for p in [*model.embedding.parameters(), *model.net.parameters()]])
    averaged = torch.cat([p.flatten() for p in [*model.ema["embedding"].parameters(), *model.ema["net"].parameters()]])
    assert raw.shape == averaged.shape and not torch.allclose(raw, averaged)
    # the averaged weights are what samples: the same as a model without averaging that holds them as its weights
    plain = ConditionalDiffusion(
        2,
        2,
        hidden=16,
        blocks=1,
        ema_decay=None,
        sampling_steps=10,
        embedding="mlp",
        embedding_options={"features": 4, "hidden": 8},
    )
    state = {
        k: v for k, v in model.state_dict().items() if not k.startswith(("ema.", "ema_updates", "embedding.", "net."))
    }
    state.update({k[len("ema.") :]: v for k, v in model.state_dict().items() if k.startswith("ema.")})
    plain.load_state_dict(state)
    assert not any(k.startswith("ema") for k in plain.state_dict())
    torch.manual_seed(3)
    expected = model.sample(X_OBS, 64)
    torch.manual_seed(3)
    assert torch.equal(plain.sample(X_OBS, 64), expected)
    # and they survive save / load
    loaded = AmortizedEstimator.load(model.save(tmp_path / "ema.pt"))
    assert loaded.ema_decay == 0.9 and int(loaded.ema_updates) == int(model.ema_updates)
    torch.manual_seed(3)
    assert torch.equal(loaded.sample(X_OBS, 64), expected)
    # a checkpoint from before averaging (no ema entries) loads without it and samples with its weights
    payload = model.to_payload()
    payload["state"] = {k: v for k, v in payload["state"].items() if not k.startswith("ema")}
    payload["hparams"] = {k: v for k, v in payload["hparams"].items() if k != "ema_decay"}
    old = AmortizedEstimator.from_payload(payload)
    assert old.ema is None
    for a, b in zip(old.net.parameters(), model.net.parameters()):
        assert torch.equal(a, b)
    # a model with averaging given such weights takes them as its average
    averaging = ConditionalDiffusion(
        2,
        2,
        hidden=16,
        blocks=1,
        ema_decay=0.9,
        sampling_steps=10,
        embedding="mlp",
        embedding_options={"features": 4, "hidden": 8},
    )
    averaging.load_state_dict(payload["state"])
    for a, b in zip(averaging.ema["net"].parameters(), model.net.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):
        ConditionalDiffusion(2, 2, ema_decay=1.0)


# ---- whitening ----
# theta ~ N(0, I_2), x = theta_0 + theta_1 + N(0, 0.05^2): the data fix theta_0 + theta_1 thirty times better
# than the prior, so the exact posterior is 0.035 wide along (1, 1) and 1.0 wide along (1, -1)
NARROW, WIDE = torch.tensor([1.0, 1.0]) / math.sqrt(2), torch.tensor([1.0, -1.0]) / math.sqrt(2)
SUM_NOISE = 0.05


def _sum_posterior(x_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    design = torch.ones(1, 2)
    covariance = torch.linalg.inv(torch.eye(2) + design.T @ design / SUM_NOISE**2)
    return x_obs @ design / SUM_NOISE**2 @ covariance, covariance


def test_whitened_diffusion_resolves_a_narrow_posterior_direction(tmp_path):
    # Over 4 data/initialisation seeds the whitened model's errors along the narrow direction were at most 0.10
    # of its width on the mean and 25 % on the width (the wide direction: 24 %); without whitening the same
    # training gave mean errors up to 0.76 of the width and widths 0.57-1.02 of the exact one (the denoiser
    # cannot resolve a direction a few per cent of the parameters' scale): 5 of the 8 cases fail the 0.3 and
    # 30 % tolerances below, and this data set's does.
    generator = torch.Generator().manual_seed(100)
    theta = torch.randn(4000, 2, generator=generator)
    x = theta.sum(1, keepdim=True) + SUM_NOISE * torch.randn(4000, 1, generator=generator)
    torch.manual_seed(0)
    model = ConditionalDiffusion(2, 1, hidden=64, blocks=2, whiten=True, sampling_steps=25)
    model.fit(theta, x, max_epochs=30, batch_size=128, learning_rate=3e-3, patience=30, seed=0)
    model.fit(theta, x, max_epochs=15, batch_size=128, learning_rate=1e-4, patience=15, seed=0)
    x_obs = torch.tensor([[0.5], [-1.0]])
    means, covariance = _sum_posterior(x_obs)
    narrow_width, wide_width = (NARROW @ covariance @ NARROW).sqrt(), (WIDE @ covariance @ WIDE).sqrt()
    torch.manual_seed(5)
    samples = model.sample(x_obs, 2000)
    for case, mean in zip(samples, means):
        assert abs(float((case.mean(0) - mean) @ NARROW)) < 0.3 * narrow_width
        assert float((case @ NARROW).std() / narrow_width) == pytest.approx(1.0, abs=0.3)
        assert float((case @ WIDE).std() / wide_width) == pytest.approx(1.0, abs=0.3)
        assert abs(float((case.mean(0) - mean) @ WIDE)) < 0.15 * wide_width
    # the whitening Gaussian alone is the exact posterior here (a linear-Gaussian problem)
    model.eval()
    with torch.no_grad():
        head_mean, tril = model.whitening(model.context(model.standardize_x(x_obs)))
    head_covariance = tril[0] @ tril[0].T * torch.outer(model.theta_std, model.theta_std)
    assert float((NARROW @ head_covariance @ NARROW).sqrt() / narrow_width) == pytest.approx(1.0, abs=0.1)
    # saved and loaded with the whitening head
    loaded = AmortizedEstimator.load(model.save(tmp_path / "whitened.pt"))
    assert loaded.whiten and loaded.hparams["whiten"]
    torch.manual_seed(7)
    expected = model.sample(x_obs, 64)
    torch.manual_seed(7)
    assert torch.equal(loaded.sample(x_obs, 64), expected)


def test_whitened_diffusion_averages_the_whitening_head():
    model = ConditionalDiffusion(3, 2, hidden=8, blocks=1, whiten=True, ema_decay=0.9)
    assert set(model.ema.keys()) == {"embedding", "net", "gaussian"}
    with torch.no_grad():
        for p in model.gaussian.parameters():
            p.add_(1.0)
    model.update_ema()
    moved = [not torch.equal(a, b) for a, b in zip(model.ema["gaussian"].parameters(), model.gaussian.parameters())]
    assert all(moved)  # decay 1/10 on the first update: the average moved, but not all the way
    context = torch.randn(4, 2)
    model.eval()
    mean, tril = model.whitening(context)
    assert mean.shape == (4, 3) and tril.shape == (4, 3, 3)
    assert torch.equal(tril, torch.tril(tril)) and bool((torch.diagonal(tril, dim1=-2, dim2=-1) > 0).all())
