"""Event files of J/psi -> gamma pi pi for the partial-wave analysis: readers and writers (CSV, Parquet, ROOT).

One row per event: the four-momenta of the photon and the two pions in the J/psi rest frame, in GeV, z along
the e+ beam (the frame and units of `hadrinv.physics.pwa`). Columns (CSV and Parquet) or branches (ROOT):

    gamma_E, gamma_px, gamma_py, gamma_pz, pi1_E, pi1_px, pi1_py, pi1_pz, pi2_E, pi2_px, pi2_py, pi2_pz[, weight]

pi1 is the pi+ (for pi0 pi0, either pion). `weight` is optional (absent: every event weighs 1) and may be
negative (background subtraction by negative weights); the total weight must be finite and non-zero.

- CSV (`.csv`): header line first; '#' comments and blank lines are skipped (see `read_numeric_csv`).
- Parquet (`.parquet`, `.pq`): one numeric column per name; extra columns are ignored.
- ROOT (`.root`): a TTree (or an RNTuple) with one numeric scalar branch per name; `write_events` writes a TTree
  named `events`. `read_events(tree=...)` names the tree; by default the file must hold exactly one.

Validation (vectorised; the FIRST bad event in file order is reported, as 'FILE:LINE: problem' for CSV and
'FILE: event N: problem' with N counted from 0 for Parquet and ROOT). tolerance_gev is the absolute precision of
each four-momentum component, and every check derives from it:

- energy-momentum conservation: |sum of the three four-momenta - (M_JPSI, 0, 0, 0)| <= tolerance_gev in each
  component (the largest deviation is reported);
- masses: |m^2 - m0^2| <= mass2_allowance = 2 tol (|E| + |px| + |py| + |pz| + 4 tol) + 3 tol^2 for the photon
  (m0 = 0) and for each pion (m0 = pion_mass). This is the largest change of m^2 = E^2 - |p|^2 that errors of at
  most tol in each component can make, so a file whose components are good to tolerance_gev always passes. We
  check m^2 rather than m because m is ill-conditioned for fast particles: a 1.5 GeV pion with components good to
  1e-4 GeV may have m off by 3 MeV. At the default tol = 1e-4 GeV the photon allowance is at most ~8.5e-4 GeV^2
  (hardest photon, E ~ 1.55 GeV; the same scale as 2 M_JPSI tol = 6.2e-4 GeV^2, but tighter for soft photons),
  and the pion allowance stays below the gap m(pi+)^2 - m(pi0)^2 = 1.26e-3 GeV^2, so a pi0 pi0 file read with the
  charged-pion mass (or the reverse) is caught on its first event;
- energies: E >= -tolerance_gev for every particle (a negative energy beyond the precision of the file);
- every value finite (not NaN, inf, or a Parquet null); at least one event; a finite, non-zero total weight
  (zero meaning |sum w| <= N eps sum |w|, i.e. zero up to the rounding of the sum).

A file that is not what its suffix says (a text file named .parquet, a Parquet file named .root, ...) is a
DataError, as is a ROOT file that uproot cannot read.
"""

from __future__ import annotations

import array
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_file, atomic_write_text
from hadrinv.data.validation import (
    DataError,
    as_float64_numpy,
    first_line,
    parquet_column_names,
    raise_first_bad,
    read_numeric_csv,
    read_parquet_numeric,
    require_format,
)
from hadrinv.physics.pwa import M_JPSI, M_PI0, M_PI_CHARGED, energy_momentum_violation, invariant_mass_squared

PARTICLES = ("gamma", "pi1", "pi2")
COMPONENTS = ("E", "px", "py", "pz")
COLUMNS = tuple(f"{p}_{c}" for p in PARTICLES for c in COMPONENTS)
WEIGHT = "weight"
TREE_NAME = "events"  # the tree write_events writes into a ROOT file
CSV_SUFFIXES, PARQUET_SUFFIXES, ROOT_SUFFIXES = (".csv",), (".parquet", ".pq"), (".root",)
_TREE_CLASSES = ("TTree", "TNtuple", "TNtupleD")  # and any class name containing "RNTuple"


