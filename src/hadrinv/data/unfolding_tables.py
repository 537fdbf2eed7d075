"""Tables for unfolding: a paired Monte Carlo sample and measured data, per observable.

The MC table holds, for each observable NAME, the particle-level column ``gen_NAME`` and the detector-level column
``reco_NAME`` of the same event, and an optional non-negative ``weight``. An event that was not reconstructed
(the detector's inefficiency) has every reco value missing: NaN, or an empty CSV field, or a Parquet null. An event
is reconstructed in all observables or in none: a row with some reco values missing and others not is refused,
since no unfolding method could say what it means. The data table holds ``reco_NAME`` for the same observables
(other columns are ignored) and an optional ``weight``. Any other column of either table is ignored.

Readers validate and stop with one DataError line naming the file, the row and the problem: a gen column without
its reco partner (or the reverse), no observable common to MC and data, a missing or non-finite gen value, a
non-finite data value, a negative weight, no events. CSV (``.csv``) and Parquet (``.parquet``, ``.pq``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hadrinv.data.validation import (
    DataError,
    parquet_column_names,
    raise_first_bad,
    read_numeric_csv,
    read_parquet_numeric,
)

GEN, RECO, WEIGHT = "gen_", "reco_", "weight"
CSV_SUFFIXES, PARQUET_SUFFIXES = (".csv",), (".parquet", ".pq")


@dataclass
class UnfoldingMC:
    """gen and reco values (N, K) of ``observables``, reco NaN for events not reconstructed; weight (N,) or None."""

    observables: tuple[str, ...]
    gen: np.ndarray
    reco: np.ndarray
    weight: np.ndarray | None
    path: str

    @property
    def reconstructed(self) -> np.ndarray:
        return np.isfinite(self.reco).all(axis=1)

    def __len__(self) -> int:
        return len(self.gen)


@dataclass
class UnfoldingData:
    """Detector-level values (M, K) of ``observables``; weight (M,) or None."""

    observables: tuple[str, ...]
    reco: np.ndarray
    weight: np.ndarray | None
    path: str

    def __len__(self) -> int:
        return len(self.reco)


def _names(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(path, "no such file")
    if suffix in PARQUET_SUFFIXES:
        return parquet_column_names(path)
    if suffix not in CSV_SUFFIXES:
        raise DataError(path, f"unknown file type {path.suffix!r}; expected .csv or .parquet (.pq)")
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for line in text.split("\n"):
        if line.strip() and not line.lstrip().startswith("#"):
            return [h.strip() for h in line.split(",")]
    raise DataError(path, "empty file")


def _mc_observables(path: Path, names: list[str]) -> tuple[str, ...]:
    gen = [n[len(GEN) :] for n in names if n.startswith(GEN)]
    reco = [n[len(RECO) :] for n in names if n.startswith(RECO)]
    unpaired = [f"{GEN}{n} (no {RECO}{n})" for n in gen if n not in reco]
    unpaired += [f"{RECO}{n} (no {GEN}{n})" for n in reco if n not in gen]
    if unpaired:
        raise DataError(path, f"unpaired column(s): {', '.join(unpaired)}; the MC needs gen_NAME and reco_NAME")
    if not gen:
        raise DataError(path, "no gen_NAME / reco_NAME column pairs")
    return tuple(gen)


def _read(path: Path, columns: list[str], missing_allowed: tuple[str, ...]):
    """(values (N, C), NaN where a value is missing and allowed to be; locate(i): the row's file line or label)."""
    if path.suffix.lower() in CSV_SUFFIXES:
        lines: list[int] = []
        table = read_numeric_csv(
            path, tuple(columns), check_row=lambda row, _: lines.append(row), missing_allowed=missing_allowed
        )
        return np.stack([table[c] for c in columns], axis=1), lambda i: (lines[i], "")
    values, _ = read_parquet_numeric(path, columns)  # a null reads as NaN
    if len(values) == 0:
        raise DataError(path, "no events")
    return values, lambda i: (None, f"event {i}: ")


def _check_weight(path: Path, weight: np.ndarray, locate) -> None:
    bad = ~np.isfinite(weight) | (weight < 0)
    raise_first_bad(path, [(bad, lambda i: f"weight {float(weight[i]):g} must be finite and >= 0")], locate, "events")
    if not weight.sum() > 0:
        raise DataError(path, "the weights sum to zero")


def read_unfolding_mc(path: str | Path, observables: tuple[str, ...] | None = None) -> UnfoldingMC:
    """The paired MC table; ``observables`` selects some of its pairs (default: all, in the file's order)."""
    path = Path(path)
    names = _names(path)
    available = _mc_observables(path, names)
    if observables is not None:
        unknown = [o for o in observables if o not in available]
        if unknown:
            raise DataError(path, f"no gen/reco pair for {', '.join(unknown)}; the MC has {', '.join(available)}")
    chosen = tuple(observables) if observables is not None else available
    reco_columns = [RECO + o for o in chosen]
    columns = [GEN + o for o in chosen] + reco_columns + ([WEIGHT] if WEIGHT in names else [])
    values, locate = _read(path, columns, tuple(reco_columns))
    k = len(chosen)
    gen, reco = values[:, :k], values[:, k : 2 * k]
    missing = np.isnan(reco)
    partial = missing.any(axis=1) & ~missing.all(axis=1)

    def describe_gen(i: int) -> str:
        name = GEN + chosen[int(np.argmax(~np.isfinite(gen[i])))]
        return f"{name} is missing or not finite (every MC event needs its particle-level values)"

    def describe_partial(i: int) -> str:
        absent = [RECO + o for o, m in zip(chosen, missing[i], strict=True) if m]
        present = [RECO + o for o, m in zip(chosen, missing[i], strict=True) if not m]
        return (
            f"{', '.join(absent)} missing but {', '.join(present)} not: an event is reconstructed in all "
            "observables or in none"
        )

    raise_first_bad(
        path,
        [
            (~np.isfinite(gen).all(axis=1), describe_gen),
            (np.isinf(reco).any(axis=1), lambda i: "a reco value is infinite (use NaN for a lost event)"),
            (partial, describe_partial),
        ],
        locate,
        "events",
    )
    weight = values[:, -1].copy() if WEIGHT in names else None
    if weight is not None:
        _check_weight(path, weight, locate)
    return UnfoldingMC(chosen, np.ascontiguousarray(gen), np.ascontiguousarray(reco), weight, str(path))


def read_unfolding_data(path: str | Path, observables: tuple[str, ...]) -> UnfoldingData:
    """The data table's reco columns of the MC's ``observables`` (those it has; at least one in common)."""
    path = Path(path)
    names = _names(path)
    common = tuple(o for o in observables if RECO + o in names)
    if not common:
        have = ", ".join(n for n in names if n.startswith(RECO)) or "no reco_NAME column"
        raise DataError(path, f"no observable in common with the MC ({', '.join(observables)}); the data has {have}")
    columns = [RECO + o for o in common] + ([WEIGHT] if WEIGHT in names else [])
    values, locate = _read(path, columns, ())
    if len(values) == 0:
        raise DataError(path, "no events")
    weight = values[:, -1].copy() if WEIGHT in names else None
    reco = values[:, : len(common)]
    bad = ~np.isfinite(reco).all(axis=1)
    raise_first_bad(path, [(bad, lambda i: "a reco value is missing or not finite")], locate, "events")
    if weight is not None:
        _check_weight(path, weight, locate)
    return UnfoldingData(common, np.ascontiguousarray(reco), weight, str(path))
