"""Embedding networks that summarise an observation x before an estimator conditions on it.

Each maps a batch of observations to (batch, features). Built by name (``make_embedding``) so an
estimator can save its embedding's recipe and rebuild it in ``load``.

- "mlp":    x of shape (batch, x_dim).
- "conv1d": x of shape (batch, x_dim), a curve sampled on a regular grid (x_dim points).
- "set":    x of shape (batch, n_points, x_dim), a point cloud (PointNet: a shared per-point network,
            then mean and max pooling, so the result does not depend on the order of the points, and
            optionally log(number of points)). Rows that hold NaN are padding: clouds of different
            sizes go in one batch.
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(sizes: list[int], activation: type[nn.Module] = nn.SiLU, final_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2 or final_activation:
            layers.append(activation())
    return nn.Sequential(*layers)


class ResidualMLP(nn.Module):
    """in -> hidden -> (LayerNorm, Linear, SiLU, Linear) residual blocks -> out; the VAIM mappers' body."""

    def __init__(self, in_features: int, out_features: int, hidden: int = 256, blocks: int = 3):
        super().__init__()
        self.inp = nn.Linear(in_features, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(blocks)
        )
        self.out = nn.Linear(hidden, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(torch.nn.functional.silu(h))


class MLPEmbedding(nn.Module):
    event_ndim = 1

    def __init__(self, x_dim: int, features: int = 32, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.features = features
        self.net = mlp([x_dim] + [hidden] * layers + [features])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Conv1dEmbedding(nn.Module):
    event_ndim = 1

    def __init__(self, x_dim: int, features: int = 32, channels: int = 16, layers: int = 3, kernel: int = 5):
        super().__init__()
        self.features = features
        blocks: list[nn.Module] = []
        c_in, length = 1, x_dim
        for _ in range(layers):
            blocks += [nn.Conv1d(c_in, channels, kernel, padding=kernel // 2), nn.SiLU()]
            if length >= 4:
                blocks.append(nn.MaxPool1d(2))
                length //= 2
            c_in = channels
        self.conv = nn.Sequential(*blocks)
        self.head = mlp([channels * length, 128, features])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x.unsqueeze(1)).flatten(1))


class SetEmbedding(nn.Module):
    """PointNet-style encoder: per-point MLP (a 1x1 convolution), masked mean and max pooling, MLP.

    Mean and max pooling give the same features for a cloud and for the cloud with every point doubled,
    yet twice the measurements make a narrower posterior. ``count_feature=True`` hands the head log(number
    of points) as well, so a posterior estimator can learn how its width scales with the number of bins;
    train it on cloud sizes that cover the ones it will be applied to. ``count_output=True`` also appends
    log(number of points) to the output (``features`` then counts it), so the estimator's own network
    sees the count directly and not only through what the head kept of it."""

    event_ndim = 2

    def __init__(
        self,
        x_dim: int,
        features: int = 64,
        hidden: int = 128,
        point_layers: int = 3,
        count_feature: bool = False,
        count_output: bool = False,
    ):
        super().__init__()
        self.features = features + int(count_output)
        self.count_feature = count_feature
        self.count_output = count_output
        self.point_net = mlp([x_dim] + [hidden] * point_layers, final_activation=True)
        self.head = mlp([2 * hidden + int(count_feature), hidden, features])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the point MLP runs on the real points only and the pooling scatters them back to their clouds:
        # on clouds of 40-135 points padded to 135, 1.7x as fast as running it on the padding too
        # (benchmarks/set_embedding_speed.py)
        valid = ~torch.isnan(x).any(-1)  # (batch, n)
        cloud, _ = valid.nonzero(as_tuple=True)
        h = self.point_net(x[valid])  # (real points, hidden)
        batch, width = x.shape[0], h.shape[-1]
        count = valid.sum(1).clamp(min=1).to(h.dtype).unsqueeze(-1)
        mean = h.new_zeros(batch, width).index_add(0, cloud, h) / count
        largest = h.new_full((batch, width), torch.finfo(h.dtype).min).scatter_reduce(
            0, cloud.unsqueeze(-1).expand_as(h), h, reduce="amax"
        )
        pooled = [mean, largest, count.log()] if self.count_feature else [mean, largest]
        summary = self.head(torch.cat(pooled, -1))
        return torch.cat([summary, count.log()], -1) if self.count_output else summary


EMBEDDINGS = {"mlp": MLPEmbedding, "conv1d": Conv1dEmbedding, "set": SetEmbedding}


def make_embedding(kind: str, x_dim: int, **options) -> nn.Module:
    if kind not in EMBEDDINGS:
        raise ValueError(f"unknown embedding {kind!r}; choose from {', '.join(EMBEDDINGS)}")
    return EMBEDDINGS[kind](x_dim, **options)
