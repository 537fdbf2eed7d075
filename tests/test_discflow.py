"""Flow event generators: the plain flow reproduces a known density (moments, normalisation, entropy), fits are
deterministic and survive save/load; DiscFlow's classifier learns the true density ratio data/flow, so that its
weighted events restore a narrow peak that the flow alone smears; bad input is refused with a clear message."""

import dataclasses
import math

import pytest
import torch

from hadrinv.inference.discflow import DiscFlowGenerator, DiscFlowSettings, FlowGenerator, GeneratorSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = GeneratorSettings(transforms=2, bins=4, hidden=8, layers=1, epochs=2, batch=64)

# a correlated Gaussian in awkward units: the standardisation must carry it into the splines' [-5, 5]
MEAN = torch.tensor([100.0, -3.0], dtype=torch.float64)
STD = torch.tensor([20.0, 0.5], dtype=torch.float64)
COV = STD[:, None] * STD * torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64)

# a narrow peak on a broad background: 20 % of the events in N(0.5, 0.05), the rest in N(0, 1)
PEAK_FRACTION, PEAK_MEAN, PEAK_WIDTH = 0.2, 0.5, 0.05
PEAK_FLOW = dict(transforms=1, bins=4, epochs=10, batch=256, lr=3e-3)  # too small a flow for the peak


def gaussian_events(n: int, seed: int) -> torch.Tensor:
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return MEAN + z @ torch.linalg.cholesky(COV).T


def peak_events(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=g, dtype=torch.float64)
    peak = torch.rand(n, generator=g) < PEAK_FRACTION
    x[peak, 0] = PEAK_MEAN + PEAK_WIDTH * torch.randn(int(peak.sum()), generator=g, dtype=torch.float64)
    return x


def peak_density(x: torch.Tensor) -> torch.Tensor:
    def normal(mean, width):
        return torch.exp(-0.5 * ((x - mean) / width) ** 2) / (width * math.sqrt(2 * math.pi))

    return (1 - PEAK_FRACTION) * normal(0.0, 1.0) + PEAK_FRACTION * normal(PEAK_MEAN, PEAK_WIDTH)


def peak_probability(edges: torch.Tensor) -> torch.Tensor:
    """The exact probability of each bin under the peak toy."""
    cdf = (1 - PEAK_FRACTION) * torch.special.ndtr(edges) + PEAK_FRACTION * torch.special.ndtr(
        (edges - PEAK_MEAN) / PEAK_WIDTH
    )
    return cdf[1:] - cdf[:-1]


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def gaussian_flow(one_torch_thread):
    settings = GeneratorSettings(transforms=3, bins=8, hidden=32, layers=2, epochs=8, batch=200, lr=3e-3)
    x_val = gaussian_events(1000, seed=2)
    return FlowGenerator(2, settings).fit(gaussian_events(4000, seed=1), x_val=x_val), x_val


@pytest.fixture(scope="module")
def peak_generators(one_torch_thread):
    """The plain flow, DiscFlow with the MLP classifier, DiscFlow with boosted trees: the same flow settings."""
    x, x_val = peak_events(8000, seed=1), peak_events(2000, seed=2)
    flow = FlowGenerator(1, GeneratorSettings(**PEAK_FLOW)).fit(x)
    settings = DiscFlowSettings(
        **PEAK_FLOW,
        classifier="mlp",
        warmup_epochs=3,
        classifier_hidden=32,
        classifier_lr=1e-2,
        final_classifier_epochs=40,
        normalization_samples=50_000,
    )
    boosted = DiscFlowSettings(**PEAK_FLOW, warmup_epochs=3, classifier_events=50_000, normalization_samples=50_000)
    # Trees learn a ratio constant on leaves of at least 20 events: in the peak's steep tails 8000 events leave
    # deviations of about 0.28 in a bin (twice its statistical error), 16000 about 0.1. The MLP interpolates.
    more = peak_events(16_000, seed=1)
    return (
        flow,
        DiscFlowGenerator(1, settings).fit(x, x_val=x_val),
        DiscFlowGenerator(1, boosted).fit(more, x_val=x_val),
    )


