"""The unfold workflow: the built-in cases end to end with every output, users' tables through the CLI, and bad
files stopped in one line with nothing left behind."""

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hadrinv.workflows as workflows
from hadrinv.cli import main
from hadrinv.workflows.unfold.cases import simulate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "events": 20_000,
    "omnifold": {"iterations": 2, "epochs": 4, "bootstraps": 2, "hidden": 16},
    "cinn": {
        "iterations": 2,
        "flows": 2,
        "bootstraps": 2,
        "replica_samples": 10,
        "prior_epochs": 2,
        "transforms": 2,
        "hidden": 16,
        "max_epochs": 4,
        "samples": 10,
        "batch_size": 256,
    },
    "execution": {"executor": "serial"},
}


def test_the_gaussian_case_writes_every_output(tmp_path):
    out = tmp_path / "run"
    result = workflows.run("unfold", out=str(out), **TINY)
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["methods"]) == ["ibu", "omnifold", "cinn"] and m["observables"] == ["x"]
    # iterative Bayesian unfolding of 20 000 events against the exact truth, with its own errors
    assert m["methods"]["ibu"]["observables"]["x"]["chi2_per_ndf"] < 3
    for method in ("omnifold", "cinn"):  # unbinned: a second binning after the fact
        assert math.isfinite(m["methods"][method]["observables"]["x"]["check_chi2_per_ndf"])
    table = (out / "unfolded_hist.csv").read_text().splitlines()
    assert table[0] == "method,observable,bin_low,bin_high,value,error" and len(table) == 1 + 3 * 20
    assert np.load(out / "covariance.npy").shape == (3, 1, 20, 20)
    weights = pq.read_table(out / "weights.parquet").to_pydict()
    assert len(weights["weight"]) == 20_000 and abs(np.mean(weights["weight"]) - 1) < 1e-9
    samples = pq.read_table(out / "samples.parquet")
    assert samples.column_names == ["event", "gen_x"] and samples.num_rows == 20_000 * 10
    assert (out / "unfolded_x.png").is_file()
    assert set(m["methods"]["cinn"]["calibration"]["marginal"]) == {"0.68", "0.95"}
    assert result.summary_rows()[0][0] == "ibu"


def _tables(tmp_path, edit_mc=None, edit_data=None):
    case = simulate("gaussian-4d", 3000, 1)
    mc = {f"gen_{n}": case.mc.gen[:, k] for k, n in enumerate(case.mc.observables)}
    mc.update({f"reco_{n}": case.mc.reco[:, k] for k, n in enumerate(case.mc.observables)})
    data = {f"reco_{n}": case.data.reco[:, k] for k, n in enumerate(case.data.observables)}
    for columns, edit in ((mc, edit_mc), (data, edit_data)):
        if edit:
            edit(columns)
    pq.write_table(pa.table(mc), tmp_path / "mc.parquet")
    pq.write_table(pa.table(data), tmp_path / "data.parquet")
    return str(tmp_path / "mc.parquet"), str(tmp_path / "data.parquet")


def test_users_tables_run_through_the_cli(tmp_path):
    mc, data = _tables(tmp_path)
    out = tmp_path / "run"
    argv = ["run", "unfold", "--mc", mc, "--data", data, "--method", "ibu", "--observables", "x1,x3", "--bins", "12"]
    assert main([*argv, "--out", str(out), "--serial", "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["observables"] == ["x1", "x3"] and m["mc_reconstructed"] < 3000  # the efficiency lost events
    assert math.isnan(m["methods"]["ibu"]["observables"]["x1"]["chi2_per_ndf"])  # no truth in users' files
    assert np.load(out / "covariance.npy").shape == (1, 2, 12, 12)


def _nan_gen(columns):
    columns["gen_x2"] = np.where(np.arange(3000) == 5, np.nan, columns["gen_x2"])


@pytest.mark.parametrize(
    ("edit_mc", "edit_data", "needle"),
    [
        (lambda c: c.pop("reco_x4"), None, "unpaired column(s): gen_x4 (no reco_x4)"),
        (None, lambda c: [c.pop(k) for k in list(c)] and c.update(reco_y=np.zeros(3)), "no observable in common"),
        (_nan_gen, None, "event 5: gen_x2 is missing or not finite"),
        (None, lambda c: c.update({k: v[:0] for k, v in c.items()}), "no events"),
    ],
    ids=["unpaired", "nothing in common", "NaN gen", "empty data"],
)
def test_bad_files_stop_in_one_line_and_leave_nothing(tmp_path, capsys, edit_mc, edit_data, needle):
    mc, data = _tables(tmp_path, edit_mc, edit_data)
    out = tmp_path / "out"
    assert main(["run", "unfold", "--mc", mc, "--data", data, "--out", str(out), "--serial", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()
