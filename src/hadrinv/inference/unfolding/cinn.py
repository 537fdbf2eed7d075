"""Per-event unfolding with conditional flows (the cINN of Bellagente et al., arXiv:2006.06685) and its iterative
version (IcINN, Backes, Butter, Dunford, Malaescu, arXiv:2212.08674).

A conditional normalising flow q(gen | reco) is trained by maximum likelihood on the paired MC events that were
reconstructed (`hadrinv.inference.flow.ConditionalFlow`: zuko's spline flow, conditioned on the reco values). For
each data event it gives samples of the particle-level values that could have produced it: a per-event posterior,
in any number of observables, with no binning. Summed over the data, the samples follow the particle-level
distribution of the data's *reconstructed* events, f(gen) eps(gen); dividing by the efficiency eps(gen) =
P(reconstructed | gen), learned on the MC by gradient-boosted trees (`boosted_classifier.fit_log_ratio`), gives
the unfolded f(gen).

The prior. The posterior is the MC's, p(reco | gen) eps(gen) p_MC(gen) normalised: where the data's particle-level
distribution differs from the MC's, one pass is pulled towards the MC (on the Gaussian benchmark, MC N(0.2, 0.8) and
data N(0, 1) with N(0, 0.5) smearing, the exact posterior unfolds to mean 0.056 and width 0.909). Each further
iteration takes the unfolded distribution as the new prior, as iterative Bayesian unfolding does. The detector
response does not change with the prior, so by Bayes' theorem the new posterior is the flow's times nu(gen) =
prior_new / p_MC, normalised per event: the iterations reweight each event's samples by nu (self-normalised
importance sampling) instead of retraining the flow, which the IcINN paper does and which costs a full training per
iteration. nu is the density ratio of the unfolded samples to the MC's gen values, learned by a classifier
(`member_classifiers`). The reweighting holds while the new prior stays inside the MC's support; the mean effective
fraction of each event's samples is reported (``updates``) and falls when it does not.

Uncertainties, the first two added:

- data and MC statistics of the prior updates: ``bootstraps`` replicas give every data event and every MC event a
  Poisson(1) count and rerun the updates with their own classifiers (trained side by side with the nominal one);
  the replicas use the first ``replica_samples`` samples of each event;
- the flows themselves (finite MC, training noise): ``flows`` flows are trained on random halves of the MC, each
  with its own efficiency; every event's samples are drawn from all of them in turn (column j from flow
  j mod flows), so the posterior is their mixture, and the spread of the per-flow unfolded distributions is its
  error (the half-sample method: the spread of estimates from halves is the variance of one from the whole). A
  variance from F flows has F - 1 degrees of freedom, so a bin's squared pull scatters like F(1, F - 1), of mean
  (F - 1) / (F - 3): 3 with 4 flows, 1.4 with 8 (the default). The flows train on batches of 2048: on the Gaussian
  benchmark (halves of 1e5 events) as accurate as on batches of 512 in a third of the time
  (benchmarks/cinn_flow_batch.py);
- without replicas, the data statistics with the posteriors held fixed (each event contributes its samples'
  weights to the bins, independently of the others).

Weighted MC trains the flows on events drawn (within their half) with probability proportional to their weights:
the flow's likelihood takes no weights. Data events are all taken to come from the process the MC describes:
background and fakes (reco events with no particle-level partner) must be subtracted beforehand.

Calibration (`calibration`): for held-out MC events, the fraction whose true gen value lies inside the central
68 % / 95 % interval of its samples, per observable, and inside the 68 % / 95 % highest-density region jointly
(`hadrinv.inference.diagnostics`). A calibrated cINN covers at the nominal rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from hadrinv.inference.boosted_classifier import BoostedSettings, BoostedTrees, fit_log_ratio
from hadrinv.inference.flow import ConditionalFlow, FlowSettings
from hadrinv.inference.mixture import EstimatorMixture
from hadrinv.inference.unfolding.member_classifiers import ClassifierSettings, member_log_ratios
from hadrinv.inference.unfolding.normalise import unit_area


@dataclass(frozen=True)
class CINNSettings(FlowSettings):
    """``flows`` flows (`FlowSettings`: their architecture and training); ``samples`` per data event;
    ``efficiency``: correct for events that were not reconstructed (if the MC has any). ``iterations`` unfolding
    passes: each after the first reweights the samples to the previous pass's distribution as prior
    (``prior_classifier``, nu clipped to ``prior_weight_clip``). ``bootstraps`` Poisson replicas (0: none, or at
    least 2) on ``replica_samples`` samples per event give the errors; see the module docstring."""

    iterations: int = 4
    flows: int = 8
    batch_size: int = 2048
    bootstraps: int = 20
    replica_samples: int = 20
    prior_weight_clip: tuple[float, float] = (0.05, 20.0)
    prior_classifier: ClassifierSettings = ClassifierSettings(epochs=20)
    samples: int = 100
    efficiency: bool = True

    def __post_init__(self):
        super().__post_init__()
        for name in ("iterations", "flows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.samples < 2 * self.flows:
            raise ValueError(f"samples must be at least 2 per flow ({2 * self.flows}), got {self.samples}")
        if not self.flows <= self.replica_samples <= self.samples:
            raise ValueError(f"replica_samples must lie in [flows, samples], got {self.replica_samples}")
        if self.bootstraps < 0 or self.bootstraps == 1:
            raise ValueError(f"bootstraps must be 0 or at least 2 (a spread needs two replicas), got {self.bootstraps}")
        low, high = self.prior_weight_clip
        if not 0 < low < 1 < high < math.inf:
            raise ValueError(f"prior_weight_clip must be (low, high) with 0 < low < 1 < high, got {low, high}")


@dataclass
class Efficiency:
    """P(reconstructed | gen) = sigmoid(logit(gen) + offset) from trees fitted with balanced classes."""

    trees: BoostedTrees
    offset: float

    def __call__(self, gen: np.ndarray) -> np.ndarray:
        logit = self.trees(torch.as_tensor(gen, dtype=torch.float64).reshape(len(gen), -1)).numpy()
        return 1.0 / (1.0 + np.exp(-(logit + self.offset)))


@dataclass
class CINNUnfolding:
    """Samples (M, S, G) of the particle-level values of each data event, column j drawn from flow j mod flows;
    their weights (M, S), which include the data weight, the prior's reweighting and 1 / efficiency and sum to the
    data's total weight corrected for the losses; the replicas' weights (B, M, R) on the first R samples (None
    without replicas)."""

    estimator: EstimatorMixture  # the pooled flows: q(gen | reco) of the first pass
    samples: np.ndarray
    sample_weight: np.ndarray
    replica_weight: np.ndarray | None
    efficiencies: list[Efficiency] | None  # one per flow
    history: list[dict]  # each flow's training
    updates: list[dict] = field(default_factory=list)  # each prior update: classifier loss, samples' ESS fraction

    @property
    def flows(self) -> int:
        return len(self.estimator)

    def histogram(self, observable: int, edges) -> tuple[np.ndarray, np.ndarray]:
        """The unfolded distribution of one observable normalised to unit area in ``edges`` (any binning, after
        the fact) and its covariance (module docstring: replicas plus the flows' spread)."""
        edges = np.asarray(edges, dtype=np.float64)
        width, bins = np.diff(edges), len(edges) - 1
        index = np.digitize(self.samples[:, :, observable], edges) - 1
        inside = (index >= 0) & (index < bins)

        def contents(weight: np.ndarray, columns: slice) -> np.ndarray:
            at, keep = index[:, columns], inside[:, columns]
            return np.bincount(at[keep], weights=weight[:, columns][keep], minlength=bins)

        m = len(self.samples)
        total = contents(self.sample_weight, slice(None))
        if self.replica_weight is not None:
            r = self.replica_weight.shape[-1]
            replicas = np.stack([contents(w, slice(0, r)) for w in self.replica_weight])
            density = replicas / (replicas.sum(1, keepdims=True) * width)
            covariance = np.atleast_2d(np.cov(density, rowvar=False))
        else:
            # Var of a sum of m independent events' contributions: m times their sample covariance
            flat = (np.arange(m)[:, None] * bins + np.clip(index, 0, bins - 1))[inside]
            per_event = np.bincount(flat, weights=self.sample_weight[inside], minlength=m * bins).reshape(m, bins)
            centred = per_event - total / m
            covariance = unit_area(total, centred.T @ centred * (m / (m - 1)), width)[1]
        if self.flows > 1:
            per_flow = np.stack([contents(self.sample_weight, slice(f, None, self.flows)) for f in range(self.flows)])
            density = per_flow / (per_flow.sum(1, keepdims=True) * width)
            covariance = covariance + np.atleast_2d(np.cov(density, rowvar=False))
        return total / (total.sum() * width), covariance


def _check(values, name: str, columns: int | None = None, allow_nan: bool = False) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or len(values) == 0 or (columns is not None and values.shape[1] != columns):
        expected = f"(N, {columns})" if columns is not None else "(N, K)"
        raise ValueError(f"{name} has shape {values.shape}; expected {expected} with N > 0")
    bad = np.isinf(values).any(1) if allow_nan else ~np.isfinite(values).all(1)
    if bad.any():
        raise ValueError(f"{name} holds a non-finite value in row {int(np.argmax(bad))}")
    return values


def fit_efficiency(gen: np.ndarray, reconstructed: np.ndarray, weight: np.ndarray, seed: int) -> Efficiency:
    real, lost = torch.as_tensor(gen[reconstructed]), torch.as_tensor(gen[~reconstructed])
    w_real, w_lost = weight[reconstructed], weight[~reconstructed]
    # the trees see the classes balanced; the offset restores the MC's share of reconstructed events
    settings = BoostedSettings(seed=seed)
    trees, _ = fit_log_ratio(real, lost, torch.as_tensor(w_real), settings, fake_weight=torch.as_tensor(w_lost))
    ratio = float(w_real.sum() / w_lost.sum())
    return Efficiency(trees, math.log(ratio))


def cinn_unfold(
    gen_mc, reco_mc, reco_data, mc_weight=None, data_weight=None, settings: CINNSettings | None = None
) -> CINNUnfolding:
    """Train the flows on the reconstructed MC, sample every data event, update the prior; see the module
    docstring. gen_mc (N, G), reco_mc (N, R) with NaN rows for lost events, reco_data (M, R)."""
    s = settings or CINNSettings()
    gen = _check(gen_mc, "gen_mc")
    reco = _check(reco_mc, "reco_mc", allow_nan=True)
    data = _check(reco_data, "reco_data", columns=reco.shape[1])
    if len(reco) != len(gen):
        raise ValueError(f"reco_mc has {len(reco)} events but gen_mc has {len(gen)}: they must be paired")
    w_mc = np.ones(len(gen)) if mc_weight is None else np.asarray(mc_weight, dtype=np.float64)
    w_data = np.ones(len(data)) if data_weight is None else np.asarray(data_weight, dtype=np.float64)
    for w, n, name in ((w_mc, len(gen), "mc_weight"), (w_data, len(data), "data_weight")):
        if w.shape != (n,) or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
            raise ValueError(f"{name} must be ({n},) finite, non-negative and not all zero")
    reconstructed = np.isfinite(reco).all(1)
    if reconstructed.sum() < 2 * s.batch_size:
        raise ValueError(f"{int(reconstructed.sum())} reconstructed MC events; need at least {2 * s.batch_size}")
    correct = s.efficiency and not reconstructed.all()

    flows, efficiencies, history = [], [], []
    samples = np.empty((len(data), s.samples, gen.shape[1]))
    inverse_eps = np.ones((len(data), s.samples))
    for f in range(s.flows):
        rng = np.random.default_rng([s.seed, 3, f])
        # half-samples, not bootstrap resamples: a duplicated event could sit in both the training and the
        # validation part and early stopping would not see the flow overfit. Their spread estimates the variance of
        # an estimate from the whole MC (the half-sample method).
        events = np.sort(rng.permutation(len(gen))[: len(gen) // 2]) if s.flows > 1 else np.arange(len(gen))
        training = events
        if not np.allclose(w_mc, w_mc[0]):  # the flow's likelihood takes no weights: draw in proportion to them
            training = rng.choice(events, size=len(events), p=w_mc[events] / w_mc[events].sum())
        flow, trained = _train(gen[training], reco[training], s, int(rng.integers(2**31)))
        flows.append(flow)
        history.append(trained)
        columns = slice(f, None, s.flows)
        drawn = _sample(flow, data, len(range(s.samples)[columns]))
        samples[:, columns] = drawn
        if correct:
            efficiency = fit_efficiency(gen[events], reconstructed[events], w_mc[events], s.seed + f)
            eps = efficiency(drawn.reshape(-1, gen.shape[1])).reshape(drawn.shape[:2])
            inverse_eps[:, columns] = 1.0 / np.clip(eps, 1e-3, None)  # below 1e-3: where the MC has no events
            efficiencies.append(efficiency)
    base = w_data[:, None] * inverse_eps / s.samples
    weight, replica_weight, updates = _update_prior(gen, w_mc, samples, base, s)
    return CINNUnfolding(
        EstimatorMixture(flows), samples, weight, replica_weight, efficiencies or None, history, updates
    )


def _train(gen, reco, s: CINNSettings, seed: int):
    keep = np.isfinite(reco).all(1)
    return s.train(gen[keep], reco[keep], seed)


def _sample(flow: ConditionalFlow, data: np.ndarray, n: int) -> np.ndarray:
    with torch.no_grad():
        drawn = flow.sample(torch.as_tensor(data, dtype=torch.float32), n)
    return drawn.numpy().astype(np.float64).reshape(len(data), n, -1)


def _update_prior(gen, w_mc, samples, base, s: CINNSettings):
    """Iterations 2, 3, ...: every event's samples reweighted by nu(gen) = unfolded / MC particle-level density,
    normalised per event. Member 0 is the nominal unfolding on all samples; members 1..B the Poisson replicas on
    the first ``replica_samples``. Returns the nominal weights (M, S), the replicas' (B, M, R) and per update
    the classifier's validation loss and the mean effective fraction of the events' samples."""
    m, n, b, r = len(samples), len(gen), s.bootstraps, s.replica_samples
    counts_data, counts_mc = (
        np.array([np.random.default_rng([s.seed, 4, sample, k]).poisson(1.0, size) for k in range(b)]).reshape(b, size)
        for sample, size in ((0, m), (1, n))
    )
    base_replicas = base[None, :, :r] * (s.samples / r) * counts_data[:, :, None]
    weight, replicas = base, base_replicas
    mean, std = gen.mean(0), gen.std(0)
    std = np.where(std > 0, std, 1.0)

    def scaled(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x.reshape(-1, x.shape[-1]) - mean) / std, dtype=torch.float32)

    # the classifier sees one sample per event, column i mod flows: an unbiased draw of the event's weighted samples
    column = np.arange(m) % s.flows
    x = torch.cat([scaled(samples[np.arange(m), column]), scaled(gen)])
    label0 = torch.as_tensor(np.concatenate([np.zeros((1 + b, m)), np.vstack([w_mc, w_mc * counts_mc])], 1))
    low, high = math.log(s.prior_weight_clip[0]), math.log(s.prior_weight_clip[1])
    updates = []
    for iteration in range(1, s.iterations):
        chosen = np.vstack([weight[np.arange(m), column] * s.samples, replicas[:, np.arange(m), column] * r])
        label1 = torch.as_tensor(np.concatenate([chosen, np.zeros((1 + b, n))], 1))
        net, loss = member_log_ratios(x, label1, label0, s.prior_classifier, (s.seed, 5, iteration), "cpu")
        nu = net.predict(scaled(samples), slice(0, 1)).double().clamp(low, high).exp().numpy().reshape(m, -1)
        weight = base * nu / nu.mean(1, keepdims=True)
        ess = (nu.sum(1) ** 2 / (nu**2).sum(1)).mean() / s.samples
        if b:
            nu = net.predict(scaled(samples[:, :r]), slice(1, None)).double().clamp(low, high).exp().numpy()
            nu = nu.reshape(b, m, r)
            replicas = base_replicas * nu / nu.mean(2, keepdims=True)
        updates.append({"iteration": iteration + 1, "loss": float(loss[0]), "ess_fraction": float(ess)})
    return weight, (replicas.astype(np.float32) if b else None), updates


def calibration(estimator, gen, reco, samples: int = 500, levels=(0.68, 0.95)) -> dict:
    """Coverage of held-out MC events' true gen values (reconstructed events only) under the first pass's
    posterior ``estimator``: per observable (central intervals) and jointly (highest-density regions). Returns
    {"marginal": {level: [per observable]}, "joint": {level: value}, "events": n}."""
    from hadrinv.inference.diagnostics import hpd_coverage, marginal_coverage

    gen, reco = _check(gen, "gen"), _check(reco, "reco", allow_nan=True)
    keep = np.isfinite(reco).all(1)
    theta = torch.as_tensor(gen[keep], dtype=torch.float32)
    x = torch.as_tensor(reco[keep], dtype=torch.float32)
    with torch.no_grad():
        drawn = estimator.sample(x, samples)
    marginal = marginal_coverage(drawn.reshape(len(x), samples, -1), theta, levels)
    joint = hpd_coverage(estimator, theta, x, levels, n_samples=samples)
    return {
        "marginal": {level: marginal.per_parameter[level] for level in levels},
        "joint": {level: joint[level] for level in levels},
        "events": int(keep.sum()),
    }
