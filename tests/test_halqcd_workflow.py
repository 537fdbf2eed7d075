"""End-to-end runs of halqcd-potential (small: two members, short training) with physics assertions, resume,
and the CLI's handling of bad input."""

import csv
import json

import pytest
import torch

from hadrinv.cli import main
from hadrinv.workflows.registry import RunContext, get_workflow

SMALL = {
    "training": {"adam_steps": 1500, "lbfgs_steps": 400},
    "execution": {"executor": "serial", "members": 2},
}  # the quick preset's training


def _run(tmp_path, case, resume=False, members=None, **extra):
    workflow = get_workflow("halqcd-potential")
    overrides = {**SMALL, "out": str(tmp_path / (case or "data")), **extra}
    if members is not None:
        overrides["execution"] = {**SMALL["execution"], "members": members}
    if case:
        overrides["case"] = case
    config = workflow.config(None, None, overrides)
    return workflow.run(config, RunContext(resume=resume, progress=False, log=lambda *_: None))


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def separable(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("halqcd"), "separable")


@pytest.fixture(scope="module")
def omega(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("halqcd"), "omega-omega")


def test_separable_learned_potential_reproduces_the_closed_form(separable):
    m = separable.metrics
    assert m["learned"]["max_delta_error_deg"] < 1.0  # acceptance: within 1 degree for k <= 2 mu
    assert abs(m["learned"]["scattering_length_error_percent"]) < 5.0
    assert m["construction"]["max_asymmetry"] == 0.0 and m["construction"]["max_outside_regulator"] == 0.0
    assert m["baseline"]["max_delta_error_deg"] < 0.1  # the separable-form fit knows the answer's shape
    rows = _csv(separable.out / "phase_shifts.csv")
    assert list(rows[0]) == ["k", "delta_deg", "delta_err_deg"]
    assert float(rows[-1]["k"]) == pytest.approx(2.0)
    assert 170 < float(rows[0]["delta_deg"]) <= 180  # one bound state: delta(0) = 180 deg
    assert all(float(r["delta_err_deg"]) >= 0 for r in rows)
    potential = _csv(separable.out / "potential.csv")
    assert {"r", "v_eff", "v_eff_err"} <= set(potential[0])
    kernel = torch.load(separable.out / "kernel.pt", weights_only=True)
    assert torch.equal(kernel["U_mean"], kernel["U_mean"].T)
    assert json.loads((separable.out / "metrics.json").read_text())["acceptance"]["delta_within_1_deg"]


def test_omega_omega_learned_potential_reproduces_the_local_truth(omega):
    m = omega.metrics
    assert (
        m["learned"]["max_v_eff_error_over_depth"] < 0.05
    )  # acceptance: V_eff within 5% of the well depth on [0.2, 2] fm
    assert m["learned"]["max_delta_error_deg"] < 2.0  # acceptance: within 2 degrees up to 300 MeV
    assert m["truth"]["depth"] == pytest.approx(68.9, abs=0.1)
    assert m["baseline"]["max_delta_error_deg"] < 2.0
    rows = _csv(omega.out / "phase_shifts.csv")
    assert float(rows[-1]["k"]) == pytest.approx(300.0)
    for name in ("phase_shifts.png", "potential.png", "kernel_map.png", "training.png"):
        assert (omega.out / name).stat().st_size > 1000


def test_resume_reuses_finished_members(tmp_path):
    first = _run(tmp_path, "separable", members=1, training={"adam_steps": 50, "lbfgs_steps": 0})
    checkpoint = first.out / "checkpoints" / "member_000.pt"
    stamp = checkpoint.stat().st_mtime_ns
    again = _run(tmp_path, "separable", resume=True, members=1, training={"adam_steps": 50, "lbfgs_steps": 0})
    assert checkpoint.stat().st_mtime_ns == stamp
    assert again.metrics["learned"]["scattering_length"] == first.metrics["learned"]["scattering_length"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--case", "deuteron"], "case"),
        (["--data", "lattice.csv"], "lattice.csv: no such file"),
        (["--preset", "huge"], "unknown preset"),
    ],
)
def test_cli_rejects_bad_input_with_exit_code_2(tmp_path, capsys, argv, message):
    code = main(["run", "halqcd-potential", "--out", str(tmp_path / "x"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_round_trip_through_a_correlator_file(tmp_path):
    """simulate -> file -> run --data -> compare with the truth in the file's sidecar."""
    path = tmp_path / "R.h5"
    assert main(["simulate", "correlator", "--out", str(path), "--seed", "5"]) == 0
    result = _run(tmp_path, None, data=str(path), members=1)
    m = result.metrics
    assert m["case"] == "omega-omega" and m["data"] == str(path)
    assert m["truth"]["scattering_length"] == pytest.approx(4.49, abs=0.01)
    assert m["learned"]["max_v_eff_error_over_depth"] < 0.05
    assert m["learned"]["max_delta_error_deg"] < 2.0
