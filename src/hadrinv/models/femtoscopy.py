"""Femtoscopy as a forward model: potential and source parameters -> correlation function C(k).

V(r) = b1 exp(-b2 r^2) + b3 (1 - exp(-b4 r^2)) (exp(-m_pi r)/r)^n_pi and a Gaussian source of size r0;
C(k) from the batched s-wave Schroedinger solver (`hadrinv.physics.femtoscopy`). Parameters are
(r0, b1, b2, b3, b4) in fm, MeV, fm^-2, MeV fm^2, fm^-2, or a subset of them with the others fixed
(the talk's 2-parameter case: b1, b3 free). Networks see log C: C spans 0.1 to ~1e3 over the talk's
ranges, and a relative error is a constant error on log C.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from hadrinv.physics.femtoscopy import P_OMEGA_REDUCED_MASS_MEV, GaussianYukawaPotential, correlation_function

__all__ = [
    "K_SCALE_MEV",
    "PARAMETERS",
    "TALK_RANGES",
    "FemtoscopyModel",
    "SimulatedSet",
    "correlation_curves",
    "k_grid",
    "log_c",
    "noisy",
    "point_cloud",
    "potential_of",
    "random_momenta",
    "random_subsets",
    "sample_uniform",
    "two_to_five",
]

PARAMETERS = ("r0", "b1", "b2", "b3", "b4")
# uniform priors of the talk: multiples of the HAL QCD N-Omega values
TALK_RANGES = {
    "r0": (0.52, 4.16),
    "b1": (-2145.5, 1532.5),
    "b2": (0.739, 147.761),
    "b3": (-1064.0, 532.0),
    "b4": (0.078, 154.422),
}
K_SCALE_MEV = 100.0  # momenta enter the set encoders as k / 100 MeV


def k_grid(k_min_mev: float, k_max_mev: float, k_points: int) -> torch.Tensor:
    return torch.linspace(k_min_mev, k_max_mev, k_points, dtype=torch.float64)


def sample_uniform(n: int, low: list[float], high: list[float], generator: torch.Generator) -> torch.Tensor:
    low_t, high_t = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)
    return low_t + (high_t - low_t) * torch.rand(n, len(low), generator=generator, dtype=torch.float64)


def two_to_five(theta2: torch.Tensor, fixed: dict[str, float]) -> torch.Tensor:
    """(n, 2) of (b1, b3) -> (n, 5) with the talk's fixed r0, b2, b4."""
    n = theta2.shape[0]
    column = lambda name: torch.full((n,), float(fixed[name]), dtype=theta2.dtype)
    return torch.stack([column("r0"), theta2[:, 0], column("b2"), theta2[:, 1], column("b4")], dim=1)


def potential_of(theta5: torch.Tensor, m_pi_mev: float, n_pi: float) -> GaussianYukawaPotential:
    return GaussianYukawaPotential.from_parameters(theta5[:, 1:], m_pi_mev=m_pi_mev, n_pi=n_pi)


def correlation_curves(
    theta5: torch.Tensor, k_mev: torch.Tensor, reduced_mass_mev: float, m_pi_mev: float, n_pi: float
) -> dict:
    """C and delta (degrees) for parameter rows (n, 5) at k (K,) or (n, K), each (n, K)."""
    with torch.no_grad():
        C, delta = correlation_function(potential_of(theta5, m_pi_mev, n_pi), k_mev, theta5[:, 0], reduced_mass_mev)
    return {"C": C, "delta_deg": torch.rad2deg(delta)}


def random_momenta(n: int, points: int, k_min_mev: float, k_max_mev: float, generator: torch.Generator) -> torch.Tensor:
    """(n, points) sorted momenta, uniform in [k_min, k_max]."""
    k = k_min_mev + (k_max_mev - k_min_mev) * torch.rand(n, points, generator=generator, dtype=torch.float64)
    return torch.sort(k, dim=1).values


@dataclass
class SimulatedSet:
    """theta: (n, d) free parameters; theta5: (n, 5) all of them; k_mev: (K,) or (n, K); C, delta_deg: (n, K)."""

    names: tuple[str, ...]
    theta: torch.Tensor
    theta5: torch.Tensor
    k_mev: torch.Tensor
    C: torch.Tensor
    delta_deg: torch.Tensor

    def split(self, test_fraction: float) -> tuple[SimulatedSet, SimulatedSet]:
        n_test = max(1, int(round(test_fraction * len(self.theta))))
        rows = lambda sl: SimulatedSet(
            self.names,
            self.theta[sl],
            self.theta5[sl],
            self.k_mev if self.k_mev.ndim == 1 else self.k_mev[sl],
            self.C[sl],
            self.delta_deg[sl],
        )
        return rows(slice(n_test, None)), rows(slice(0, n_test))


def log_c(C: torch.Tensor) -> torch.Tensor:
    return torch.log(C.clamp_min(1e-6)).float()


