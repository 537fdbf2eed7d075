"""Tables of events for generative event generators: any numeric columns, or three-body four-momenta.

A table is one row per event and one numeric column per kinematic quantity, with an optional `weight` column.
Three layouts are recognised:

- ``pwa``: the twelve four-momentum columns of J/psi -> gamma pi pi (`hadrinv.data.pwa_events`: gamma_E, ...,
  pi2_pz). The table is read by `read_events`, which checks four-momentum conservation and the masses, and
  generators work on its Dalitz coordinates, so that what they generate is physical by construction;
- ``three-body``: any other decay into three particles, as twelve columns NAME_E, NAME_px, NAME_py, NAME_pz for
  three names (in GeV, in the parent's rest frame; particle order = order of first appearance). The masses and
  the parent's mass are the medians over the table; every event must conserve four-momentum and put each particle
  on its mass shell within ``tolerance_gev`` (the allowances of `pwa_events.mass2_allowance`). Generators work on
  its Dalitz coordinates, as for ``pwa``;
- ``numeric``: any other table (a Dalitz plot's m12^2 and m23^2, a jet's observables, ...). Every column must be
  numeric; the generators learn the columns as they are.

Readers validate: a missing or empty file, a column that is not numeric, a NaN, inf or null (the first bad row
is named, as 'FILE:LINE' for CSV and 'FILE: event N' for Parquet), a negative weight, or fewer rows than
``min_rows`` stop with one DataError line. CSV (`.csv`) and Parquet (`.parquet`, `.pq`); the PWA layout also
ROOT (`.root`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hadrinv.data import pwa_events
from hadrinv.data.io import atomic_write_file
from hadrinv.data.validation import (
    DataError,
    parquet_column_names,
    raise_first_bad,
    read_numeric_csv,
    read_parquet_numeric,
)

WEIGHT = "weight"
LAYOUTS = ("pwa", "three-body", "numeric")
TOLERANCE_GEV = 1e-4  # absolute precision of a three-body table's components (as `pwa_events.read_events`)


@dataclass(frozen=True)
class ThreeBody:
    """A three-body decay: particle names (column prefixes), their masses and the parent's mass, in GeV."""

    particles: tuple[str, str, str]
    masses: tuple[float, float, float]
    parent_mass: float


@dataclass
class EventTable:
    """Events as a float64 (N, F) tensor of ``columns``; ``weight`` (N,) or None (all one)."""

    columns: tuple[str, ...]
    values: torch.Tensor
    weight: torch.Tensor | None = None
    layout: str = "numeric"
    path: str = "simulated"
    decay: ThreeBody | None = None  # the ``three-body`` layout's particles and masses

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def subset(self, index: torch.Tensor) -> EventTable:
        weight = None if self.weight is None else self.weight[index]
        return EventTable(self.columns, self.values[index], weight, self.layout, self.path, self.decay)

    def column_dict(self) -> dict[str, np.ndarray]:
        """name -> (N,) float64 numpy array: the form an efficiency function receives."""
        values = self.values.numpy()
        return {name: values[:, j] for j, name in enumerate(self.columns)}


def from_pwa_sample(sample: pwa_events.EventSample) -> EventTable:
    values = torch.cat([sample.gamma, sample.pi1, sample.pi2], dim=1)
    return EventTable(pwa_events.COLUMNS, values, sample.weight, "pwa", str(sample.path))


