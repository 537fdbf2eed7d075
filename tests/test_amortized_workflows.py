"""End-to-end runs of inverse-toys and dis-pdf at a tiny size, with physics assertions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from hadrinv.cli import main
from hadrinv.data.dis_toy import simulate_dis_data, write_dis_data
from hadrinv.physics.dis import DEFAULT_SPACE

TINY_TOYS = {
    "toys": ["sum_of_squares_2d"],
    "methods": ["flow", "mdn"],
    "simulations": 3000,
    "posterior_samples": 400,
    "coverage_cases": 60,
    "coverage_samples": 200,
    "training": {"max_epochs": 40, "patience": 6},
    "estimator_options": {"flow": {"hidden": 32, "transforms": 3}, "mdn": {"components": 5, "hidden": 64}},
    "active_learning": {
        "method": "mdn",
        "initial_simulations": 800,
        "targets": 6,
        "rounds": 1,
        "per_round": 2,
        "samples_per_candidate": 20,
        "training": {"max_epochs": 15, "patience": 4},
    },
}


@pytest.fixture(scope="module")
def toys_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toys")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_TOYS))
    out = folder / "out"
    code = main(["run", "inverse-toys", "--config", str(config), "--out", str(out), "--serial", "--no-progress"])
    return code, out, config


def test_inverse_toys_recovers_the_circle_and_is_calibrated(toys_run):
    code, out, _ = toys_run
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    flow = metrics["toys"]["sum_of_squares_2d"]["flow"]
    # solutions of x0^2 + x1^2 = 1: the flow's samples must sit on the circle (the exact posterior's
    # own mean |f - y| is ~0.04) and be hard to tell from exact samples
    assert flow["forward_error"] < 0.15
    assert flow["c2st"] < 0.7
    for method in ("flow", "mdn"):
        m = metrics["toys"]["sum_of_squares_2d"][method]
        assert 0.5 <= m["coverage_68"] <= 0.85 and 0.85 <= m["coverage_95"] <= 1.0
        # joint credible ellipsoids from the samples (nominal for a calibrated posterior, ring-shaped or
        # not); a posterior collapsed onto part of the ring would give far less
        assert 0.5 <= m["ellipsoid_coverage_68"] <= 1.0 and 0.85 <= m["ellipsoid_coverage_95"] <= 1.0
    curves = metrics["active_learning"]["curves"]
    assert curves["active"]["simulations"] == curves["random"]["simulations"]
    for name in (
        "sum_of_squares_2d_solutions.png",
        "sum_of_squares_2d_coverage.png",
        "active_learning.png",
        "comparison.md",
    ):
        assert (out / name).is_file()


def test_inverse_toys_resume_reuses_every_finished_task(toys_run):
    code, out, config = toys_run
    before = json.loads((out / "metrics.json").read_text())
    assert (
        main(
            ["run", "inverse-toys", "--config", str(config), "--out", str(out), "--serial", "--no-progress", "--resume"]
        )
        == 0
    )
    after = json.loads((out / "metrics.json").read_text())
    assert after["toys"] == before["toys"]


def test_bad_config_stops_with_exit_code_2(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"methods": ["flow", "magic"]}))
    assert main(["run", "inverse-toys", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "methods" in capsys.readouterr().err


TINY_DIS = {
    "grid_methods": ["flow"],
    "cloud_methods": ["flow"],
    "simulations": 4000,
    "test_sets": 30,
    "posterior_samples": 300,
    "kinematics": {"cloud_points": [20, 60], "cloud_layout": "regions", "test_experiments": ["SLAC", "NMC"]},
    "training": {"max_epochs": 30, "patience": 5},
    "grid_options": {
        "flow": {"embedding": "mlp", "embedding_options": {"features": 32, "hidden": 64}, "hidden": 64, "transforms": 3}
    },
    "cloud_options": {
        "flow": {"embedding": "set", "embedding_options": {"features": 32, "hidden": 32}, "hidden": 64, "transforms": 3}
    },
}


def test_dis_pdf_fit_is_calibrated_and_networks_learn_the_parameters(tmp_path):
    truth = DEFAULT_SPACE.sample_prior(1, __import__("torch").Generator().manual_seed(5))[0]
    data = simulate_dis_data(truth, seed=3)
    data_path = write_dis_data(data, tmp_path / "dis.csv")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY_DIS))
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                "dis-pdf",
                "--config",
                str(config),
                "--data",
                str(data_path),
                "--out",
                str(out),
                "--serial",
                "--no-progress",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())["methods"]
    # the fit with Hessian errors on a correctly specified model: its 2-sigma intervals hold the truth
    # about 95% of the time (30 sets x 12 parameters)
    assert metrics["fit"]["within_2sigma_mean"] > 0.88
    assert metrics["fit"]["valid_fraction"] > 0.9
    # even a tiny network must do far better than the prior (a uniform prior's rms error / width is 0.29)
    assert metrics["grid/flow"]["rms_error_over_prior_width"] < 0.2
    assert metrics["cloud/flow"]["rms_error_over_prior_width"] < 0.25
    # the file's 80 bins are more than any training cloud had (20-60): the user is told to retrain
    data_summary = json.loads((out / "metrics.json").read_text())["data"]
    assert any("80 points" in w and "20-60" in w for w in data_summary["warnings"])
    rows = (out / "data_posterior.csv").read_text().splitlines()
    assert len(rows) == 1 + DEFAULT_SPACE.n_free
    means = np.array([float(r.split(",")[2]) for r in rows[1:]])
    assert np.all((means >= DEFAULT_SPACE.low.numpy()) & (means <= DEFAULT_SPACE.high.numpy()))
    for name in ("pdfs_control.png", "cross_section_ratios.png", "coverage.png", "pdfs_data_flow.png"):
        assert (out / name).is_file()


def test_dis_pdf_bad_data_stops_before_training(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("x,Q2,sigma_p,sigma_n\n0.1,4.0,1.0,0.5\n1.3,4.0,1.0,0.5\n")
    out = tmp_path / "out"
    assert main(["run", "dis-pdf", "--data", str(path), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv:3" in err and "x" in err
    assert not (out / "metrics.json").exists()


def test_method_training_can_change_one_kind_of_a_method_only():
    from hadrinv.workflows.amortized_runs import TrainingConfig, training_for

    overrides = {"flow": {"max_epochs": 30, "patience": 30}, "cloud/flow": {"max_epochs": 90, "lr_schedule": "cosine"}}
    grid, cloud = (training_for("flow", TrainingConfig(), overrides, kind) for kind in ("grid", "cloud"))
    assert (grid["max_epochs"], grid["patience"], grid["lr_schedule"]) == (30, 30, "plateau")
    assert (cloud["max_epochs"], cloud["patience"], cloud["lr_schedule"]) == (90, 30, "cosine")
    assert training_for("flow", TrainingConfig(), overrides) == grid
    with pytest.raises(ValueError, match="lr_schedule"):
        training_for("flow", TrainingConfig(), {"cloud/flow": {"lr_schedule": "linear"}}, "cloud")