@dataclass
class EventSample:
    """N events of J/psi -> gamma pi1 pi2: four-momenta (N, 4) float64 in GeV, (E, px, py, pz), J/psi rest frame."""

    gamma: torch.Tensor
    pi1: torch.Tensor
    pi2: torch.Tensor
    weight: torch.Tensor | None = None  # (N,) float64; None: every event weighs 1
    path: str = "simulated"

    def __len__(self) -> int:
        return int(self.gamma.shape[0])

    def total_weight(self) -> float:
        """The sum of the weights (the number of events when unweighted)."""
        return float(len(self)) if self.weight is None else float(self.weight.sum())


def mass2_allowance(p: torch.Tensor, tolerance_gev: float) -> torch.Tensor:
    """Per event (N,), GeV^2: the largest |change of m^2 = E^2 - |p|^2| when each component of the four-momenta
    p (N, 4) moves by at most tolerance_gev (first order 2 tol sum |p_mu|, evaluated at the true momenta which lie
    within tol of the measured ones; second order at most 3 tol^2)."""
    tol = float(tolerance_gev)
    return 2.0 * tol * (p.abs().sum(-1) + 4.0 * tol) + 3.0 * tol**2


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------


def read_events(
    path: str | Path, tree: str | None = None, pion_mass: float = M_PI_CHARGED, tolerance_gev: float = 1e-4
) -> EventSample:
    """Read and validate an event file (see the module docstring); raises a one-line DataError.

    The format follows the suffix: .csv, .parquet/.pq, .root. `tree` names the TTree of a ROOT file (default: the
    only one). `pion_mass` is the mass both pions must have (M_PI0 for pi0 pi0), `tolerance_gev` the absolute
    precision of each four-momentum component in GeV.
    """
    path = Path(path)
    if not tolerance_gev > 0:
        raise ValueError(f"tolerance_gev = {tolerance_gev} must be positive")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _read_csv(path, pion_mass, tolerance_gev)
    if suffix in PARQUET_SUFFIXES:
        values, n = _read_parquet(path)
        kind = "column"
    elif suffix in ROOT_SUFFIXES:
        values, n = _read_root(path, tree)
        kind = "branch"
    else:
        raise DataError(path, f"unknown file type {path.suffix!r}; expected .csv, .parquet (.pq) or .root")
    if n == 0:
        raise DataError(path, "no events")
    return _validated(path, values, pion_mass, tolerance_gev, lambda i: (None, f"event {i}: "), kind)


def _read_csv(path: Path, pion_mass: float, tolerance_gev: float) -> EventSample:
    rows: list[int] = []  # file line of each event: read_numeric_csv skips comments and blank lines
    parsed = array.array("d")  # the values of the rows read so far, to find an earlier bad event if parsing stops
    names: list[str] = []

    def keep_row(row: int, v: dict) -> None:
        if not names:
            names.extend(v)
        rows.append(row)
        parsed.extend(v.values())

    try:
        values = read_numeric_csv(path, COLUMNS, (WEIGHT,), keep_row)
    except DataError as exc:
        # A row that cannot be parsed (not a number, NaN, wrong field count) stops the parsing there; an earlier
        # row may hold a physics problem, and that one is the first bad event.
        if exc.row is not None and rows:
            table = np.frombuffer(parsed, dtype=np.float64).reshape(len(rows), len(names))
            earlier = {name: table[:, j] for j, name in enumerate(names)}
            try:
                _check_events(path, earlier, pion_mass, tolerance_gev, lambda i: (rows[i], ""), "column")
            except DataError as first:
                raise first from None
        raise
    return _validated(path, values, pion_mass, tolerance_gev, lambda i: (rows[i], ""), "column")


