"""femto-inverse end to end at a small size, the simulate CLI, and bad input files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from hadrinv.cli import main
from hadrinv.data.femto import read_correlation_csv
from hadrinv.physics.femtoscopy import HAL_N_OMEGA, GaussianYukawaPotential, correlation_function
from hadrinv.workflows.femto_inverse.problem import load_dataset

SMALL = {
    "dataset": {"five_parameter": 1500, "two_parameter": 1500, "random_k": 1500, "chunk": 750},
    "training": {"max_epochs": 40, "patience": 8},
    "posterior": {"samples": 200, "test_sets": 150, "fit_sets": 2},
    "regressor": {"hidden": 128, "blocks": 2},
    "flexible_regressor": {
        "hidden": 64,
        "blocks": 1,
        "embedding": "set",
        "embedding_options": {"features": 32, "hidden": 48},
    },
    # a mixture, as in the workflow (its box support is tested in test_estimators.py: at this size it leaves r0 wider)
    "flow": {
        "members": 2,
        "transforms": 3,
        "hidden": 48,
        "embedding": "set",
        "embedding_options": {"features": 32, "hidden": 48},
    },
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The N-Omega curve at r0 = 1.3 fm with 3% errors, as a user's measured file."""
    folder = tmp_path_factory.mktemp("femto_data")
    sim = folder / "nomega.csv"
    assert main(["simulate", "femto", "--out", str(sim), "--k", ",".join(str(v) for v in range(10, 251, 10))]) == 0
    data = read_correlation_csv(sim, require_error=False)
    rng = np.random.default_rng(1)
    error = 0.03 * data.C
    path = folder / "measured.csv"
    rows = "\n".join(
        f"{k},{c},{e}" for k, c, e in zip(data.k_mev, data.C + error * rng.standard_normal(len(error)), error)
    )
    path.write_text("k_mev,C,error\n" + rows + "\n")
    return path


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, measured):
    folder = tmp_path_factory.mktemp("femto")
    config = folder / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    out = folder / "out"
    code = main(
        [
            "run",
            "femto-inverse",
            "--config",
            str(config),
            "--out",
            str(out),
            "--serial",
            "--no-progress",
            "--data",
            str(measured),
        ]
    )
    return code, out


def test_simulate_cli_writes_the_solver_curve(tmp_path):
    out = tmp_path / "c.csv"
    assert main(["simulate", "femto", "--r0", "2.0", "--b1", "-500", "--k", "5,50,150", "--out", str(out)]) == 0
    data = read_correlation_csv(out, require_error=False)
    potential = GaussianYukawaPotential(-500.0, HAL_N_OMEGA["b2"], HAL_N_OMEGA["b3"], HAL_N_OMEGA["b4"])
    C, delta = correlation_function(potential, torch.tensor([5.0, 50.0, 150.0]), 2.0)
    np.testing.assert_allclose(data.C, C[0].numpy(), rtol=1e-12)
    np.testing.assert_allclose(data.delta_deg, np.rad2deg(delta[0].numpy()), rtol=1e-12)
    truth = json.loads(out.with_name("c.csv.truth.json").read_text())
    assert truth["r0_fm"] == 2.0 and truth["b1_mev"] == -500.0


