"""Conditional full-covariance Gaussians from a network's output: the MDN's components, and the whitening
maps of the diffusion model and the flow (theta = m(x) + L(x) z, with L a Cholesky factor)."""

from __future__ import annotations

import torch
from torch import nn

from hadrinv.inference.embeddings import mlp


def scale_tril(raw: torch.Tensor, dim: int) -> torch.Tensor:
    """(..., dim (dim + 1) / 2) unconstrained numbers -> (..., dim, dim) lower-triangular Cholesky factors
    with a positive diagonal (softplus, floored at 1e-3 so that a density never collapses)."""
    rows, cols = torch.tril_indices(dim, dim, device=raw.device)
    scale = torch.zeros(*raw.shape[:-1], dim, dim, device=raw.device, dtype=raw.dtype)
    scale[..., rows, cols] = raw
    diagonal = torch.nn.functional.softplus(torch.diagonal(scale, dim1=-2, dim2=-1)) + 1e-3
    return torch.tril(scale, -1) + torch.diag_embed(diagonal)


def gaussian_head(context_dim: int, hidden: int, dim: int, start_at_zero: bool = False) -> nn.Sequential:
    """context -> the raw (mean, Cholesky factor) of a dim-dimensional Gaussian (read with ``split_gaussian``).
    ``start_at_zero``: the last layer starts at zero (mean 0, L = softplus(0) I at first)."""
    head = mlp([context_dim, hidden, hidden, dim + dim * (dim + 1) // 2])
    if start_at_zero:
        nn.init.zeros_(head[-1].weight)
        nn.init.zeros_(head[-1].bias)
    return head


def split_gaussian(raw: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``gaussian_head`` output (rows, ...) -> mean (rows, dim) and Cholesky factor (rows, dim, dim)."""
    return raw[..., :dim], scale_tril(raw[..., dim:], dim)


def whiten(u: torch.Tensor, mean: torch.Tensor, tril: torch.Tensor) -> torch.Tensor:
    """z = L^-1 (u - m) for u, m of shape (rows, d) and L of shape (rows, d, d)."""
    return torch.linalg.solve_triangular(tril, (u - mean).unsqueeze(-1), upper=False).squeeze(-1)


def unwhiten(z: torch.Tensor, mean: torch.Tensor, tril: torch.Tensor) -> torch.Tensor:
    """u = m + L z for z of shape (rows, n, d) (n draws per row), m (rows, d), L (rows, d, d)."""
    return mean.unsqueeze(1) + torch.einsum("bij,bnj->bni", tril, z)