def read_event_table(path: str | Path, min_rows: int = 1) -> EventTable:
    """Read and validate an event table (see the module docstring); raises a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    suffix = path.suffix.lower()
    names = _column_names(path, suffix)
    if set(pwa_events.COLUMNS) <= set(names) or suffix in pwa_events.ROOT_SUFFIXES:
        table = from_pwa_sample(pwa_events.read_events(path))
    elif suffix in pwa_events.CSV_SUFFIXES:
        table = _read_csv(path, names)
    else:
        table = _read_parquet(path, names)
    particles = three_body_particles(table.columns) if table.layout == "numeric" else None
    if particles is not None:
        table = _three_body(path, table, particles)
    if len(table) < min_rows:
        raise DataError(path, f"{len(table)} events; need at least {min_rows} (one training batch)")
    if table.weight is not None:
        raise_first_bad(
            path,
            [(~(table.weight.numpy() >= 0), lambda i: f"negative weight {float(table.weight[i]):g}")],
            lambda i: (None, f"event {i}: "),
            noun="events",
        )
        if not float(table.weight.sum()) > 0:
            raise DataError(path, "the weights sum to zero")
    return table


def three_body_particles(columns) -> tuple[str, str, str] | None:
    """The three particle names when ``columns`` are exactly NAME_E, NAME_px, NAME_py, NAME_pz for three names."""
    names: list[str] = []
    for column in columns:
        head, _, component = column.rpartition("_")
        if not head or component not in pwa_events.COMPONENTS:
            return None
        if head not in names:
            names.append(head)
    expected = {f"{n}_{c}" for n in names for c in pwa_events.COMPONENTS}
    if len(names) != 3 or len(columns) != 12 or set(columns) != expected:
        return None
    return tuple(names)


def _three_body(path: Path, table: EventTable, particles: tuple[str, str, str]) -> EventTable:
    """The table in particle order with its decay's masses; events that break the kinematics stop here."""
    order = [table.columns.index(f"{n}_{c}") for n in particles for c in pwa_events.COMPONENTS]
    values = table.values[:, order]
    p = [values[:, 4 * k : 4 * k + 4] for k in range(3)]
    m2 = [q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(-1) for q in p]
    masses = [float(x.median().clamp_min(0.0).sqrt()) for x in m2]
    total = p[0] + p[1] + p[2]
    parent = float(total[:, 0].median())
    tol = TOLERANCE_GEV
    off_mass = [
        ((x - m**2).abs() > pwa_events.mass2_allowance(q, tol)).numpy() for x, q, m in zip(m2, p, masses, strict=True)
    ]
    off_total = (total - torch.tensor([parent, 0.0, 0.0, 0.0], dtype=total.dtype)).abs()

    def mass_problem(k: int):
        return lambda i: (
            f"{particles[k]} has mass {float(m2[k][i].clamp_min(0).sqrt()):.6g} GeV, the table's others "
            f"{masses[k]:.6g} GeV (beyond tolerance_gev = {tol:g})"
        )

    def conservation_problem(i: int) -> str:
        k = int(off_total[i].argmax())
        return (
            f"the three {pwa_events.COMPONENTS[k]} sum to {float(total[i, k]):.6g} GeV, not "
            f"{parent if k == 0 else 0.0:.6g} (parent mass from the table's median, rest frame; beyond "
            f"tolerance_gev = {tol:g})"
        )

    raise_first_bad(
        path,
        [(off_mass[k], mass_problem(k)) for k in range(3)] + [((off_total > tol).any(1).numpy(), conservation_problem)],
        lambda i: (None, f"event {i}: "),
        noun="events",
    )
    columns = tuple(f"{n}_{c}" for n in particles for c in pwa_events.COMPONENTS)
    decay = ThreeBody(particles, (masses[0], masses[1], masses[2]), parent)
    return EventTable(columns, values, table.weight, "three-body", table.path, decay)


def _column_names(path: Path, suffix: str) -> list[str]:
    if suffix in pwa_events.CSV_SUFFIXES:
        try:
            text = path.read_text(encoding="utf-8-sig", errors="strict")
        except UnicodeDecodeError:
            raise DataError(path, "not a CSV text file (cannot decode as UTF-8)") from None
        for line in text.split("\n"):
            if line.strip() and not line.lstrip().startswith("#"):
                return [h.strip() for h in next(csv.reader(io.StringIO(line)))]
        raise DataError(path, "empty file")
    if suffix in pwa_events.PARQUET_SUFFIXES:
        return parquet_column_names(path)
    if suffix in pwa_events.ROOT_SUFFIXES:
        return []
    raise DataError(path, f"unknown file type {path.suffix!r}; expected .csv or .parquet (.pq), or .root")


def _split(path: Path, names: list[str], values: np.ndarray) -> EventTable:
    columns = [n for n in names if n != WEIGHT]
    if not columns:
        raise DataError(path, "no event columns besides the weight")
    index = [names.index(n) for n in columns]
    weight = torch.from_numpy(values[:, names.index(WEIGHT)].copy()) if WEIGHT in names else None
    return EventTable(
        tuple(columns), torch.from_numpy(np.ascontiguousarray(values[:, index])), weight, "numeric", str(path)
    )


def _read_csv(path: Path, names: list[str]) -> EventTable:
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(path, f"column(s) {', '.join(duplicated)} appear more than once in the header")
    # read_numeric_csv names the line of the first empty or non-numeric value
    columns = read_numeric_csv(path, tuple(names))
    return _split(path, names, np.stack([columns[n] for n in names], axis=1))


def _read_parquet(path: Path, names: list[str]) -> EventTable:
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(path, f"column(s) {', '.join(duplicated)} appear more than once")
    values, _ = read_parquet_numeric(path, names)
    if len(values) == 0:
        raise DataError(path, "no events")
    bad = ~np.isfinite(values)
    raise_first_bad(
        path,
        [(bad.any(axis=1), lambda i: f"column {names[int(np.argmax(bad[i]))]} is missing, NaN or infinite")],
        lambda i: (None, f"event {i}: "),
        noun="events",
    )
    return _split(path, names, values)


def write_event_table(path: str | Path, columns, values, weight=None) -> Path:
    """Write events (N, F) with their column names (and a `weight` column if given): Parquet for .parquet/.pq,
    else CSV; atomically, so a killed writer leaves no partial file."""
    path = Path(path)
    values = np.asarray(torch.as_tensor(values, dtype=torch.float64).cpu())
    data = {name: values[:, j] for j, name in enumerate(columns)}
    if weight is not None:
        data[WEIGHT] = np.asarray(torch.as_tensor(weight, dtype=torch.float64).cpu())
    if path.suffix.lower() in pwa_events.PARQUET_SUFFIXES:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(data)
        return atomic_write_file(path, lambda tmp: pq.write_table(table, tmp))

    def write_csv(tmp: str) -> None:
        header = ",".join(data)
        np.savetxt(tmp, np.stack(list(data.values()), axis=1), delimiter=",", header=header, comments="", fmt="%.17g")

    return atomic_write_file(path, write_csv)
