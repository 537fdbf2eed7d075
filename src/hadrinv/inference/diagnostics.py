"""Posterior diagnostics for any estimator or set of samples.

* ``c2st``: classifier two-sample test accuracy, as sbi/sbibm compute it (0.5 = indistinguishable);
* ``mmd``: unbiased squared maximum mean discrepancy, Gaussian kernel, median-heuristic bandwidth;
* ``marginal_coverage``: how often the truth falls inside the central credible interval of each
  marginal, from posterior samples of many (truth, observation) cases;
* ``hpd_coverage``: expected coverage of highest-posterior-density regions for estimators with a
  density (sbi's expected coverage test);
* ``ellipsoid_coverage``: joint expected coverage from samples alone (credible ellipsoids), for
  methods without a density (diffusion, flow matching, VAIM).

The coverage functions return a ``CoverageResult``: a dict nominal level -> empirical coverage, with
``per_parameter`` (marginal coverage) or ``ranks`` (HPD) attached and ``as_table()`` for reports.
For a calibrated posterior the empirical coverage equals the nominal level up to binomial noise,
sqrt(level (1 - level) / cases); below nominal means over-confident, above means under-confident.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import torch

__all__ = ["CoverageResult", "c2st", "ellipsoid_coverage", "hpd_coverage", "marginal_coverage", "mmd"]


def _as_2d_numpy(samples, name: str) -> np.ndarray:
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().double().numpy()
    array = np.asarray(samples, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} has shape {array.shape}; expected (n, d)")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds non-finite values")
    return array


def c2st(samples_p, samples_q, seed: int = 0, folds: int = 5) -> float:
    """Classifier two-sample test: cross-validated accuracy of an MLP telling samples_p from samples_q.

    As sbi's ``c2st``: both sets are z-scored with the mean and (unbiased) standard deviation of
    samples_p (the reference), the classifier is sklearn's MLPClassifier(relu, two hidden layers of
    10 * dim units, adam, max_iter=1000, early_stopping=True, n_iter_no_change=50), and the accuracy is
    the mean over a shuffled StratifiedKFold. 0.5 means indistinguishable, 1.0 fully separable.
    (sbibm's original used KFold and max_iter=10000 without early stopping; the two were not compared here.)
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    p, q = _as_2d_numpy(samples_p, "samples_p"), _as_2d_numpy(samples_q, "samples_q")
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"samples_p and samples_q have dimensions {p.shape[1]} and {q.shape[1]}")
    if min(len(p), len(q)) < folds:
        raise ValueError(f"need at least {folds} samples in each set for {folds}-fold cross-validation")
    mean, std = p.mean(0), p.std(0, ddof=1)
    std = np.where(std > 0, std, 1.0)
    p, q = (p - mean) / std, (q - mean) / std
    dim = p.shape[1]
    classifier = MLPClassifier(
        activation="relu",
        hidden_layer_sizes=(10 * dim, 10 * dim),
        max_iter=1000,
        solver="adam",
        early_stopping=True,
        n_iter_no_change=50,
        random_state=seed,
    )
    data = np.concatenate([p, q])
    target = np.concatenate([np.zeros(len(p)), np.ones(len(q))])
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(classifier, data, target, cv=splits, scoring="accuracy")
    return float(np.mean(scores))


def _kernel_sum(a: torch.Tensor, b: torch.Tensor, gamma: float, exclude_diagonal: bool, block: int = 2048) -> float:
    """sum_ij exp(-gamma |a_i - b_j|^2), blockwise so memory stays O(block^2); with exclude_diagonal
    (a is b) the i = j terms are left out."""
    total = 0.0
    for i in range(0, len(a), block):
        ai = a[i : i + block]
        for j in range(0, len(b), block):
            total += torch.exp(-gamma * torch.cdist(ai, b[j : j + block]).pow(2)).sum().item()
    if exclude_diagonal:
        total -= len(a)  # exp(0) on the diagonal
    return total


