"""Metrics for generative event generators judged against held-out truth events.

The module knows no physics: events are feature arrays (N, F), torch tensors or numpy, optionally with one
weight per event (importance weights of a flow, classifier weights of DiscFlow, negative weights allowed where
stated). Conventions follow Butter et al., "Generative networks for precision enthusiasts", arXiv:2110.13632.

* ``classifier_two_sample_test``: ROC AUC of a classifier that tells truth from generated events on a held-out
  half (0.5 = indistinguishable), without and with the generator's weights;
* ``weight_summary``: the shape of a weight distribution (fraction in [0.5, 2], effective sample size, ...);
* ``histogram_comparison``: unit-area histograms of one observable, their ratio with errors, a chi2, and the
  largest per-bin deviation where the truth sample is well populated;
* ``triangular_discriminator``: Delta(p, q) = 1/2 sum_i (p_i - q_i)^2 / (p_i + q_i) over bin fractions;
* ``ratio_panel``: one observable's histograms and ratio on caller-provided matplotlib axes;
* ``time_per_event``: generation time per event, best of several repeats.

Every result has ``as_dict()`` with plain floats for metrics files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "C2STResult",
    "HistogramComparison",
    "WeightSummary",
    "classifier_two_sample_test",
    "histogram_comparison",
    "ratio_panel",
    "time_per_event",
    "triangular_discriminator",
    "weight_summary",
]


def _to_numpy(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} cannot be read as a float array: {error}") from None
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")
    return array


def _events(values, name: str) -> np.ndarray:
    array = _to_numpy(values, name)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} has shape {array.shape}; expected (n_events, n_features)")
    return array


def _observable(values, name: str) -> np.ndarray:
    array = _to_numpy(values, name)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} has shape {array.shape}; expected one observable, shape (n_events,)")
    return array


def _weights(weight, n: int, name: str) -> np.ndarray | None:
    if weight is None:
        return None
    array = _to_numpy(weight, name)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"{name} has shape {array.shape}; expected ({n},), one weight per event")
    return array


# --------------------------------------------------------------------------------------------------------------
# classifier two-sample test


@dataclass(frozen=True)
class C2STResult:
    """ROC AUC of a truth-vs-generated classifier on held-out events (0.5 = indistinguishable, 1 = separable).

    ``auc`` treats generated events with unit weight; ``auc_weighted`` uses the generator's weights in training
    and evaluation (None without weights). ``auc_null_std`` is the AUC's standard deviation for identical
    distributions and the unweighted test sizes, sqrt((n_t + n_g + 1) / (12 n_t n_g)) (Mann-Whitney), the scale
    against which |auc - 0.5| is judged."""

    auc: float
    auc_weighted: float | None
    auc_null_std: float
    n_truth: int
    n_generated: int
    n_train: int
    n_test: int

    def as_dict(self) -> dict[str, float | None]:
        return {
            "auc": float(self.auc),
            "auc_weighted": None if self.auc_weighted is None else float(self.auc_weighted),
            "auc_null_std": float(self.auc_null_std),
            "n_truth": float(self.n_truth),
            "n_generated": float(self.n_generated),
            "n_train": float(self.n_train),
            "n_test": float(self.n_test),
        }


def _balanced(weight: np.ndarray, label: np.ndarray) -> np.ndarray:
    # Each class gets half the total so unequal sample sizes (or weight scales) do not shift the classifier's
    # prior; the overall mean stays 1 so the boosting's absolute hessian thresholds behave as for unit weights.
    balanced = np.empty_like(weight)
    for value in (0, 1):
        mask = label == value
        balanced[mask] = weight[mask] * (0.5 * label.size / weight[mask].sum())
    return balanced


def _fit_auc(x_train, y_train, w_train, x_test, y_test, w_test, seed: int, max_iter: int) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    # Histogram gradient boosting: strong on low-dimensional tabular features without tuning or feature scaling,
    # fast (binned features, no per-epoch training loop), and it takes per-event sample weights natively.
    # Early stopping is switched on explicitly so small and large samples are treated alike (sklearn's 'auto'
    # flips at 10k events); it only stops a classifier that no longer improves on its own validation split.
    classifier = HistGradientBoostingClassifier(max_iter=max_iter, early_stopping=True, random_state=seed)
    classifier.fit(x_train, y_train, sample_weight=_balanced(w_train, y_train))
    score = classifier.predict_proba(x_test)[:, 1]
    return float(roc_auc_score(y_test, score, sample_weight=w_test))


def classifier_two_sample_test(
    truth,
    generated,
    generated_weight=None,
    truth_weight=None,
    seed: int = 0,
    test_fraction: float = 0.5,
    max_iter: int = 200,
) -> C2STResult:
    """Classifier two-sample test of generated events against truth events, both (N, F).

    A gradient-boosted classifier is trained on a stratified ``1 - test_fraction`` share of the events, with
    class weights that give truth and generated equal total weight, and its ROC AUC is measured on the rest.
    ``auc`` uses unit weights for generated events; with ``generated_weight``, ``auc_weighted`` comes from a
    second classifier trained and evaluated with those weights (the weighted generator is what is judged).
    ``truth_weight`` applies to both. Weights must be non-negative here: negative weights make the boosting's
    hessians negative and its leaf values unstable."""
    from sklearn.model_selection import train_test_split

    x_truth = _events(truth, "truth")
    x_gen = _events(generated, "generated")
    if x_truth.shape[1] != x_gen.shape[1]:
        raise ValueError(f"truth has {x_truth.shape[1]} features but generated has {x_gen.shape[1]}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be positive, got {max_iter}")
    n_truth, n_gen = len(x_truth), len(x_gen)
    if min(n_truth, n_gen) < 10:
        raise ValueError(f"need at least 10 events per sample, got {n_truth} truth and {n_gen} generated")
    w_truth = _weights(truth_weight, n_truth, "truth_weight")
    w_gen = _weights(generated_weight, n_gen, "generated_weight")
    for weight, name in ((w_truth, "truth_weight"), (w_gen, "generated_weight")):
        if weight is not None and (weight < 0).any():
            raise ValueError(f"{name} has negative entries; the classifier test needs non-negative weights")
        if weight is not None and weight.sum() <= 0:
            raise ValueError(f"{name} sums to zero")

    x = np.concatenate([x_truth, x_gen])
    y = np.concatenate([np.zeros(n_truth, dtype=np.int64), np.ones(n_gen, dtype=np.int64)])
    unit_gen = np.ones(n_gen)
    w_unit = np.concatenate([np.ones(n_truth) if w_truth is None else w_truth, unit_gen])
    w_gen_full = np.concatenate(
        [np.ones(n_truth) if w_truth is None else w_truth, unit_gen if w_gen is None else w_gen]
    )
    index = np.arange(len(y))
    train, test = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=y)
    for part, name in ((train, "training"), (test, "test")):
        if np.bincount(y[part], minlength=2).min() == 0:
            raise ValueError(f"the {name} split holds only one class; use more events or another test_fraction")
        if w_gen is not None and w_gen_full[part][y[part] == 1].sum() <= 0:
            raise ValueError(f"the generated events of the {name} split have zero total weight")
        if w_truth is not None and w_unit[part][y[part] == 0].sum() <= 0:
            raise ValueError(f"the truth events of the {name} split have zero total weight")

    auc = _fit_auc(x[train], y[train], w_unit[train], x[test], y[test], w_unit[test], seed, max_iter)
    auc_weighted = None
    if w_gen is not None:
        auc_weighted = _fit_auc(
            x[train], y[train], w_gen_full[train], x[test], y[test], w_gen_full[test], seed, max_iter
        )
    n_test_truth, n_test_gen = np.bincount(y[test], minlength=2)
    null_std = math.sqrt((n_test_truth + n_test_gen + 1) / (12.0 * n_test_truth * n_test_gen))
    return C2STResult(
        auc=auc,
        auc_weighted=auc_weighted,
        auc_null_std=null_std,
        n_truth=n_truth,
        n_generated=n_gen,
        n_train=len(train),
        n_test=len(test),
    )


# --------------------------------------------------------------------------------------------------------------
# weights


@dataclass(frozen=True)
class WeightSummary:
    """Shape of a weight distribution, computed after normalising the weights to mean 1.

    ``fraction_in_band``: share of events with w in [0.5, 2]; ``ess``: effective sample size (sum w)^2 / sum w^2
    and ``ess_fraction`` = ess / n; ``max_over_mean``: largest weight over the mean; ``fraction_nonpositive``:
    share of weights <= 0."""

    n: int
    fraction_in_band: float
    ess: float
    ess_fraction: float
    max_over_mean: float
    fraction_nonpositive: float

    def as_dict(self) -> dict[str, float]:
        return {
            "n": float(self.n),
            "fraction_in_band": float(self.fraction_in_band),
            "ess": float(self.ess),
            "ess_fraction": float(self.ess_fraction),
            "max_over_mean": float(self.max_over_mean),
            "fraction_nonpositive": float(self.fraction_nonpositive),
        }


def weight_summary(weight) -> WeightSummary:
    """Summarise per-event weights (1-D); see ``WeightSummary`` for the quantities. The mean must be positive."""
    w = _to_numpy(weight, "weight")
    if w.ndim != 1:
        raise ValueError(f"weight has shape {w.shape}; expected (n_events,)")
    mean = w.mean()
    if mean <= 0:
        raise ValueError(f"weights have mean {mean:.3g}; a positive mean is needed to normalise them")
    w = w / mean
    n = w.size
    ess = float(w.sum() ** 2 / np.square(w).sum())
    return WeightSummary(
        n=n,
        fraction_in_band=float(np.mean((w >= 0.5) & (w <= 2.0))),
        ess=ess,
        ess_fraction=ess / n,
        max_over_mean=float(w.max()),
        fraction_nonpositive=float(np.mean(w <= 0)),
    )


# --------------------------------------------------------------------------------------------------------------
# histograms


@dataclass(frozen=True)
class HistogramComparison:
    """Unit-area histograms of one observable for truth and generated events, and their ratio.

    ``truth`` and ``generated`` are densities (sum of density * width = 1 over the in-range bins; events outside
    the edges are dropped before normalising); ``*_error`` are sqrt(sum w^2) on the same scale (the error of the
    normalisation itself is neglected). ``*_count`` are raw event numbers per bin. ``ratio`` = generated / truth
    with the two errors added in quadrature (NaN where truth is empty). ``chi2`` sums
    (generated - truth)^2 / (truth_error^2 + generated_error^2) over bins with truth_count > 0; ``ndf`` is the
    number of those bins minus one, since the common normalisation removes one degree of freedom."""

    edges: np.ndarray
    truth: np.ndarray
    truth_error: np.ndarray
    generated: np.ndarray
    generated_error: np.ndarray
    truth_count: np.ndarray
    generated_count: np.ndarray
    ratio: np.ndarray
    ratio_error: np.ndarray
    chi2: float
    ndf: int

    @property
    def centers(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def max_relative_deviation(self, min_count: int = 1000) -> float:
        """Largest |ratio - 1| over bins whose raw truth count exceeds ``min_count``; NaN if no bin does."""
        mask = self.truth_count > min_count
        if not mask.any():
            return float("nan")
        return float(np.max(np.abs(self.ratio[mask] - 1.0)))

    def max_pull(self, min_count: int = 1000) -> float:
        """Largest |ratio - 1| / ratio_error over the same bins: above about 3, a deviation is not statistical."""
        mask = (self.truth_count > min_count) & (self.ratio_error > 0)
        if not mask.any():
            return float("nan")
        return float(np.max(np.abs(self.ratio[mask] - 1.0) / self.ratio_error[mask]))

    def max_ratio_error(self, min_count: int = 1000) -> float:
        """Largest statistical error of the ratio over the same bins: the resolution of the deviations."""
        mask = self.truth_count > min_count
        return float(np.max(self.ratio_error[mask])) if mask.any() else float("nan")

    def as_dict(self, min_count: int = 1000) -> dict[str, float]:
        return {
            "chi2": float(self.chi2),
            "ndf": float(self.ndf),
            "chi2_per_ndf": float(self.chi2 / self.ndf) if self.ndf > 0 else float("nan"),
            "max_relative_deviation": self.max_relative_deviation(min_count),
            "max_pull": self.max_pull(min_count),
            "max_ratio_error": self.max_ratio_error(min_count),
            "n_bins": float(self.edges.size - 1),
        }


def _edges(truth: np.ndarray, generated: np.ndarray, bins, range) -> np.ndarray:
    if isinstance(bins, int | np.integer) and bins < 1:
        raise ValueError(f"bins must be positive, got {bins}")
    try:
        # Common edges from both samples: np.histogram alone would pick a different range per sample.
        edges = np.histogram_bin_edges(np.concatenate([truth, generated]), bins=bins, range=range)
    except ValueError as error:
        raise ValueError(f"invalid bins or range: {error}") from None
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError("bin edges must be a strictly increasing 1-D array with at least two entries")
    return edges


def _unit_area(x: np.ndarray, weight: np.ndarray | None, edges: np.ndarray, name: str):
    count, _ = np.histogram(x, bins=edges)
    w = np.ones_like(x) if weight is None else weight
    total, _ = np.histogram(x, bins=edges, weights=w)
    squares, _ = np.histogram(x, bins=edges, weights=np.square(w))
    norm = total.sum()
    if not norm > 0:
        raise ValueError(f"{name} has no positive total weight inside the histogram range")
    width = np.diff(edges)
    return total / (norm * width), np.sqrt(squares) / (norm * width), count


def histogram_comparison(
    truth, generated, bins, generated_weight=None, truth_weight=None, range=None
) -> HistogramComparison:
    """Compare one observable (1-D arrays) of truth and generated events; see ``HistogramComparison``.

    ``bins`` and ``range`` follow ``np.histogram``; with a bin number and no range the edges span both samples."""
    x_truth = _observable(truth, "truth")
    x_gen = _observable(generated, "generated")
    w_truth = _weights(truth_weight, x_truth.size, "truth_weight")
    w_gen = _weights(generated_weight, x_gen.size, "generated_weight")
    edges = _edges(x_truth, x_gen, bins, range)
    p, p_err, p_count = _unit_area(x_truth, w_truth, edges, "truth")
    q, q_err, q_count = _unit_area(x_gen, w_gen, edges, "generated")

    filled = p_count > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(p != 0, q / p, np.nan)
        ratio_error = np.where(p != 0, np.sqrt(np.square(q_err / p) + np.square(q * p_err / np.square(p))), np.nan)
        variance = np.square(p_err) + np.square(q_err)
        terms = np.where(filled & (variance > 0), np.square(q - p) / variance, 0.0)
    return HistogramComparison(
        edges=edges,
        truth=p,
        truth_error=p_err,
        generated=q,
        generated_error=q_err,
        truth_count=p_count,
        generated_count=q_count,
        ratio=ratio,
        ratio_error=ratio_error,
        chi2=float(terms.sum()),
        ndf=int(np.count_nonzero(filled & (variance > 0))) - 1,
    )


def triangular_discriminator(truth, generated, bins, generated_weight=None, range=None, truth_weight=None) -> float:
    """Triangular discriminator Delta(p, q) = 1/2 sum_i (p_i - q_i)^2 / (p_i + q_i) of one observable.

    p_i and q_i are bin fractions (weighted sums normalised to one over the in-range bins), so Delta lies in
    [0, 1]: 0 for identical histograms, 1 for disjoint ones; it is symmetric in p and q. Bins where both are
    empty are skipped. Quoted as is, not in units of 10^-3 as some plots do."""
    x_truth = _observable(truth, "truth")
    x_gen = _observable(generated, "generated")
    w_truth = _weights(truth_weight, x_truth.size, "truth_weight")
    w_gen = _weights(generated_weight, x_gen.size, "generated_weight")
    edges = _edges(x_truth, x_gen, bins, range)
    p, _, _ = _unit_area(x_truth, w_truth, edges, "truth")
    q, _, _ = _unit_area(x_gen, w_gen, edges, "generated")
    width = np.diff(edges)
    p, q = p * width, q * width
    total = p + q
    used = total != 0
    return float(0.5 * np.sum(np.square(p[used] - q[used]) / total[used]))


def ratio_panel(ax_top, ax_bottom, comparison: HistogramComparison, label: str) -> None:
    """Draw truth and generated unit-area histograms on ``ax_top`` and generated / truth on ``ax_bottom``.

    The axes come from the caller, who also picks the matplotlib backend (Agg for files)."""
    edges, centers = comparison.edges, comparison.centers
    ax_top.stairs(comparison.truth, edges, label="truth", color="black")
    ax_top.stairs(comparison.generated, edges, label="generated", color="tab:blue")
    ax_top.errorbar(centers, comparison.truth, yerr=comparison.truth_error, fmt="none", ecolor="black", lw=0.8)
    ax_top.errorbar(
        centers, comparison.generated, yerr=comparison.generated_error, fmt="none", ecolor="tab:blue", lw=0.8
    )
    ax_top.set_ylabel("normalised density")
    ax_top.legend(frameon=False)
    ax_bottom.errorbar(centers, comparison.ratio, yerr=comparison.ratio_error, fmt="o", ms=2, color="tab:blue")
    ax_bottom.axhline(1.0, color="black", lw=0.8)
    ax_bottom.set_ylabel("gen / truth")
    ax_bottom.set_xlabel(label)
    finite = np.isfinite(comparison.ratio)
    if finite.any():
        spread = np.max(np.abs(comparison.ratio[finite] - 1.0) + np.nan_to_num(comparison.ratio_error[finite]))
        # Bounded so that a few empty-tail bins with huge ratios do not flatten the panel.
        half = float(min(max(spread * 1.1, 0.05), 1.0))
        ax_bottom.set_ylim(1.0 - half, 1.0 + half)
    ax_bottom.set_xlim(edges[0], edges[-1])


# --------------------------------------------------------------------------------------------------------------
# timing


def _synchronize() -> None:
    # CUDA kernels run asynchronously; without a barrier the clock would stop before the events exist.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def time_per_event(sample_fn: Callable[[int], object], n: int, repeats: int = 3) -> float:
    """Seconds per event for ``sample_fn(n)``, the best of ``repeats`` calls (the minimum is least disturbed by
    other load and by one-off warm-up costs)."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    best = math.inf
    for _ in range(repeats):
        _synchronize()
        start = time.perf_counter()
        sample_fn(n)
        _synchronize()
        best = min(best, time.perf_counter() - start)
    return best / n
