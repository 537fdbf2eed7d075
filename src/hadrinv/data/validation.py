"""One error type for bad input: it names the file, the row and the problem in one line."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """Bad input data. str() is one line: 'FILE:ROW: problem' (row omitted when it does not apply).

    Rows are counted as lines of the file, the header being line 1, so a user can jump to them.
    """

    def __init__(self, path: str | Path, problem: str, row: int | None = None):
        self.path, self.problem, self.row = str(path), problem, row
        where = f"{self.path}:{row}" if row is not None else self.path
        super().__init__(f"{where}: {problem}")


def read_numeric_csv(
    path: str | Path,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
    check_row: Callable[[int, dict], None] | None = None,
    label_columns: tuple[str, ...] = (),
    missing_allowed: tuple[str, ...] = (),
) -> dict[str, np.ndarray]:
    """The columns of a numeric CSV file, validated: every reader of users' tables goes through here.

    Rejects a missing, empty, binary or non-UTF-8 file, missing or repeated columns, a wrong field count,
    a value that is not a finite number. Lines starting with '#' are comments. ``check_row(row, values)``
    gets each row's values by column name (the physics checks of the caller) and raises DataError.
    `label_columns`: required columns of labels (a channel, a target), read as stripped non-empty strings.
    `missing_allowed`: columns where an empty field or nan means "no value" (read as NaN); inf is still refused.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(path, "empty file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(path, "not a CSV text file (cannot decode as UTF-8)") from None
    if "\x00" in text:
        raise DataError(path, "not a CSV text file (contains binary data)")
    # split on newlines only: str.splitlines() also splits at form feeds and would shift the row numbers
    lines = [
        (n, line.rstrip("\r"))
        for n, line in enumerate(text.split("\n"), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise DataError(path, "empty file (only comments)")
    header_row, header_line = lines[0]
    header = [h.strip() for h in next(csv.reader(io.StringIO(header_line)))]
    missing = [c for c in required + label_columns if c not in header]
    if missing:
        expected = ", ".join(required + label_columns) + (f"[, {', '.join(optional)}]" if optional else "")
        raise DataError(
            path,
            f"missing column(s) {', '.join(missing)} in header {header_line.strip()!r}; expected {expected}",
            header_row,
        )
    duplicated = sorted({h for h in header if header.count(h) > 1 and h in required + optional + label_columns})
    if duplicated:
        raise DataError(path, f"column(s) {', '.join(duplicated)} appear more than once in the header", header_row)
    columns = {name: header.index(name) for name in required + optional if name in header}
    if len(lines) == 1:
        raise DataError(path, "no data rows after the header")
    labels = {name: header.index(name) for name in label_columns}
    values = {name: np.empty(len(lines) - 1) for name in columns}
    values.update({name: np.empty(len(lines) - 1, dtype=object) for name in labels})
    for i, (row, line) in enumerate(lines[1:]):
        fields = next(csv.reader(io.StringIO(line)))
        if len(fields) != len(header):
            raise DataError(path, f"{len(fields)} fields, header has {len(header)}", row)
        for name, col in labels.items():
            if not fields[col].strip():
                raise DataError(path, f"column {name} is empty", row)
            values[name][i] = fields[col].strip()
        for name, col in columns.items():
            text_value = fields[col].strip()
            if name in missing_allowed and (not text_value or text_value.lower() == "nan"):
                values[name][i] = math.nan
                continue
            try:
                value = float(text_value)
            except ValueError:
                raise DataError(path, f"column {name}: {text_value!r} is not a number", row) from None
            if not math.isfinite(value):
                raise DataError(path, f"column {name}: value is {text_value} (must be finite)", row)
            values[name][i] = value
        if check_row is not None:
            check_row(row, {name: v[i] for name, v in values.items()})
    return {name: v.astype(str) if name in labels else v for name, v in values.items()}


# Readers of measured values store them in float64 and square them (pulls, chi^2, Hessians). Beyond these
# magnitudes a value overflows when squared and summed, or an error turns a pull into an overflow, and a fit
# then fails in ways far from the cause (a chi^2 of inf, a Hessian that cannot be diagonalised, a minimiser
# that never converges). No cross section, correlation function or error in the units the readers document
# comes near these bounds, so such a value is a unit or export mistake and is refused with its row.
MAX_MAGNITUDE = 1e30
MIN_ERROR = 1e-30


def check_magnitudes(
    path: str | Path, row: int, values: dict, names: tuple[str, ...], errors: tuple[str, ...] = ()
) -> None:
    """DataError unless |value| <= MAX_MAGNITUDE for the columns `names` and MIN_ERROR <= value for the `errors`.

    Columns absent from `values` (optional ones) are skipped; call it after the sign checks of the caller.
    """
    for name in names:
        if name in values and not abs(values[name]) <= MAX_MAGNITUDE:
            problem = f"column {name}: {values[name]:g} is beyond +-{MAX_MAGNITUDE:g} (a unit or export mistake?)"
            raise DataError(path, problem, row)
    for name in errors:
        if name in values and not values[name] >= MIN_ERROR:
            problem = f"column {name}: {values[name]:g} is below {MIN_ERROR:g}: its squared pulls would overflow"
            raise DataError(path, problem, row)


def truth_path(path: str | Path) -> Path:
    """Where the generating parameters of a simulated data file are kept."""
    path = Path(path)
    return path.with_name(path.name + ".truth.json")


def read_truth(path: str | Path) -> dict:
    """The truth sidecar of a data file ({} when there is none)."""
    sidecar = truth_path(path)
    if not sidecar.is_file():
        return {}
    try:
        return json.loads(sidecar.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(sidecar, f"not valid JSON ({exc.msg})", exc.lineno) from None


# The first bytes of binary formats, to tell a user what a file really is when its suffix says otherwise.
PARQUET_MAGIC, ROOT_MAGIC, HDF5_MAGIC = b"PAR1", b"root", b"\x89HDF"


def looks_like(path: str | Path) -> str:
    """What a file looks like from its first bytes, for the message when it is not what its suffix says."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if not head:
        return "an empty file"
    if head.startswith(PARQUET_MAGIC):
        return "a Parquet file"
    if head.startswith(ROOT_MAGIC):
        return "a ROOT file"
    if head.startswith(HDF5_MAGIC):
        return "an HDF5 file"
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "binary data of unknown format"
    return "a text file (CSV? then name it .csv)" if "\x00" not in text else "binary data of unknown format"


def first_line(exc: BaseException) -> str:
    """'Type: first line of the message' of an exception from a third-party reader, to fit a one-line DataError."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def require_format(path: str | Path, name: str) -> None:
    """Stop unless ``path`` is a file whose first bytes say it is a ``name`` (Parquet, ROOT) file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    looks = looks_like(path)
    if looks != f"a {name} file":
        raise DataError(path, f"not a {name} file: it looks like {looks}")


def raise_first_bad(
    path: str | Path,
    checks: list[tuple[np.ndarray, Callable[[int], str]]],
    locate: Callable[[int], tuple[int | None, str]],
    noun: str = "rows",
) -> None:
    """Stop at the first bad row of a vectorised check: ``checks`` pairs a boolean mask over the rows with a
    description of row i; ``locate(i)`` gives its file line (or None) and a prefix ("event 7: "). The message
    also counts the rows that fail the same check, so a user sees at once whether one row or all are bad."""
    if not checks:
        return
    n = len(checks[0][0])
    bad = np.zeros(n, dtype=bool)
    for mask, _ in checks:
        bad |= mask
    if not bad.any():
        return
    i = int(np.argmax(bad))
    for mask, describe in checks:
        if mask[i]:
            count = int(mask.sum())
            more = f" [{count} of {n} {noun} fail this check]" if count > 1 else ""
            row, prefix = locate(i)
            raise DataError(path, prefix + describe(i) + more, row)


def as_float64_numpy(x) -> np.ndarray:
    """A tensor or array-like as a float64 numpy array (on the CPU, detached)."""
    if hasattr(x, "detach"):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def parquet_column_names(path: str | Path) -> list[str]:
    """The column names of a Parquet file; a file that is not Parquet or cannot be read is a DataError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    require_format(path, "Parquet")
    try:
        return list(pq.ParquetFile(path).schema_arrow.names)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(path, f"cannot read the Parquet file ({first_line(exc)})") from None


def read_parquet_numeric(path: str | Path, names: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray | None]:
    """(values (N, C) float64, nulls (N, C) bool or None) of the named columns of a Parquet file, which must be
    numbers (integers and booleans are converted); a null reads as NaN and is flagged in ``nulls``, so that the
    caller's finiteness check can name it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = Path(path)
    require_format(path, "Parquet")
    try:
        handle = pq.ParquetFile(path)
        for name in names:
            dtype = handle.schema_arrow.field(name).type
            if not (pa.types.is_floating(dtype) or pa.types.is_integer(dtype) or pa.types.is_boolean(dtype)):
                raise DataError(path, f"column {name} has type {dtype}; expected numbers (float64)")
        table = handle.read(columns=list(names))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"cannot read the Parquet file ({first_line(exc)})") from None
    values = np.empty((table.num_rows, len(names)), dtype=np.float64)
    nulls = None
    for j, name in enumerate(names):
        column = table.column(name)
        values[:, j] = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
        if column.null_count:
            if nulls is None:
                nulls = np.zeros(values.shape, dtype=bool)
            nulls[:, j] = pc.is_null(column).to_numpy(zero_copy_only=False)
            values[nulls[:, j], j] = np.nan
    return values, nulls
