"""The DIS forward model: PDF parameters -> proton and neutron cross sections on a regular (x, Q2) grid or
on random point clouds, and the held-out sets (grid, and clouds on experiments' bins that no training
cloud used).

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
    def names(self) -> tuple[str, ...]:
        return self.space.free_names

    @property
    def theta_dim(self) -> int:
        return self.space.n_free

    @property
    def bounds(self) -> tuple[list[float], list[float]]:
        return self.space.low.tolist(), self.space.high.tolist()

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.space.sample_prior(n, generator)

    def simulate(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, 2 * n_points) log sigma on the regular grid (sigma_p and sigma_n of each point in turn): the
        fixed-length observation every estimator can take."""
        sigma = simulate(theta.double(), self.space, self.grid_x, self.grid_q2, self.relative_noise, generator)
        return torch.log(sigma).flatten(1).float()

    def cloud_observation(
        self,
        theta: torch.Tensor,
        x: torch.Tensor,
        q2: torch.Tensor,
        counts: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """(n, max_points, 4) clouds of (log x, log Q2, log sigma_p, log sigma_n); rows beyond counts[i] are NaN."""
        sigma = simulate(theta.double(), self.space, x, q2, self.relative_noise, generator)
        cloud = torch.cat(
            [torch.stack([x.log(), q2.log()], -1).expand(sigma.shape[0], -1, -1), sigma.log()], -1
        ).float()
        if counts is not None:
            cloud[torch.arange(cloud.shape[1]) >= counts.unsqueeze(-1)] = math.nan
        return cloud


def make_problem(n_x: int, n_q2: int, relative_noise: float, space: DISParameterSpace = DEFAULT_SPACE) -> DISProblem:
    x, q2 = regular_grid(n_x, n_q2)
    return DISProblem(space, relative_noise, x, q2)


def _w2_allowed(x: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    return q2 * (1 - x) / x + PROTON_MASS_GEV**2 > W2_MIN_GEV2


def random_kinematics(
    n_sets: int, n_points: int, x_range, q2_range, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
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
        todo = ~_w2_allowed(x, q2)
    return x, q2


def region_kinematics(
    n_sets: int,
    n_points: int,
    x_range,
    q2_range,
    generator: torch.Generator,
    max_regions: int = 4,
    min_fraction: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sets, n_points) bins laid out like a few experiments' data: every set has 1 to max_regions random
    rectangles in (log x, log Q2), each spanning min_fraction to all of the log range in x and in Q2, and
    each bin is log-uniform inside one of them (W^2 > 4 GeV^2). A network trained on these layouts learns
    how the information in a cloud depends on where its bins sit, not only on how many there are."""

    def sub_intervals(low: float, high: float) -> tuple[torch.Tensor, torch.Tensor]:
        width = (
            min_fraction
            + (1 - min_fraction) * torch.rand(n_sets, max_regions, generator=generator, dtype=torch.float64)
        ) * (high - low)
        return low + (high - low - width) * torch.rand(
            n_sets, max_regions, generator=generator, dtype=torch.float64
        ), width

    (x_start, x_width), (q_start, q_width) = sub_intervals(*np.log(x_range)), sub_intervals(*np.log(q2_range))
    regions = torch.randint(1, max_regions + 1, (n_sets, 1), generator=generator)
    which = (torch.rand(n_sets, n_points, generator=generator, dtype=torch.float64) * regions).long()
    x_start, x_width, q_start, q_width = (t.gather(1, which) for t in (x_start, x_width, q_start, q_width))
    x, q2 = torch.empty_like(x_start), torch.empty_like(q_start)
    todo = torch.ones_like(x, dtype=torch.bool)
    for _ in range(100):  # rejection inside each bin's rectangle
        k = int(todo.sum())
        if k == 0:
            break
        x[todo] = torch.exp(x_start[todo] + x_width[todo] * torch.rand(k, generator=generator, dtype=torch.float64))
        q2[todo] = torch.exp(q_start[todo] + q_width[todo] * torch.rand(k, generator=generator, dtype=torch.float64))
        todo = ~_w2_allowed(x, q2)
    if bool(todo.any()):  # a rectangle (almost) wholly below W^2 = 4 GeV^2: its bins go anywhere allowed
        fill_x, fill_q2 = random_kinematics(int(todo.sum()), 1, x_range, q2_range, generator)
        x[todo], q2[todo] = fill_x[:, 0], fill_q2[:, 0]
    return x, q2


CLOUD_LAYOUTS = {"uniform": random_kinematics, "regions": region_kinematics}


def training_clouds(
    problem: DISProblem,
    theta: torch.Tensor,
    points: tuple[int, int],
    x_range,
    q2_range,
    generator: torch.Generator,
    layout: str = "uniform",
) -> torch.Tensor:
    """Every training cloud has its own random bins and its own size in [points[0], points[1]]; the bins are
    log-uniform over the whole range (layout "uniform") or in a few random rectangles ("regions")."""
    n = theta.shape[0]
    x, q2 = CLOUD_LAYOUTS[layout](n, points[1], x_range, q2_range, generator)
    counts = torch.randint(points[0], points[1] + 1, (n,), generator=generator)
    out = []
    for start in range(0, n, 4096):  # bounded memory; the work inside is batched
        sl = slice(start, start + 4096)
        out.append(problem.cloud_observation(theta[sl], x[sl], q2[sl], counts[sl], generator))
    return torch.cat(out)


def experiment_clouds(
    problem: DISProblem, theta: torch.Tensor, experiments: list[str], seed: int, generator: torch.Generator
) -> tuple[torch.Tensor, list]:
    """Held-out clouds: each set gets its own draw of the experiments' bins (none seen in training)."""
    rng = np.random.default_rng(seed)
    clouds, kinematics = [], []
    for i in range(theta.shape[0]):
        x, q2 = experiment_bins(experiments, rng)
        x_t, q2_t = torch.as_tensor(x), torch.as_tensor(q2)
        clouds.append(problem.cloud_observation(theta[i : i + 1], x_t, q2_t, None, generator)[0])
        kinematics.append((x, q2))
    return torch.stack(clouds), kinematics


def held_out_sets(
    problem: DISProblem, n_sets: int, seed: int, experiments: list[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """The workflow's held-out truths for a run seed, with their grid pseudo-data and their clouds on the
    experiments' bins: (theta, grid, clouds, kinematics of each cloud). Benchmarks rebuild them from here."""
    held = torch.Generator().manual_seed(seed * 7919 + 4242)
    theta = problem.sample_prior(n_sets, held)
    grid = problem.simulate(theta, held)
    clouds, kinematics = experiment_clouds(problem, theta, experiments, seed + 31337, held)
    return theta, grid, clouds, kinematics