# ---- the plain flow ----
def test_flow_reproduces_mean_and_covariance(gaussian_flow):
    flow, _ = gaussian_flow
    events, weight = flow.sample(40_000, seeded(3))
    assert events.shape == (40_000, 2) and events.dtype == torch.float64
    assert weight.shape == (40_000,) and weight.dtype == torch.float64 and bool((weight == 1).all())
    assert bool(((events.mean(0) - MEAN).abs() < 0.05 * STD).all()), events.mean(0)
    cov = torch.cov(events.T)
    assert bool(((cov - COV).abs() < 0.06 * STD[:, None] * STD).all()), cov


def test_flow_log_prob_is_a_normalised_density_in_the_units_of_x(gaussian_flow):
    flow, _ = gaussian_flow
    # integral of exp(log_prob) on a grid of +-7 standard deviations: the standardisation's Jacobian included
    axes = [torch.linspace(float(m - 7 * s), float(m + 7 * s), 161, dtype=torch.float64) for m, s in zip(MEAN, STD)]
    grid = torch.cartesian_prod(*axes)
    cell = float((axes[0][1] - axes[0][0]) * (axes[1][1] - axes[1][0]))
    assert float(flow.log_prob(grid).exp().sum()) * cell == pytest.approx(1.0, abs=0.01)
    # cross-entropy on fresh events >= the true entropy, and close to it for a good fit
    entropy = 0.5 * float(torch.logdet(2 * math.pi * math.e * COV))
    nll = float(-flow.log_prob(gaussian_events(20_000, seed=4)).mean())
    assert entropy - 0.025 < nll < entropy + 0.08, (nll, entropy)


def test_flow_keeps_the_epoch_of_best_validation_loss(gaussian_flow):
    flow, x_val = gaussian_flow
    history = flow.history
    assert len(history["val_loss"]) == history["epochs"] == len(history["loss"])
    best = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)
    assert history["best_epoch"] == best + 1
    # val_loss is the mean negative log-likelihood in the units of x, and the kept flow is the best one
    assert float(-flow.log_prob(x_val).mean()) == pytest.approx(history["val_loss"][best], rel=1e-6)


def test_flow_fits_weighted_events():
    # N(0, 1) weighted by exp(x / 2) is N(1/2, 1) exactly
    x = torch.randn(4000, 1, generator=seeded(5), dtype=torch.float64)
    weight = torch.exp(0.5 * x[:, 0])
    flow = FlowGenerator(1, GeneratorSettings(transforms=2, bins=8, epochs=8, batch=256, lr=3e-3)).fit(x, weight)
    assert float(flow.x_mean[0]) == pytest.approx(float((weight * x[:, 0]).sum() / weight.sum()), rel=1e-12)
    assert flow.history["best_epoch"] == flow.history["epochs"] == 8  # no validation: the last epoch is kept
    events, _ = flow.sample(40_000, seeded(6))
    assert float(events.mean()) == pytest.approx(0.5, abs=0.06)
    assert float(events.std()) == pytest.approx(1.0, abs=0.06)


# ---- determinism and persistence ----
def test_same_seeds_give_identical_fits_and_samples():
    x = gaussian_events(256, seed=7)
    first = FlowGenerator(2, TINY).fit(x)
    again = FlowGenerator(2, TINY).fit(x)
    events, _ = first.sample(500, seeded(8))
    assert torch.equal(events, first.sample(500, seeded(8))[0])
    assert torch.equal(events, again.sample(500, seeded(8))[0])
    assert not torch.equal(events, first.sample(500, seeded(9))[0])
    refit = first.fit(x)  # a refit starts again from the seed's initial networks
    assert torch.equal(events, refit.sample(500, seeded(8))[0])
    other = FlowGenerator(2, dataclasses.replace(TINY, seed=1)).fit(x)
    assert not torch.equal(events, other.sample(500, seeded(8))[0])


