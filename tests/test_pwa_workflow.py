"""pwa-fit-fractions end to end on a small sample (plumbing with physics assertions), and bad event files."""

import json

import numpy as np
import pytest
import torch

from hadrinv.cli import main
from hadrinv.data.pwa_events import write_events
from hadrinv.physics import pwa
from hadrinv.workflows.registry import RunContext, get_workflow

SMALL = {
    "events": 3000,
    "mc_events": 15000,
    "fraction_mc_events": 15000,
    "restarts": 2,
    "execution": {"executor": "serial"},
}


def _run(tmp_path, **overrides):
    workflow = get_workflow("pwa-fit-fractions")
    config = workflow.config(None, None, {**SMALL, "out": str(tmp_path / "out"), **overrides})
    return workflow.run(config, RunContext(progress=False, log=lambda *_: None))


def test_single_resonance_fit_recovers_mass_and_width(tmp_path):
    fits = [
        {"name": "spin0, -ln L", "model": "spin0"},
        {"name": "spin0, L~", "model": "spin0", "sf_target": 1.0, "lam": 0.01},
    ]
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
  - {name: "f2'(1525)", spin: 2, lineshape: bw, mass: 1.5223, width: 0.0858,
     coupling: [1.0, 0.0], float: [mass, width]}
  - {name: f0(1710), spin: 0, lineshape: bw, mass: 1.6762, width: 0.1627,
     coupling: [1.24, 1.0], float: [mass, width, coupling]}
""")
    fits = [
        {"name": "free", "model": str(model)},
        {"name": "SF 1.3", "model": str(model), "sf_target": 1.3, "lam": 10.0},
    ]
    free, constrained = _run(tmp_path, generator_model=str(model), fits=fits).metrics["fits"]
    assert free["valid"]
    for r, (mass, width) in zip(free["resonances"], [(1.5223, 0.0858), (1.6762, 0.1627)]):
        assert abs(r["mass"] - mass) < 4 * r["mass_err"]
        assert abs(r["width"] - width) < 4 * r["width_err"]
    assert abs(constrained["SF"] - 1.3) < abs(free["SF"] - 1.3)
    assert constrained["nll"] >= free["nll"] - 1e-6  # -ln L without the penalty can only get worse
    # the fit describes the data in every projection; the correlation matrix is a correlation matrix
    for name, p in free["projection_chi2"].items():
        assert p["chi2"] < 1.6 * p["bins"] + 10, (name, p)
    out = tmp_path / "out"
    corr = np.loadtxt(out / "correlations_fit_0.csv", delimiter=",", skiprows=1, usecols=range(1, 7))
    assert np.allclose(np.diag(corr), 1.0) and np.allclose(corr, corr.T) and np.all(np.abs(corr) <= 1 + 1e-9)
    assert (out / "projections_fit_0.png").is_file() and (out / "projections_fit_0.csv").is_file()


def test_sf_scan_and_component_scan(tmp_path):
    """Data of f2'(1525) + f0(1710). Scan: SF follows SF_target and -ln L grows away from the free SF.
    Component scans: on the true model, f0(1370) (not in the data) is not significant; on the base
    without f0(1710), f0(1710) is."""
    generator = tmp_path / "two.yaml"
    generator.write_text(TWO_RESONANCES)
    base = tmp_path / "base.yaml"
    base.write_text(TWO_RESONANCES.split("  - {name: f0(1710)")[0])
    candidates = tmp_path / "candidates.yaml"
    candidates.write_text("""name: candidates
resonances:
  - {name: f0(1710), spin: 0, lineshape: bw, mass: 1.6762, width: 0.1627, coupling: [1.0, 1.0], float: [coupling]}
  - {name: f0(1370), spin: 0, lineshape: bw, mass: 1.347, width: 0.200, coupling: [0.02, 0.0], float: [coupling]}
