"""Lattice correlators R(t, r) of a hadron pair (the time-dependent HAL QCD method): readers and writers.

Two formats, one content: R per (configuration, source, t, r) on a uniform radial grid r_i = i * step
(i = 1..n, in fm; interpolate A1-projected lattice data onto it first) and consecutive integer time
slices t (lattice units).

- HDF5 (`.h5`, `.hdf5`; large ensembles): datasets `R` (configurations, sources, times, radii), `t` (times,)
  integers, `r_fm` (radii,); optional attribute `sources` (names, one per source).
- CSV (header first; '#' comments): columns `t`, `r_fm`, `R`, optional `source` and `configuration`
  (non-negative integers; default 0). Every (configuration, source, t, r) must appear exactly once.

Configurations may also be jackknife or bin averages: the workflow resamples them with replacement.
A simulated file has a sidecar FILE.truth.json with the generating potential.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_text
from hadrinv.data.validation import DataError, read_numeric_csv, truth_path

MIN_SLICES = 3
MIN_RADII = 4
GRID_TOLERANCE = 1e-6  # relative deviation of r from i * step


@dataclass
class CorrelatorData:
    samples: torch.Tensor  # (configurations, sources, times, radii), float64
    times: torch.Tensor  # (times,) integers, lattice units
    r_fm: torch.Tensor  # (radii,) = step * (1..n)
    sources: list[str] = field(default_factory=list)
    path: str = "simulated"

    @property
    def step_fm(self) -> float:
        return float(self.r_fm[0])


def _check_grid(path, r: np.ndarray, row_of=None) -> None:
    if len(r) < MIN_RADII:
        raise DataError(path, f"{len(r)} radii; at least {MIN_RADII} are needed")
    if r[0] <= 0:
        raise DataError(
            path,
            f"r_fm = {r[0]:g} must be positive (the grid is r_i = i * step, i >= 1)",
            row_of(r[0]) if row_of else None,
        )
    expected = r[0] * np.arange(1, len(r) + 1)
    bad = np.abs(r - expected) > GRID_TOLERANCE * r[0] * np.arange(1, len(r) + 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            path,
            f"r_fm = {r[i]:g} is not on the uniform grid r_i = i * {r[0]:g} fm (expected {expected[i]:g}); "
            "interpolate the data onto r_i = i * step first",
            row_of(r[i]) if row_of else None,
        )


def _check_times(path, t: np.ndarray) -> None:
    if len(t) < MIN_SLICES:
        raise DataError(
            path, f"{len(t)} time slice(s); the time differences need at least {MIN_SLICES} consecutive slices"
        )
    if np.any(np.diff(t) != 1):
        i = int(np.argmax(np.diff(t) != 1))
        raise DataError(
            path, f"time slices must be consecutive integers: t = {int(t[i])} is followed by t = {int(t[i + 1])}"
        )


def read_correlator(path: str | Path) -> CorrelatorData:
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _read_h5(path)
    return _read_csv(path)


def _read_h5(path: Path) -> CorrelatorData:
    import h5py

    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise DataError(path, "not an HDF5 file") from None
    with handle as f:
        for name in ("R", "t", "r_fm"):
            if name not in f:
                raise DataError(
                    path, f"missing dataset {name!r}; expected R (configurations, sources, times, radii), t, r_fm"
                )
        R, t, r = np.asarray(f["R"], dtype=np.float64), np.asarray(f["t"]), np.asarray(f["r_fm"], dtype=np.float64)
        sources = [str(s) for s in f.attrs.get("sources", [])]
    if R.ndim != 4:
        raise DataError(path, f"dataset R has shape {R.shape}; expected (configurations, sources, times, radii)")
    if R.shape[2:] != (len(t), len(r)):
        raise DataError(
            path, f"dataset R has {R.shape[2]} times x {R.shape[3]} radii but t has {len(t)} and r_fm {len(r)} entries"
        )
    if not np.all(np.isfinite(R)):
        c, s, i, j = (int(v) for v in np.argwhere(~np.isfinite(R))[0])
        raise DataError(
            path,
            f"R[{c}, {s}, {i}, {j}] (configuration {c}, source {s}, t = {t[i]}, r = {r[j]:g} fm) is {R[c, s, i, j]}",
        )
    if not np.issubdtype(t.dtype, np.integer) and np.any(t != np.round(t)):
        raise DataError(path, "t must hold integer time slices (lattice units)")
    _check_times(path, t.astype(np.int64))
    _check_grid(path, r)
    sources = sources if len(sources) == R.shape[1] else [str(i) for i in range(R.shape[1])]
    return CorrelatorData(
        torch.from_numpy(R), torch.from_numpy(t.astype(np.int64)), torch.from_numpy(r), sources, str(path)
    )


def _read_csv(path: Path) -> CorrelatorData:
    rows: list[int] = []

    def check_row(row: int, v: dict) -> None:
        rows.append(row)
        for name in ("t", "source", "configuration"):
            if name in v and (v[name] < 0 or v[name] != round(v[name])):
                raise DataError(path, f"{name} = {v[name]:g} must be a non-negative integer", row)
        if v["r_fm"] <= 0:
            raise DataError(path, f"r_fm = {v['r_fm']:g} must be positive (fm)", row)

    values = read_numeric_csv(path, ("t", "r_fm", "R"), ("source", "configuration"), check_row)
    n_rows = len(values["R"])
    conf = values.get("configuration", np.zeros(n_rows)).astype(np.int64)
    src = values.get("source", np.zeros(n_rows)).astype(np.int64)
    t = values["t"].astype(np.int64)
    r_values = np.unique(values["r_fm"])
    times = np.unique(t)
    confs, srcs = np.unique(conf), np.unique(src)
    first_row = {}
    for i, rv in enumerate(values["r_fm"]):
        first_row.setdefault(rv, rows[i])
    _check_times(path, times)
    _check_grid(path, r_values, row_of=lambda rv: first_row.get(rv))
    index = (
        np.searchsorted(confs, conf),
        np.searchsorted(srcs, src),
        t - times[0],
        np.searchsorted(r_values, values["r_fm"]),
    )
    R = np.full((len(confs), len(srcs), len(times), len(r_values)), np.nan)
    seen = np.full(R.shape, -1, dtype=np.int64)
    flat = np.ravel_multi_index(index, R.shape)
    order = np.argsort(flat, kind="stable")
    duplicates = np.nonzero(np.diff(flat[order]) == 0)[0]
    if len(duplicates):
        a, b = order[duplicates[0]], order[duplicates[0] + 1]
        raise DataError(
            path,
            f"duplicate entry (configuration {conf[b]}, source {src[b]}, t = {t[b]}, r_fm = {values['r_fm'][b]:g}); "
            f"first on line {rows[a]}",
            rows[b],
        )
    R.reshape(-1)[flat] = values["R"]
    seen.reshape(-1)[flat] = 1
    if (seen < 0).any():
        c, s, i, j = (int(v) for v in np.argwhere(seen < 0)[0])
        raise DataError(
            path,
            f"missing entry: configuration {confs[c]}, source {srcs[s]}, t = {times[i]}, r_fm = {r_values[j]:g} "
            "(every configuration, source, t and r must appear once)",
        )
    return CorrelatorData(
        torch.from_numpy(R), torch.from_numpy(times), torch.from_numpy(r_values), [str(s) for s in srcs], str(path)
    )


def write_correlator(path: str | Path, data: CorrelatorData, truth: dict | None = None) -> Path:
    """HDF5 for .h5/.hdf5, else CSV (one row per configuration, source, t, r); `truth` as the JSON sidecar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        partial = path.with_name(path.name + ".partial")
        with h5py.File(partial, "w") as f:
            f.create_dataset("R", data=data.samples.numpy())
            f.create_dataset("t", data=data.times.numpy())
            f.create_dataset("r_fm", data=data.r_fm.numpy())
            f.attrs["sources"] = list(data.sources)
        partial.replace(path)
    else:
        C, S, T, n = data.samples.shape
        c, s, t, i = np.meshgrid(np.arange(C), np.arange(S), data.times.numpy(), np.arange(n), indexing="ij")
        r = data.r_fm.numpy()[i]
        lines = ["configuration,source,t,r_fm,R"] + [
            f"{a},{b},{tt},{rr!r},{v!r}"
            for a, b, tt, rr, v in zip(
                c.ravel(), s.ravel(), t.ravel(), r.ravel().tolist(), data.samples.numpy().ravel().tolist()
            )
        ]
        atomic_write_text(path, "\n".join(lines) + "\n")
    if truth is not None:
        atomic_write_text(truth_path(path), json.dumps(truth, indent=2) + "\n")
    return path