def _read_parquet(path: Path) -> tuple[dict[str, np.ndarray], int]:
    names = parquet_column_names(path)
    _check_names(path, names, "column")
    wanted = [name for name in COLUMNS + (WEIGHT,) if name in names]
    matrix, nulls = read_parquet_numeric(path, wanted)
    values = {}
    for j, name in enumerate(wanted):
        # a null is a missing value: marked so that the finiteness check reports it as such
        values[name] = matrix[:, j] if nulls is None else np.where(nulls[:, j], _NULL, matrix[:, j])
    return values, len(matrix)


# A NaN with a payload marks a Parquet null, so that the message can tell "null" from "nan".
_NULL = np.frombuffer(np.uint64(0x7FF8_0000_0000_0ABC).tobytes(), dtype=np.float64)[0]


def _read_root(path: Path, tree: str | None) -> tuple[dict[str, np.ndarray], int]:
    import uproot

    require_format(path, "ROOT")
    try:
        handle = uproot.open(path)
    except Exception as exc:  # uproot reports a damaged file in many ways (OSError, ValueError, its own errors)
        raise DataError(path, f"cannot read the ROOT file ({first_line(exc)})") from None
    with handle as f:
        try:
            classes = f.classnames(cycle=False)
            trees = sorted({name for name, cls in classes.items() if cls in _TREE_CLASSES or "RNTuple" in cls})
            if tree is None:
                if len(trees) != 1:
                    found = (
                        f"{len(trees)} trees ({', '.join(trees)})"
                        if trees
                        else "no TTree (objects: " + (", ".join(sorted(classes)) or "none") + ")"
                    )
                    raise DataError(path, f"{found}; pass tree=NAME to choose one")
                tree = trees[0]
            elif tree not in trees:
                raise DataError(path, f"no TTree named {tree!r}; trees in the file: {', '.join(trees) or 'none'}")
            t = f[tree]
            branches = list(t.keys())
            _check_names(path, branches, "branch", f" in tree {tree!r}")
            wanted = [name for name in COLUMNS + (WEIGHT,) if name in branches]
            for name in wanted:
                interpretation = getattr(t[name], "interpretation", None)  # TTree branches (RNTuple fields: see below)
                dtype = getattr(interpretation, "to_dtype", None)
                if interpretation is not None and (dtype is None or dtype.shape != () or dtype.kind not in "fiu"):
                    raise DataError(
                        path, f"branch {name} of tree {tree!r} holds {t[name].typename}; expected one number per event"
                    )
            arrays = t.arrays(wanted, library="np")
            n = int(t.num_entries)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(path, f"cannot read the ROOT file ({first_line(exc)})") from None
    values = {}
    for name in wanted:
        a = np.asarray(arrays[name])
        if a.ndim != 1 or a.dtype.kind not in "fiu":
            raise DataError(
                path,
                f"branch {name} of tree {tree!r} holds {a.dtype} values of shape {a.shape[1:]}; expected one number "
                "per event",
            )
        values[name] = a.astype(np.float64)
    return values, n


def _check_names(path: Path, present: list[str], kind: str, where: str = "") -> None:
    missing = [c for c in COLUMNS if c not in present]
    if missing:
        raise DataError(
            path, f"missing {kind}(es) {', '.join(missing)}{where}; expected {', '.join(COLUMNS)}[, {WEIGHT}]"
        )
    duplicated = sorted({c for c in present if present.count(c) > 1 and c in COLUMNS + (WEIGHT,)})
    if duplicated:
        raise DataError(path, f"{kind}(es) {', '.join(duplicated)} appear more than once{where}")


# ---------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------

Locate = Callable[[int], tuple[int | None, str]]  # event index -> (CSV line or None, message prefix)


