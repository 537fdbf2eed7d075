"""The femto-inverse workflow's side of the femtoscopy model: its configuration turned into the model's
plain arguments, and the HDF5 file of the simulated sets.

Three sets, as in the talk plus what the posterior needs:
- ``five``: all of (r0, b1, b2, b3, b4) drawn from the talk's ranges, C on the fixed 60-point k grid;
- ``two``: b1, b3 drawn, r0 = 1.3 fm, b2 = 73.9, b4 = 0.78 fixed (the talk's 2-parameter case);
- ``random_k``: 5 parameters, each curve on its own sorted random momenta (flexible input length).
Curves are simulated clean; noise is added where a method needs it (the regressions of the talk use clean
curves).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hadrinv.models import femtoscopy
from hadrinv.models.femtoscopy import SimulatedSet
from hadrinv.physics.femtoscopy import GaussianYukawaPotential
from hadrinv.workflows.execution import thread_limit
from hadrinv.workflows.femto_inverse.config import PARAMETERS, FemtoInverseConfig, PhysicsConfig


def k_grid(physics: PhysicsConfig) -> torch.Tensor:
    return femtoscopy.k_grid(physics.k_min_mev, physics.k_max_mev, physics.k_points)


def potential_of(theta5: torch.Tensor, physics: PhysicsConfig) -> GaussianYukawaPotential:
    return femtoscopy.potential_of(theta5, physics.m_pi_mev, physics.n_pi)


def simulate(
    theta5: torch.Tensor, k_mev: torch.Tensor, physics: dict | PhysicsConfig, threads: int | None = None
) -> dict:
    """C and delta (degrees) for parameter rows (n, 5) at k (K,) or (n, K): a simulation task."""
    thread_limit(threads)
    physics = PhysicsConfig.model_validate(physics) if isinstance(physics, dict) else physics
    return femtoscopy.correlation_curves(theta5, k_mev, physics.reduced_mass_mev, physics.m_pi_mev, physics.n_pi)


def random_momenta(n: int, points: int, physics: PhysicsConfig, generator: torch.Generator) -> torch.Tensor:
    """(n, points) sorted momenta, uniform in [k_min, k_max]."""
    return femtoscopy.random_momenta(n, points, physics.k_min_mev, physics.k_max_mev, generator)


def save_dataset(path: Path, sets: dict[str, SimulatedSet], config: FemtoInverseConfig) -> Path:
    """HDF5 file with one group per set and the generating configuration as JSON (written atomically)."""
    import h5py

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["config"] = json.dumps(
            {
                "physics": config.physics.model_dump(mode="json"),
                "dataset": config.dataset.model_dump(mode="json"),
                "seed": config.seed,
            }
        )
        f.attrs["units"] = (
            "k_mev: MeV; C: dimensionless; delta_deg: degrees; r0 fm, b1 MeV, b2 fm^-2, b3 MeV fm^2, b4 fm^-2"
        )
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
            sets[name] = SimulatedSet(
                names,
                theta5[:, index],
                theta5,
                torch.as_tensor(np.asarray(group["k_mev"])),
                torch.as_tensor(np.asarray(group["C"])),
                torch.as_tensor(np.asarray(group["delta_deg"])),
            )
    return sets, config
