"""pwa-fit-fractions end to end on a small sample (plumbing with physics assertions), and bad event files."""

import json

import pytest
import torch

from hadrinv.cli import main
from hadrinv.data.pwa_events import write_events
from hadrinv.physics import pwa
from hadrinv.workflows.registry import RunContext, get_workflow

SMALL = {"events": 3000, "mc_events": 15000, "fraction_mc_events": 15000, "restarts": 2, "execution": {"executor": "serial"}}


def _run(tmp_path, **overrides):
    workflow = get_workflow("pwa-fit-fractions")
    config = workflow.config(None, None, {**SMALL, "out": str(tmp_path / "out"), **overrides})
    return workflow.run(config, RunContext(progress=False, log=lambda *_: None))


def test_single_resonance_fit_recovers_mass_and_width(tmp_path):
    fits = [{"name": "spin0, -ln L", "model": "spin0"}, {"name": "spin0, L~", "model": "spin0", "sf_target": 1.0, "lam": 0.01}]
    result = _run(tmp_path, generator_model="spin0", fits=fits)
    first, constrained = result.metrics["fits"]
    r = first["resonances"][0]
    assert first["valid"] and first["restarts"] == "2/2 at best"
    assert abs(r["mass"] - 1.6762) < 3 * r["mass_err"] and 0.0005 < r["mass_err"] < 0.01
    assert abs(r["width"] - 0.1627) < 3 * r["width_err"] and 0.001 < r["width_err"] < 0.02
    assert r["F"] == pytest.approx(1.0, abs=1e-12) and first["SF"] == pytest.approx(1.0, abs=1e-12)
    # one resonance has SF = 1 identically: the constraint at SF_target = 1 costs nothing and moves nothing
    assert constrained["objective"] == pytest.approx(first["objective"], abs=1e-6)
    assert (result.out / "fit_0.md").read_text().startswith("## spin0, -ln L")
    assert json.loads((result.out / "metrics.json").read_text())["events"] == 3000


def test_two_resonances_fractions_and_the_sf_constraint(tmp_path):
    """R0's f2'(1525) and f0(1710) only: the constraint pulls SF toward its target."""
    model = tmp_path / "two.yaml"
    model.write_text("""name: two
resonances:
  - {name: "f2'(1525)", spin: 2, lineshape: bw, mass: 1.5223, width: 0.0858, coupling: [1.0, 0.0], float: [mass, width]}
  - {name: f0(1710), spin: 0, lineshape: bw, mass: 1.6762, width: 0.1627, coupling: [1.24, 1.0], float: [mass, width, coupling]}
""")
    fits = [{"name": "free", "model": str(model)}, {"name": "SF 1.3", "model": str(model), "sf_target": 1.3, "lam": 10.0}]
    free, constrained = _run(tmp_path, generator_model=str(model), fits=fits).metrics["fits"]
    assert free["valid"]
    for r, (mass, width) in zip(free["resonances"], [(1.5223, 0.0858), (1.6762, 0.1627)]):
        assert abs(r["mass"] - mass) < 4 * r["mass_err"]
        assert abs(r["width"] - width) < 4 * r["width_err"]
    assert abs(constrained["SF"] - 1.3) < abs(free["SF"] - 1.3)
    assert constrained["nll"] >= free["nll"] - 1e-6  # -ln L without the penalty can only get worse


def test_bad_event_file_stops_with_one_line_and_exit_2(tmp_path, capsys):
    gamma, pi1, pi2 = pwa.phase_space_events(50, generator=torch.Generator().manual_seed(0))
    gamma[7, 0] += 0.01  # energy not conserved in event 7
    path = write_events(tmp_path / "events.csv", (gamma, pi1, pi2))
    assert main(["run", "pwa-fit-fractions", "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}:") and "\n" not in err
    assert not (tmp_path / "o").exists()
