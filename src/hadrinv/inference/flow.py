"""Conditional normalizing flow for neural posterior estimation (NPE), built on zuko.

The flow is a neural spline flow (zuko.flows.NSF) whose context is the embedded observation; it is
trained by maximum likelihood, -log q(theta | x), which for enough simulations converges to the true
posterior. Defaults follow sbi's NPE (5 spline transforms, 2 hidden layers of 64 units, 8 bins);
zuko's splines act on [-5, 5], which the base class's standardisation respects.

Box support (``box_support=True``, needs ``bounds``): instead of the logit map to the real line and a
Gaussian base, the parameters are mapped linearly onto zuko's spline domain [-5, 5]^d and the base is
uniform on that box. Every spline maps the box onto itself, so the flow is a bijection of the prior box:
samples never leave it and the density stays finite up to its faces. Why: with the logit map, a
posterior that is flat up to a face of the box (a parameter the data do not constrain) needs exactly
logistic tails in the unbounded space; a Gaussian base and splines that end at +-5 do not give them, and
the density near the faces comes out too low (measured on the 10-D sum-of-squares toy: truths within
0.02 of a face had 27 % joint HPD coverage at 68 %).

Whitening (``whiten=True``; not with box support): the first transform is a conditional full-covariance
affine map, u = m(x) + L(x) z, from a small head on the context, and the spline flow models z. The whole
map is one normalizing flow, and its density is exact. In training, the Gaussian N(m, L L^T) is fitted by
its own likelihood and the splines by the likelihood of z with m and L held fixed (one pass, one loss: the
mean of the two), so the affine map is the best Gaussian and the splines learn what is left; the
validation loss, which early stopping watches, is the flow's exact negative log-likelihood.
Why: zuko's spline flow has no affine layer, and its splines have a fixed number of bins on [-5, 5]; a
posterior that is a narrow, rotated ridge in the standardised parameters must be carved out by the
splines (2-D Gaussian ridge 24 times narrower across than along: unwhitened, the samples came out 3.2 times
too wide across it, whitened 0.9 times; benchmarks/whitened_flow_ridge.py). Off by default: on dis-pdf's 12-parameter
point-cloud posterior it made the density too narrow (docs/results.md, "dis-pdf").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import zuko

from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.inference.gaussian import gaussian_head, split_gaussian, unwhiten, whiten

_SPLINE_BOUND = 5.0  # zuko's MonotonicRQSTransform default domain [-5, 5]
_INSIDE = 1.0 - 1e-6  # keep the faces strictly inside the base's support


class ConditionalFlow(AmortizedEstimator):
    has_log_prob = True

    def __init__(
        self,
        theta_dim: int,
        x_dim: int,
        *,
        transforms: int = 5,
        hidden: int = 64,
        hidden_layers: int = 2,
        bins: int = 8,
        box_support: bool = False,
        whiten: bool = False,
        **common,
    ):
        super().__init__(theta_dim, x_dim, **common)
        if box_support and self.theta_low is None:
            raise ValueError("box_support needs the prior's bounds (bounds=(low, high))")
        if box_support and whiten:
            raise ValueError("whiten maps the parameters off the box that box_support keeps them on: choose one")
        self._remember(
            transforms=transforms,
            hidden=hidden,
            hidden_layers=hidden_layers,
            bins=bins,
            box_support=box_support,
            whiten=whiten,
        )
        self.box_support = bool(box_support)
        self.whiten = bool(whiten)
        # context -> (mean, Cholesky factor), starting at z = u / softplus(0)
        self.gaussian = gaussian_head(self.context_dim, hidden, theta_dim, start_at_zero=True) if self.whiten else None
        self.flow = zuko.flows.NSF(
            theta_dim,
            context=self.context_dim,
            transforms=transforms,
            hidden_features=[hidden] * hidden_layers,
            bins=bins,
            # with one parameter an autoregressive transform has nothing to condition on but the context
            passes=None if theta_dim > 1 else 1,
        )
        if self.box_support:
            edge = torch.full((theta_dim,), _SPLINE_BOUND)
            self.flow.base = zuko.flows.UnconditionalDistribution(
                zuko.distributions.BoxUniform, -edge, edge, buffer=True
            )

    # ---- the box map replaces the base class's logit + standardisation ----
    def standardize_theta(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.box_support:
            return super().standardize_theta(theta)
        width = self.theta_high - self.theta_low
        scale = 2.0 * _SPLINE_BOUND * _INSIDE / width
        u = (theta - self.theta_low) * scale - _SPLINE_BOUND * _INSIDE
        return u, torch.log(scale).sum().expand(theta.shape[:-1])

    def unstandardize_theta(self, u: torch.Tensor) -> torch.Tensor:
        if not self.box_support:
            return super().unstandardize_theta(u)
        width = self.theta_high - self.theta_low
        theta = self.theta_low + (u + _SPLINE_BOUND * _INSIDE) * width / (2.0 * _SPLINE_BOUND * _INSIDE)
        return torch.minimum(torch.maximum(theta, self.theta_low), self.theta_high)

    def whitening(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (rows, d) and lower-triangular Cholesky factor (rows, d, d) of the first, affine transform."""
        return split_gaussian(self.gaussian(context), self.theta_dim)

    def training_loss(self, u, context, x):
        if not (self.whiten and self.training):
            return -self._log_prob_standardized(u, context)  # validation: the flow's exact likelihood
        # The Gaussian learns from its own likelihood and the splines from theirs given the Gaussian (detached).
        # Through the combined likelihood alone the affine map hardly moved from its start (narrow ridge test:
        # Cholesky diagonal 0.61 / 0.66 where 0.24 / 0.02 are exact) and the splines did all the work, with tails
        # too heavy.
        mean, tril = self.whitening(context)
        gaussian = torch.distributions.MultivariateNormal(mean, scale_tril=tril).log_prob(u)
        z = whiten(u, mean.detach(), tril.detach())
        return -(gaussian + self.flow(context).log_prob(z)) / 2

    def _sample_standardized(self, context, n):
        z = self.flow(context).sample((n,)).transpose(0, 1)  # (batch, n, d)
        if not self.whiten:
            return z
        mean, tril = self.whitening(context)
        return unwhiten(z, mean, tril)

    def _log_prob_standardized(self, u, context):
        if not self.whiten:
            return self.flow(context).log_prob(u)
        mean, tril = self.whitening(context)
        z = whiten(u, mean, tril)
        return self.flow(context).log_prob(z) - torch.log(torch.diagonal(tril, dim1=-2, dim2=-1)).sum(-1)