def mmd(samples_p, samples_q, bandwidth: float | None = None) -> float:
    """Unbiased estimate of MMD^2 between two sample sets with the Gaussian kernel
    k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2)); by default the bandwidth is the median pairwise
    distance of the pooled samples (median heuristic, from up to 2000 points). Fluctuates around 0
    (can be slightly negative) when both sets come from the same distribution."""
    p = torch.as_tensor(_as_2d_numpy(samples_p, "samples_p"))
    q = torch.as_tensor(_as_2d_numpy(samples_q, "samples_q"))
    if p.shape[1] != q.shape[1]:
        raise ValueError(f"samples_p and samples_q have dimensions {p.shape[1]} and {q.shape[1]}")
    m, n = len(p), len(q)
    if m < 2 or n < 2:
        raise ValueError("mmd needs at least two samples in each set")
    if bandwidth is None:
        pooled = torch.cat([p, q])
        if len(pooled) > 2000:
            pooled = pooled[torch.randperm(len(pooled), generator=torch.Generator().manual_seed(0))[:2000]]
        distances = torch.pdist(pooled)
        bandwidth = float(distances.median()) if distances.numel() else 1.0
        bandwidth = bandwidth if bandwidth > 0 else 1.0
    gamma = 1.0 / (2.0 * float(bandwidth) ** 2)
    k_pp = _kernel_sum(p, p, gamma, True) / (m * (m - 1))
    k_qq = _kernel_sum(q, q, gamma, True) / (n * (n - 1))
    k_pq = _kernel_sum(p, q, gamma, False) / (m * n)
    return float(k_pp + k_qq - 2 * k_pq)


class CoverageResult(dict):
    """dict nominal level -> empirical coverage (float), plus

    * ``per_parameter``: level -> list of per-parameter coverages (marginal coverage only);
    * ``inside``: level -> (cases, parameters) bool, the truth inside its interval (marginal coverage only);
    * ``ranks``: per case, the statistic compared with the level (HPD: fraction of posterior samples
      denser than the truth, uniform on [0, 1] for a calibrated posterior);
    * ``n_cases``; ``standard_error(level)``: the binomial noise of an exact posterior;
    * ``as_table()``: [(nominal, empirical, standard error), ...].
    """

    def __init__(
        self,
        coverage: dict[float, float],
        n_cases: int,
        per_parameter: dict[float, list[float]] | None = None,
        ranks: torch.Tensor | None = None,
        n_trials: int | None = None,
        inside: dict[float, torch.Tensor] | None = None,
    ):
        super().__init__(coverage)
        self.inside = inside
        self.n_cases = n_cases
        self.n_trials = n_trials or n_cases
        self.per_parameter = per_parameter
        self.ranks = ranks

    def standard_error(self, level: float) -> float:
        return float(np.sqrt(level * (1 - level) / self.n_trials))

    def as_table(self) -> list[tuple[float, float, float]]:
        return [(level, value, self.standard_error(level)) for level, value in self.items()]

    def __repr__(self) -> str:
        return (
            "CoverageResult("
            + ", ".join(f"{level:g}: {value:.3f}" for level, value in self.items())
            + f"; {self.n_cases} cases)"
        )


def _check_levels(levels: Iterable[float]) -> list[float]:
    levels = [float(level) for level in levels]
    if not levels or any(not 0 < level < 1 for level in levels):
        raise ValueError(f"levels must lie strictly between 0 and 1, got {levels}")
    return levels


def _as_cases(samples, truth) -> tuple[torch.Tensor, torch.Tensor]:
    """samples (m, n, d) and truth (m, d) in float64; one parameter may come as (m, n) and (m,)."""
    samples = torch.as_tensor(samples, dtype=torch.float64)
    truth = torch.as_tensor(truth, dtype=torch.float64)
    if samples.dim() == 2:
        samples = samples.unsqueeze(-1)
    if truth.dim() == 1:
        truth = truth.unsqueeze(-1)
    if samples.dim() != 3 or truth.shape != (samples.shape[0], samples.shape[2]):
        raise ValueError(
            f"samples {tuple(samples.shape)} and truth {tuple(truth.shape)}: expected (m, n, d) and (m, d)"
        )
    return samples, truth


