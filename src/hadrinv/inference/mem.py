"""The matrix-element method with learned detector response (Butter, Heimel, Martini, Peitzsch, Plehn, Winterhalder,
arXiv:2210.00019): the likelihood of a reconstructed event under a hard-process model is an integral over the hard
events that could have produced it, computed by importance sampling with a conditional flow.

For a hard-process density f(x_hard | alpha) (unnormalised), a detector with efficiency eps(x_hard) and resolution
t(x_reco | x_hard, reconstructed), the density of a reconstructed event is

    p(x_reco | alpha) = integral f(x_hard | alpha) eps(x_hard) t(x_reco | x_hard) dx_hard / N(alpha),
    N(alpha) = integral f(x_hard | alpha) eps(x_hard) dx_hard,

and with S hard events x_s drawn from q(x_hard | x_reco) the numerator is (1/S) sum_s f(x_s | alpha) w_s with
w_s = eps(x_s) t(x_reco | x_s) / q(x_s | x_reco). Both densities come from the simulation's paired events, without
any parametrisation of the detector:

- q, the importance distribution: the unfolding cINN, a conditional flow of hard given reco values trained on the
  reconstructed MC events (`hadrinv.inference.flow.ConditionalFlow`, logit-mapped onto the hard variables' box).
  Where the MC's hard events follow a density p_MC, q is close to p_MC eps t / p_MC(x_reco), so that w_s f_s / p_MC
  is nearly constant over an event's samples and few samples suffice;
- t, the transfer function: a second conditional flow, of reco given hard values, on the same events;
- eps: boosted trees between reconstructed and lost MC events (`unfolding.cinn.fit_efficiency`).

The samples and weights do not depend on alpha: a fit or a scan of alpha re-evaluates only f on the fixed samples,
so the estimate is a smooth function of alpha that a minimiser can use. N(alpha) is the caller's (an MC average of
f over accepted events). The effective fraction of each event's samples, (sum w f)^2 / (S sum (w f)^2), says how
well q covers the integrand; it falls where the flows disagree with each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from hadrinv.inference.flow import ConditionalFlow, FlowSettings
from hadrinv.inference.unfolding.cinn import Efficiency, fit_efficiency


class MEMSettings(FlowSettings):
    """The unfolding and the transfer flow alike (`FlowSettings`); the seed of the second is ``seed + 1``."""


@dataclass
class ImportanceSamples:
    """For M reconstructed events: S hard events each (M, S, G) and their log weights (M, S),
    log eps + log t - log q (+ the caller's alpha-free log measure); -inf where a sample carries no weight."""

    hard: np.ndarray
    log_weight: np.ndarray

    def log_likelihood(self, log_density: np.ndarray) -> np.ndarray:
        """log of (1/S) sum_s w_s f(x_s) per event, (M,), for log f on the samples (M, S)."""
        terms = self.log_weight + np.asarray(log_density, dtype=np.float64)
        top = np.max(terms, axis=1, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(np.mean(np.exp(terms - top), axis=1)) + top[:, 0]

    def ess_fraction(self, log_density: np.ndarray | None = None) -> np.ndarray:
        """(sum v)^2 / (S sum v^2) per event, v = w f (w alone without log f): 1 when every sample counts alike."""
        terms = self.log_weight if log_density is None else self.log_weight + log_density
        top = np.max(terms, axis=1, keepdims=True)
        v = np.exp(terms - np.where(np.isfinite(top), top, 0.0))
        return v.sum(1) ** 2 / np.maximum(v.shape[1] * (v**2).sum(1), 1e-300)


@dataclass
class MatrixElementMethod:
    """q(hard | reco), t(reco | hard, reconstructed) and eps(hard) learned from paired MC; see the module docstring."""

    unfolding: ConditionalFlow
    transfer: ConditionalFlow
    efficiency: Efficiency | None  # None: every MC event was reconstructed
    history: dict = field(default_factory=dict)

    def importance_samples(
        self,
        reco: np.ndarray,
        samples: int,
        log_measure: Callable[[np.ndarray], np.ndarray] | None = None,
        chunk: int = 256,
    ) -> ImportanceSamples:
        """``samples`` hard events per reconstructed event (M, R) and their weights. ``log_measure(hard (K, G)) ->
        (K,)``: an alpha-free factor of the hard density (a phase-space density), -inf outside its support."""
        reco = np.asarray(reco, dtype=np.float64)
        if reco.ndim != 2 or reco.shape[1] != self.transfer.theta_dim or not np.isfinite(reco).all():
            raise ValueError(f"reco must be finite (M, {self.transfer.theta_dim}), got shape {reco.shape}")
        hard, log_w = [], []
        with torch.no_grad():
            for start in range(0, len(reco), chunk):
                x = torch.as_tensor(reco[start : start + chunk], dtype=torch.float32)
                drawn = self.unfolding.sample(x, samples)  # (m, S, G)
                log_q = self.unfolding.log_prob_per_observation(drawn, x)
                m, s, g = drawn.shape
                flat = drawn.reshape(m * s, g)
                repeated = x[:, None, :].expand(m, s, x.shape[1]).reshape(m * s, -1)
                log_t = self.transfer.log_prob(repeated, flat).reshape(m, s)
                w = (log_t - log_q).double().numpy()
                h = drawn.double().numpy()
                if self.efficiency is not None:
                    eps = self.efficiency(h.reshape(m * s, g)).reshape(m, s)
                    w = w + np.log(np.clip(eps, 1e-300, None))
                if log_measure is not None:
                    w = w + np.asarray(log_measure(h.reshape(m * s, g)), dtype=np.float64).reshape(m, s)
                hard.append(h)
                log_w.append(np.where(np.isnan(w), -np.inf, w))
        return ImportanceSamples(np.concatenate(hard), np.concatenate(log_w))


def fit_mem(
    hard: np.ndarray,
    reco: np.ndarray,
    bounds: tuple[list[float], list[float]] | None = None,
    settings: MEMSettings | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> MatrixElementMethod:
    """Train q(hard | reco), t(reco | hard) and eps(hard) on paired MC: hard (N, G), reco (N, R) with NaN rows for
    events that were not reconstructed. ``bounds`` = (low, high) of the hard variables (q's samples stay inside)."""
    s = settings or MEMSettings()
    hard = np.asarray(hard, dtype=np.float64)
    reco = np.asarray(reco, dtype=np.float64)
    if hard.ndim != 2 or reco.ndim != 2 or len(hard) != len(reco):
        raise ValueError(f"hard and reco must be paired 2-D arrays, got {hard.shape} and {reco.shape}")
    if not np.isfinite(hard).all():
        raise ValueError("hard values must be finite")
    if bounds is not None:
        low, high = (np.asarray(b, dtype=np.float64) for b in bounds)
        outside = ((hard <= low) | (hard >= high)).any(1)
        if outside.any():
            first = int(outside.argmax())
            raise ValueError(f"{int(outside.sum())} hard events on or outside the bounds (first: row {first})")
    kept = np.isfinite(reco).all(1)
    if kept.sum() < 4 * s.batch_size:
        raise ValueError(f"{int(kept.sum())} reconstructed MC events; need at least {4 * s.batch_size}")
    history = {}
    unfolding, history["unfolding"] = s.train(hard[kept], reco[kept], s.seed, bounds)
    log(f"q(hard | reco): {history['unfolding']['epochs']} epochs, {history['unfolding']['seconds']:.0f} s")
    transfer, history["transfer"] = s.train(reco[kept], hard[kept], s.seed + 1)
    log(f"t(reco | hard): {history['transfer']['epochs']} epochs, {history['transfer']['seconds']:.0f} s")
    efficiency = None
    if not kept.all():
        efficiency = fit_efficiency(hard, kept, np.ones(len(hard)), s.seed)
    return MatrixElementMethod(unfolding, transfer, efficiency, history)


__all__ = ["ImportanceSamples", "MEMSettings", "MatrixElementMethod", "fit_mem"]
