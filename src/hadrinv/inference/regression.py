"""A neural point estimator theta_hat(x): the deterministic inverse map of a regression DNN.

Trained by mean squared error on standardised parameters, it estimates the posterior mean. It shares
the estimators' interface (fit, save, load, embeddings for x) so the same data and embeddings serve a
regression and a posterior; ``predict(x)`` gives the estimate, and ``sample`` returns it repeated: a
regressor states no uncertainty, which the workflows say rather than invent a spread.
"""

from __future__ import annotations

import torch

from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.inference.embeddings import ResidualMLP


class Regressor(AmortizedEstimator):
    has_log_prob = False

    def __init__(self, theta_dim: int, x_dim: int, *, hidden: int = 256, blocks: int = 3, **common):
        super().__init__(theta_dim, x_dim, **common)
        self._remember(hidden=hidden, blocks=blocks)
        self.net = ResidualMLP(self.context_dim, theta_dim, hidden=hidden, blocks=blocks)

    def training_loss(self, u, context, x):
        return (self.net(context) - u).pow(2).sum(-1)

    def _sample_standardized(self, context, n):
        return self.net(context).unsqueeze(1).expand(-1, n, -1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Point estimates: (theta_dim,) for one observation, (batch, theta_dim) for a batch."""
        return self.sample(x, 1, chunk=chunk).squeeze(-2)
