"""The loop-integral workflow: i-flow's triangle below threshold, a triangle and a box above it against closed
forms coded independently of the Feynman-parameter integrals, the command line, and its refusals."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

import hadrinv.workflows as workflows
from hadrinv.cli import main
from hadrinv.physics import loop_integrals
from hadrinv.physics.loop_closed_forms import c0_two_massless_legs, d0_massless_legs
from hadrinv.workflows.loop_integral import pysecdec_peer
from hadrinv.workflows.loop_integral.config import LoopIntegralConfig

# the package exports the function run, which shadows its module of the same name
loop_run = importlib.import_module("hadrinv.workflows.loop_integral.run")
IFLOW_TRIANGLE = -1.70721682537767509e-5  # C0(0, 0, 125^2, 175^2 x 3), i-flow (arXiv:2001.05486)
M_TOP = 175.0
RESULT_KEYS = {
    "value",
    "error",
    "value_imag",
    "error_imag",
    "calls",
    "train_calls",
    "method",
    "relative_std",
    "unweighting_efficiency",
    "topology",
    "invariants",
    "masses",
    "pulls",
    "exact",
    "sign_check",
    "is_valid",
    "peers",
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quick(tmp_path, **settings):
    settings.setdefault("peers", [])  # pySecDec beside is tested once, below
    return workflows.run("loop-integral", preset="quick", out=str(tmp_path / "run"), **settings)


def assert_within(metrics: dict, exact: complex, n_sigma: float = 4.0):
    assert abs(metrics["value"] - exact.real) < n_sigma * metrics["error"], (metrics["value"], exact)
    assert abs(metrics["value_imag"] - exact.imag) < n_sigma * metrics["error_imag"], (metrics["value_imag"], exact)


def test_quick_triangle_at_the_iflow_point(tmp_path):
    result = quick(tmp_path)
    m = result.metrics
    assert result.failures == [] and m["is_valid"]
    assert not m["sign_check"]["needed"]  # below threshold: the real contour
    assert m["relative_error"] <= 1e-3
    assert abs(m["value"] - IFLOW_TRIANGLE) < 4 * m["error"]
    assert m["value_imag"] == 0.0 and m["exact"]["source"] == "c0_two_massless_legs"
    assert m["calls"] <= 200_000
    saved = json.loads((result.out / "result.json").read_text())
    assert RESULT_KEYS <= set(saved)
    assert (result.out / "deformation.png").is_file() and (result.out / "metrics.json").is_file()


def test_triangle_above_threshold_against_the_closed_form(tmp_path):
    result = quick(tmp_path, external=[0.0, 0.0, 400.0], internal_masses=[M_TOP])
    m = result.metrics
    exact = complex(c0_two_massless_legs(400.0**2, M_TOP**2))
    assert exact.imag < 0
    assert result.failures == [] and m["sign_check"]["ok"] and m["sign_check"]["needed"]
    assert_within(m, exact)
    # the contour's training batches are integrand calls of the same budget
    assert m["contour_calls"] >= 40 * 1024
    assert m["train_calls"] >= m["contour_calls"] and m["calls"] <= 200_000


def test_box_above_threshold_against_the_closed_form(tmp_path):
    s12, s23 = 400.0**2, -(200.0**2)
    result = quick(tmp_path, topology="box", external=[0.0] * 4, s12=s12, s23=s23)
    m = result.metrics
    exact = complex(d0_massless_legs(s12, s23, M_TOP**2))
    assert exact.imag > 0
    assert result.failures == [] and m["sign_check"]["ok"]
    assert m["exact"]["source"] == "d0_massless_legs"
    assert_within(m, exact)


def test_command_line_box_with_a_spacelike_leg(tmp_path, monkeypatch):
    monkeypatch.setattr(pysecdec_peer, "missing_reason", lambda: "not here")
    out = tmp_path / "box"
    argv = ["run", "loop-integral", "--preset", "quick", "--topology", "box", "--external", "0", "0", "0", "-50"]
    argv += ["--s12", "160000", "--s23", "-40000", "--internal-masses", "175", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    saved = json.loads((out / "result.json").read_text())
    assert saved["invariants"]["p4sq"] == -2500.0  # a negative entry is a spacelike leg
    assert saved["value_imag"] > 0 and saved["error_imag"] > 0
    # no closed form and no peer: a valid run without pulls, saying what was missing
    assert "exact" not in saved and saved["is_valid"]
    assert saved["peers"] == {} and saved["peers_missing"] == {"pysecdec": "not here"}
    assert (out / "metrics.json").is_file()


# COLLIER through pyCollier 0.3.3, tests/test_Collier.py: no closed form covers these kinematics
COLLIER_D0 = -3.921393574718075e-7 - 3.209559917467113e-7j  # D0(1e3, 2e3, 3e3, 1e2, 1e4, -3e3, 1e2, 1e2, 3e2, 3e2)


def test_pysecdec_beside_is_the_reference_where_no_closed_form_applies(tmp_path):
    reason = pysecdec_peer.missing_reason()
    if reason:
        pytest.skip(reason)
    legs = [v**0.5 for v in (1e3, 2e3, 3e3, 1e2)]
    masses = [v**0.5 for v in (1e2, 1e2, 3e2, 3e2)]
    settings = {"topology": "box", "external": legs, "s12": 1e4, "s23": -3e3, "internal_masses": masses}
    result = quick(tmp_path, peers=["pysecdec"], **settings)
    m = result.metrics
    peer = m["peers"]["pysecdec"]
    assert abs(complex(peer["value"], peer["value_imag"]) - COLLIER_D0) < 1e-6 * abs(COLLIER_D0)
    assert m["exact"]["source"] == "pySecDec" and set(m["pulls"]) == {"real", "imag"}
    assert result.failures == [] and m["is_valid"]
    assert_within(m, COLLIER_D0)


def test_three_masses_for_a_box_are_refused_in_one_line(tmp_path, capsys):
    argv = ["run", "loop-integral", "--topology", "box", "--internal-masses", "1", "2", "3", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "internal_masses" in err and "box" in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"internal_masses": [175.0, -1.0, 175.0]}, "internal_masses"),
        ({"external": [0.0, float("nan"), 125.0]}, "external"),
        ({"external": [0.0, 125.0]}, "external"),
        ({"s12": 1.0}, "s12"),
        ({"deformation": {"lam": 2.0}}, "lam"),
    ],
)
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ValueError, match=key):
        LoopIntegralConfig(**settings)


def test_the_conventions_map_to_looptools_invariants():
    config = LoopIntegralConfig(topology="box", internal_masses=[1.0, 2.0, 3.0, 4.0], external=[0, 0, -10, 20])
    assert config.masses() == [1.0, 2.0, 3.0, 4.0]
    assert config.invariants() == {
        "p1sq": 0.0,
        "p2sq": 0.0,
        "p3sq": -100.0,
        "p4sq": 400.0,
        "s12": 130.0**2,
        "s23": -(130.0**2) / 2,
    }
    assert LoopIntegralConfig().invariants() == {"p1sq": 0.0, "p2sq": 0.0, "p12sq": 125.0**2}


@pytest.mark.parametrize("seed", range(6))
def test_exact_minimum_of_f_agrees_with_a_dense_sample(seed):
    rng = np.random.default_rng(seed)
    masses_sq = rng.uniform(0.5, 2.0, 4)
    s = rng.uniform(-6.0, 10.0, 6)
    box = loop_integrals.box(*s, *masses_sq)
    lowest = loop_run.min_f_on_simplex(box)
    # a seventh of the points on each face of the cube, where a minimum on a face of the simplex lies
    t = torch.rand(400_000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    sampled = float(box.F((1.4 * t - 0.2).clamp(0, 1)).min())
    assert lowest <= sampled + 1e-12
    assert sampled - lowest < 1e-2 * (1 + abs(lowest))


def test_a_wrong_exact_value_makes_the_run_fail_without_metrics(tmp_path, monkeypatch):
    monkeypatch.setattr(loop_run, "closed_form", lambda config: (complex(2 * IFLOW_TRIANGLE), "a wrong value"))
    result = workflows.run("loop-integral", out=str(tmp_path / "run"), calls=20_000, peers=[])
    assert result.failures and "pull" in result.failures[0]
    assert not (result.out / "metrics.json").exists()
    assert (result.out / "metrics.NOT-CONVERGED.json").is_file()
    assert json.loads((result.out / "result.json").read_text())["is_valid"] is False
