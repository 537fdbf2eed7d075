"""Mixture density network: p(theta | x) as a mixture of K full-covariance Gaussians (Bishop 1994).

The talk's point of comparison for VAIM: exact and fast, but a finite Gaussian mixture describes
strongly non-Gaussian solution sets (a ring, a sphere) only roughly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.inference.embeddings import mlp
from hadrinv.inference.gaussian import scale_tril


class MDN(AmortizedEstimator):
    has_log_prob = True

    def __init__(
        self, theta_dim: int, x_dim: int, *, components: int = 10, hidden: int = 128, hidden_layers: int = 3, **common
    ):
        super().__init__(theta_dim, x_dim, **common)
        self._remember(components=components, hidden=hidden, hidden_layers=hidden_layers)
        d, k = theta_dim, components
        self.components = k
        self.n_tril = d * (d + 1) // 2
        self.trunk = mlp([self.context_dim] + [hidden] * hidden_layers, final_activation=True)
        self.head = nn.Linear(hidden, k * (1 + d + self.n_tril))

    def mixture(self, context: torch.Tensor) -> MixtureSameFamily:
        d, k = self.theta_dim, self.components
        out = self.head(self.trunk(context)).reshape(*context.shape[:-1], k, 1 + d + self.n_tril)
        logits, means, raw = out[..., 0], out[..., 1 : 1 + d], out[..., 1 + d :]
        return MixtureSameFamily(Categorical(logits=logits), MultivariateNormal(means, scale_tril=scale_tril(raw, d)))

    def training_loss(self, u, context, x):
        return -self.mixture(context).log_prob(u)

    def _sample_standardized(self, context, n):
        return self.mixture(context).sample((n,)).transpose(0, 1)

    def _log_prob_standardized(self, u, context):
        return self.mixture(context).log_prob(u)