@dataclass(frozen=True)
class FlowSettings:
    """A whitened spline flow (``transforms`` layers of ``bins`` bins, conditioners of ``hidden_layers`` x ``hidden``)
    trained by Adam (``learning_rate``, ``batch_size``, at most ``max_epochs``, early stopping after ``patience``
    epochs without a better loss on a 10 % validation split): what the estimators built of conditional flows share."""

    transforms: int = 6
    hidden: int = 64
    hidden_layers: int = 2
    bins: int = 8
    whiten: bool = True
    max_epochs: int = 200
    batch_size: int = 512
    learning_rate: float = 1e-3
    patience: int = 15
    seed: int = 0

    def __post_init__(self):
        for name in ("transforms", "hidden", "hidden_layers", "bins", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")

    def train(self, theta, x, seed: int, bounds=None) -> tuple[ConditionalFlow, dict]:
        """A flow of theta (n, d) given x (n, k), seeded; its training history as a dict."""
        torch.manual_seed(seed)
        flow = ConditionalFlow(
            theta.shape[1],
            x.shape[1],
            transforms=self.transforms,
            hidden=self.hidden,
            hidden_layers=self.hidden_layers,
            bins=self.bins,
            whiten=self.whiten,
            bounds=bounds,
        )
        history = flow.fit(
            torch.as_tensor(theta, dtype=torch.float32),
            torch.as_tensor(x, dtype=torch.float32),
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            patience=self.patience,
            seed=seed,
        )
        return flow, history.as_dict()