def marginal_coverage(
    samples: torch.Tensor, truth: torch.Tensor, levels: Sequence[float] = (0.68, 0.95)
) -> CoverageResult:
    """Coverage of central credible intervals of each marginal.

    samples (m, n, d): n posterior samples for each of m cases; truth (m, d): the parameters that
    generated each case's observation. The truth lies inside the central interval at level alpha when
    its rank among the samples (fraction of samples below it, ties counted half) is within
    [(1 - alpha) / 2, (1 + alpha) / 2], i.e. between the corresponding sample quantiles. Returns the
    fraction over all (case, parameter) pairs for each level, and per-parameter fractions in
    ``per_parameter``; ``ranks`` holds the (m, d) ranks (uniform for a calibrated posterior).
    """
    levels = _check_levels(levels)
    samples, truth = _as_cases(samples, truth)
    t = truth.unsqueeze(1)
    ranks = (samples < t).double().mean(1) + 0.5 * (samples == t).double().mean(1)  # (m, d)
    coverage, per_parameter, inside = {}, {}, {}
    for level in levels:
        inside[level] = (ranks >= (1 - level) / 2) & (ranks <= (1 + level) / 2)
        coverage[level] = float(inside[level].double().mean())
        per_parameter[level] = inside[level].double().mean(0).tolist()
    return CoverageResult(coverage, samples.shape[0], per_parameter, ranks, n_trials=ranks.numel(), inside=inside)


