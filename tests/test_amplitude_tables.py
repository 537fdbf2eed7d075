"""Amplitude tables (CSV, Parquet): exact round trips for any number of particles, and one-line DataErrors naming
the file, the first bad row (CSV line, header = line 1; Parquet 'row k' from 0), the column and the problem."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from hadrinv.data.amplitude_tables import AmplitudeTable, momentum_columns, read_amplitudes, write_amplitudes
from hadrinv.data.validation import DataError

FORMATS = [".csv", ".parquet", ".pq"]


def points(rows: int, n: int, n_incoming: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(rows, n, 4) four-momenta in GeV that conserve momentum (to rounding), massive outgoing particles, and
    positive amp2 spanning decades as real |M|^2 do."""
    rng = np.random.default_rng(seed)
    p = np.empty((rows, n, 4))
    out = rng.normal(scale=50.0, size=(rows, n - n_incoming, 3))
    mass = rng.uniform(0.0, 5.0, size=(rows, n - n_incoming))
    p[:, n_incoming:, 1:] = out
    p[:, n_incoming:, 0] = np.sqrt((out**2).sum(-1) + mass**2)
    total = p[:, n_incoming:].sum(axis=1)
    if n_incoming == 1:
        p[:, 0] = total
    else:
        # split the total between the incoming particles, with a recoil along z that cancels in the sum
        share = rng.dirichlet(np.ones(n_incoming), size=rows)
        p[:, :n_incoming] = share[:, :, None] * total[:, None, :]
        recoil = rng.normal(scale=10.0, size=rows)
        p[:, 0, 3] += recoil
        p[:, 1, 3] -= recoil
    return p, 10.0 ** rng.uniform(-8, 3, size=rows)


