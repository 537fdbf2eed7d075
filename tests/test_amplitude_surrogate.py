"""The amplitude-surrogate workflow end to end on small tables: simulated and users' tables, its outputs, resume,
and the refusal of bad tables."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import hadrinv.workflows as workflows
from hadrinv.cli import main
from hadrinv.data.amplitude_simulation import simulate_amplitudes
from hadrinv.data.amplitude_tables import read_amplitudes, write_amplitudes
from hadrinv.inference.surrogates import Surrogate
from hadrinv.workflows.amplitude_surrogate.run import features

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "train_points": 1500,
    "test_points": 2000,
    "network": {"hidden": 32, "layers": 2, "epochs": 12, "boost_epochs": 8, "batch": 256, "members": 2},
    "execution": {"executor": "serial"},
}


def tiny(tmp_path, **settings):
    merged = {**TINY, **settings}
    return workflows.run("amplitude-surrogate", out=str(tmp_path / "run"), **merged)


def test_features_are_lorentz_invariant_logs_of_pair_invariants():
    table = simulate_amplitudes("gg-ggg", 1000.0, 50, seed=3)
    x = features(table.momenta)
    assert x.shape == (50, 10)  # 5 particles, 10 pairs
    # a boost along z and a rotation about it leave every s_ij unchanged
    eta, phi = 0.7, 1.1
    p = table.momenta.clone()
    e, pz = p[..., 0].clone(), p[..., 3].clone()
    p[..., 0], p[..., 3] = np.cosh(eta) * e + np.sinh(eta) * pz, np.sinh(eta) * e + np.cosh(eta) * pz
    px, py = p[..., 1].clone(), p[..., 2].clone()
    p[..., 1], p[..., 2] = np.cos(phi) * px - np.sin(phi) * py, np.sin(phi) * px + np.cos(phi) * py
    assert torch.allclose(features(p), x, rtol=0, atol=1e-10)
    # s_12 = s for the incoming pair
    assert torch.allclose(x[:, 0], torch.full((50,), np.log(1000.0**2), dtype=torch.float64))


def test_simulated_run_writes_aligned_predictions_models_and_plots(tmp_path):
    result = tiny(tmp_path, method="bnn", boost="all")
    out = result.out
    assert result.failures == []
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["variants"]) == {"bnn/none", "bnn/loss", "bnn/performance"}
    for variant in m["variants"].values():
        t = variant["test"]
        assert 0 < t["delta_q68"] <= t["delta_q99"] and 0 <= t["within_1pc"] <= t["within_5pc"] <= 1
        assert 0 < t["pull_width"] and 0 <= t["coverage_68"] <= t["coverage_95"] <= 1
    assert set(m["performance_boost_gain_q99"]) == {"bnn/loss", "bnn/performance"}
    table = pq.read_table(out / "predictions.parquet")
    assert table.num_rows == 2000
    assert set(table.column_names) == {"amp2", "amp2_pred", "amp2_sigma", "amp2_sigma_stat", "amp2_sigma_syst"}
    amp2, pred = (np.asarray(table.column(c)) for c in ("amp2", "amp2_pred"))
    sigma, stat, syst = (np.asarray(table.column(c)) for c in ("amp2_sigma", "amp2_sigma_stat", "amp2_sigma_syst"))
    assert np.all(pred > 0) and np.all(sigma > 0)
    assert np.allclose(sigma**2, stat**2 + syst**2, rtol=1e-9)
    # the table's truth is the simulated test set, row by row
    test = simulate_amplitudes("gg-ggg", 1000.0, 2000, seed=1)
    assert np.array_equal(amp2, test.amp2.numpy())
    # the saved model reproduces the saved predictions
    model = Surrogate.load(out / "model.pt")
    best = m["best"].replace("/", "-")
    assert (out / best / "model.pt").is_file() and (out / best / "predictions.parquet").is_file()
    again = torch.exp(model.predict(features(test.momenta), seed=0).mean).numpy()
    assert np.allclose(again, pred, rtol=1e-6)
    for plot in ("precision.png", "calibration.png", "delta_vs_amplitude.png"):
        assert (out / plot).stat().st_size > 1000


def test_users_table_of_another_process_with_a_held_out_share(tmp_path):
    data = tmp_path / "ee.csv"
    table = simulate_amplitudes("ee-qqg", 91.2, 2500, seed=5, pt_min_gev=5.0)
    write_amplitudes(data, table.momenta, table.amp2)
    result = tiny(tmp_path, data=str(data), method="mlp", boost="none")
    m = result.metrics
    assert result.failures == [] and m["particles"] == 5
    assert m["test_points"] == 500 and m["train_points"] == 2000
    assert m["variants"]["mlp/none"]["test"]["pull_width"] is None  # a plain regressor states no uncertainty
    # it has learned the amplitude: far better than the spread of log |M|^2 itself
    spread = float(torch.log(table.amp2).std())
    assert m["variants"]["mlp/none"]["test"]["delta_q68"] < 0.5 * spread


def test_resume_reuses_the_trained_variants(tmp_path, monkeypatch):
    first = tiny(tmp_path, method="mlp", boost="performance")
    import hadrinv.inference.surrogates as surrogates

    def refuse(*args, **kwargs):
        raise AssertionError("retrained on resume")

    monkeypatch.setattr(surrogates, "fit_surrogate", refuse)
    config = workflows.get_workflow("amplitude-surrogate").config(
        None, None, {**TINY, "out": str(tmp_path / "run"), "method": "mlp", "boost": "performance"}
    )
    again = workflows.get_workflow("amplitude-surrogate").run(config, workflows.RunContext(resume=True, log=print))
    assert again.metrics["variants"] == first.metrics["variants"]


def test_simulate_command_writes_a_table_the_reader_accepts(tmp_path, capsys):
    out = tmp_path / "gg.parquet"
    argv = ["simulate", "amplitudes", "--process", "gg-ggg", "--events", "300", "--sqrt-s", "500", "--out", str(out)]
    assert main(argv) == 0
    table = read_amplitudes(out)
    assert len(table) == 300 and table.n_particles == 5
    assert torch.allclose(table.momenta[:, :2, 0].sum(-1), torch.full((300,), 500.0, dtype=torch.float64))
    assert main(["simulate", "amplitudes", "--process", "gg-ggg", "--events", "0", "--out", str(out)]) == 2


def _bad_tables(tmp_path) -> dict[str, tuple]:
    table = simulate_amplitudes("ee-qqg", 91.2, 600, seed=2, pt_min_gev=5.0)
    good = tmp_path / "good.csv"
    write_amplitudes(good, table.momenta, table.amp2)
    lines = good.read_text().splitlines()
    header = lines[0].split(",")

    def edited(name: str, column: str, value: str, row: int = 7) -> str:
        path = tmp_path / name
        fields = lines[row - 1].split(",")
        fields[header.index(column)] = value
        path.write_text("\n".join(lines[: row - 1] + [",".join(fields)] + lines[row:]) + "\n")
        return str(path)

    missing = tmp_path / "missing.csv"
    keep = [i for i, h in enumerate(header) if h != "p3_pz"]
    missing.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in lines) + "\n")
    few = tmp_path / "few.csv"
    few.write_text("\n".join(lines[:40]) + "\n")
    return {
        "missing column": (str(missing), "p3_pz"),
        "NaN": (edited("nan.csv", "p4_px", "nan"), "7"),
        "zero amp2": (edited("zero.csv", "amp2", "0.0"), "7"),
        "negative amp2": (edited("negative.csv", "amp2", "-1.0"), "7"),
        "not conserved": (edited("momentum.csv", "p5_pz", "3.0"), "7"),
        "too few rows": (str(few), "39"),
    }


@pytest.mark.parametrize(
    "case", ["missing column", "NaN", "zero amp2", "negative amp2", "not conserved", "too few rows"]
)
def test_bad_tables_stop_in_one_line_and_leave_nothing(tmp_path, capsys, case):
    path, needle = _bad_tables(tmp_path)[case]
    out = tmp_path / "out"
    argv = ["run", "amplitude-surrogate", "--data", path, "--out", str(out), "--serial", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and path in err and needle in err, err
    assert not out.exists()
