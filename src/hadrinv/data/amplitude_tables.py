"""Tables of phase-space points with their squared matrix elements: reader and writer (CSV, Parquet).

One row per phase-space point of a scattering process with n particles (n >= 3), any process. Columns:

    p1_E, p1_px, p1_py, p1_pz, p2_E, ..., pn_pz, amp2

- `p{i}_E, p{i}_px, p{i}_py, p{i}_pz`: the four-momentum of particle i in GeV, i = 1..n. The first `n_incoming`
  particles (default 2) are incoming, the rest outgoing. Momenta are the physical ones (incoming with positive
  energy), not the all-outgoing convention. Particles may be massive: no mass is checked.
- `amp2`: the squared matrix element |M|^2 of the point, positive.
- Any other column is ignored. n is found from the column names: i must run over 1..n without a gap, each
  particle with its four components; a gap or an incomplete particle is an error naming the missing column(s),
  and a column p0_* is refused (the particles are counted from 1).

Formats, by suffix:

- CSV (`.csv`): header line first; '#' comments and blank lines are skipped (see `read_numeric_csv`).
- Parquet (`.parquet`, `.pq`): one numeric (integer or floating) column per name.

Validation (vectorised over all rows; the FIRST bad row in file order is reported as a one-line DataError,
'FILE:LINE: problem' for CSV with the header on line 1, 'FILE: row k: problem' with k counted from 0 for Parquet):

- every value finite (not NaN, inf, or a Parquet null);
- amp2 > 0;
- the incoming energies add up to a positive energy E_in (the scale of the conservation check);
- momentum conservation: |sum of incoming - sum of outgoing four-momenta| <= rtol * E_in in each component
  (the component with the largest violation is reported, relative to E_in);
- at least `min_rows` rows.

A file that is not what its suffix says (a text file named .parquet, ...) is a DataError.
"""

from __future__ import annotations

import array
import csv
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_file, atomic_write_text
from hadrinv.data.validation import (
    DataError,
    as_float64_numpy,
    parquet_column_names,
    raise_first_bad,
    read_numeric_csv,
    read_parquet_numeric,
)

COMPONENTS = ("E", "px", "py", "pz")
AMP2 = "amp2"
MIN_PARTICLES = 3
CSV_SUFFIXES, PARQUET_SUFFIXES = (".csv",), (".parquet", ".pq")
# "p01_E" is not particle 1: leading zeros would make two spellings of one column
_MOMENTUM_COLUMN = re.compile(r"^p([1-9][0-9]*)_(E|px|py|pz)$")
_ZERO_COLUMN = re.compile(r"^p0+_(E|px|py|pz)$")


@dataclass
class AmplitudeTable:
    """N phase-space points of n particles: four-momenta (N, n, 4) float64 in GeV, (E, px, py, pz), the first
    `n_incoming` particles incoming; `amp2` (N,) float64, the squared matrix element of each point."""

    momenta: torch.Tensor
    amp2: torch.Tensor
    n_incoming: int = 2
    path: str = "in memory"

    def __len__(self) -> int:
        return int(self.momenta.shape[0])

    @property
    def n_particles(self) -> int:
        return int(self.momenta.shape[1])


def momentum_columns(n_particles: int) -> tuple[str, ...]:
    """The momentum column names of n particles, in file order: p1_E, p1_px, p1_py, p1_pz, p2_E, ..."""
    return tuple(f"p{i}_{c}" for i in range(1, n_particles + 1) for c in COMPONENTS)


def _check_n_incoming(n_incoming: int) -> int:
    if isinstance(n_incoming, bool) or not isinstance(n_incoming, (int, np.integer)) or n_incoming < 1:
        raise ValueError(f"n_incoming = {n_incoming!r} must be an integer >= 1")
    return int(n_incoming)


# ---------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------