def simulate_correlators(
    potential,
    hadron_mass_mev: float,
    lattice_spacing_fm: float,
    box_sites: int,
    times: tuple[int, int],
    sources: list,
    configurations: int,
    relative_error: float,
    noise_growth: float,
    correlation_length_fm: float,
    time_correlation: float,
    seed: int,
) -> CorrelatorData:
    """Synthetic R(t, r) of a local potential (V(r_fm) -> MeV) for equal-mass hadrons in a spherical box
    (see hadrinv.physics.halqcd): one correlator per source ('wall' or a Gaussian width in fm), with
    lattice-like noise per configuration (none when relative_error = 0: one noise-free configuration)."""
    from hadrinv.physics.halqcd import HBARC_MEV_FM, lattice_noise, synthetic_correlator, wall_source
    from hadrinv.physics.nonlocal_scattering import RadialMesh

    a = lattice_spacing_fm
    mesh = RadialMesh(a, box_sites * a)
    r = mesh.nodes()
    V = potential(r) / HBARC_MEV_FM
    t = torch.arange(times[0], times[1] + 1)
    profiles = [wall_source(r) if s == "wall" else torch.exp(-((r / float(s)) ** 2)) for s in sources]
    clean = torch.stack(
        [synthetic_correlator(mesh, hadron_mass_mev / HBARC_MEV_FM / 2, t.double() * a, p, V=V)[0] for p in profiles]
    )
    if relative_error > 0:
        generator = torch.Generator().manual_seed(seed)
        samples = torch.stack(
            [
                lattice_noise(
                    R,
                    configurations,
                    relative_error,
                    noise_growth,
                    correlation_length_fm,
                    a,
                    time_correlation,
                    generator,
                )
                for R in clean
            ],
            1,
        )
    else:
        samples = clean[None]
    return CorrelatorData(samples=samples, times=t, r_fm=r, sources=[str(s) for s in sources])
