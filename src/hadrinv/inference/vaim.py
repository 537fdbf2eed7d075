"""Variational autoencoder inverse mapper (VAIM; Almaeen et al., IJCNN 2021; talk 003).

Two networks share a latent space z:
- the forward mapper F: theta -> (x_hat, q(z | theta)) learns the physics (parameters -> observables)
  and encodes what the observables do not fix about theta into z;
- the backward mapper B: (x, z) -> theta_hat maps an observation and a latent draw to parameters.
Loss = ||x - x_hat||^2 + reconstruction of theta + KL(q(z | theta) || N(0, I)) (the talk's slide). For
a new observation, z ~ N(0, I) and theta = B(x, z): the spread of z gives the set of solutions.

Choices beyond the slide (all options): the theta reconstruction is a Gaussian negative log likelihood
with a learned width per parameter, so the loss is the conditional ELBO and the balance between the
reconstruction and the KL is learned rather than tuned; samples add that width (``decoder_noise``).
For point-cloud observations (``embedding="set"``) the forward mapper predicts the observable columns
of every point from theta and the point's kinematic columns (the first ``kinematic_columns`` features),
as the PC-VAIM forward mapper does (its loss on ``forward_points`` random points of each batch); the
backward mapper reads the cloud through the PointNet embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.inference.embeddings import ResidualMLP


class VAIM(AmortizedEstimator):
    def __init__(
        self,
        theta_dim: int,
        x_dim: int,
        *,
        latent_dim: int = 16,
        hidden: int = 256,
        blocks: int = 3,
        kl_weight: float = 1.0,
        forward_weight: float = 1.0,
        decoder_noise: bool = True,
        kinematic_columns: int = 0,
        forward_points: int = 32,
        point_hidden: int = 64,
        **common,
    ):
        super().__init__(theta_dim, x_dim, **common)
        self._remember(
            latent_dim=latent_dim,
            hidden=hidden,
            blocks=blocks,
            kl_weight=kl_weight,
            forward_weight=forward_weight,
            decoder_noise=decoder_noise,
            kinematic_columns=kinematic_columns,
            forward_points=forward_points,
            point_hidden=point_hidden,
        )
        self.forward_points = forward_points
        self.latent_dim, self.kl_weight, self.forward_weight = latent_dim, kl_weight, forward_weight
        self.decoder_noise = decoder_noise
        self.point_cloud = self.event_ndim == 2
        if self.point_cloud and not 0 < kinematic_columns < x_dim:
            raise ValueError(
                "a point-cloud VAIM needs 0 < kinematic_columns < x_dim (kinematics first, observables last)"
            )
        self.kinematic_columns = kinematic_columns
        if self.point_cloud:
            self.encoder = ResidualMLP(theta_dim, hidden + 2 * latent_dim, hidden, blocks)
            self.point_observables = ResidualMLP(hidden + kinematic_columns, x_dim - kinematic_columns, point_hidden, 1)
        else:
            self.encoder = ResidualMLP(theta_dim, x_dim + 2 * latent_dim, hidden, blocks)
        self.backward_mapper = ResidualMLP(self.context_dim + latent_dim, theta_dim, hidden, blocks)
        self.log_width = nn.Parameter(torch.full((theta_dim,), -1.0))

    def forward_mapper(self, u: torch.Tensor, x: torch.Tensor | None = None):
        """theta (standardised) -> (predicted standardised observables, z mean, z log-variance).
        For point clouds x gives the kinematics at which the observables are predicted."""
        out = self.encoder(u)
        k = self.latent_dim
        mean, log_var = out[..., -2 * k : -k], out[..., -k:].clamp(-12, 8)
        features = out[..., : -2 * k]
        if not self.point_cloud:
            return features, mean, log_var
        kinematics = torch.nan_to_num(x[..., : self.kinematic_columns])
        per_point = torch.cat([features.unsqueeze(1).expand(-1, x.shape[1], -1), kinematics], -1)
        return self.point_observables(per_point), mean, log_var

    def training_loss(self, u, context, x):
        if self.point_cloud and x.shape[1] > self.forward_points:
            # the forward (surrogate) loss on a random subset of points: an unbiased estimate of the
            # per-point mean at a fraction of the cost of running the point network on every point
            x = x[:, torch.randperm(x.shape[1], device=x.device)[: self.forward_points]]
        x_hat, mean, log_var = self.forward_mapper(u, x)
        if self.point_cloud:
            observed = x[..., self.kinematic_columns :]
            valid = ~torch.isnan(observed)
            forward = torch.where(valid, x_hat - observed, 0.0).pow(2).sum((-1, -2)) / valid.any(-1).sum(-1).clamp(
                min=1
            )
        else:
            forward = (x_hat - x).pow(2).sum(-1)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        theta_hat = self.backward_mapper(torch.cat([context, z], -1))
        width = self.log_width.exp()
        reconstruction = (0.5 * ((u - theta_hat) / width).pow(2) + self.log_width + 0.5 * math.log(2 * math.pi)).sum(-1)
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(-1)
        return self.forward_weight * forward + reconstruction + self.kl_weight * kl

    def _sample_standardized(self, context, n):
        batch = context.shape[0]
        z = torch.randn(batch, n, self.latent_dim, device=context.device)
        theta = self.backward_mapper(torch.cat([context.unsqueeze(1).expand(-1, n, -1), z], -1))
        if self.decoder_noise:
            theta = theta + torch.randn_like(theta) * self.log_width.exp()
        return theta

    @torch.no_grad()
    def predict_observables(self, theta: torch.Tensor, kinematics: torch.Tensor | None = None) -> torch.Tensor:
        """The forward mapper as a surrogate of the simulator: observables (in data units) at theta."""
        self._require_fitted()
        u, _ = self.standardize_theta(torch.as_tensor(theta, dtype=torch.float32).to(self.theta_mean.device))
        if self.point_cloud:
            if kinematics is None:
                raise ValueError(
                    "a point-cloud VAIM predicts observables at given kinematics (batch, n_points, kinematic_columns)"
                )
            k = self.kinematic_columns
            filler = torch.zeros(*kinematics.shape[:-1], self.x_dim - k, device=u.device)
            x = self.standardize_x(torch.cat([kinematics.to(u.device), filler], -1))
            observed, _, _ = self.forward_mapper(u, x)
            return observed * self.x_std[k:] + self.x_mean[k:]
        x_hat, _, _ = self.forward_mapper(u)
        return x_hat * self.x_std + self.x_mean