def read_amplitudes(path: str | Path, n_incoming: int = 2, min_rows: int = 1, rtol: float = 1e-6) -> AmplitudeTable:
    """Read and validate an amplitude table (see the module docstring); raises a one-line DataError.

    The format follows the suffix: .csv, .parquet/.pq. `n_incoming`: how many of the particles (the first ones)
    are incoming. `min_rows`: the fewest rows accepted (one batch of the caller). `rtol`: momentum conservation
    is required per component to rtol times the sum of the incoming energies.
    """
    path = Path(path)
    n_incoming = _check_n_incoming(n_incoming)
    if isinstance(min_rows, bool) or not isinstance(min_rows, (int, np.integer)) or min_rows < 1:
        raise ValueError(f"min_rows = {min_rows!r} must be an integer >= 1")
    if not (math.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol = {rtol!r} must be finite and >= 0")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        n, values = _read_csv(path, n_incoming, rtol)
    elif suffix in PARQUET_SUFFIXES:
        n, values, nulls = _read_parquet(path, n_incoming)
        _check_rows(path, values, nulls, n, n_incoming, rtol, lambda i: (None, f"row {i}: "))
    else:
        raise DataError(path, f"unknown file type {path.suffix!r}; expected .csv or .parquet (.pq)")
    rows = len(values)
    if rows < min_rows:
        raise DataError(path, f"{rows} rows; at least {min_rows} needed (one batch)")
    table = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    momenta = table[:, : 4 * n].reshape(rows, n, 4).contiguous()
    return AmplitudeTable(momenta, table[:, 4 * n].contiguous(), n_incoming, str(path))


def _particle_count(path: Path, names: Sequence[str], n_incoming: int, row: int | None) -> int:
    """n from the column names, after checking that particles 1..n are complete and amp2 is present."""
    zero = [name for name in names if _ZERO_COLUMN.match(name)]
    if zero:
        raise DataError(path, f"column {zero[0]}: particles are numbered from 1 (p1_E, ...), not from 0", row)
    found = {int(m.group(1)) for m in map(_MOMENTUM_COLUMN.match, names) if m}
    if not found:
        shown = ", ".join(names[:12]) + (f", ... ({len(names)} columns)" if len(names) > 12 else "")
        raise DataError(
            path,
            f"missing momentum columns p1_E, p1_px, p1_py, p1_pz, p2_E, ... (particles 1..n, n >= {MIN_PARTICLES}); "
            f"columns found: {shown or 'none'}",
            row,
        )
    n = max(found)
    present = set(names)
    missing = [c for c in momentum_columns(n) if c not in present]
    if missing:
        raise DataError(
            path,
            f"missing column(s) {', '.join(missing)}: particles must be p1..p{n} without a gap, each with "
            f"{', '.join(COMPONENTS)}",
            row,
        )
    if n < MIN_PARTICLES:
        raise DataError(path, f"{n} particles (p1..p{n}); at least {MIN_PARTICLES} needed", row)
    if n_incoming >= n:
        raise DataError(path, f"{n} particles, n_incoming = {n_incoming}: at least one must be outgoing", row)
    if AMP2 not in present:
        raise DataError(path, f"missing column {AMP2} (the squared matrix element)", row)
    return n


def _csv_header(path: Path) -> tuple[list[str], int] | None:
    """The column names and line of the header, read as read_numeric_csv does; None where that would fail."""
    try:
        with open(path, "rb") as handle:
            for line_no, raw in enumerate(handle, start=1):
                line = raw.decode("utf-8-sig" if line_no == 1 else "utf-8").rstrip("\n").rstrip("\r")
                if "\x00" in line:
                    return None
                if line.strip() and not line.lstrip().startswith("#"):
                    return [h.strip() for h in next(csv.reader(io.StringIO(line)))], line_no
    except (OSError, UnicodeDecodeError):
        return None
    return None


Locate = Callable[[int], tuple[int | None, str]]  # row index -> (CSV line or None, message prefix)


def _read_csv(path: Path, n_incoming: int, rtol: float) -> tuple[int, np.ndarray]:
    header = _csv_header(path)
    if header is None:
        read_numeric_csv(path, (AMP2,))  # raises the reason: no such file, empty, binary, not UTF-8
        raise DataError(path, "cannot read the CSV header")
    n = _particle_count(path, header[0], n_incoming, header[1])
    columns = momentum_columns(n) + (AMP2,)
    rows: list[int] = []  # file line of each row: read_numeric_csv skips comments and blank lines
    parsed = array.array("d")  # the rows read so far, to find an earlier bad row if parsing stops
    locate = lambda i: (rows[i], "")

    def keep_row(row: int, v: dict) -> None:
        rows.append(row)
        parsed.extend(v[c] for c in columns)

    try:
        values = read_numeric_csv(path, columns, check_row=keep_row)
    except DataError as exc:
        # A row that cannot be parsed (not a number, NaN, wrong field count) stops the parsing there; an
        # earlier row may fail a check below, and that one is the first bad row.
        if exc.row is not None and rows:
            earlier = np.frombuffer(parsed, dtype=np.float64).reshape(len(rows), len(columns))
            try:
                _check_rows(path, earlier, None, n, n_incoming, rtol, locate)
            except DataError as first:
                raise first from None
        raise
    table = np.stack([values[c] for c in columns], axis=1)
    _check_rows(path, table, None, n, n_incoming, rtol, locate)
    return n, table


def _read_parquet(path: Path, n_incoming: int) -> tuple[int, np.ndarray, np.ndarray | None]:
    names = parquet_column_names(path)
    n = _particle_count(path, names, n_incoming, None)
    columns = momentum_columns(n) + (AMP2,)
    duplicated = sorted({c for c in columns if names.count(c) > 1})
    if duplicated:
        raise DataError(path, f"column(s) {', '.join(duplicated)} appear more than once")
    values, nulls = read_parquet_numeric(path, columns)
    return n, values, nulls


# ---------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------


def _check_rows(
    path: Path,
    raw: np.ndarray,
    nulls: np.ndarray | None,
    n: int,
    n_incoming: int,
    rtol: float,
    locate: Locate,
) -> None:
    """Raise DataError for the first row (in file order) that fails any check; no-op when all pass.

    raw: (N, 4 n + 1), the momentum columns in file order, then amp2; nulls: where a Parquet value was null.
    """
    rows = raw.shape[0]
    if rows == 0:
        return
    names = momentum_columns(n) + (AMP2,)
    finite = np.isfinite(raw)
    finite_row = finite.all(axis=1)
    clean = np.where(finite, raw, 0.0)  # so that the checks of a non-finite row do not warn
    p = clean[:, : 4 * n].reshape(rows, n, 4)
    amp2 = clean[:, 4 * n]
    with np.errstate(over="ignore", invalid="ignore"):
        e_in = p[:, :n_incoming, 0].sum(axis=1)
        off = p[:, :n_incoming].sum(axis=1) - p[:, n_incoming:].sum(axis=1)  # (N, 4)
        # negated so that an overflow to inf - inf = nan counts as a violation
        violated = ~(np.abs(off) <= rtol * e_in[:, None]).all(axis=1)
    energy_bad = finite_row & ~(e_in > 0)

    def describe_nonfinite(i: int) -> str:
        j = int(np.argmin(finite[i]))
        shown = "null (a missing value)" if nulls is not None and nulls[i, j] else str(raw[i, j])
        return f"column {names[j]} is {shown}; every value must be a finite number"

    def describe_amp2(i: int) -> str:
        return f"{AMP2} = {raw[i, 4 * n]:.9g}; the squared matrix element must be positive"

    def describe_energy(i: int) -> str:
        hint = ""
        if (p[i, :n_incoming, 0] < 0).any():
            hint = " (incoming momenta stored with flipped sign? they must be the physical ones, E > 0)"
        return (
            f"the incoming energies add up to {e_in[i]:.9g} GeV; it must be positive, the scale of the "
            f"momentum-conservation check{hint}"
        )

    def describe_violation(i: int) -> str:
        with np.errstate(over="ignore", invalid="ignore"):
            relative = np.abs(off[i]) / e_in[i]
        k = int(np.argmax(relative))
        shown = ", ".join(f"{x:.6g}" for x in off[i])
        hint = ""
        for other in range(1, n):
            if other == n_incoming:
                continue
            e_other = p[i, :other, 0].sum()
            other_off = p[i, :other].sum(axis=0) - p[i, other:].sum(axis=0)
            if e_other > 0 and (np.abs(other_off) <= rtol * e_other).all():
                hint = f" (it is conserved with n_incoming={other})"
                break
        return (
            f"momentum not conserved in {COMPONENTS[k]}: incoming - outgoing = ({shown}) GeV, a relative violation "
            f"of {relative[k]:.3g} of the incoming energy {e_in[i]:.9g} GeV, beyond rtol = {rtol:g}{hint}"
        )

    # in the order a problem of one row is reported: the most basic first
    checks = [
        (~finite_row, describe_nonfinite),
        (finite_row & ~(amp2 > 0), describe_amp2),
        (energy_bad, describe_energy),
        (finite_row & ~energy_bad & violated, describe_violation),
    ]
    raise_first_bad(path, checks, locate, "rows")


# ---------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------


def write_amplitudes(path: str | Path, momenta, amp2, n_incoming: int = 2) -> Path:
    """Write an amplitude table by suffix: .csv (floats via repr, so they read back exactly) or .parquet/.pq
    (float64 columns), atomically. `momenta` (N, n, 4) in GeV, the first `n_incoming` particles incoming; `amp2`
    (N,). Refuses (ValueError) wrong shapes, non-finite values and amp2 <= 0; momentum conservation is left to
    read_amplitudes."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise ValueError(f"unknown file type {path.suffix!r}; expected .csv or .parquet (.pq)")
    n_incoming = _check_n_incoming(n_incoming)
    p, a = as_float64_numpy(momenta), as_float64_numpy(amp2)
    if p.ndim != 3 or p.shape[2] != 4 or p.shape[1] < MIN_PARTICLES or p.shape[0] < 1:
        raise ValueError(f"momenta has shape {p.shape}; expected (N, n, 4) with N >= 1 and n >= {MIN_PARTICLES}")
    rows, n = p.shape[:2]
    if n_incoming >= n:
        raise ValueError(f"n_incoming = {n_incoming} with {n} particles: at least one must be outgoing")
    if a.shape != (rows,):
        raise ValueError(f"amp2 has shape {a.shape}; expected ({rows},), one per row of momenta")
    if not np.isfinite(p).all():
        i, j, k = (int(x[0]) for x in np.nonzero(~np.isfinite(p)))
        raise ValueError(f"momenta[{i}, {j}, {k}] = {p[i, j, k]}; every value must be finite")
    good = np.isfinite(a) & (a > 0)
    if not good.all():
        i = int(np.argmax(~good))
        raise ValueError(f"amp2[{i}] = {a[i]}; the squared matrix element must be finite and positive")
    names = momentum_columns(n) + (AMP2,)
    table = np.concatenate([p.reshape(rows, 4 * n), a[:, None]], axis=1)
    if suffix in CSV_SUFFIXES:
        lines = [",".join(names)] + [",".join(map(repr, row)) for row in table.tolist()]
        return atomic_write_text(path, "\n".join(lines) + "\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {name: pa.array(np.ascontiguousarray(table[:, j]), type=pa.float64()) for j, name in enumerate(names)}
    return atomic_write_file(path, lambda tmp: pq.write_table(pa.table(columns), tmp))
