"""Several pi pi charge channels: the table's reader, the CLI simulator and the pipi-isospin workflow end to end."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from hadrinv.cli import main
from hadrinv.data.channel_cross_sections import read_channel_cross_sections, write_channel_cross_sections
from hadrinv.data.validation import DataError
from hadrinv.models.pipi_isospin import IsospinProblem, simulate_cfd

HEADER = "channel,s,cos_theta,dsigma_domega,error"


def write(tmp_path, *rows: str, header: str = HEADER):
    path = tmp_path / "channels.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_round_trip_keeps_every_point_in_its_channel(tmp_path):
    problem = simulate_cfd(n_s=6, n_z=3, sqrt_s_max_gev=1.2, channels=("pi0pi0", "pi+pi-", "pi+pi0"), seed=2)
    path = write_channel_cross_sections(problem.to_data(truth={"model": "pipi-cfd"}), tmp_path / "d.csv")
    data = read_channel_cross_sections(path)
    assert data.truth == {"model": "pipi-cfd"} and len(data) == len(problem)
    back = IsospinProblem.from_data(data)
    # channels are renumbered (in the order of CHANNELS), the physics is not: same cross sections from the same waves
    params = torch.rand(problem.n_parameters, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(back.cross_section(params), problem.cross_section(params), rtol=1e-12, atol=0)
    torch.testing.assert_close(back.dsigma, problem.dsigma, rtol=0, atol=0)
    assert set(back.channels) == set(problem.channels)


@pytest.mark.parametrize(
    "rows, header, message",
    [
        (["pi+pi-,0.5,0.1,1e-3,1e-5"], "s,cos_theta,dsigma_domega,error", r":1: missing column\(s\) channel"),
        (["pi+pi-,0.5,0.1,1e-3,1e-5", "k+k-,0.5,0.2,1e-3,1e-5"], HEADER, r":3: channel 'k\+k-' is not one of"),
        (["pi+pi-,0.5,0.1,1e-3,1e-5", ",0.5,0.2,1e-3,1e-5"], HEADER, r":3: column channel is empty"),
        (["pi+pi-,0.05,0.1,1e-3,1e-5"], HEADER, r":2: s = 0.05 GeV\^2 is at or below the threshold"),
        (["pi0pi0,0.5,1.2,1e-3,1e-5"], HEADER, r":2: cos_theta = 1.2 is outside"),
        (["pi0pi0,0.5,0.2,1e-3,0"], HEADER, r":2: error = 0 must be positive"),
        (["pi0pi0,0.5,0.2,nan,1e-5"], HEADER, r":2: column dsigma_domega: value is nan"),
        (["pi0pi0,0.5,0.2,1e-3"], HEADER, r":2: 4 fields, header has 5"),
    ],
)
def test_bad_tables_stop_with_file_row_and_problem(tmp_path, rows, header, message):
    path = write(tmp_path, *rows, header=header)
    with pytest.raises(DataError, match=re.escape(str(path)) + message):
        read_channel_cross_sections(path)
    assert main(["run", "pipi-isospin", "--data", str(path), "--out", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()  # nothing written before the data are validated


def test_too_few_points_at_an_energy_is_refused_before_any_work(tmp_path):
    rows = [f"pi+pi-,0.5,{z},1e-3,1e-5" for z in (-0.5, 0.5)] + [
        f"pi0pi0,0.6,{z},1e-3,1e-5" for z in (-0.5, 0, 0.5, 0.9)
    ]
    code = main(["run", "pipi-isospin", "--data", str(write(tmp_path, *rows)), "--out", str(tmp_path / "run")])
    assert code == 2 and not (tmp_path / "run").exists()


def test_cli_simulates_cfd_pseudo_data_the_reader_accepts(tmp_path, capsys):
    out = tmp_path / "cfd.csv"
    assert main(["simulate", "pipi-channels", "--out", str(out), "--n-s", "8", "--n-z", "4", "--seed", "3"]) == 0
    data = read_channel_cross_sections(out)
    assert data.truth["model"] == "pipi-cfd" and data.truth["seed"] == 3
    expected = simulate_cfd(n_s=8, n_z=4, seed=3, channels=data.truth["channels"])
    # four pi pi channels at every energy and angle, and S0-inelastic once per energy above 2 m_K
    assert len(data) == 8 * 4 * 4 + int(expected.inelastic.sum()) and "S0-inelastic" in data.truth["channels"]
    np.testing.assert_array_equal(np.sort(data.dsigma_domega), np.sort(expected.dsigma.numpy()))
    assert main(["simulate", "pipi-channels", "--out", str(out), "--channels", "pi+pi-,K+K-"]) == 2
    assert "--channels" in capsys.readouterr().err


def test_workflow_end_to_end_on_a_users_table_with_truth(tmp_path):
    """Quick preset on CFD pseudo-data written as a user's file, with the S0 wave's inelastic flux: both regions,
    both methods, no assumption needed."""
    data = tmp_path / "cfd.csv"
    channels = "pi+pi-,pi0pi0,pi+pi+,pi+pi0,S0-inelastic"
    simulate = ["simulate", "pipi-channels", "--out", str(data), "--n-s", "26", "--n-z", "8", "--channels", channels]
    assert main([*simulate, "--seed", "5"]) == 0
    out = tmp_path / "run"
    code = main(["run", "pipi-isospin", "--preset", "quick", "--data", str(data), "--out", str(out), "--no-progress"])
    metrics = json.loads((out / "metrics.json").read_text()) if code == 0 else None
    assert code == 0, sorted(p.name for p in out.iterdir())
    for method in ("fit", "diffusion"):
        below = metrics[method]["elastic"]
        assert all(below[f"rms_{w}_deg"] < 2.0 for w in ("delta00", "delta11", "delta02")), below
        above = metrics[method]["inelastic"]
        # to 1.4 GeV; the energy-by-energy fit is the noisier (its replica errors are 0.02-0.03)
        limit = 0.05 if method == "diffusion" else 0.1
        assert all(above[f"max_eta{w}_err"] < limit for w in ("00", "11", "02")), above
    assert metrics["assumption_above_threshold"].startswith("none")
    for name in ("phase_shifts.png", "inelasticities.png", "fit/waves.csv", "diffusion/waves.csv"):
        assert (out / name).is_file(), name
    table = np.genfromtxt(out / "diffusion" / "waves.csv", delimiter=",", names=True)
    assert len(table) == 26 and np.all(table["eta00"] <= 1.0) and np.all(np.diff(table["sqrt_s_gev"]) > 0)
    # resume reuses every stage and gives the same numbers
    again = main(["run", "pipi-isospin", "--resume", "--data", str(data), "--out", str(out), "--no-progress"])
    assert again == 0
    assert json.loads((out / "metrics.json").read_text())["diffusion"] == metrics["diffusion"]


def test_a_fit_that_does_not_describe_the_data_exits_3_and_leaves_no_complete_looking_output(tmp_path):
    data = tmp_path / "bad.csv"
    simulate = ["simulate", "pipi-channels", "--out", str(data), "--n-s", "8", "--n-z", "6", "--sqrt-s-max", "0.9"]
    assert main(simulate) == 0
    lines = data.read_text().splitlines()
    scaled = [lines[0]]
    for line in lines[1:]:  # the pi0pi0 channel 30 % too high: no set of waves describes all channels
        channel, *values = line.split(",")
        if channel == "pi0pi0":
            values[2] = repr(1.3 * float(values[2]))
        scaled.append(",".join([channel, *values]))
    data.write_text("\n".join(scaled) + "\n")
    out = tmp_path / "run"
    code = main(["run", "pipi-isospin", "--method", "fit", "--data", str(data), "--out", str(out), "--no-progress"])
    assert code == 3
    assert (out / "metrics.NOT-CONVERGED.json").is_file() and not (out / "metrics.json").exists()
    failures = json.loads((out / "metrics.NOT-CONVERGED.json").read_text())["not_converged"]
    assert failures and failures[0].startswith("fit (elastic)")