def test_save_and_load_give_the_same_generator(gaussian_flow, peak_generators, tmp_path):
    flow, x_val = gaussian_flow
    path = flow.save(tmp_path / "flow.pt")
    payload = torch.load(path, weights_only=True)  # plain tensors and values only
    assert payload["kind"] == "FlowGenerator" and payload["features"] == 2
    loaded = FlowGenerator.load(path)
    assert type(loaded) is FlowGenerator and loaded.settings == flow.settings
    assert loaded.history == flow.history
    assert torch.equal(loaded.sample(1000, seeded(10))[0], flow.sample(1000, seeded(10))[0])
    assert torch.equal(loaded.log_prob(x_val), flow.log_prob(x_val))
    with pytest.raises(ValueError, match="holds a FlowGenerator, not a DiscFlowGenerator"):
        DiscFlowGenerator.load(path)

    for disc in peak_generators[1:]:
        loaded = FlowGenerator.load(disc.save(tmp_path / "disc.pt"))  # the base class loads either kind
        assert type(loaded) is DiscFlowGenerator and loaded.settings == disc.settings
        for a, b in zip(loaded.sample(1000, seeded(11)), disc.sample(1000, seeded(11))):
            assert torch.equal(a, b)

    torch.save({"weights": torch.ones(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a saved event generator"):
        FlowGenerator.load(tmp_path / "other.pt")
    (tmp_path / "broken.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="unreadable"):
        FlowGenerator.load(tmp_path / "broken.pt")


# ---- DiscFlow ----
@pytest.mark.parametrize("which", [1, 2], ids=["mlp", "boosted"])
def test_discflow_weights_restore_a_peak_the_flow_smears(peak_generators, which):
    flow, disc = peak_generators[0], peak_generators[which]
    n = 200_000
    edges = torch.linspace(PEAK_MEAN - 3 * PEAK_WIDTH, PEAK_MEAN + 3 * PEAK_WIDTH, 13, dtype=torch.float64)
    expected = n * peak_probability(edges)

    def deviations(generator):
        events, weight = generator.sample(n, seeded(12))
        counts = torch.histogram(events[:, 0], edges, weight=weight)[0]
        variance = torch.histogram(events[:, 0], edges, weight=weight**2)[0]
        return float(((counts - expected).abs() / expected).max()), float(((counts - expected) ** 2 / variance).sum())

    flow_deviation, flow_chi2 = deviations(flow)
    disc_deviation, disc_chi2 = deviations(disc)
    assert flow_deviation > 0.5  # the toy is meaningful: the flow alone misses the peak badly
    assert disc_deviation < 0.25, (disc_deviation, flow_deviation)
    assert disc_chi2 < 0.05 * flow_chi2, (disc_chi2, flow_chi2)


@pytest.mark.parametrize("which", [1, 2], ids=["mlp", "boosted"])
def test_discflow_weights_are_normalised_and_mostly_moderate(peak_generators, which):
    disc = peak_generators[which]
    s = disc.settings
    _, weight = disc.sample(100_000, seeded(13))
    assert float(weight.mean()) == pytest.approx(1.0, abs=0.02)
    norm = float(disc.weight_norm)
    assert norm == pytest.approx(disc.history["weight_norm"]) and 0.9 < norm < 1.1
    assert float(weight.min()) >= s.weight_min / norm * (1 - 1e-6)
    assert float(weight.max()) <= s.weight_max / norm * (1 + 1e-6)
    # the flow misses 20 % of the events by far; still, most weights stay within a factor two
    assert float(((weight > 0.5) & (weight < 2)).double().mean()) > 0.85


@pytest.mark.parametrize("which", [1, 2], ids=["mlp", "boosted"])
def test_discflow_classifier_learns_the_true_density_ratio(peak_generators, which):
    disc = peak_generators[which]
    grid = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64)[:, None]  # 87 % of the events; tails are noisier
    ratio = peak_density(grid[:, 0]) / disc.log_prob(grid).exp()  # data / flow, both known exactly
    weight = disc.event_weight(grid)
    assert float(ratio[20]) > 2  # at the peak, x = 0.5, the flow has too few events by far
    assert float((weight / ratio - 1).abs().max()) < 0.25, torch.stack([grid[:, 0], ratio, weight], 1)


def test_discflow_event_weight_is_the_clipped_classifier_ratio(peak_generators):
    disc = peak_generators[1]
    s = disc.settings
    x = peak_events(3000, seed=14)
    with torch.no_grad():
        d = torch.sigmoid(disc.classifier(((x - disc.x_mean) / disc.x_scale).float())[:, 0].double())
    expected = (d / (1 - d)).clamp(s.weight_min, s.weight_max) / disc.weight_norm
    assert torch.allclose(disc.event_weight(x), expected, rtol=1e-5, atol=0)
    # generated events carry the weight of the event they are
    events, weight = disc.sample(3000, seeded(15))
    assert torch.allclose(disc.event_weight(events), weight, rtol=1e-4, atol=0)


def test_discflow_weights_the_flow_likelihood_by_the_classifier_ratio(peak_generators):
    disc = peak_generators[1]
    s = disc.settings
    u = disc._standardize(peak_events(512, seed=18))
    w = torch.rand(512, generator=seeded(19))
    with torch.no_grad():
        factor = disc.classifier(u)[:, 0].clamp(math.log(s.weight_min), math.log(s.weight_max)).mul(s.alpha).exp()
    index = torch.arange(512)
    assert torch.equal(disc._flow_weights(u, w, False, index), w)  # warm-up: plain likelihood
    assert torch.allclose(disc._flow_weights(u, w, True, index), w * factor / factor.mean(), rtol=1e-5)
    assert float(factor.std()) > 0.05  # the factor is not trivially one


def test_discflow_history(peak_generators):
    disc = peak_generators[1]
    s, history = disc.settings, disc.history
    assert history["warmup_epochs"] == s.warmup_epochs and history["epochs"] == s.epochs
    assert len(history["classifier_loss"]) == s.epochs - s.warmup_epochs
    assert len(history["final_classifier_loss"]) == len(history["final_classifier_val_loss"]) == 40
    assert len(history["val_loss"]) == s.epochs
    # the classifier separates data from flow events: below the 2 log 2 of a blind guess
    assert min(history["final_classifier_val_loss"]) < 2 * math.log(2) - 0.02


def test_boosted_discflow_weights_are_its_trees_ratio_and_survive_loading(peak_generators, tmp_path):
    disc = peak_generators[2]
    s = disc.settings
    x = peak_events(3000, seed=14)
    with torch.no_grad():
        logit = disc.classifier(disc._standardize(x))
    expected = torch.exp(logit.clamp(math.log(s.weight_min), math.log(s.weight_max))) / disc.weight_norm
    assert torch.allclose(disc.event_weight(x), expected, rtol=1e-12, atol=0)
    events, weight = disc.sample(3000, seeded(15))
    assert torch.allclose(disc.event_weight(events), weight, rtol=1e-12, atol=0)
    loaded = DiscFlowGenerator.load(disc.save(tmp_path / "boosted.pt"))
    assert loaded.classifier.trees == disc.classifier.trees > 0
    assert torch.equal(loaded.event_weight(x), disc.event_weight(x))
    # refits during the coupled epochs, evenly spaced from its start, and one against the final flow
    fits = disc.history["classifier_fits"]
    coupled = s.epochs - disc.history["warmup_epochs"]
    step = math.ceil(coupled / s.classifier_refits)
    assert [f["epoch"] for f in fits] == [disc.history["warmup_epochs"] + k for k in range(0, coupled, step)] + [
        s.epochs
    ]
    assert all(f["val_loss"] < math.log(2) for f in fits)  # better than a blind guess (log 2 per event)


def test_boosted_trees_evaluate_as_sklearn_does():
    from hadrinv.inference.boosted_classifier import BoostedSettings, BoostedTrees, fit_log_ratio

    g = seeded(20)
    real = 1.5 * torch.randn(20_000, 3, generator=g, dtype=torch.float64) + 0.3
    fake = torch.randn(30_000, 3, generator=g, dtype=torch.float64)
    trees, fitted = fit_log_ratio(real, fake, settings=BoostedSettings(iterations=100))
    x = 2 * torch.randn(5000, 3, generator=g, dtype=torch.float64)
    assert torch.allclose(trees(x), torch.from_numpy(fitted.decision_function(x.numpy())), rtol=0, atol=1e-12)
    copy = BoostedTrees()
    copy.load_state_dict(trees.state_dict())
    assert torch.equal(copy(x), trees(x)) and torch.equal(BoostedTrees()(x), torch.zeros(5000, dtype=torch.float64))

    # the logit estimates the log density ratio of the two Gaussians where both have events
    def log_normal(v, mean, width):
        return (-0.5 * ((v - mean) / width) ** 2 - math.log(width)).sum(1)

    exact = log_normal(x, 0.3, 1.5) - log_normal(x, 0.0, 1.0)
    near = x.norm(dim=1) < 2
    assert float(torch.corrcoef(torch.stack([trees(x)[near], exact[near]]))[0, 1]) > 0.9
    assert float((trees(x)[near] - exact[near]).abs().median()) < 0.15  # the exact values spread by 0.36


# ---- input validation ----
def test_settings_are_checked():
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        GeneratorSettings(epochs=0)
    with pytest.raises(ValueError, match="lr must be positive"):
        GeneratorSettings(lr=0.0)
    with pytest.raises(ValueError, match="weight_min <= 1 <= weight_max"):
        DiscFlowSettings(weight_min=2.0)
    with pytest.raises(ValueError, match="alpha must not be negative"):
        DiscFlowSettings(alpha=-1.0)
    with pytest.raises(ValueError, match="must not be negative"):
        DiscFlowSettings(warmup_epochs=-1)
    with pytest.raises(ValueError, match="classifier must be 'boosted' or 'mlp'"):
        DiscFlowSettings(classifier="forest")
    with pytest.raises(ValueError, match="classifier_refits must be at least 1"):
        DiscFlowSettings(classifier_refits=0)
    with pytest.raises(ValueError, match="FlowGenerator needs GeneratorSettings, got dict"):
        FlowGenerator(2, {"epochs": 3})
    with pytest.raises(ValueError, match="DiscFlowGenerator needs DiscFlowSettings, got GeneratorSettings"):
        DiscFlowGenerator(2, GeneratorSettings())
    with pytest.raises(ValueError, match="features must be at least 1"):
        FlowGenerator(0)


def _events(n=128, seed=16):
    return gaussian_events(n, seed)


def _with_nan(x):
    x = x.clone()
    x[5, 1] = float("nan")
    return x


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(x=_with_nan(_events())), r"x holds non-finite values \(first in row 5, 1 rows in all\)"),
        (dict(x=_events()[:, :1]), r"x has shape \(128, 1\); expected \(N, 2\)"),
        (dict(x=_events()[:, 0]), r"x has shape \(128,\); expected \(N, 2\)"),
        (dict(x=_events()[:0]), "x has no events"),
        (dict(x=_events(32)), "32 training events are fewer than one batch of 64"),
        (dict(x=_events(), weight=torch.ones(127)), r"weight has shape \(127,\); expected \(128,\)"),
        (
            dict(x=_events(), weight=-torch.ones(128)),
            "weight holds negative values .*: a likelihood fit needs weights >= 0",
        ),
        (dict(x=_events(), weight=torch.zeros(128)), "weight sums to zero"),
        (dict(x=_events(), weight=torch.full((128,), math.inf)), "weight holds non-finite values"),
        (dict(x=_events(), x_val=_with_nan(_events(seed=17))), "x_val holds non-finite values"),
        (dict(x=_events(), x_val=_events(seed=17), weight_val=torch.ones(3)), "weight of x_val has shape"),
        (dict(x=_events(), weight_val=torch.ones(128)), "weight_val given without x_val"),
    ],
)
def test_fit_refuses_bad_events(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FlowGenerator(2, TINY).fit(**kwargs)


def test_an_unfitted_generator_refuses_to_generate(tmp_path):
    for generator in (FlowGenerator(2, TINY), DiscFlowGenerator(2, DiscFlowSettings(**dataclasses.asdict(TINY)))):
        for method, argument in (("sample", 10), ("log_prob", _events()), ("event_weight", _events())):
            with pytest.raises(ValueError, match="is not fitted: call fit"):
                getattr(generator, method)(argument)
        with pytest.raises(ValueError, match="is not fitted: call fit"):
            generator.save(tmp_path / "unfitted.pt")
        assert not (tmp_path / "unfitted.pt").exists()


def test_sample_checks_its_count(gaussian_flow):
    flow = gaussian_flow[0]
    events, weight = flow.sample(0)
    assert events.shape == (0, 2) and weight.shape == (0,)
    for n in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n must be a non-negative integer"):
            flow.sample(n)
    with pytest.raises(ValueError, match=r"x has shape \(3, 3\)"):
        flow.log_prob(torch.zeros(3, 3))
