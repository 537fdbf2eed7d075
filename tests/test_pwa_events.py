"""J/psi -> gamma pi pi event files (CSV, Parquet, ROOT): exact round trips, and one-line DataErrors naming the
file, the first bad row (CSV line) or event (Parquet/ROOT, 0-based) and the problem."""

from __future__ import annotations

import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import uproot

from hadrinv.data.pwa_events import COLUMNS, EventSample, read_events, write_events
from hadrinv.data.validation import DataError
from hadrinv.physics.pwa import M_PI0, M_PI_CHARGED, phase_space_events

torch.set_num_threads(1)

N = 1000
EVENTS = phase_space_events(N, generator=torch.Generator().manual_seed(0))
PI0_EVENTS = phase_space_events(10, masses=(0.0, M_PI0, M_PI0), generator=torch.Generator().manual_seed(1))
MASSIVE_PHOTON_EVENTS = phase_space_events(
    10, masses=(0.05, M_PI_CHARGED, M_PI_CHARGED), generator=torch.Generator().manual_seed(2)
)
BINARY = [".parquet", ".root"]


def table() -> np.ndarray:
    """The events as an (N, 12) array in COLUMNS order, a fresh copy to spoil."""
    return torch.cat(EVENTS, dim=1).numpy().copy()


def momenta(t: np.ndarray):
    return tuple(torch.from_numpy(np.ascontiguousarray(t[:, 4 * k : 4 * k + 4])) for k in range(3))


def col(name: str) -> int:
    return COLUMNS.index(name)


def write_csv_with_comment(path, t, weight=None):
    """write_events, then a comment line on top: the header is line 2 and event k is on line k + 3."""
    write_events(path, momenta(t), weight=weight)
    path.write_text("# J/psi -> gamma pi+ pi-, GeV\n" + path.read_text())
    return path


def write_columns(path, columns: dict):
    """A Parquet file or a ROOT TTree 'events' with exactly these columns, bypassing write_events."""
    if path.suffix == ".parquet":
        pq.write_table(pa.table(columns), path)
    else:
        with uproot.recreate(path) as f:
            f.mktree("events", {name: np.asarray(a).dtype for name, a in columns.items()})
            f["events"].extend(columns)
    return path


