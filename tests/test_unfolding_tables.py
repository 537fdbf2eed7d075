"""Unfolding tables: paired MC and data in CSV and Parquet, lost events as missing reco values, and the refusal of
bad files in one line naming the row."""

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hadrinv.data.unfolding_tables import read_unfolding_data, read_unfolding_mc
from hadrinv.data.validation import DataError


def write(path, columns: dict):
    if str(path).endswith(".csv"):
        names = list(columns)
        rows = zip(*columns.values(), strict=True)
        text = ",".join(names) + "\n" + "\n".join(",".join("" if v is None else repr(v) for v in r) for r in rows)
        path.write_text(text + "\n")
    else:
        pq.write_table(pa.table(columns), path)
    return path


def mc_columns():
    return {
        "event": [1.0, 2.0, 3.0, 4.0],
        "gen_pt": [10.0, 20.0, 30.0, 40.0],
        "reco_pt": [11.0, math.nan, 29.0, 41.0],
        "gen_eta": [0.1, 0.2, -0.3, 1.0],
        "reco_eta": [0.12, math.nan, -0.28, 0.9],
        "weight": [1.0, 2.0, 1.0, 0.5],
    }


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_paired_mc_and_data_are_read_with_lost_events(tmp_path, suffix):
    mc = read_unfolding_mc(write(tmp_path / f"mc.{suffix}", mc_columns()))
    assert mc.observables == ("pt", "eta") and len(mc) == 4
    assert mc.reconstructed.tolist() == [True, False, True, True]
    assert mc.gen[1].tolist() == [20.0, 0.2] and mc.weight.tolist() == [1.0, 2.0, 1.0, 0.5]
    only_eta = read_unfolding_mc(tmp_path / f"mc.{suffix}", observables=("eta",))
    assert only_eta.observables == ("eta",) and only_eta.gen[:, 0].tolist() == [0.1, 0.2, -0.3, 1.0]
    data = read_unfolding_data(
        write(tmp_path / f"data.{suffix}", {"reco_eta": [0.5, -0.5], "x": [1.0, 2.0]}), mc.observables
    )
    assert data.observables == ("eta",) and data.reco[:, 0].tolist() == [0.5, -0.5] and data.weight is None


def test_an_empty_csv_field_is_a_lost_event(tmp_path):
    path = tmp_path / "mc.csv"
    path.write_text("gen_x,reco_x\n1.0,1.1\n2.0,\n3.0,nan\n")
    assert read_unfolding_mc(path).reconstructed.tolist() == [True, False, False]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("reco_eta"), "unpaired column\\(s\\): gen_eta \\(no reco_eta\\)"),
        (lambda c: c.update(gen_pt=[10.0, math.nan, 30.0, 40.0]), "gen_pt"),
        (lambda c: c.update(reco_eta=[0.12, 0.2, -0.28, 0.9]), "reco_pt missing but reco_eta not"),
        (lambda c: c.update(weight=[1.0, -2.0, 1.0, 1.0]), "weight -2 must be finite and >= 0"),
        (lambda c: [c.pop(k) for k in list(c) if k != "event"], "no gen_NAME / reco_NAME column pairs"),
    ],
)
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_bad_mc_tables_name_the_problem(tmp_path, edit, message, suffix):
    columns = mc_columns()
    edit(columns)
    with pytest.raises(DataError, match=message) as error:
        read_unfolding_mc(write(tmp_path / f"mc.{suffix}", columns))
    text = str(error.value)
    assert "\n" not in text and "mc." in text
    if "unpaired" not in message and "no gen_NAME" not in message:  # a row's problem names the row
        assert (":3" in text) if suffix == "csv" else ("event 1:" in text), text


def test_bad_data_tables_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="no observable in common with the MC \\(pt, eta\\); the data has reco_m"):
        read_unfolding_data(write(tmp_path / "d.parquet", {"reco_m": [1.0]}), ("pt", "eta"))
    with pytest.raises(DataError, match="no events"):
        read_unfolding_data(write(tmp_path / "e.parquet", {"reco_pt": np.zeros(0)}), ("pt",))
    with pytest.raises(DataError, match="event 1: a reco value is missing"):
        read_unfolding_data(write(tmp_path / "n.parquet", {"reco_pt": [1.0, math.nan]}), ("pt",))
    with pytest.raises(DataError, match="no data rows"):
        read_unfolding_data(write(tmp_path / "h.csv", {"reco_pt": []}), ("pt",))
    with pytest.raises(DataError, match="no gen/reco pair for phi"):
        read_unfolding_mc(write(tmp_path / "m.csv", mc_columns()), observables=("phi",))
