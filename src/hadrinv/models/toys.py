"""The talk's toy inverse problems, each with its simulator and exact posterior (the independent truth)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hadrinv.physics import toys


@dataclass(frozen=True)
class ToyProblem:
    name: str
    kind: str  # "sum_of_squares" or "ring"
    theta_dim: int
    noise: float
    radius: float = 2.0
    x_dim: int = 1

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"theta{i + 1}" for i in range(self.theta_dim))

    @property
    def bounds(self) -> tuple[list[float], list[float]]:
        half = 1.0 if self.kind == "sum_of_squares" else self.radius
        return [-half] * self.theta_dim, [half] * self.theta_dim

    def sample_prior(self, n: int, generator: torch.Generator, radius: float | None = None) -> torch.Tensor:
        if self.kind == "sum_of_squares":
            return toys.sum_of_squares_prior(n, self.theta_dim, generator).float()
        return toys.ring_prior(n, radius or self.radius, generator).float()

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """Noise-free observable: f(theta) = sum theta_i^2 (z = x^2 + y^2 for the ring), shape (n, 1)."""
        return theta.pow(2).sum(-1, keepdim=True)

    def simulate(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return toys.sum_of_squares_simulate(theta, self.noise, generator)  # the ring is the same map in 2-D

    def exact_posterior(self, x_obs: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        y = float(x_obs.reshape(-1)[0])
        if self.kind == "sum_of_squares":
            return toys.sum_of_squares_posterior(y, self.theta_dim, n, sigma=self.noise, generator=generator).float()
        return toys.ring_posterior(y, n, radius=self.radius, sigma=self.noise, generator=generator).float()


def make_problem(name: str, noise: float, ring_radius: float) -> ToyProblem:
    if name == "sum_of_squares_2d":
        return ToyProblem(name, "sum_of_squares", 2, noise)
    if name == "sum_of_squares_10d":
        return ToyProblem(name, "sum_of_squares", 10, noise)
    if name == "ring":
        return ToyProblem(name, "ring", 2, noise, radius=ring_radius)
    raise ValueError(f"unknown toy {name!r}")
