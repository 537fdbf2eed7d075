"""The talk-003 DIS pseudo-data: grids, experiment-like kinematic regions, noisy (sigma_p, sigma_n), point clouds.

Also the CSV reader and writer for user DIS data: columns x, Q2 (GeV^2), sigma_p, sigma_n and optional
errors sigma_p_err, sigma_n_err (one standard deviation, same units as the cross sections).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_text
from hadrinv.data.validation import DataError, check_magnitudes, read_numeric_csv, read_truth, truth_path
from hadrinv.physics.dis import (
    DEFAULT_SPACE,
    LAMBDA2_GEV2,
    PARAMETER_NAMES,
    PROTON_MASS_GEV,
    Q0_2_GEV2,
    DISParameterSpace,
    cross_sections,
)

W2_MIN_GEV2 = 4.0  # W^2 = Q2 (1-x)/x + M_p^2 > 4 GeV^2: above the resonance region

# ----------------------------------------------------------------------------------------------
# Kinematics
# ----------------------------------------------------------------------------------------------


def regular_grid(
    n_x: int = 10, n_q2: int = 8, x_range=(0.01, 0.8), q2_range_gev2=(1.5, 100.0)
) -> tuple[np.ndarray, np.ndarray]:
    """The talk's regular bins: x log-spaced in [0.01, 0.8], Q2 log-spaced in [1.5, 100] GeV^2.

    Returns flattened (x, q2), each (n_x * n_q2,) float64, x-major (all Q2 of the first x first).
    No W^2 cut is applied (the talk's grid is a plain rectangle in x and Q2).
    """
    xs = np.geomspace(*x_range, n_x)
    q2s = np.geomspace(*q2_range_gev2, n_q2)
    x, q2 = np.meshgrid(xs, q2s, indexing="ij")
    return x.ravel(), q2.ravel()


@dataclass(frozen=True)
class ExperimentRegion:
    """A rectangle in (x, Q2 in GeV^2) where an experiment measured, and its typical number of bins."""

    name: str
    x_min: float
    x_max: float
    q2_min_gev2: float
    q2_max_gev2: float
    n_bins: int


# Rough kinematic coverage of the experiments shown in the talk (HERA-like restricted to x >= 0.01,
# where the talk's phase space starts).
EXPERIMENTS = {
    "SLAC": ExperimentRegion("SLAC", 0.1, 0.8, 1.5, 20.0, 40),
    "NMC": ExperimentRegion("NMC", 0.01, 0.5, 1.5, 60.0, 30),
    "BCDMS": ExperimentRegion("BCDMS", 0.07, 0.75, 7.0, 200.0, 40),
    "HERA": ExperimentRegion("HERA", 0.01, 0.3, 10.0, 200.0, 25),
}


def experiment_bins(
    names=None, rng: np.random.Generator | None = None, n_bins: int | None = None, return_labels: bool = False
):
    """Random bin centres of the named experiments (default: all of EXPERIMENTS), concatenated.

    Each bin is log-uniform in x and in Q2 inside the experiment's rectangle, conditioned on
    W^2 = Q2 (1-x)/x + M_p^2 > 4 GeV^2 (rejection sampling). n_bins overrides every experiment's count.
    Returns (x, q2) float64 arrays, plus the experiment name of each bin when return_labels.
    """
    rng = np.random.default_rng() if rng is None else rng
    names = list(EXPERIMENTS) if names is None else [names] if isinstance(names, str) else list(names)
    xs, q2s, labels = [], [], []
    for name in names:
        if name not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
        region = EXPERIMENTS[name]
        n = region.n_bins if n_bins is None else int(n_bins)
        x, q2 = _draw_region(region, n, rng)
        xs.append(x)
        q2s.append(q2)
        labels += [name] * n
    x, q2 = np.concatenate(xs), np.concatenate(q2s)
    return (x, q2, np.array(labels)) if return_labels else (x, q2)


def _draw_region(region: ExperimentRegion, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    lx = np.log([region.x_min, region.x_max])
    lq = np.log([region.q2_min_gev2, region.q2_max_gev2])
    x_out, q2_out, have = np.empty(n), np.empty(n), 0
    for _ in range(1000):
        if have == n:
            return x_out, q2_out
        m = 2 * (n - have) + 16
        x = np.exp(rng.uniform(lx[0], lx[1], m))
        q2 = np.exp(rng.uniform(lq[0], lq[1], m))
        keep = q2 * (1.0 - x) / x + PROTON_MASS_GEV**2 > W2_MIN_GEV2
        take = min(int(keep.sum()), n - have)
        x_out[have : have + take], q2_out[have : have + take] = x[keep][:take], q2[keep][:take]
        have += take
    raise ValueError(f"{region.name}: the region has (almost) no points with W^2 > {W2_MIN_GEV2} GeV^2")


# ----------------------------------------------------------------------------------------------
# Simulation and point clouds
# ----------------------------------------------------------------------------------------------


def simulate(
    params_free: torch.Tensor,
    space: DISParameterSpace = DEFAULT_SPACE,
    x=None,
    q2=None,
    relative_noise: float = 0.03,
    generator: torch.Generator | None = None,
    return_truth: bool = False,
):
    """Noisy cross sections sigma_obs = sigma_true (1 + relative_noise * eps), eps ~ N(0, 1) per value.

    params_free (batch, n_free) in the order of space.free_names; x, q2 (GeV^2) each (n_points,) shared
    or (batch, n_points); default: regular_grid(). Returns (batch, n_points, 2) = (sigma_p, sigma_n),
    and the noiseless values too when return_truth. relative_noise = 0 gives the truth.
    """
    if relative_noise < 0:
        raise ValueError("relative_noise must be >= 0")
    params_free = torch.as_tensor(params_free)
    if x is None and q2 is None:
        x, q2 = regular_grid()
    elif x is None or q2 is None:
        raise ValueError("give both x and q2, or neither (the regular grid)")
    truth = cross_sections(space.full_parameters(params_free), x, q2)
    eps = torch.randn(truth.shape, generator=generator, dtype=truth.dtype).to(truth.device)
    observed = truth * (1.0 + relative_noise * eps)
    return (observed, truth) if return_truth else observed


def simulate_dis_data(
    params_free, space: DISParameterSpace = DEFAULT_SPACE, x=None, q2=None, relative_noise: float = 0.03, seed: int = 0
) -> DISData:
    """One simulated data set (params_free (n_free,)) with errors relative_noise * sigma_true and its truth."""
    if relative_noise <= 0:
        raise ValueError("relative_noise must be positive (the errors are relative_noise x truth)")
    if x is None and q2 is None:
        x, q2 = regular_grid()
    free = torch.as_tensor(params_free, dtype=torch.float64).reshape(1, -1)
    generator = torch.Generator().manual_seed(seed)
    observed, truth = simulate(free, space, x, q2, relative_noise, generator, return_truth=True)
    observed, truth = observed[0].numpy(), truth[0].numpy()
    truth_info = {
        "model": "dis-toy",
        "parameters": dict(zip(space.free_names, free[0].tolist())),
        "fixed": {n: v for n, v in zip(PARAMETER_NAMES, space.central) if n not in space.free_names},
        "relative_noise": relative_noise,
        "seed": seed,
    }
    return DISData(
        x=np.asarray(x, dtype=np.float64),
        q2=np.asarray(q2, dtype=np.float64),
        sigma_p=observed[:, 0],
        sigma_n=observed[:, 1],
        sigma_p_err=relative_noise * truth[:, 0],
        sigma_n_err=relative_noise * truth[:, 1],
        source="simulate dis",
        truth=truth_info,
    )


FEATURE_NAMES = ("log_x", "log_q2", "sigma_p", "sigma_n")
KINEMATIC_COLUMNS = (0, 1)
OBSERVABLE_COLUMNS = (2, 3)  # the observables are the last two features


def point_cloud(x, q2, sigma: torch.Tensor) -> torch.Tensor:
    """Features of every point, (batch, n_points, 4) = (log x, log Q2/GeV^2, sigma_p, sigma_n).

    The kinematics are columns 0, 1 (KINEMATIC_COLUMNS), the observables the last two (OBSERVABLE_COLUMNS).
    sigma (batch, n_points, 2) or (n_points, 2); x, q2 (n_points,) shared or (batch, n_points).
    """
    sigma = torch.as_tensor(sigma)
    if sigma.dim() == 2:
        sigma = sigma.unsqueeze(0)
    x_t = torch.as_tensor(x, dtype=sigma.dtype, device=sigma.device)
    q2_t = torch.as_tensor(q2, dtype=sigma.dtype, device=sigma.device)
    kin = torch.stack(torch.broadcast_tensors(torch.log(x_t), torch.log(q2_t)), dim=-1)
    kin = kin.expand(sigma.shape[0], *kin.shape[-2:]) if kin.dim() == 2 else kin
    return torch.cat([kin, sigma], dim=-1)


def pad_point_clouds(clouds, n_points: int | None = None) -> torch.Tensor:
    """Stack clouds of different sizes into (batch, n_max, n_features), padding with NaN rows.

    Each cloud is (n_i, n_features) or (b_i, n_i, n_features); the NaN rows are what the PointNet
    embedding treats as padding (see padding_mask). n_points pads to a fixed size (>= the largest).
    """
    clouds = [torch.as_tensor(c) for c in clouds]
    clouds = [c.unsqueeze(0) if c.dim() == 2 else c for c in clouds]
    if not clouds:
        raise ValueError("no point clouds to pad")
    n_features = clouds[0].shape[-1]
    if any(c.shape[-1] != n_features for c in clouds):
        raise ValueError(f"point clouds have different numbers of features: {[c.shape[-1] for c in clouds]}")
    n_max = max(c.shape[1] for c in clouds)
    if n_points is not None:
        if n_points < n_max:
            raise ValueError(f"n_points = {n_points} is smaller than the largest cloud ({n_max} points)")
        n_max = n_points
    dtype = clouds[0].dtype if clouds[0].is_floating_point() else torch.get_default_dtype()
    out = torch.full(
        (sum(c.shape[0] for c in clouds), n_max, n_features), float("nan"), dtype=dtype, device=clouds[0].device
    )
    row = 0
    for c in clouds:
        out[row : row + c.shape[0], : c.shape[1]] = c
        row += c.shape[0]
    return out


def padding_mask(cloud: torch.Tensor) -> torch.Tensor:
    """True for padding rows (any NaN), (batch, n_points)."""
    return torch.isnan(cloud).any(-1)


# ----------------------------------------------------------------------------------------------
# User data: CSV reading, validation, writing
# ----------------------------------------------------------------------------------------------

REQUIRED_COLUMNS = ("x", "Q2", "sigma_p", "sigma_n")
OPTIONAL_COLUMNS = ("sigma_p_err", "sigma_n_err")


@dataclass
class DISData:
    """Measured DIS points, one per row; arrays of equal length, float64. Q2 in GeV^2."""

    x: np.ndarray
    q2: np.ndarray
    sigma_p: np.ndarray
    sigma_n: np.ndarray
    sigma_p_err: np.ndarray | None = None
    sigma_n_err: np.ndarray | None = None
    source: str = "<memory>"
    truth: dict = field(default_factory=dict)  # generating parameters, when the data are simulated

    def __len__(self) -> int:
        return len(self.x)

    @property
    def sigma(self) -> np.ndarray:
        """(n_points, 2) = (sigma_p, sigma_n)."""
        return np.stack([self.sigma_p, self.sigma_n], axis=-1)

    def point_cloud(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(1, n_points, 4) features for a point-cloud network (see point_cloud)."""
        return point_cloud(self.x, self.q2, torch.as_tensor(self.sigma, dtype=dtype))


def read_dis_data(path: str | Path) -> DISData:
    """Read and validate a DIS CSV; raises DataError 'FILE:ROW: problem' (header = line 1).

    Checks: required columns, field counts, numbers, finiteness, 0 < x < 1, Q2 >= Q0^2 = 1 GeV^2 (the
    model is undefined at Q2 <= Lambda^2 = 0.4 GeV^2 and starts at Q0^2), sigma >= 0, errors > 0.
    A sidecar FILE.truth.json is attached as `truth` when present.
    """
    path = Path(path)
    values = read_numeric_csv(path, REQUIRED_COLUMNS, OPTIONAL_COLUMNS, lambda row, v: _check_point(path, row, v))
    return DISData(
        x=values["x"],
        q2=values["Q2"],
        sigma_p=values["sigma_p"],
        sigma_n=values["sigma_n"],
        sigma_p_err=values.get("sigma_p_err"),
        sigma_n_err=values.get("sigma_n_err"),
        source=str(path),
        truth=read_truth(path),
    )


def _check_point(path: Path, row: int, v: dict) -> None:
    if not 0.0 < v["x"] < 1.0:
        raise DataError(path, f"x = {v['x']:g} is outside (0, 1)", row)
    q2 = v["Q2"]
    if q2 <= LAMBDA2_GEV2:
        raise DataError(
            path,
            f"Q2 = {q2:g} GeV^2 is at or below Lambda^2 = {LAMBDA2_GEV2:g} GeV^2, where the model is undefined (is "
            "Q2 in GeV^2?)",
            row,
        )
    if q2 < Q0_2_GEV2:
        raise DataError(path, f"Q2 = {q2:g} GeV^2 is below Q0^2 = {Q0_2_GEV2:g} GeV^2, where the model starts", row)
    for name in ("sigma_p", "sigma_n"):
        if v[name] < 0:
            raise DataError(path, f"{name} = {v[name]:g} is negative (cross sections are >= 0)", row)
    for name in OPTIONAL_COLUMNS:
        if name in v and v[name] <= 0:
            raise DataError(path, f"{name} = {v[name]:g} must be positive", row)
    # the dis-pdf fit squares pulls of these values, as the pi pi fit does
    check_magnitudes(path, row, v, ("sigma_p", "sigma_n", *OPTIONAL_COLUMNS), errors=OPTIONAL_COLUMNS)


def write_dis_data(data: DISData, path: str | Path) -> Path:
    """Write the CSV (and its truth sidecar when known), atomically; floats are written exactly (repr)."""
    path = Path(path)
    n = len(data)
    columns = {"x": data.x, "Q2": data.q2, "sigma_p": data.sigma_p, "sigma_n": data.sigma_n}
    for name in OPTIONAL_COLUMNS:
        if getattr(data, name) is not None:
            columns[name] = getattr(data, name)
    for name, array in columns.items():
        if len(array) != n:
            raise ValueError(f"column {name} has {len(array)} values, x has {n}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(columns))
    for i in range(n):
        writer.writerow([repr(float(array[i])) for array in columns.values()])
    if data.truth:
        atomic_write_text(truth_path(path), json.dumps(data.truth, indent=2) + "\n")
    atomic_write_text(path, buffer.getvalue())
    return path