def flat(p: np.ndarray, amp2: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Column names and the (rows, 4 n + 1) table, a fresh copy to spoil."""
    rows, n = p.shape[:2]
    return list(momentum_columns(n)) + ["amp2"], np.concatenate([p.reshape(rows, 4 * n), amp2[:, None]], 1)


def write_raw(path, names: list[str], table: np.ndarray, comment: bool = True):
    """A table written around write_amplitudes (which refuses bad values). CSV: a comment line on top, so the
    header is line 2 and row k is on line k + 3."""
    if path.suffix == ".csv":
        lines = [",".join(names)] + [",".join(repr(float(x)) for x in row) for row in table]
        path.write_text(("# a table of |M|^2\n" if comment else "") + "\n".join(lines) + "\n")
    else:
        pq.write_table(pa.table({name: table[:, j] for j, name in enumerate(names)}), path)
    return path


def error(path, match: str, row: int | None = None, **kwargs) -> str:
    """The one-line DataError read_amplitudes gives, checked to name the file, the row (the CSV line or the
    0-based Parquet row) and to contain `match`."""
    with pytest.raises(DataError) as info:
        read_amplitudes(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    assert match in message, message
    if row is not None:
        where = f"{path}:{row}:" if path.suffix == ".csv" else f"{path}: row {row}:"
        assert message.startswith(where), message
    return message


def bad_row(path, k: int) -> int:
    """Where row k is reported: its CSV line (after write_raw's comment and header), or k itself for Parquet."""
    return k + 3 if path.suffix == ".csv" else k


# ---------------------------------------------------------------------------------------------------
# Round trips and layouts
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("n", [4, 5, 7])
def test_round_trip_is_exact(tmp_path, suffix, n):
    p, amp2 = points(40, n, seed=n)
    path = write_amplitudes(tmp_path / f"table{suffix}", torch.from_numpy(p), torch.from_numpy(amp2))
    table = read_amplitudes(path)
    assert isinstance(table, AmplitudeTable)
    assert len(table) == 40 and table.n_particles == n and table.n_incoming == 2 and table.path == str(path)
    assert table.momenta.dtype == torch.float64 and table.momenta.shape == (40, n, 4)
    assert table.amp2.dtype == torch.float64 and table.amp2.shape == (40,)
    assert torch.equal(table.momenta, torch.from_numpy(p)) and torch.equal(table.amp2, torch.from_numpy(amp2))


def test_writer_takes_numpy_and_leaves_no_temporary_file(tmp_path):
    p, amp2 = points(5, 3)
    write_amplitudes(tmp_path / "a.csv", p, amp2)
    write_amplitudes(tmp_path / "a.parquet", p, amp2)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.csv", "a.parquet"]
    assert pq.read_schema(tmp_path / "a.parquet").field("p3_pz").type == pa.float64()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_extra_columns_and_column_order_are_free(tmp_path, suffix):
    p, amp2 = points(10, 5)
    names, table = flat(p, amp2)
    order = np.random.default_rng(1).permutation(len(names))
    extra = {"weight": np.ones(10), "p01_E": np.zeros(10), "p5_mass": np.zeros(10), "P6_E": np.zeros(10)}
    names = [names[j] for j in order] + list(extra)
    table = np.concatenate([table[:, order], np.stack(list(extra.values()), 1)], 1)
    path = write_raw(tmp_path / f"t{suffix}", names, table)
    if suffix == ".parquet":  # a non-numeric extra column is ignored too
        pq.write_table(pq.read_table(path).append_column("process", pa.array(["gg>ggg"] * 10)), path)
    else:
        lines = path.read_text().splitlines()
        path.write_text("\n".join(lines[:1] + [lines[1] + ",process"] + [x + ",gg>ggg" for x in lines[2:]]) + "\n")
    read = read_amplitudes(path)
    assert read.n_particles == 5
    assert torch.equal(read.momenta, torch.from_numpy(p)) and torch.equal(read.amp2, torch.from_numpy(amp2))


def test_decay_with_one_incoming_particle(tmp_path):
    p, amp2 = points(20, 4, n_incoming=1)
    path = write_amplitudes(tmp_path / "decay.csv", p, amp2, n_incoming=1)
    assert read_amplitudes(path, n_incoming=1).n_incoming == 1
    # read as a 2 -> 2 table it violates conservation, and the message says which n_incoming would fit
    error(path, "(it is conserved with n_incoming=1)", row=2)


def test_parquet_integer_columns_are_read_as_float64(tmp_path):
    p = np.array([[[5, 0, 0, 5], [5, 0, 0, -5], [5, 3, 4, 0], [5, -3, -4, 0]]] * 3)
    columns = {name: p.reshape(3, -1)[:, j] for j, name in enumerate(momentum_columns(4))}
    path = tmp_path / "int.parquet"
    pq.write_table(pa.table({**columns, "amp2": np.array([1, 2, 3])}), path)
    table = read_amplitudes(path)
    assert table.momenta.dtype == torch.float64 and torch.equal(table.momenta, torch.from_numpy(p.astype(float)))


# ---------------------------------------------------------------------------------------------------
# Errors: one line, the file, the row, the column
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_no_such_file_and_empty_file(tmp_path, suffix):
    error(tmp_path / f"absent{suffix}", "no such file")
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    error(tmp_path / f"empty{suffix}", "empty file")


def test_unknown_suffix_and_a_text_file_named_parquet(tmp_path):
    p, amp2 = points(3, 4)
    text = write_amplitudes(tmp_path / "t.csv", p, amp2)
    error(text.rename(tmp_path / "t.txt"), "unknown file type '.txt'; expected .csv or .parquet")
    fake = tmp_path / "t.parquet"
    fake.write_text((tmp_path / "t.txt").read_text())
    error(fake, "not a Parquet file: it looks like a text file (CSV? then name it .csv)")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(
    ("drop", "match"),
    [
        (["amp2"], "missing column amp2"),
        (["p3_py"], "missing column(s) p3_py: particles must be p1..p4 without a gap"),
        ([f"p3_{c}" for c in ("E", "px", "py", "pz")], "missing column(s) p3_E, p3_px, p3_py, p3_pz"),
        (list(momentum_columns(4)), "missing momentum columns p1_E"),
        (list(momentum_columns(4)[8:]), "2 particles (p1..p2); at least 3 needed"),
    ],
)
def test_missing_columns(tmp_path, suffix, drop, match):
    names, table = flat(*points(5, 4))
    keep = [j for j, name in enumerate(names) if name not in drop]
    path = write_raw(tmp_path / f"t{suffix}", [names[j] for j in keep], table[:, keep])
    error(path, match, row=2 if suffix == ".csv" else None)  # CSV: the header line, after the comment


def test_particles_counted_from_zero_are_refused(tmp_path):
    names, table = flat(*points(5, 4))
    names = [name.replace("p4_", "p0_") for name in names]
    error(write_raw(tmp_path / "t.csv", names, table), "column p0_E: particles are numbered from 1", row=2)


def test_no_outgoing_particle(tmp_path):
    p, amp2 = points(5, 3)
    error(write_amplitudes(tmp_path / "t.pq", p, amp2), "3 particles, n_incoming = 3", n_incoming=3)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_value_names_column_and_row(tmp_path, suffix, value):
    names, table = flat(*points(30, 5))
    table[17, names.index("p4_px")] = value
    path = write_raw(tmp_path / f"t{suffix}", names, table)
    message = error(path, "p4_px", row=bad_row(path, 17))
    assert str(value) in message


def test_parquet_null_is_named_as_missing(tmp_path):
    names, table = flat(*points(6, 4))
    columns = {name: pa.array(table[:, j]) for j, name in enumerate(names)}
    columns["amp2"] = pa.array([1.0, 2.0, None, 4.0, 5.0, 6.0], type=pa.float64())
    pq.write_table(pa.table(columns), tmp_path / "null.parquet")
    error(tmp_path / "null.parquet", "column amp2 is null (a missing value)", row=2)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("value", [0.0, -2.5])
def test_non_positive_amp2_names_row_and_value(tmp_path, suffix, value):
    names, table = flat(*points(30, 4))
    table[[11, 20], -1] = value
    path = write_raw(tmp_path / f"t{suffix}", names, table)
    error(path, f"amp2 = {value:.9g}; the squared matrix element must be positive [2 of 30", row=bad_row(path, 11))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_momentum_not_conserved_names_row_component_and_violation(tmp_path, suffix):
    p, amp2 = points(30, 7)
    p[8, 4, 3] += 1e-3 * p[8, :2, 0].sum()  # pz of an outgoing particle, 1e-3 of the incoming energy
    p[25, 2, 1] += 1.0
    path = write_amplitudes(tmp_path / f"t{suffix}", p, amp2)
    message = error(path, "momentum not conserved in pz", row=10 if suffix == ".csv" else 8)
    assert "a relative violation of 0.001 of the incoming energy" in message and "rtol = 1e-06" in message
    assert "[2 of 30 rows fail this check]" in message
    assert len(read_amplitudes(path, rtol=2e-2)) == 30  # within a looser tolerance


def test_conservation_is_relative_to_the_incoming_energy(tmp_path):
    p, amp2 = points(10, 4)
    p *= 1e3  # the same table in MeV-sized numbers conserves momentum just as well
    p[3, 3, 0] += 1e-7 * p[3, :2, 0].sum()  # below rtol = 1e-6
    assert len(read_amplitudes(write_amplitudes(tmp_path / "t.csv", p, amp2))) == 10
    p[3, 3, 0] += 1e-5 * p[3, :2, 0].sum()
    error(write_amplitudes(tmp_path / "t.csv", p, amp2), "momentum not conserved in E", row=5)


def test_incoming_momenta_in_the_all_outgoing_convention(tmp_path):
    p, amp2 = points(10, 5)
    p[:, :2] *= -1.0
    error(write_amplitudes(tmp_path / "t.csv", p, amp2), "incoming momenta stored with flipped sign", row=2)


def test_first_bad_row_is_reported_even_when_a_later_row_cannot_be_parsed(tmp_path):
    names, table = flat(*points(30, 4))
    table[4, -1] = -1.0
    table[9, 0] = np.nan  # read_numeric_csv stops here; the amp2 of row 4 comes first in the file
    path = write_raw(tmp_path / "t.csv", names, table)
    error(path, "amp2 = -1", row=7)
    lines = path.read_text().splitlines()
    lines[10] = lines[10].replace(",", ",abc,", 1)  # a wrong field count on line 11, before the NaN
    path.write_text("\n".join(lines) + "\n")
    error(path, "amp2 = -1", row=7)


def test_non_numeric_values(tmp_path):
    names, table = flat(*points(5, 4))
    path = write_raw(tmp_path / "t.csv", names, table)
    lines = path.read_text().splitlines()
    lines[4] = "x" + lines[4]
    path.write_text("\n".join(lines) + "\n")
    error(path, "column p1_E: 'x", row=5)
    pq.write_table(pa.table({name: table[:, j].astype(str) for j, name in enumerate(names)}), tmp_path / "s.pq")
    error(tmp_path / "s.pq", "column p1_E has type string; expected numbers")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_min_rows(tmp_path, suffix):
    path = write_amplitudes(tmp_path / f"t{suffix}", *points(5, 4))
    assert len(read_amplitudes(path, min_rows=5)) == 5
    assert error(path, "5 rows; at least 6 needed (one batch)", min_rows=6) == (
        f"{path}: 5 rows; at least 6 needed (one batch)"
    )


def test_empty_parquet_table_is_below_min_rows(tmp_path):
    names, table = flat(*points(0, 4))
    error(write_raw(tmp_path / "t.parquet", names, table), "0 rows; at least 1 needed")


def test_bad_arguments_are_value_errors(tmp_path):
    path = write_amplitudes(tmp_path / "t.csv", *points(3, 4))
    for kwargs in ({"n_incoming": 0}, {"min_rows": 0}, {"rtol": -1.0}, {"rtol": float("nan")}):
        with pytest.raises(ValueError):
            read_amplitudes(path, **kwargs)


# ---------------------------------------------------------------------------------------------------
# Writing refuses what the reader would refuse
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spoil", "match"),
    [
        (lambda p, a: (p[:, :, :3], a), r"momenta has shape \(4, 4, 3\)"),
        (lambda p, a: (p[:, :2], a), r"momenta has shape \(4, 2, 4\)"),
        (lambda p, a: (p[0], a), r"momenta has shape \(4, 4\)"),
        (lambda p, a: (p[:0], a[:0]), r"N >= 1"),
        (lambda p, a: (p, a[:3]), r"amp2 has shape \(3,\); expected \(4,\)"),
        (lambda p, a: (np.where(np.arange(4)[:, None, None] == 2, np.nan, p), a), r"momenta\[2, 0, 0\] = nan"),
        (lambda p, a: (p, np.where(np.arange(4) == 1, 0.0, a)), r"amp2\[1\] = 0.0"),
        (lambda p, a: (p, np.where(np.arange(4) == 3, -1.0, a)), r"amp2\[3\] = -1.0"),
        (lambda p, a: (p, np.where(np.arange(4) == 0, np.nan, a)), r"amp2\[0\] = nan"),
    ],
)
def test_writer_refuses_bad_input(tmp_path, spoil, match):
    p, amp2 = spoil(*points(4, 4))
    with pytest.raises(ValueError, match=match):
        write_amplitudes(tmp_path / "t.csv", p, amp2)
    assert not any(tmp_path.iterdir())


def test_writer_refuses_unknown_suffix_and_too_many_incoming(tmp_path):
    with pytest.raises(ValueError, match=r"unknown file type '\.json'"):
        write_amplitudes(tmp_path / "t.json", *points(4, 4))
    with pytest.raises(ValueError, match="n_incoming = 4 with 4 particles"):
        write_amplitudes(tmp_path / "t.csv", *points(4, 4), n_incoming=4)