def error_of(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_events(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".pq", ".root"])
def test_round_trip_is_exact(tmp_path, suffix, weighted):
    gamma, pi1, pi2 = EVENTS
    weight = None
    if weighted:  # background subtraction: some weights negative
        weight = torch.randn(N, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.5
        assert (weight < 0).sum() > 100
    path = write_events(tmp_path / "sub" / f"events{suffix}", (gamma, pi1, pi2), weight=weight)
    assert path == tmp_path / "sub" / f"events{suffix}"
    assert os.listdir(path.parent) == [path.name]  # no temporary file left behind
    sample = read_events(path)
    assert isinstance(sample, EventSample) and len(sample) == N and sample.path == str(path)
    for got, want in zip((sample.gamma, sample.pi1, sample.pi2), EVENTS):
        assert got.dtype == torch.float64 and got.shape == (N, 4) and torch.equal(got, want)
    if weighted:
        assert sample.weight.dtype == torch.float64 and torch.equal(sample.weight, weight)
        assert sample.total_weight() == pytest.approx(float(weight.sum()), rel=1e-12)
    else:
        assert sample.weight is None and sample.total_weight() == float(N)
    # the sample writes back to the same content
    again = read_events(write_events(tmp_path / f"again{suffix}", sample))
    assert torch.equal(again.pi2, pi2) and (again.weight is None) == (not weighted)


def test_file_layouts(tmp_path):
    csv = write_events(tmp_path / "e.csv", EVENTS, weight=torch.ones(N, dtype=torch.float64))
    assert csv.read_text().splitlines()[0] == ",".join(COLUMNS) + ",weight"
    root = write_events(tmp_path / "e.root", EVENTS)
    with uproot.open(root) as f:
        assert f.classnames() == {"events;1": "TTree"}
        assert f["events"].keys() == list(COLUMNS)
    parquet = write_events(tmp_path / "e.parquet", EVENTS)
    assert pq.read_schema(parquet).names == list(COLUMNS)


def test_weight_argument_replaces_the_samples_and_writer_rejects_bad_shapes(tmp_path):
    sample = EventSample(*EVENTS, weight=torch.ones(N, dtype=torch.float64))
    path = write_events(tmp_path / "e.csv", sample, weight=np.full(N, 2.0))
    assert read_events(path).total_weight() == 2.0 * N
    with pytest.raises(ValueError, match=r"weight has shape \(999,\)"):
        write_events(tmp_path / "x.csv", EVENTS, weight=torch.ones(N - 1))
    with pytest.raises(ValueError, match=r"pi2 has shape \(1000, 3\)"):
        write_events(tmp_path / "x.csv", (EVENTS[0], EVENTS[1], EVENTS[2][:, :3]))
    with pytest.raises(ValueError, match="unknown file type '.txt'"):
        write_events(tmp_path / "x.txt", EVENTS)
    assert not any(p.name.startswith("x") for p in tmp_path.iterdir())


def test_negative_weights_are_accepted(tmp_path):
    weight = torch.where(torch.arange(N) % 3 == 0, -1.0, 1.0).double()
    assert read_events(write_events(tmp_path / "e.csv", EVENTS, weight=weight)).total_weight() == float(weight.sum())
    # a sideband sample, all weights negative, to be added to the signal sample
    assert (
        read_events(write_events(tmp_path / "side.root", EVENTS, weight=-torch.ones(N).double())).total_weight() == -N
    )


def test_tolerance_is_the_precision_of_each_component(tmp_path):
    rounded = np.round(table(), 5)  # 10 keV: errors <= 5e-6 per component
    assert len(read_events(write_events(tmp_path / "r5.parquet", momenta(rounded)))) == N
    rounded = np.round(table(), 4)  # errors <= 5e-5 per component, up to 1.5e-4 in a sum of three
    assert "not conserved" in error_of(write_events(tmp_path / "r4.parquet", momenta(rounded)))
    assert len(read_events(tmp_path / "r4.parquet", tolerance_gev=2e-4)) == N
    t = table()
    t[5, col("pi1_px")] += 5e-4  # px off by 5e-4 GeV: beyond the default 1e-4, within 1e-3
    path = write_events(tmp_path / "off.csv", momenta(t))
    assert error_of(path).startswith(f"{path}:7:")
    assert len(read_events(path, tolerance_gev=1e-3)) == N


def test_pi0_pi0_events_with_their_pion_mass(tmp_path):
    path = write_events(tmp_path / "pi0.root", PI0_EVENTS)
    assert len(read_events(path, pion_mass=M_PI0)) == 10
    message = error_of(path)
    assert message.startswith(f"{path}: event 0: pi1 mass = 0.134977 GeV") and "pass pion_mass=M_PI0" in message
    assert "[10 of 10 events fail this check]" in message


# ---------------------------------------------------------------------------------------------------
# Bad CSV: the exact line of the first bad event
# ---------------------------------------------------------------------------------------------------

K = 17  # the spoiled event, on line K + 3


def _nan(t):
    t[K, col("pi1_px")] = np.nan


def _inf(t):
    t[K, col("gamma_E")] = np.inf


def _energy(t):
    t[K, col("pi1_E")] += 1e-2


def _momentum(t):
    t[K, col("gamma_pz")] += 1e-3


def _pion_mass(t):
    t[K] = torch.cat(PI0_EVENTS, dim=1)[0].numpy()


def _photon_mass(t):
    t[K] = torch.cat(MASSIVE_PHOTON_EVENTS, dim=1)[0].numpy()


def _negative_energy(t):
    t[K, 8:12] *= -1.0


BAD_CSV = {
    "nan": (_nan, r"column pi1_px: value is nan \(must be finite\)"),
    "inf": (_inf, r"column gamma_E: value is inf \(must be finite\)"),
    "energy not conserved": (
        _energy,
        r"energy-momentum not conserved: .* E is off by 0\.01 GeV, beyond tolerance_gev = 0\.0001",
    ),
    "momentum not conserved": (_momentum, r"energy-momentum not conserved: .* pz is off by 0\.001 GeV"),
    "wrong pion mass": (
        _pion_mass,
        r"pi1 mass = 0\.134977 GeV, expected pion_mass = 0\.13957039 GeV: .*pass pion_mass=M_PI0\)$",
    ),
    "photon mass": (_photon_mass, r"photon mass\^2 = 0\.0025 GeV\^2 \(m = 0\.05 GeV\); \|m\^2\| must be <= "),
    "negative energy": (_negative_energy, r"pi2_E = -[0-9.]+ GeV is negative"),
}


@pytest.mark.parametrize("case", BAD_CSV)
def test_bad_csv_event_names_its_line(tmp_path, case):
    spoil, pattern = BAD_CSV[case]
    t = table()
    spoil(t)
    path = write_csv_with_comment(tmp_path / "bad.csv", t)
    message = error_of(path)
    assert message.startswith(f"{path}:{K + 3}:")
    assert re.search(pattern, message), message


def test_csv_reports_the_first_bad_event_even_when_a_later_row_does_not_parse(tmp_path):
    t = table()
    t[900, col("pi2_py")] = np.nan  # read_numeric_csv stops on line 903
    t[40, col("pi1_E")] += 1e-2  # but line 43 comes first
    path = write_csv_with_comment(tmp_path / "two.csv", t)
    message = error_of(path)
    assert message.startswith(f"{path}:43: energy-momentum not conserved")
    t = table()
    t[900] = torch.cat(PI0_EVENTS, dim=1)[0].numpy()
    _negative_energy(t)
    path = write_csv_with_comment(tmp_path / "order.csv", t)
    assert error_of(path).startswith(f"{path}:{K + 3}: pi2_E")


def test_csv_in_mev_is_caught_on_the_first_event(tmp_path):
    path = write_csv_with_comment(tmp_path / "mev.csv", table() * 1000.0)
    message = error_of(path)
    assert message.startswith(f"{path}:3: energy-momentum not conserved") and "in MeV" in message


def test_csv_missing_column_names_the_header_line(tmp_path):
    path = write_csv_with_comment(tmp_path / "e.csv", table())
    lines = path.read_text().splitlines()
    drop = lines[1].split(",").index("pi2_pz")
    path.write_text(
        "\n".join([lines[0]] + [",".join(f for j, f in enumerate(line.split(",")) if j != drop) for line in lines[1:]])
        + "\n"
    )
    message = error_of(path)
    assert message.startswith(f"{path}:2: missing column(s) pi2_pz") and "expected gamma_E, gamma_px" in message


def test_csv_zero_events_and_bad_total_weights(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    assert error_of(path) == f"{path}: no data rows after the header"
    alternating = torch.where(torch.arange(N) % 2 == 0, 1.0, -1.0).double()
    path = write_csv_with_comment(tmp_path / "zero.csv", table(), weight=alternating)
    assert error_of(path).startswith(f"{path}: the total weight is zero")
    path = write_csv_with_comment(tmp_path / "huge.csv", table(), weight=torch.full((N,), 1e308, dtype=torch.float64))
    assert error_of(path).startswith(f"{path}: the total weight is inf")
    path = write_csv_with_comment(tmp_path / "nanw.csv", table(), weight=np.where(np.arange(N) == K, np.nan, 1.0))
    assert error_of(path).startswith(f"{path}:{K + 3}: column weight: value is nan")


# ---------------------------------------------------------------------------------------------------
# Bad Parquet and ROOT: 'event N' (0-based) of the first bad event
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", BINARY)
def test_binary_missing_column(tmp_path, suffix):
    t = table()
    columns = {name: t[:, j] for j, name in enumerate(COLUMNS) if name not in ("pi1_E", "gamma_py")}
    path = write_columns(tmp_path / f"e{suffix}", columns)
    kind = "column" if suffix == ".parquet" else "branch"
    message = error_of(path)
    assert message.startswith(f"{path}: missing {kind}(es) gamma_py, pi1_E") and "expected gamma_E, gamma_px" in message


@pytest.mark.parametrize("suffix", BINARY)
@pytest.mark.parametrize("case", ["nan", "energy not conserved", "wrong pion mass"])
def test_binary_bad_event_names_its_index(tmp_path, suffix, case):
    spoil, pattern = BAD_CSV[case]
    t = table()
    spoil(t)
    path = write_events(tmp_path / f"bad{suffix}", momenta(t))
    message = error_of(path)
    assert message.startswith(f"{path}: event {K}: ")
    if case == "nan":
        assert f"{'column' if suffix == '.parquet' else 'branch'} pi1_px is nan" in message
    else:
        assert re.search(pattern, message), message


@pytest.mark.parametrize("suffix", BINARY)
def test_binary_reports_the_first_bad_event_and_zero_events(tmp_path, suffix):
    t = table()
    t[900, col("pi2_py")] = np.nan
    t[40] = torch.cat(PI0_EVENTS, dim=1)[0].numpy()
    path = write_events(tmp_path / f"two{suffix}", momenta(t))
    assert error_of(path).startswith(f"{path}: event 40: pi1 mass")
    path = write_events(tmp_path / f"none{suffix}", momenta(table()[:0]))
    assert error_of(path) == f"{path}: no events"


@pytest.mark.parametrize("suffix", BINARY)
def test_file_that_is_not_what_its_suffix_says(tmp_path, suffix):
    text = tmp_path / f"text{suffix}"
    text.write_text(",".join(COLUMNS) + "\n1,2,3\n")
    assert (
        error_of(text) == f"{text}: not a {'Parquet' if suffix == '.parquet' else 'ROOT'} file: "
        "it looks like a text file (CSV? then name it .csv)"
    )
    other = write_events(tmp_path / f"e{'.root' if suffix == '.parquet' else '.parquet'}", EVENTS)
    swapped = tmp_path / f"swapped{suffix}"
    swapped.write_bytes(other.read_bytes())
    assert error_of(swapped).endswith(f"it looks like a {'ROOT' if suffix == '.parquet' else 'Parquet'} file")
    missing = tmp_path / f"missing{suffix}"
    assert error_of(missing) == f"{missing}: no such file"


def test_other_mislabelled_or_unknown_files(tmp_path):
    csv = tmp_path / "e.csv"
    csv.write_bytes(write_events(tmp_path / "e.parquet", EVENTS).read_bytes())
    assert error_of(csv).startswith(f"{csv}: not a CSV text file")
    truncated = tmp_path / "cut.parquet"
    truncated.write_bytes((tmp_path / "e.parquet").read_bytes()[:200])
    assert error_of(truncated).startswith(f"{truncated}: cannot read the Parquet file")
    other = tmp_path / "e.txt"
    other.write_text("x\n")
    assert error_of(other) == f"{other}: unknown file type '.txt'; expected .csv, .parquet (.pq) or .root"


def test_root_tree_selection(tmp_path):
    path = tmp_path / "two.root"
    t = table()
    with uproot.recreate(path) as f:
        for name, rows in (("signal", t), ("sideband", t[:10])):
            f.mktree(name, {c: np.float64 for c in COLUMNS})
            f[name].extend({c: rows[:, j] for j, c in enumerate(COLUMNS)})
        f["mass"] = np.histogram(np.arange(4.0))
    assert error_of(path) == f"{path}: 2 trees (sideband, signal); pass tree=NAME to choose one"
    assert len(read_events(path, tree="sideband")) == 10 and len(read_events(path, tree="signal")) == N
    assert error_of(path, tree="nope") == f"{path}: no TTree named 'nope'; trees in the file: sideband, signal"
    assert error_of(path, tree="mass").startswith(f"{path}: no TTree named 'mass'")
    empty = tmp_path / "hist.root"
    with uproot.recreate(empty) as f:
        f["mass"] = np.histogram(np.arange(4.0))
    assert error_of(empty) == f"{empty}: no TTree (objects: mass); pass tree=NAME to choose one"


def test_root_branch_that_is_not_one_number_per_event(tmp_path):
    awkward = pytest.importorskip("awkward")
    path = tmp_path / "jagged.root"
    t = table()
    with uproot.recreate(path) as f:
        f.mktree("events", {**{c: np.float64 for c in COLUMNS}, "weight": "var * float64"})
        f["events"].extend({**{c: t[:, j] for j, c in enumerate(COLUMNS)}, "weight": awkward.Array([[1.0]] * N)})
    message = error_of(path)
    assert (
        message.startswith(f"{path}: branch weight of tree 'events' holds")
        and "expected one number per event" in message
    )


def test_root_tree_written_by_assignment_reads_back(tmp_path):
    # f[name] = {...} writes an RNTuple with uproot >= 5.7 (a TTree before): both read the same
    path = tmp_path / "assigned.root"
    t = table()
    with uproot.recreate(path) as f:
        f["events"] = {c: t[:, j] for j, c in enumerate(COLUMNS)}
    assert torch.equal(read_events(path).pi1, EVENTS[1])


def test_parquet_nulls_and_non_numeric_columns(tmp_path):
    t = table()
    columns = {c: pa.array(t[:, j]) for j, c in enumerate(COLUMNS)}
    columns["pi1_px"] = pa.array(
        [None if i == K else v for i, v in enumerate(t[:, col("pi1_px")].tolist())], type=pa.float64()
    )
    path = write_columns(tmp_path / "null.parquet", columns)
    assert error_of(path).startswith(f"{path}: event {K}: column pi1_px is null (a missing value)")
    columns["pi1_px"] = pa.array([str(v) for v in t[:, col("pi1_px")]])
    path = write_columns(tmp_path / "text.parquet", columns)
    assert error_of(path) == f"{path}: column pi1_px has type string; expected numbers (float64)"
    columns["pi1_px"] = pa.array(t[:, col("pi1_px")].astype(np.float32))  # float32 and integer columns are read
    columns["weight"] = pa.array(np.where(np.arange(N) % 2 == 0, 2, -1))
    assert read_events(write_columns(tmp_path / "f32.parquet", columns), tolerance_gev=1e-3).total_weight() == N // 2