""")
    result = _run(
        tmp_path,
        generator_model=str(generator),
        fits=[{"name": "free", "model": str(generator)}],
        sf_scan={"model": str(generator), "targets": [0.8, 1.0, 1.3], "lam": 10.0, "restarts": 1},
        component_scan={"base": str(generator), "candidates": str(candidates), "restarts": 2},
    )
    free = result.metrics["fits"][0]
    points = result.metrics["sf_scan"]
    assert [p["sf_target"] for p in points] == [0.8, 1.0, 1.3] and all(p["valid"] for p in points)
    sfs = [p["SF"] for p in points]
    assert sfs[0] < sfs[1] < sfs[2]
    assert all(p["nll"] >= free["nll"] - 1e-3 for p in points)
    null = result.metrics["component_scan"]["candidates"]
    assert [c["candidate"] for c in null] == ["f0(1370)"] and null[0]["delta_ndf"] == 2
    assert -1e-3 < null[0]["delta_ln_l"] and null[0]["significance"] < 3
    assert (result.out / "sf_scan.png").is_file() and (result.out / "component_scan.md").read_text().startswith(
        "## Component scan"
    )
    found = _run(
        tmp_path,
        generator_model=str(generator),
        fits=[],
        out=str(tmp_path / "found"),
        component_scan={"base": str(base), "candidates": str(candidates), "restarts": 2},
    ).metrics["component_scan"]["candidates"]
    by_name = {c["candidate"]: c for c in found}
    assert by_name["f0(1710)"]["significance"] > 8 and by_name["f0(1710)"]["F"] > 0.2


def test_bad_event_file_stops_with_one_line_and_exit_2(tmp_path, capsys):
    gamma, pi1, pi2 = pwa.phase_space_events(50, generator=torch.Generator().manual_seed(0))
    gamma[7, 0] += 0.01  # energy not conserved in event 7
    path = write_events(tmp_path / "events.csv", (gamma, pi1, pi2))
    assert main(["run", "pwa-fit-fractions", "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}:") and "\n" not in err
    assert not (tmp_path / "o").exists()


# -- pull study ------------------------------------------------------------------------------------

TWO_RESONANCES = """name: two
resonances:
  - {name: "f2'(1525)", spin: 2, lineshape: bw, mass: 1.5223, width: 0.0858,
     coupling: [1.0, 0.0], float: [mass, width]}
  - {name: f0(1710), spin: 0, lineshape: bw, mass: 1.6762, width: 0.1627,
     coupling: [1.24, 1.0], float: [mass, width, coupling]}
"""


def test_pull_table_counts_valid_toys_and_skips_fixed_fractions():
    from hadrinv.workflows.pwa_fit_fractions.pull_study import pull_table

    toy = lambda i, valid, mass: {
        "toy": i,
        "valid": valid,
        "names": ["a.mass", "a.width"],
        "truth": [1.0, 0.1],
        "values": [mass, 0.1],
        "errors": [0.01, 0.002],
        "resonances": ["a"],
        "F_true": [1.0],
        "F": [1.0],
        "F_err": [0.0],
    }
    summary, rows = pull_table([toy(0, True, 1.01), toy(1, True, 0.98), toy(2, False, 5.0)])
    by_name = {q["quantity"]: q for q in summary}
    assert set(by_name) == {"a.mass", "a.width"}  # F = 1 with no error has no pull
    assert by_name["a.mass"]["n"] == 2 and by_name["a.mass"]["mean"] == pytest.approx(-0.5)
    assert by_name["a.mass"]["width"] == pytest.approx(torch.tensor([1.0, -2.0]).std().item())
    assert by_name["a.width"]["mean"] == 0.0 and len(rows) == 4


def test_pull_study_end_to_end_has_unit_pulls_and_resumes(tmp_path):
    """16 toys of a two-resonance model: the pulls of masses, widths and fractions are those of a standard
    normal within what 16 toys can tell (about 4 standard errors; errors wrong by a factor 2 would fail)."""
    model = tmp_path / "two.yaml"
    model.write_text(TWO_RESONANCES)
    workflow = get_workflow("pwa-pull-study")
    settings = {
        "model": str(model),
        "toys": 16,
        "events": 2000,
        "mc_events": 40_000,
        "fraction_mc_events": 40_000,
        "execution": {"executor": "serial"},
        "out": str(tmp_path / "pulls"),
    }
    result = workflow.run(workflow.config(None, None, settings), RunContext(progress=False, log=lambda *_: None))
    metrics = result.metrics
    assert metrics["valid_toys"] == 16
    judged = [q for q in metrics["pulls"] if q["kind"] != "coupling"]
    assert {q["quantity"] for q in judged} >= {"f2'(1525).mass", "f0(1710).width", "f2'(1525).F", "f0(1710).F"}
    for q in judged:
        assert abs(q["mean"]) < 1.0 and 0.5 < q["width"] < 1.7, q
    assert (result.out / "pulls.png").is_file() and (result.out / "pull_summary.md").read_text().startswith(
        "## Pulls of"
    )
    stamps = {p: p.stat().st_mtime_ns for p in (result.out / "checkpoints").glob("toy_*.pt")}
    assert len(stamps) == 16
    again = workflow.run(
        workflow.config(None, None, settings), RunContext(resume=True, progress=False, log=lambda *_: None)
    )
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # no toy was refitted
    assert again.metrics["pulls"] == metrics["pulls"]
