"""Pseudo-data for the dis-pdf workflow: training pairs on the regular grid and on random point clouds,
and held-out sets (grid, and clouds on experiments' bins that no training cloud used).

Observables enter the networks as log sigma: the cross sections span orders of magnitude over x, and a
relative error is a constant error on log sigma.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.data.dis_toy import W2_MIN_GEV2, experiment_bins, regular_grid, simulate
from hadrinv.physics.dis import DEFAULT_SPACE, PROTON_MASS_GEV, DISParameterSpace


@dataclass
class DISProblem:
    space: DISParameterSpace
    relative_noise: float
    grid_x: np.ndarray
    grid_q2: np.ndarray

    @property
    def theta_dim(self) -> int:
        return self.space.n_free

    @property
    def bounds(self) -> tuple[list[float], list[float]]:
        return self.space.low.tolist(), self.space.high.tolist()

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.space.sample_prior(n, generator)

    def grid_observation(self, theta: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(n, 2 * n_points) log sigma on the regular grid (sigma_p and sigma_n of each point in turn)."""
        sigma = simulate(theta.double(), self.space, self.grid_x, self.grid_q2, self.relative_noise, generator)
        return torch.log(sigma).flatten(1).float()

    def cloud_observation(self, theta: torch.Tensor, x: torch.Tensor, q2: torch.Tensor, counts: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
        """(n, max_points, 4) clouds of (log x, log Q2, log sigma_p, log sigma_n); rows beyond counts[i] are NaN."""
        sigma = simulate(theta.double(), self.space, x, q2, self.relative_noise, generator)
        cloud = torch.cat([torch.stack([x.log(), q2.log()], -1).expand(sigma.shape[0], -1, -1), sigma.log()], -1).float()
        if counts is not None:
            cloud[torch.arange(cloud.shape[1]) >= counts.unsqueeze(-1)] = math.nan
        return cloud


def make_problem(n_x: int, n_q2: int, relative_noise: float, space: DISParameterSpace = DEFAULT_SPACE) -> DISProblem:
    x, q2 = regular_grid(n_x, n_q2)
    return DISProblem(space, relative_noise, x, q2)


def random_kinematics(n_sets: int, n_points: int, x_range, q2_range, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sets, n_points) bins log-uniform in x and Q2 with W^2 > 4 GeV^2, drawn by vectorised rejection."""
    lx, lq = np.log(x_range), np.log(q2_range)
    x = torch.empty(n_sets, n_points, dtype=torch.float64)
    q2 = torch.empty_like(x)
    todo = torch.ones_like(x, dtype=torch.bool)
    while bool(todo.any()):
        k = int(todo.sum())
        cx = torch.exp(lx[0] + (lx[1] - lx[0]) * torch.rand(k, generator=generator, dtype=torch.float64))
        cq = torch.exp(lq[0] + (lq[1] - lq[0]) * torch.rand(k, generator=generator, dtype=torch.float64))
        x[todo], q2[todo] = cx, cq
        todo = q2 * (1 - x) / x + PROTON_MASS_GEV**2 <= W2_MIN_GEV2
    return x, q2


def training_clouds(problem: DISProblem, theta: torch.Tensor, points: tuple[int, int], x_range, q2_range, generator: torch.Generator) -> torch.Tensor:
    """Every training cloud has its own random bins and its own size in [points[0], points[1]]."""
    n = theta.shape[0]
    x, q2 = random_kinematics(n, points[1], x_range, q2_range, generator)
    counts = torch.randint(points[0], points[1] + 1, (n,), generator=generator)
    out = []
    for start in range(0, n, 4096):  # bounded memory; the work inside is batched
        sl = slice(start, start + 4096)
        out.append(problem.cloud_observation(theta[sl], x[sl], q2[sl], counts[sl], generator))
    return torch.cat(out)


def experiment_clouds(problem: DISProblem, theta: torch.Tensor, experiments: list[str], seed: int, generator: torch.Generator) -> tuple[torch.Tensor, list]:
    """Held-out clouds: each set gets its own draw of the experiments' bins (none seen in training)."""
    rng = np.random.default_rng(seed)
    clouds, kinematics = [], []
    for i in range(theta.shape[0]):
        x, q2 = experiment_bins(experiments, rng)
        x_t, q2_t = torch.as_tensor(x), torch.as_tensor(q2)
        clouds.append(problem.cloud_observation(theta[i:i + 1], x_t, q2_t, None, generator)[0])
        kinematics.append((x, q2))
    return torch.stack(clouds), kinematics