def test_simulate_cli_rejects_bad_momenta(tmp_path, capsys):
    assert main(["simulate", "femto", "--k", "50,20", "--out", str(tmp_path / "x.csv")]) == 2
    assert "increasing" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_small_run_learns_the_identifiable_parameters(small_run):
    code, out = small_run
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    r2 = metrics["r2"]
    # what C(k) determines (the talk's finding): the source size, and b3 (with b1 when b2, b4 are fixed);
    # b2 and b4 it does not. At this size (1200 training curves) the DNNs are far from converged, so the
    # bounds are loose; a network that learned nothing scores ~0 everywhere.
    assert r2["dnn five-param"]["test"]["r0"] > 0.8
    assert r2["dnn two-param"]["test"]["b3"] > 0.9 and r2["dnn two-param"]["test"]["b1"] > 0.2
    assert r2["dnn five-param"]["test"]["b2"] < 0.3 and r2["dnn five-param"]["test"]["b4"] < 0.3
    # the set-encoder DNN works on a 20-point grid it never saw
    assert r2["dnn flexible k"]["coarse 20-point grid"]["r0"] > 0.5
    flow = metrics["posterior"]["flow (random grids)"]
    assert 0.55 <= flow["coverage_68"] <= 0.85 and 0.85 <= flow["coverage_95"] <= 1.0
    widths = dict(zip(metrics["parameters"], flow["width_over_prior"]))
    # r0 is narrowed well below the prior (more with more training: 0.26 at the quick preset), b4 is not at all
    assert widths["r0"] < 0.7 and widths["b4"] > 0.9
    # C(k) is dominated by a few principal components
    assert metrics["pca"]["C"]["components_for_99_percent"] <= 10


def test_small_run_stores_the_dataset_with_its_config(small_run):
    _, out = small_run
    sets, config = load_dataset(out / "dataset.h5")
    assert set(sets) == {"five", "two", "random_k", "coarse_grid"}
    assert sets["five"].C.shape == (1500, 60) and sets["two"].theta.shape == (1500, 2)
    assert config["dataset"]["five_parameter"] == 1500
    # two-parameter curves keep the talk's fixed values
    assert torch.allclose(sets["two"].theta5[:, 0], torch.tensor(1.3, dtype=torch.float64))
    # spot check against the solver
    row = sets["five"].theta5[:3]
    C, _ = correlation_function(GaussianYukawaPotential.from_parameters(row[:, 1:]), sets["five"].k_mev, row[:, 0])
    assert torch.allclose(C, sets["five"].C[:3], rtol=1e-10)


def test_small_run_analyses_measured_data(small_run):
    _, out = small_run
    data = json.loads((out / "metrics.json").read_text())["data"]
    r0 = data["parameters"]["r0"]
    # the measured curve was made with r0 = 1.3 fm
    assert r0["low_68"] - 0.3 < 1.3 < r0["high_68"] + 0.3
    # the classical answer beside it: least squares started from the best posterior draws can only improve
    # on them (chi^2 per point = chi^2/ndf * ndf / points) and must describe the 3% data reasonably
    fit = data["least_squares_from_posterior"]["chi2_per_ndf"] * (data["points"] - 5) / data["points"]
    assert fit <= data["posterior_predictive"]["best_chi2_per_point"] + 1e-9
    assert data["least_squares_from_posterior"]["chi2_per_ndf"] < 5
    for name in ("data_bands.png", "data_posterior.csv", "pca.png", "posterior_pairs.png", "comparison.md"):
        assert (out / name).is_file()


BAD_FILES = {
    "missing_column": ("k_mev,C\n10,1.2\n20,1.1\n30,1.0\n", "error"),
    "nan": ("k_mev,C,error\n10,1.2,0.1\n20,nan,0.1\n30,1.0,0.1\n", ":3:"),
    "negative_k": ("k_mev,C,error\n-10,1.2,0.1\n20,1.1,0.1\n30,1.0,0.1\n", ":2:"),
    "negative_error": ("k_mev,C,error\n10,1.2,0.1\n20,1.1,-0.1\n30,1.0,0.1\n", ":3:"),
    "unsorted": ("k_mev,C,error\n10,1.2,0.1\n30,1.1,0.1\n20,1.0,0.1\n", ":4:"),
    "duplicated": ("k_mev,C,error\n10,1.2,0.1\n20,1.1,0.1\n20,1.0,0.1\n", ":4:"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_data_stops_with_one_line_and_exit_2(tmp_path, capsys, case):
    text, where = BAD_FILES[case]
    path = tmp_path / f"{case}.csv"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["run", "femto-inverse", "--preset", "quick", "--data", str(path), "--out", str(out), "--serial"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and where in err
    assert not (out / "metrics.json").exists()