def noisy(C: torch.Tensor, relative: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """C (1 + relative * N(0, 1)), relative broadcast as (n, 1) or (n, K); kept positive."""
    return (C * (1.0 + relative * torch.randn(C.shape, generator=generator, dtype=C.dtype))).clamp_min(1e-6 * C)


def point_cloud(
    k_mev: torch.Tensor, C_obs: torch.Tensor, relative_error: torch.Tensor, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """(n, K, 3) points (k / 100 MeV, log C, log relative error); rows beyond counts[i] are NaN padding."""
    n, K = C_obs.shape
    k = (k_mev if k_mev.ndim == 2 else k_mev.expand(n, K)) / K_SCALE_MEV
    cloud = torch.stack([k, torch.log(C_obs), torch.log(relative_error.expand(n, K))], dim=-1).float()
    if counts is not None:
        cloud[torch.arange(K) >= counts[:, None]] = math.nan
    return cloud


def random_subsets(
    k_mev: torch.Tensor, C: torch.Tensor, points: tuple[int, int], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random number of a curve's (sorted random) momenta: padding goes last, order kept."""
    n, K = C.shape
    counts = torch.randint(points[0], min(points[1], K) + 1, (n,), generator=generator)
    keys = torch.rand(n, K, generator=generator)
    chosen = torch.argsort(keys, dim=1) < counts[:, None]  # a random subset of counts[i] columns
    order = torch.argsort((~chosen).double() * 1e6 + k_mev, dim=1)  # chosen ones first, in increasing k
    return torch.gather(k_mev, 1, order), torch.gather(C, 1, order), counts


@dataclass(frozen=True)
class FemtoscopyModel:
    """C(k) on an evenly spaced k grid for the free parameters `names` (uniform prior over `ranges`), the
    others at `fixed`. Defaults: the talk's 5-parameter study (p-Omega reduced mass, m_pi = 146 MeV,
    n_pi = 2, 60 momenta in [5, 300] MeV). Curves are clean unless relative_noise > 0 (then `noisy`)."""

    names: tuple[str, ...] = PARAMETERS
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(TALK_RANGES))
    fixed: Mapping[str, float] = field(default_factory=dict)
    reduced_mass_mev: float = P_OMEGA_REDUCED_MASS_MEV
    m_pi_mev: float = 146.0
    n_pi: float = 2.0
    k_min_mev: float = 5.0
    k_max_mev: float = 300.0
    k_points: int = 60
    relative_noise: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        unknown = [n for n in self.names if n not in PARAMETERS]
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; names are {PARAMETERS}")
        missing = [n for n in PARAMETERS if n not in self.names and n not in self.fixed]
        if missing:
            raise ValueError(f"parameter(s) {missing} are neither free nor fixed")
        if not self.k_max_mev > self.k_min_mev:
            raise ValueError(f"k_max_mev ({self.k_max_mev}) must exceed k_min_mev ({self.k_min_mev})")

    @property
    def theta_dim(self) -> int:
        return len(self.names)

    @property
    def bounds(self) -> tuple[list[float], list[float]]:
        return [self.ranges[n][0] for n in self.names], [self.ranges[n][1] for n in self.names]

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return sample_uniform(n, *self.bounds, generator)

    def theta5(self, theta: torch.Tensor) -> torch.Tensor:
        """(n, 5) rows (r0, b1, b2, b3, b4) from the free parameters (n, theta_dim) and the fixed values."""
        n = theta.shape[0]
        columns = [
            theta[:, self.names.index(p)]
            if p in self.names
            else torch.full((n,), float(self.fixed[p]), dtype=theta.dtype)
            for p in PARAMETERS
        ]
        return torch.stack(columns, dim=1)

    def k_grid(self) -> torch.Tensor:
        return k_grid(self.k_min_mev, self.k_max_mev, self.k_points)

    def potential(self, theta5: torch.Tensor) -> GaussianYukawaPotential:
        return potential_of(theta5, self.m_pi_mev, self.n_pi)

    def curves(self, theta5: torch.Tensor, k_mev: torch.Tensor | None = None) -> dict:
        """C and delta_deg of rows (n, 5) at k (default: the model's grid)."""
        return correlation_curves(
            theta5, self.k_grid() if k_mev is None else k_mev, self.reduced_mass_mev, self.m_pi_mev, self.n_pi
        )

    def simulate(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, k_points) C(k) of the free parameters theta (n, theta_dim)."""
        C = self.curves(self.theta5(theta.to(torch.float64)))["C"]
        return noisy(C, torch.tensor(self.relative_noise, dtype=C.dtype), generator) if self.relative_noise > 0 else C

    def random_momenta(self, n: int, points: int, generator: torch.Generator) -> torch.Tensor:
        return random_momenta(n, points, self.k_min_mev, self.k_max_mev, generator)
