"""Generators and discriminators for physics-constrained GANs. They know nothing about a physics model."""

from __future__ import annotations

import numpy as np
import torch
from scipy.interpolate import BSpline
from torch import nn


def bspline_design_matrix(x: np.ndarray, n_basis: int, lower: float, upper: float, degree: int = 3) -> torch.Tensor:
    """Values of n_basis clamped B-splines with uniform knots on [lower, upper] at x: shape (len(x), n_basis)."""
    if n_basis <= degree:
        raise ValueError(f"need more than {degree} basis functions, got {n_basis}")
    inner = np.linspace(lower, upper, n_basis - degree + 1)
    knots = np.r_[[lower] * degree, inner, [upper] * degree]
    matrix = BSpline.design_matrix(np.clip(np.asarray(x, dtype=float), lower, upper), knots, degree).toarray()
    return torch.as_tensor(matrix, dtype=torch.float64)


def padded_bspline_design(x: np.ndarray, n_basis: int) -> torch.Tensor:
    """Cubic B-splines at x, (len(x), n_basis) float64, with knots reaching one spacing past the data on each
    side: at a clamped end a single coefficient sets the curve at the last point alone, where data are often
    weakest."""
    x = np.asarray(x, dtype=float)
    pad = float(x.max() - x.min()) / (n_basis - 3)
    return bspline_design_matrix(x, n_basis, float(x.min()) - pad, float(x.max()) + pad)


def second_differences(n_basis: int) -> torch.Tensor:
    """(n_basis - 2, n_basis) float64: c -> its second differences, the P-spline roughness penalty's rows."""
    return torch.diff(torch.eye(n_basis, dtype=torch.float64), n=2, dim=0)


def penalized_spline(
    design: torch.Tensor,
    curves: torch.Tensor,
    errors: torch.Tensor | None = None,
    iterations: int = 5,
    smoothing: float = 1e-4,
) -> torch.Tensor:
    """Coefficients (n_curves, n_basis) of the robust P-spline through curves (n_points, n_curves).

    A Huber fit (iteratively reweighted least squares, threshold 2 errors), so that a few outlying
    points do not bend it, with a small second-difference penalty on the coefficients, relative to
    the data's weight: basis functions that no point constrains (in a gap between the points) follow
    their neighbours instead of being undetermined. design: (n_points, n_basis); float64 throughout.
    """
    design = design.to(torch.float64)
    target = curves.to(torch.float64)
    n_basis = design.shape[1]
    sigma = torch.ones_like(target) if errors is None else errors.to(torch.float64)
    second = second_differences(n_basis)
    penalty = second.T @ second
    weights = 1.0 / sigma**2  # (n_points, n_curves)
    for _ in range(iterations):
        normal = torch.einsum("pk,pc,pj->ckj", design, weights, design)  # (n_curves, n_basis, n_basis)
        scale = normal.diagonal(dim1=-2, dim2=-1).mean(-1)[:, None, None]
        rhs = torch.einsum("pk,pc->ck", design, weights * target)
        coefficients = torch.linalg.solve(normal + smoothing * scale * penalty, rhs)
        pull = ((design @ coefficients.T - target) / sigma).abs()
        weights = torch.where(pull <= 2.0, 1.0, 2.0 / pull) / sigma**2
    return coefficients


class SplineCurveGenerator(nn.Module):
    """Latent vector -> n_curves smooth real functions on a fixed set of points.

    An MLP maps z to the coefficients of a cubic B-spline basis, evaluated at the given points; this
    makes a generated curve smooth by construction and keeps the cost independent of the number of points.
    Output shape: (batch, n_points, n_curves).
    """

    def __init__(
        self,
        design_matrix: torch.Tensor,
        n_curves: int,
        latent_dim: int = 100,
        hidden: int = 128,
        depth: int = 2,
        slope: float = 0.2,
    ):
        super().__init__()
        self.latent_dim, self.n_curves = latent_dim, n_curves
        self.n_basis = design_matrix.shape[1]
        self.register_buffer("design_matrix", design_matrix.float())
        layers, width = [], latent_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(slope)]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, self.n_basis * n_curves)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        coefficients = self.head(self.body(z)).view(-1, self.n_curves, self.n_basis)
        return torch.einsum("pk,bck->bpc", self.design_matrix, coefficients)

    @torch.no_grad()
    def start_at(
        self, curves: torch.Tensor, errors: torch.Tensor | None = None, iterations: int = 5, smoothing: float = 1e-4
    ) -> torch.Tensor:
        """Set the head's bias so that the untrained generator's curves are the spline closest to `curves`.

        curves, errors: (n_points, n_curves). The head's weights are small at initialisation, so the bias
        alone sets the curves. The spline is `penalized_spline`'s: a few outlying points, such as a
        per-point solver's wrong branch, do not bend it, and gaps between the points are bridged smoothly.
        Returns the spline's curves at the points.
        """
        coefficients = penalized_spline(self.design_matrix, curves, errors, iterations, smoothing)
        self.head.bias.copy_(coefficients.reshape(-1).to(self.head.bias.dtype))
        return self.design_matrix.to(torch.float64) @ coefficients.T


class ConvImageGenerator(nn.Module):
    """The talk's generator (talk 000, back-up slide): FC -> (4, H, W) -> 4 x ConvTranspose2d -> Conv2d.

    Kernel 17, 64 channels and a 64 x 64 image in the talk; all configurable, since at the talk's size
    one training step costs several TFLOP and is practical only on a GPU. Output: (batch, H, W, channels).
    """

    def __init__(
        self,
        height: int,
        width: int,
        out_channels: int = 2,
        latent_dim: int = 100,
        channels: int = 64,
        kernel: int = 17,
        n_layers: int = 4,
        slope: float = 0.2,
    ):
        super().__init__()
        self.latent_dim, self.height, self.width = latent_dim, height, width
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, 4 * height * width), nn.BatchNorm1d(4 * height * width), nn.LeakyReLU(slope)
        )
        layers, c_in = [], 4
        for _ in range(n_layers):
            layers += [
                nn.ConvTranspose2d(c_in, channels, kernel, padding=kernel // 2),
                nn.BatchNorm2d(channels),
                nn.LeakyReLU(slope),
            ]
            c_in = channels
        layers.append(nn.Conv2d(c_in, out_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        image = self.body(self.fc(z).view(-1, 4, self.height, self.width))
        return image.permute(0, 2, 3, 1)


class MLPDiscriminator(nn.Module):
    """Real/fake logit for a vector of observables on any set of points (the FC part of the talk's critic)."""

    def __init__(self, n_inputs: int, hidden: int = 64, dropout: float = 0.3, slope: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_inputs, hidden),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).squeeze(-1)


class ConvDiscriminator(nn.Module):
    """The talk's discriminator on an H x W image of observables: two strided convolutions, then FC 64 -> 1."""

    def __init__(self, height: int, width: int, channels: int = 64, dropout: float = 0.3, slope: float = 0.2):
        super().__init__()
        self.height, self.width = height, width
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 4, stride=2, padding=1),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(2 * channels * (height // 4) * (width // 4), 64),
            nn.LeakyReLU(slope),
            nn.Dropout(dropout),
            nn.Linear(64, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, self.height, self.width)).squeeze(-1)
