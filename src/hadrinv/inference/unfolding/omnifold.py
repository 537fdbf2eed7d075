"""OmniFold: unbinned unfolding of detector effects by iterated classifier reweighting.

The method of Andreassen, Komiske, Metodiev, Nachman and Thaler, "OmniFold: a method to simultaneously unfold all
observables" (arXiv:1911.09107). Simulated (MC) events come in pairs: particle-level observables ``gen`` and the
detector-level observables ``reco`` of the same event. OmniFold finds per-event weights nu(gen) such that the MC,
reweighted at particle level and passed through its simulated detector, reproduces the measured data. Iteration n:

1. Step 1, detector level: a classifier tells data (label 1) from reconstructed MC weighted by nu_{n-1} (label 0),
   the classes given equal total weight. Trained by binary cross-entropy its logit is log D/(1-D) =
   log p_data(reco) / p_MC(reco), so omega_n = nu_{n-1} D/(1-D) at each MC event's reco values pulls the MC onto
   the data at detector level. These are weights of events, not yet a function of the particle level.
2. Step 2, particle level: a classifier tells the MC gen weighted by omega_n (label 1) from the same gen weighted
   by nu_{n-1} (label 0); nu_n = nu_{n-1} D/(1-D) at each event's gen values is the particle-level function that
   best reproduces omega_n, a reweighting that applies also to events the detector lost.

One iteration reweights the prior; further iterations remove the dependence on the MC's particle-level
distribution, like iterative Bayesian unfolding (which OmniFold becomes when the classifier is a histogram), but in
all observables at once and without bins. The number of iterations is the regularisation: few stay near the
prior, many amplify statistical fluctuations.

Choices made here:

- Inefficiency: an MC event whose ``reco`` row holds a NaN was not reconstructed. It takes no part in step 1, and
  step 2 gives it the weight that reconstructed events with the same gen values received, so the unfolded
  distribution counts the events the detector missed, as long as the efficiency depends on the event only through
  the gen observables given. ``step2="reconstructed"`` (default) trains step 2 on the reconstructed events only and
  applies nu_n to all: the update is then E[omega_n / nu_{n-1} | gen, reconstructed], iterative Bayesian
  unfolding's own (u_j <- u_j sum_i P(E_i | C_j) / eps_j d_i / f_i, for data d_i and the folded estimate f_i in
  reco bin i). ``step2="all"`` is the paper's choice: lost events keep omega_n = nu_{n-1} and enter step 2 with a
  ratio of one, so at a gen value of efficiency eps each update is diluted to about eps of itself and convergence
  takes about 1/eps as many iterations (on a 4-D case with efficiency 0.3-0.9, 12 iterations still left chi2/ndf
  2.4 in the least efficient observable). Both have the same fixed point. Fakes (data without a particle-level
  partner) are not modelled.
- Support: reweighting cannot create events. Where the data reach beyond the MC (a narrow prior, a tail), a few MC
  events must carry large weights, learned slowly and from little; the bootstrap spread shows how little.
- Normalisation: each step balances its classes, so OmniFold unfolds the shape. ``weights`` multiply the MC's own
  weights and are normalised so that sum(mc_weight * weights) = sum(mc_weight): a weight of one leaves an event as
  it was, and the weighted MC keeps its total.
- Classifiers: a fresh MLP for every step of every iteration, seeded from (seed, iteration, step, replica), on
  inputs standardised by the MC's mean and standard deviation; Adam, early stopping on a held-out fraction of the
  events, the best epoch kept. The per-step ratio D/(1-D) is clipped to ``weight_clip``: a classifier that is
  overconfident far in a tail must not hand a few events most of the weight.
- Bootstrap: replica b multiplies each data event's weight by an independent Poisson(1) count and each MC event's
  weight by another, and reruns the whole procedure with its own network initialisations, so the spread of the
  replicas covers the data statistics, the MC statistics and the training noise (not the bias of stopping after a
  finite number of iterations). The replicas train together as one ensemble of stacked weight matrices under one
  Adam, whose update is per parameter, so the members do not interact: the nominal result is member 0, with unit
  counts, and is the same, up to rounding, whether replicas train beside it or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from hadrinv.inference.unfolding.member_classifiers import ClassifierSettings, member_log_ratios

__all__ = ["OmniFoldResult", "OmniFoldSettings", "omnifold"]


@dataclass(frozen=True)
class OmniFoldSettings(ClassifierSettings):
    """``iterations`` of the two steps; each classifier an MLP of ``layers`` x ``hidden`` trained for at most
    ``epochs`` (stopped after ``patience`` epochs without a better loss on ``validation_fraction`` of the events;
    `ClassifierSettings`); per-step ratios clipped to ``weight_clip``; ``bootstraps`` Poisson replicas (0: none)
    for uncertainties."""

    iterations: int = 4
    weight_clip: tuple[float, float] = (1e-2, 1e2)
    bootstraps: int = 0
    step2: str = "reconstructed"  # or "all": what events step 2 learns from (the module docstring, Inefficiency)

    def __post_init__(self):
        super().__post_init__()
        if self.iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {self.iterations}")
        low, high = self.weight_clip
        if not 0 < low < high < math.inf:
            raise ValueError(f"weight_clip must be (low, high) with 0 < low < high < inf, got {self.weight_clip}")
        if self.step2 not in ("reconstructed", "all"):
            raise ValueError(f"step2 must be 'reconstructed' or 'all', got {self.step2!r}")
        if self.bootstraps < 0 or self.bootstraps == 1:
            raise ValueError(f"bootstraps must be 0 or at least 2 (a spread needs two replicas), got {self.bootstraps}")


@dataclass(repr=False)
class OmniFoldResult:
    """Unfolded weights of the MC events; ``print(result)`` shows how the iterations went.

    weights: (N,) particle-level weights nu, multiplying ``mc_weight``, normalised to sum(mc_weight * weights) =
    sum(mc_weight). iterations: per iteration the best validation loss of each step's classifier (ln 2 = 0.693
    means it found no difference, so that step left the weights as they were), and the ESS fraction and range of
    the weights after it. bootstrap_weights: (B, N) the replicas' weights, their Poisson counts of the MC events
    included, normalised like ``weights``; None without bootstrap. ess_fraction: the effective sample size of the
    weighted MC relative to the unweighted, (sum w)^2 / (N sum w^2) for unit MC weights.
    """

    weights: np.ndarray
    iterations: list[dict]
    bootstrap_weights: np.ndarray | None
    ess_fraction: float
    weight_range: tuple[float, float]
    mc_weight: np.ndarray

    @property
    def event_weights(self) -> np.ndarray:
        """The weights that make the unfolded distribution: mc_weight * weights."""
        return self.mc_weight * self.weights

    def histogram(self, gen_values, edges) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The unfolded probability density of one particle-level observable, in any bins chosen now.

        gen_values (N,): the observable for each MC event (it need not be one the unfolding saw; NaN: undefined
        for that event). Returns density, error and covariance per bin, normalised to the total weight of all
        events, so bins that do not cover every event integrate to less than one. Errors come from the spread
        of the bootstrap replicas when there are any; else from sum w^2 with the weights held fixed, which is the
        MC statistics only and misses the data's.
        """
        values = np.asarray(gen_values, dtype=float).reshape(-1)
        if values.shape != self.weights.shape:
            raise ValueError(f"gen_values has {values.size} entries but there are {self.weights.size} MC events")
        edges = np.asarray(edges, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError("edges must be a 1-d increasing sequence of at least two bin edges")
        bins, width = edges.size - 1, np.diff(edges)
        index = np.searchsorted(edges, values, side="right") - 1
        index[values == edges[-1]] = bins - 1  # the last bin is closed, as in np.histogram
        inside = (index >= 0) & (index < bins)
        weights = self.event_weights[None]
        if self.bootstrap_weights is not None:
            weights = np.concatenate([weights, self.mc_weight * self.bootstrap_weights])
        content = np.stack([np.bincount(index[inside], w[inside], minlength=bins) for w in weights])
        total = weights.sum(1, keepdims=True)
        density = content / total / width
        if self.bootstrap_weights is not None:
            covariance = np.atleast_2d(np.cov(density[1:], rowvar=False))
        else:
            # delta method for f_i = c_i / T with independent per-event fluctuations var(w_j) = w_j^2
            f, total = content[0] / total[0, 0], total[0, 0]
            squares = np.bincount(index[inside], weights[0, inside] ** 2, minlength=bins)
            all_squares = float(np.sum(weights[0] ** 2))
            covariance = np.diag(squares) - np.outer(f, squares) - np.outer(squares, f) + np.outer(f, f) * all_squares
            covariance = covariance / total**2 / np.outer(width, width)
        return density[0], np.sqrt(np.clip(np.diag(covariance), 0, None)), covariance

    def __repr__(self) -> str:
        replicas = f", {len(self.bootstrap_weights)} bootstrap replicas" if self.bootstrap_weights is not None else ""
        lines = [f"OmniFoldResult: {self.weights.size} MC events, {len(self.iterations)} iterations{replicas}"]
        lines.append("  iteration  step-1 loss  step-2 loss   ESS fraction   weight min   weight max")
        for row in self.iterations:
            lines.append(
                f"  {row['iteration']:>9}  {row['step1_loss']:>11.5f}  {row['step2_loss']:>11.5f}"
                f"  {row['ess_fraction']:>13.3f}  {row['weight_min']:>11.3g}  {row['weight_max']:>11.3g}"
            )
        return "\n".join(lines)


def omnifold(
    gen_mc,
    reco_mc,
    reco_data,
    mc_weight=None,
    data_weight=None,
    settings: OmniFoldSettings | None = None,
    device: str | torch.device = "cpu",
) -> OmniFoldResult:
    """Unfold ``reco_data`` (M, R) with the MC pairs ``gen_mc`` (N, G) and ``reco_mc`` (N, R).

    A row of reco_mc with a NaN is an MC event that was not reconstructed. Weights are per event, non-negative,
    and default to one. Arrays may be numpy or torch; 1-d arrays are one observable.
    """
    s = settings or OmniFoldSettings()
    gen, reco, data, w_mc, w_data = _validated(gen_mc, reco_mc, reco_data, mc_weight, data_weight)
    device = torch.device(device)
    members = 1 + s.bootstraps
    counts_mc, counts_data = _poisson_counts(s, len(gen), len(data))
    base_mc = torch.as_tensor(w_mc) * counts_mc  # (members, N)
    base_data = torch.as_tensor(w_data) * counts_data
    ok = torch.as_tensor(~np.isnan(reco).any(1))
    reco_ok = reco[ok.numpy()]
    mean, std = reco_ok.mean(0), _nonzero(reco_ok.std(0))
    x_reco = _tensor((np.concatenate([data, reco_ok]) - mean) / std, device)
    x_gen = _tensor((gen - gen.mean(0)) / _nonzero(gen.std(0)), device)
    log_low, log_high = math.log(s.weight_clip[0]), math.log(s.weight_clip[1])

    def normalised(w: Tensor) -> Tensor:
        return w * (base_mc.sum(1, keepdim=True) / (base_mc * w).sum(1, keepdim=True))

    nu = torch.ones(members, len(gen), dtype=torch.float64)
    history = []
    for iteration in range(1, s.iterations + 1):
        zeros_mc = torch.zeros(members, int(ok.sum()), dtype=torch.float64)
        zeros_data = torch.zeros_like(base_data)
        label1 = torch.cat([base_data, zeros_mc], 1)
        label0 = torch.cat([zeros_data, (base_mc * nu)[:, ok]], 1)
        net, loss1 = member_log_ratios(x_reco, label1, label0, s, (iteration, 1), device)
        logit = net.predict(x_reco[len(data) :]).double().cpu()
        omega = nu.clone()
        omega[:, ok] = nu[:, ok] * logit.clamp(log_low, log_high).exp()
        omega = normalised(omega)
        learn = ok if s.step2 == "reconstructed" else torch.ones_like(ok)
        label1, label0 = (base_mc * omega)[:, learn], (base_mc * nu)[:, learn]
        net, loss2 = member_log_ratios(x_gen[learn.to(x_gen.device)], label1, label0, s, (iteration, 2), device)
        logit = net.predict(x_gen).double().cpu()
        nu = normalised(nu * logit.clamp(log_low, log_high).exp())
        history.append(
            {
                "iteration": iteration,
                "step1_loss": float(loss1[0]),
                "step2_loss": float(loss2[0]),
                "ess_fraction": _ess_fraction(w_mc, nu[0].numpy()),
                "weight_min": float(nu[0].min()),
                "weight_max": float(nu[0].max()),
            }
        )
    weights = nu[0].numpy()
    replicas = None
    if s.bootstraps:
        replicas = (counts_mc[1:] * nu[1:]).numpy()
        replicas *= w_mc.sum() / (replicas @ w_mc)[:, None]
    return OmniFoldResult(
        weights=weights,
        iterations=history,
        bootstrap_weights=replicas,
        ess_fraction=_ess_fraction(w_mc, weights),
        weight_range=(float(weights.min()), float(weights.max())),
        mc_weight=w_mc,
    )


def _validated(gen_mc, reco_mc, reco_data, mc_weight, data_weight):
    gen, reco, data = _matrix("gen_mc", gen_mc), _matrix("reco_mc", reco_mc), _matrix("reco_data", reco_data)
    _check_finite("gen_mc", gen)
    if len(reco) != len(gen):
        raise ValueError(f"reco_mc has {len(reco)} rows but gen_mc has {len(gen)}: they must be the same events")
    _check_finite("reco_mc", np.where(np.isnan(reco), 0.0, reco), " (a NaN marks an event that was not reconstructed)")
    if np.isnan(reco).any(1).all():
        raise ValueError("reco_mc has no reconstructed event: every row holds a NaN")
    if data.shape[1] != reco.shape[1]:
        raise ValueError(
            f"reco_data has {data.shape[1]} columns but reco_mc has {reco.shape[1]}: "
            "they must be the same detector-level observables"
        )
    _check_finite("reco_data", data)
    return (
        gen,
        reco,
        data,
        _event_weights("mc_weight", mc_weight, len(gen)),
        _event_weights("data_weight", data_weight, len(data)),
    )


def _matrix(name: str, a) -> np.ndarray:
    a = np.asarray(a.detach().cpu() if torch.is_tensor(a) else a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must have shape (events, observables), got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    return a


def _check_finite(name: str, a: np.ndarray, note: str = "") -> None:
    bad = ~np.isfinite(a).all(1)
    if bad.any():
        raise ValueError(f"{name} has a non-finite value in row {int(np.flatnonzero(bad)[0])}{note}")


def _event_weights(name: str, w, n: int) -> np.ndarray:
    if w is None:
        return np.ones(n)
    w = np.asarray(w.detach().cpu() if torch.is_tensor(w) else w, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one weight per event, got {w.shape}")
    for bad, what in ((~np.isfinite(w), "a non-finite value"), (w < 0, "a negative value")):
        if bad.any():
            raise ValueError(f"{name} has {what} in row {int(np.flatnonzero(bad)[0])}")
    if not w.sum() > 0:
        raise ValueError(f"{name} sums to zero")
    return w


def _poisson_counts(s: OmniFoldSettings, n_mc: int, n_data: int) -> tuple[Tensor, Tensor]:
    """(1 + bootstraps, events) counts for MC and data: row 0 all ones (the nominal run), then Poisson(1) each."""
    counts = []
    for sample, n in ((0, n_mc), (1, n_data)):
        rows = [np.ones(n)] + [
            np.random.default_rng([s.seed, 2, sample, b]).poisson(1.0, n).astype(float) for b in range(s.bootstraps)
        ]
        counts.append(torch.as_tensor(np.stack(rows)))
    return counts[0], counts[1]


def _nonzero(std: np.ndarray) -> np.ndarray:
    return np.where(std > 0, std, 1.0)


def _tensor(a: np.ndarray, device: torch.device) -> Tensor:
    return torch.as_tensor(a, dtype=torch.float32, device=device)


def _ess_fraction(mc_weight: np.ndarray, nu: np.ndarray) -> float:
    """ESS(mc_weight * nu) / ESS(mc_weight), ESS(w) = (sum w)^2 / sum w^2: what the reweighting costs."""
    ess = lambda w: float(w.sum() ** 2 / np.sum(w**2))
    return ess(mc_weight * nu) / ess(mc_weight)
