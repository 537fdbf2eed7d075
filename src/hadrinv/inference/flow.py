"""Conditional normalizing flow for neural posterior estimation (NPE), built on zuko.

The flow is a neural spline flow (zuko.flows.NSF) whose context is the embedded observation; it is
trained by maximum likelihood, -log q(theta | x), which for enough simulations converges to the true
posterior. Defaults follow sbi's NPE (5 spline transforms, 2 hidden layers of 64 units, 8 bins);
zuko's splines act on [-5, 5], which the base class's standardisation respects.
"""

from __future__ import annotations

import zuko

from hadrinv.inference.amortized import AmortizedEstimator


class ConditionalFlow(AmortizedEstimator):
    has_log_prob = True

    def __init__(self, theta_dim: int, x_dim: int, *, transforms: int = 5, hidden: int = 64, hidden_layers: int = 2, bins: int = 8, **common):
        super().__init__(theta_dim, x_dim, **common)
        self._remember(transforms=transforms, hidden=hidden, hidden_layers=hidden_layers, bins=bins)
        self.flow = zuko.flows.NSF(
            theta_dim, context=self.context_dim, transforms=transforms, hidden_features=[hidden] * hidden_layers, bins=bins,
            # with one parameter an autoregressive transform has nothing to condition on but the context
            passes=None if theta_dim > 1 else 1,
        )

    def training_loss(self, u, context, x):
        return -self.flow(context).log_prob(u)

    def _sample_standardized(self, context, n):
        return self.flow(context).sample((n,)).transpose(0, 1)

    def _log_prob_standardized(self, u, context):
        return self.flow(context).log_prob(u)