def _validated(
    path: Path, values: dict[str, np.ndarray], pion_mass: float, tolerance_gev: float, locate: Locate, kind: str
) -> EventSample:
    _check_events(path, values, pion_mass, tolerance_gev, locate, kind)
    table = torch.from_numpy(np.stack([values[c] for c in COLUMNS], axis=1).astype(np.float64))
    gamma, pi1, pi2 = (table[:, 4 * k : 4 * k + 4].contiguous() for k in range(3))
    weight = None
    if WEIGHT in values:
        w = np.asarray(values[WEIGHT], dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            total, abs_sum = float(w.sum()), float(np.abs(w).sum())
        if not math.isfinite(total):
            raise DataError(path, f"the total weight is {total} (the weights overflow); it must be finite and non-zero")
        if total == 0.0 or (math.isfinite(abs_sum) and abs(total) <= len(w) * np.finfo(np.float64).eps * abs_sum):
            raise DataError(
                path, f"the total weight is zero (sum of {len(w)} weights = {total:g}); it must be non-zero"
            )
        weight = torch.from_numpy(w.copy())
    return EventSample(gamma, pi1, pi2, weight, str(path))


def _check_events(
    path: Path, values: dict[str, np.ndarray], pion_mass: float, tol: float, locate: Locate, kind: str
) -> None:
    """Raise DataError for the first event (in file order) that fails any check; no-op when all pass."""
    names = [c for c in COLUMNS + (WEIGHT,) if c in values]
    raw = np.stack([np.asarray(values[c], dtype=np.float64) for c in names], axis=1)
    n = raw.shape[0]
    if n == 0:
        return
    finite = np.isfinite(raw)
    clean = np.where(finite, raw, 0.0)  # so that the physics checks of a non-finite event do not warn
    table = torch.from_numpy(clean[:, : len(COLUMNS)])
    p = {name: table[:, 4 * k : 4 * k + 4] for k, name in enumerate(PARTICLES)}
    energies = table[:, 0::4]
    violation = energy_momentum_violation(p["gamma"], p["pi1"], p["pi2"], M_JPSI)
    m2 = {name: invariant_mass_squared(q) for name, q in p.items()}
    allowed = {name: mass2_allowance(q, tol) for name, q in p.items()}
    target = {"gamma": 0.0, "pi1": pion_mass**2, "pi2": pion_mass**2}
    mass_bad = {name: ((m2[name] - target[name]).abs() > allowed[name]).numpy() for name in PARTICLES}

    def describe_nonfinite(i: int) -> str:
        j = int(np.argmin(finite[i]))
        value = raw[i, j]
        shown = "null (a missing value)" if np.isnan(value) and value.tobytes() == _NULL.tobytes() else str(value)
        return f"{kind} {names[j]} is {shown}; every value must be a finite number"

    def describe_negative_energy(i: int) -> str:
        k = int(np.argmin(energies[i].numpy()))
        return (
            f"{PARTICLES[k]}_E = {float(energies[i, k]):.9g} GeV is negative "
            f"(energies must be >= 0 within tolerance_gev = {tol:g})"
        )

    def describe_violation(i: int) -> str:
        total = (p["gamma"][i] + p["pi1"][i] + p["pi2"][i]).tolist()
        off = [total[0] - M_JPSI] + total[1:]
        k = int(np.argmax(np.abs(off)))
        hint = "the four-momenta must be in GeV, in the J/psi rest frame"
        if abs(total[0] / 1000.0 - M_JPSI) < 0.01:
            hint = "the energies add up to M_JPSI in MeV: the four-momenta must be in GeV"
        shown = ", ".join(f"{x:.9g}" for x in total)
        return (
            f"energy-momentum not conserved: gamma + pi1 + pi2 = ({shown}) GeV, expected ({M_JPSI:g}, 0, 0, 0); "
            f"{COMPONENTS[k]} is off by {off[k]:.3g} GeV, beyond tolerance_gev = {tol:g} ({hint})"
        )

    def describe_photon(i: int) -> str:
        return (
            f"photon mass^2 = {float(m2['gamma'][i]):.4g} GeV^2 (m = {math.sqrt(abs(float(m2['gamma'][i]))):.4g} "
            "GeV); |m^2| must be "
            f"<= {float(allowed['gamma'][i]):.3g} GeV^2, what errors of tolerance_gev = {tol:g} in each component allow"
        )

    def describe_pion(name: str) -> Callable[[int], str]:
        def describe(i: int) -> str:
            mass2, bound = float(m2[name][i]), float(allowed[name][i])
            hint = ""
            for other, label in ((M_PI0, "M_PI0, the pi0 mass"), (M_PI_CHARGED, "M_PI_CHARGED, the charged-pion mass")):
                if other != pion_mass and abs(mass2 - other**2) <= bound:
                    hint = f" (this is {label}: pass pion_mass={label.split(',')[0]})"
            mass = f"{math.sqrt(mass2):.6g} GeV" if mass2 >= 0 else f"imaginary (m^2 = {mass2:.4g} GeV^2)"
            return (
                f"{name} mass = {mass}, expected pion_mass = {pion_mass:.8g} GeV: m^2 is off by "
                f"{mass2 - pion_mass**2:.3g} GeV^2, "
                f"beyond the {bound:.3g} GeV^2 that errors of tolerance_gev = {tol:g} in each component allow{hint}"
            )

        return describe

    # in the order a problem of one event is reported: the most basic first
    checks = [
        (~finite.all(axis=1), describe_nonfinite),
        ((energies < -tol).any(dim=1).numpy(), describe_negative_energy),
        ((violation > tol).numpy(), describe_violation),
        (mass_bad["gamma"], describe_photon),
        (mass_bad["pi1"], describe_pion("pi1")),
        (mass_bad["pi2"], describe_pion("pi2")),
    ]
    raise_first_bad(path, checks, locate, "events")


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def _columns_of(sample_or_tensors, weight) -> dict[str, np.ndarray]:
    if isinstance(sample_or_tensors, EventSample):
        momenta = (sample_or_tensors.gamma, sample_or_tensors.pi1, sample_or_tensors.pi2)
        weight = sample_or_tensors.weight if weight is None else weight
    else:
        momenta = tuple(sample_or_tensors)
        if len(momenta) != 3:
            raise ValueError(f"expected an EventSample or (gamma, pi1, pi2), got {len(momenta)} items")
    momenta = [as_float64_numpy(q) for q in momenta]
    n = momenta[0].shape[0] if momenta[0].ndim == 2 else -1
    for name, q in zip(PARTICLES, momenta):
        if q.ndim != 2 or q.shape != (n, 4):
            raise ValueError(f"{name} has shape {q.shape}; expected ({n if n >= 0 else 'N'}, 4) like gamma")
    columns = {
        f"{name}_{c}": np.ascontiguousarray(q[:, k])
        for name, q in zip(PARTICLES, momenta)
        for k, c in enumerate(COMPONENTS)
    }
    if weight is not None:
        w = as_float64_numpy(weight)
        if w.shape != (n,):
            raise ValueError(f"weight has shape {w.shape}; expected ({n},), one per event")
        columns[WEIGHT] = np.ascontiguousarray(w)
    return columns


def write_events(path: str | Path, sample_or_tensors, weight=None) -> Path:
    """Write events by suffix: .csv (floats via repr, exact), .parquet/.pq (float64 columns), .root (a TTree named
    `events` of float64 branches), each atomically. `sample_or_tensors` is an EventSample or (gamma, pi1, pi2) of
    shape (N, 4); `weight` (N,), when given, replaces the sample's. No physics checks: read_events does those."""
    path = Path(path)
    columns = _columns_of(sample_or_tensors, weight)
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        table = np.stack(list(columns.values()), axis=1).tolist()
        lines = [",".join(columns)] + [",".join(map(repr, row)) for row in table]
        return atomic_write_text(path, "\n".join(lines) + "\n")
    if suffix in PARQUET_SUFFIXES:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({name: pa.array(a, type=pa.float64()) for name, a in columns.items()})
        return atomic_write_file(path, lambda tmp: pq.write_table(table, tmp))
    if suffix in ROOT_SUFFIXES:
        import uproot

        def write_root(tmp: str) -> None:
            with uproot.recreate(tmp) as f:
                events = f.mktree(TREE_NAME, {name: np.float64 for name in columns})
                if len(columns[COLUMNS[0]]):
                    events.extend(columns)

        return atomic_write_file(path, write_root)
    raise ValueError(f"unknown file type {path.suffix!r}; expected .csv, .parquet (.pq) or .root")
