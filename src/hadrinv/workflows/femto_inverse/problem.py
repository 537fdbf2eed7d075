"""Simulated data of the femto-inverse workflow: parameters, correlation functions, network inputs.

Three sets, as in the talk plus what the posterior needs:
- ``five``: all of (r0, b1, b2, b3, b4) drawn from the talk's ranges, C on the fixed 60-point k grid;
- ``two``: b1, b3 drawn, r0 = 1.3 fm, b2 = 73.9, b4 = 0.78 fixed (the talk's 2-parameter case);
- ``random_k``: 5 parameters, each curve on its own sorted random momenta (flexible input length).
Curves are simulated clean; noise is added where a method needs it (the regressions of the talk use clean
curves). Networks see log C: C spans 0.1 to ~1e3 over the ranges, and a relative error is a constant
error on log C.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hadrinv.physics.femtoscopy import GaussianYukawaPotential, correlation_function
from hadrinv.workflows.amortized_runs import thread_limit
from hadrinv.workflows.femto_inverse.config import PARAMETERS, FemtoInverseConfig, PhysicsConfig

K_SCALE_MEV = 100.0  # momenta enter the set encoders as k / 100 MeV


def k_grid(physics: PhysicsConfig) -> torch.Tensor:
    return torch.linspace(physics.k_min_mev, physics.k_max_mev, physics.k_points, dtype=torch.float64)


def sample_uniform(n: int, low: list[float], high: list[float], generator: torch.Generator) -> torch.Tensor:
    low_t, high_t = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)
    return low_t + (high_t - low_t) * torch.rand(n, len(low), generator=generator, dtype=torch.float64)


def two_to_five(theta2: torch.Tensor, fixed: dict[str, float]) -> torch.Tensor:
    """(n, 2) of (b1, b3) -> (n, 5) with the talk's fixed r0, b2, b4."""
    n = theta2.shape[0]
    column = lambda name: torch.full((n,), float(fixed[name]), dtype=theta2.dtype)
    return torch.stack([column("r0"), theta2[:, 0], column("b2"), theta2[:, 1], column("b4")], dim=1)


def potential_of(theta5: torch.Tensor, physics: PhysicsConfig) -> GaussianYukawaPotential:
    return GaussianYukawaPotential.from_parameters(theta5[:, 1:], m_pi_mev=physics.m_pi_mev, n_pi=physics.n_pi)


def simulate(theta5: torch.Tensor, k_mev: torch.Tensor, physics: dict | PhysicsConfig, threads: int | None = None) -> dict:
    """C and delta (degrees) for parameter rows (n, 5) at k (K,) or (n, K): a simulation task."""
    thread_limit(threads)
    physics = PhysicsConfig.model_validate(physics) if isinstance(physics, dict) else physics
    with torch.no_grad():
        C, delta = correlation_function(potential_of(theta5, physics), k_mev, theta5[:, 0], physics.reduced_mass_mev)
    return {"C": C, "delta_deg": torch.rad2deg(delta)}


def random_momenta(n: int, points: int, physics: PhysicsConfig, generator: torch.Generator) -> torch.Tensor:
    """(n, points) sorted momenta, uniform in [k_min, k_max]."""
    k = physics.k_min_mev + (physics.k_max_mev - physics.k_min_mev) * torch.rand(n, points, generator=generator, dtype=torch.float64)
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

    def split(self, test_fraction: float) -> tuple["SimulatedSet", "SimulatedSet"]:
        n_test = max(1, int(round(test_fraction * len(self.theta))))
        rows = lambda sl: SimulatedSet(self.names, self.theta[sl], self.theta5[sl], self.k_mev if self.k_mev.ndim == 1 else self.k_mev[sl],
                                       self.C[sl], self.delta_deg[sl])
        return rows(slice(n_test, None)), rows(slice(0, n_test))


def log_c(C: torch.Tensor) -> torch.Tensor:
    return torch.log(C.clamp_min(1e-6)).float()


def noisy(C: torch.Tensor, relative: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """C (1 + relative * N(0, 1)), relative broadcast as (n, 1) or (n, K); kept positive."""
    return (C * (1.0 + relative * torch.randn(C.shape, generator=generator, dtype=C.dtype))).clamp_min(1e-6 * C)


def point_cloud(k_mev: torch.Tensor, C_obs: torch.Tensor, relative_error: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
    """(n, K, 3) points (k / 100 MeV, log C, log relative error); rows beyond counts[i] are NaN padding."""
    n, K = C_obs.shape
    k = (k_mev if k_mev.ndim == 2 else k_mev.expand(n, K)) / K_SCALE_MEV
    cloud = torch.stack([k, torch.log(C_obs), torch.log(relative_error.expand(n, K))], dim=-1).float()
    if counts is not None:
        cloud[torch.arange(K) >= counts[:, None]] = math.nan
    return cloud


def random_subsets(k_mev: torch.Tensor, C: torch.Tensor, points: tuple[int, int], generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random number of a curve's (sorted random) momenta: padding goes last, order kept."""
    n, K = C.shape
    counts = torch.randint(points[0], min(points[1], K) + 1, (n,), generator=generator)
    keys = torch.rand(n, K, generator=generator)
    chosen = torch.argsort(keys, dim=1) < counts[:, None]  # a random subset of counts[i] columns
    order = torch.argsort((~chosen).double() * 1e6 + k_mev, dim=1)  # chosen ones first, in increasing k
    return torch.gather(k_mev, 1, order), torch.gather(C, 1, order), counts


def save_dataset(path: Path, sets: dict[str, SimulatedSet], config: FemtoInverseConfig) -> Path:
    """HDF5 file with one group per set and the generating configuration as JSON (written atomically)."""
    import h5py

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["config"] = json.dumps({"physics": config.physics.model_dump(mode="json"), "dataset": config.dataset.model_dump(mode="json"), "seed": config.seed})
        f.attrs["units"] = "k_mev: MeV; C: dimensionless; delta_deg: degrees; r0 fm, b1 MeV, b2 fm^-2, b3 MeV fm^2, b4 fm^-2"
        for name, s in sets.items():
            group = f.create_group(name)
            group.attrs["free_parameters"] = list(s.names)
            group.attrs["parameters"] = list(PARAMETERS)
            for key in ("theta5", "k_mev", "C", "delta_deg"):
                group.create_dataset(key, data=getattr(s, key).numpy(), compression="gzip", compression_opts=4)
    tmp.replace(path)
    return path


def load_dataset(path: str | Path) -> tuple[dict[str, SimulatedSet], dict]:
    """The sets and the configuration they were generated with."""
    import h5py

    sets = {}
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["config"])
        for name, group in f.items():
            names = tuple(group.attrs["free_parameters"])
            theta5 = torch.as_tensor(np.asarray(group["theta5"]))
            index = [PARAMETERS.index(n) for n in names]
            sets[name] = SimulatedSet(names, theta5[:, index], theta5, torch.as_tensor(np.asarray(group["k_mev"])),
                                      torch.as_tensor(np.asarray(group["C"])), torch.as_tensor(np.asarray(group["delta_deg"])))
    return sets, config