@torch.no_grad()
def hpd_coverage(
    estimator,
    theta: torch.Tensor,
    x: torch.Tensor,
    levels: Sequence[float] = (0.68, 0.95),
    n_samples: int = 1000,
    cases_per_batch: int | None = None,
) -> CoverageResult:
    """Expected coverage of highest-posterior-density regions (sbi's expected coverage).

    For each case i, draw n_samples from the estimator's posterior for x_i and evaluate its log density
    at those samples and at the truth theta_i; the truth lies in the HPD region of level alpha iff the
    fraction of samples denser than the truth is < alpha. ``estimator`` needs ``sample(x_batch, n)`` ->
    (m, n, d) and ``log_prob(theta (k, d), x (k, ...))`` -> (k,) (any ``AmortizedEstimator`` with
    ``has_log_prob``). theta (m, d), x (m, ...). Sampling and density evaluation are batched over
    ``cases_per_batch`` cases (default: about 100k density evaluations per batch).
    """
    if not getattr(estimator, "has_log_prob", True):
        raise ValueError(f"{type(estimator).__name__} has no tractable density; use marginal_coverage on its samples")
    levels = _check_levels(levels)
    theta = torch.as_tensor(theta, dtype=torch.float32)
    x = torch.as_tensor(x, dtype=torch.float32)
    if theta.dim() != 2 or x.shape[0] != theta.shape[0]:
        raise ValueError(f"theta {tuple(theta.shape)} and x {tuple(x.shape)}: expected (m, d) and (m, ...)")
    m, n = theta.shape[0], int(n_samples)
    cases_per_batch = cases_per_batch or max(1, 100_000 // n)
    fractions = []
    for start in range(0, m, cases_per_batch):
        xb, tb = x[start : start + cases_per_batch], theta[start : start + cases_per_batch]
        b = xb.shape[0]
        samples = torch.as_tensor(estimator.sample(xb, n)).reshape(b, n, -1)  # (b, n, d)
        if hasattr(estimator, "log_prob_per_observation"):  # embeds each observation once
            lp_samples = torch.as_tensor(estimator.log_prob_per_observation(samples, xb)).reshape(b, n)
        else:
            lp_samples = torch.as_tensor(
                estimator.log_prob(samples.reshape(b * n, -1), xb.repeat_interleave(n, dim=0))
            ).reshape(b, n)
        lp_truth = torch.as_tensor(estimator.log_prob(tb, xb)).reshape(b)
        fractions.append((lp_samples.cpu() > lp_truth.cpu().unsqueeze(1)).double().mean(1))
    ranks = torch.cat(fractions)
    coverage = {level: float((ranks < level).double().mean()) for level in levels}
    return CoverageResult(coverage, m, ranks=ranks)


def ellipsoid_coverage(
    samples: torch.Tensor, truth: torch.Tensor, levels: Sequence[float] = (0.68, 0.95)
) -> CoverageResult:
    """Joint expected coverage from posterior samples alone, for methods without a density.

    Each case's credible region of level alpha is the ellipsoid, centred on the posterior mean and
    shaped by the posterior covariance, that holds a fraction alpha of the posterior samples. The
    region depends on the posterior only, so for a calibrated posterior the truth falls inside it with
    probability alpha, Gaussian posterior or not; a posterior with the right marginals but wrong
    shape, e.g. too narrow along a combination of parameters, fails it (marginal coverage does not see
    that). Mean and covariance come from the first half of the samples, and the truth is
    ranked among the second half, so that truth and ranked samples are exchangeable (the same samples
    in both would make them look closer than the truth). samples (m, n, d) with n >= 2 (d + 1), truth
    (m, d); ``ranks`` holds the fraction of samples closer than the truth (uniform when calibrated).
    """
    levels = _check_levels(levels)
    samples, truth = _as_cases(samples, truth)
    m, n, d = samples.shape
    if n < 2 * (d + 1):
        raise ValueError(f"need at least {2 * (d + 1)} samples per case for a {d}-parameter covariance, got {n}")
    shape_from, ranked = samples[:, : n // 2], samples[:, n // 2 :]
    mean = shape_from.mean(1, keepdim=True)
    centred = shape_from - mean
    cov = centred.transpose(1, 2) @ centred / (shape_from.shape[1] - 1)
    # a parameter the samples do not move (a posterior on a bound) must not make the covariance singular
    cov = cov + 1e-12 * torch.diag_embed(cov.diagonal(dim1=1, dim2=2).clamp(min=1e-300))
    chol = torch.linalg.cholesky(cov)

    def distance(points: torch.Tensor) -> torch.Tensor:  # (m, k, d) -> (m, k) squared Mahalanobis
        z = torch.linalg.solve_triangular(chol, (points - mean).transpose(1, 2), upper=False)
        return z.pow(2).sum(1)

    ranks = (distance(ranked) < distance(truth.unsqueeze(1))).double().mean(1)
    coverage = {level: float((ranks < level).double().mean()) for level in levels}
    return CoverageResult(coverage, m, ranks=ranks)


def replica_band_factor(members: int, level: float = 0.6826894921370859) -> float:
    """Factor on the members' standard deviation that makes a `level` band for the truth around their mean.

    Each member is fitted to its own replica of the data (data + noise of the errors), so a member's
    deviation from the truth has the data's noise and its replica's, while the spread across members
    estimates the replica noise alone. The mean of n members then misses the truth with standard deviation
    sigma sqrt(1 + 1/n), and sigma is estimated from n - 1 degrees of freedom: the band is the Student t
    prediction interval, t_{n-1}((1 + level) / 2) sqrt(1 + 1/n) times the sample standard deviation
    (1.33 for 4 members, 1.11 for 10, 1.01 for 100).
    """
    from scipy import stats

    if members < 2:
        raise ValueError(f"a replica band needs at least 2 members, not {members}")
    return float(stats.t.ppf(0.5 + level / 2, members - 1) * math.sqrt(1.0 + 1.0 / members))
