"""Time- and context-conditioned residual MLP with FiLM conditioning, shared by the diffusion and
flow-matching estimators.

The talk's set-up for the denoising network: 6 residual MLP blocks of 256 hidden units, conditioned by
FiLM (feature-wise linear modulation, Perez et al. 2018). A sinusoidal embedding of the time and the
embedded observation are mapped by a small MLP to one conditioning vector; every block turns that
vector into a per-feature scale and shift, h * (1 + gamma) + beta.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hadrinv.inference.embeddings import mlp


def sinusoidal_embedding(
    t: torch.Tensor, features: int, scale: float = 1000.0, max_period: float = 10000.0
) -> torch.Tensor:
    """(batch,) times in [0, 1] -> (batch, features) sines and cosines on geometric frequencies.

    Times are stretched by ``scale`` so that the highest frequency still tells one of the 1000 DDPM
    steps from its neighbour while the lowest varies slowly over the whole interval."""
    half = features // 2
    frequencies = torch.exp(
        -math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half, 1)
    )
    angles = (scale * t.float()).unsqueeze(-1) * frequencies
    embedding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if features % 2:
        embedding = nn.functional.pad(embedding, (0, 1))
    return embedding


class FiLMBlock(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.linear1 = nn.Linear(hidden, hidden)
        self.film = nn.Linear(hidden, 2 * hidden)
        self.linear2 = nn.Linear(hidden, hidden)
        # start every block as the identity with no modulation, so a deep stack trains as stably as a shallow one
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        nn.init.zeros_(self.linear2.weight)
        nn.init.zeros_(self.linear2.bias)

    def forward(self, h: torch.Tensor, conditioning: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(conditioning).chunk(2, dim=-1)
        z = self.linear1(self.norm(h))
        z = nn.functional.silu(z * (1 + gamma) + beta)
        return h + self.linear2(z)


class FiLMResidualMLP(nn.Module):
    """(x (batch, d), t (batch,) in [0, 1], context (batch, c)) -> (batch, d): a noise or velocity prediction."""

    def __init__(self, theta_dim: int, context_dim: int, hidden: int = 256, blocks: int = 6, time_features: int = 64):
        super().__init__()
        if hidden < 1 or blocks < 0 or time_features < 2:
            raise ValueError(
                f"need hidden >= 1, blocks >= 0 and time_features >= 2, got {hidden}, {blocks}, {time_features}"
            )
        self.theta_dim, self.context_dim, self.time_features = theta_dim, context_dim, time_features
        self.conditioning = mlp([time_features + context_dim, hidden, hidden], final_activation=True)
        self.input = nn.Linear(theta_dim, hidden)
        self.blocks = nn.ModuleList(FiLMBlock(hidden) for _ in range(blocks))
        # no normalisation before the output: the residual stream keeps the input's scale, which the
        # network needs to predict noise ~ u_t at large t linearly rather than from a normalised feature
        self.output = nn.Linear(hidden, theta_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t.reshape(-1)
        conditioning = self.conditioning(torch.cat([sinusoidal_embedding(t, self.time_features), context], dim=-1))
        h = self.input(x)
        for block in self.blocks:
            h = block(h, conditioning)
        return self.output(h)
