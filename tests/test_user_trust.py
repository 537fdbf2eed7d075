"""Runs a user can trust: refused when they cannot mean anything, flagged when the fit does not describe the
data, fast on absurd values, readable outputs, simulated files that feed the workflows, visible progress."""

from __future__ import annotations

import json
import os
import stat
import time

import numpy as np
import pytest
import torch

from hadrinv.cli import main
from hadrinv.data.cross_sections import CrossSectionData, read_cross_sections, write_cross_sections
from hadrinv.data.dis_toy import read_dis_data
from hadrinv.data.femto import read_correlation_csv
from hadrinv.data.io import atomic_torch_save, atomic_write_csv, atomic_write_json, atomic_write_text
from hadrinv.data.pipi_toy import PipiToySpec, simulate_pipi
from hadrinv.data.pwa_model import generate_events, no_acceptance, read_model
from hadrinv.data.validation import DataError
from hadrinv.models.pipi import PipiProblem
from hadrinv.physics.femtoscopy import HAL_N_OMEGA, GaussianYukawaPotential, correlation_function
from hadrinv.physics.pipi import S_THRESHOLD_GEV2
from hadrinv.workflows.pipi_amplitude.fit_method import MIN_P_VALUE, chi2_p_value, fit_is_valid, fit_phase_shifts
from hadrinv.workflows.registry import RunContext, get_workflow

QUIET = RunContext(progress=False, log=lambda message: None)


def _write_rows(path, rows, header="s,cos_theta,dsigma_domega,error"):
    path.write_text(header + "\n" + "\n".join(",".join(repr(float(v)) for v in row) for row in rows) + "\n")
    return path


def _run_fit(data_path, out, capsys):
    code = main(
        ["run", "pipi-amplitude", "--data", str(data_path), "--out", str(out), "--method", "fit", "--no-progress"]
    )
    return code, capsys.readouterr().err.strip()


# ---- pi pi fit: no degrees of freedom, underdetermined energies -------------------------------------------


def test_fit_with_no_degrees_of_freedom_is_refused_before_any_work(tmp_path, capsys):
    # 2 points at one energy, 2 phase shifts (l_max = 1, the default)
    path = _write_rows(tmp_path / "two.csv", [(0.5, 0.1, 0.002, 1e-4), (0.5, 0.2, 0.0021, 1e-4)])
    code, err = _run_fit(path, tmp_path / "out", capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "two.csv" in err and "ndf = 0" in err and "degrees of freedom" in err
    assert not (tmp_path / "out").exists()


def test_fit_with_one_angle_at_an_energy_is_refused_naming_that_energy(tmp_path, capsys):
    # ndf > 0 overall (6 points, 4 phase shifts), but s = 0.7 has one angle for two unknowns
    rows = [(0.5, z, 0.002 + 0.001 * z, 1e-4) for z in (-0.8, -0.3, 0.2, 0.6, 0.9)] + [(0.7, 0.1, 0.003, 1e-4)]
    path = _write_rows(tmp_path / "sparse.csv", rows)
    code, err = _run_fit(path, tmp_path / "out", capsys)
    assert code == 2
    assert len(err.splitlines()) == 1 and "s = 0.7 GeV^2" in err
    assert "1 distinct angle" in err and "underdetermined" in err
    assert not (tmp_path / "out").exists()


def test_one_angle_per_energy_is_refused(tmp_path, capsys):
    path = _write_rows(tmp_path / "one.csv", [(s, 0.3, 0.002, 1e-4) for s in (0.3, 0.5, 0.7)])
    code, err = _run_fit(path, tmp_path / "out", capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "s = 0.3 GeV^2" in err
    assert not (tmp_path / "out").exists()


def test_repeated_angles_do_not_count_as_information(tmp_path, capsys):
    # 4 points at one energy but one angle: the phase shifts there are not determined
    rows = [(0.5, 0.2, 0.002, 1e-4)] * 4 + [(0.7, z, 0.003, 1e-4) for z in (-0.5, 0.0, 0.5)]
    path = _write_rows(tmp_path / "repeated.csv", rows)
    code, err = _run_fit(path, tmp_path / "out", capsys)
    assert code == 2 and "s = 0.5 GeV^2" in err


# ---- pi pi fit: validity needs a chi2 p-value >= 1e-3 ----------------------------------------------------


def test_p_value_and_validity_rules():
    assert chi2_p_value(100.0, 100) == pytest.approx(0.4811, abs=1e-3)
    assert chi2_p_value(552.0 * 30, 30) < 1e-100
    assert np.isnan(chi2_p_value(1.0, 0))
    assert fit_is_valid(True, 0.5) and not fit_is_valid(True, MIN_P_VALUE / 2) and not fit_is_valid(False, 0.5)
    assert not fit_is_valid(True, float("nan"))


def _understated_errors(factor: float = 30.0) -> CrossSectionData:
    data = simulate_pipi(PipiToySpec(n_s=10, n_z=8, seed=4))
    data.error = data.error / factor  # chi2/ndf ~ factor^2: a minimum of a chi2 the model cannot reach
    return data


def test_converged_fit_with_a_tiny_p_value_is_not_valid():
    fitted = fit_phase_shifts(PipiProblem.from_data(_understated_errors(), l_max=1))
    assert fitted.fit.is_valid  # the minimiser is content ...
    assert fitted.chi2_p_value < MIN_P_VALUE and not fitted.is_valid  # ... the data are not


def test_workflow_reports_the_p_value_and_flags_a_bad_fit(tmp_path):
    workflow = get_workflow("pipi-amplitude")
    bad = write_cross_sections(_understated_errors(), tmp_path / "bad.csv")
    config = workflow.config(overrides={"data": str(bad), "out": str(tmp_path / "bad"), "method": "fit"})
    result = workflow.run(config, QUIET)
    m = result.metrics["fit"]
    assert m["chi2_ndf"] > 100 and m["chi2_p_value"] < MIN_P_VALUE and m["is_valid"] is False
    assert result.invalid_methods() == ["fit"]
    # a result that is not valid never looks complete: its metrics are kept under another name
    assert not (result.out / "metrics.json").exists()
    saved = json.loads((result.out / "metrics.NOT-CONVERGED.json").read_text())["fit"]
    assert saved["is_valid"] is False and saved["chi2_p_value"] == pytest.approx(m["chi2_p_value"])

    good = write_cross_sections(simulate_pipi(PipiToySpec(n_s=10, n_z=8, seed=4)), tmp_path / "good.csv")
    config = workflow.config(overrides={"data": str(good), "out": str(tmp_path / "good"), "method": "fit"})
    result = workflow.run(config, QUIET)
    assert result.metrics["fit"]["is_valid"] is True and result.metrics["fit"]["chi2_p_value"] >= MIN_P_VALUE


# ---- absurd magnitudes are refused by the readers, with the row ----------------------------------------


def _toy_rows():
    data = simulate_pipi(PipiToySpec(n_s=6, n_z=8))
    return [list(row) for row in zip(data.s, data.cos_theta, data.dsigma_domega, data.error)]


@pytest.mark.parametrize(
    "column, value, expected",
    [
        (2, 1e300, "dsigma_domega: 1e+300 is beyond"),
        (2, -1e300, "dsigma_domega: -1e+300 is beyond"),
        (3, 1e300, "error: 1e+300 is beyond"),
        (3, 1e-300, "error: 1e-300 is below"),
    ],
)
def test_huge_or_tiny_values_in_a_cross_section_file_stop_at_once_with_the_row(
    tmp_path, capsys, column, value, expected
):
    rows = _toy_rows()
    rows[4][column] = value  # file line 6: the header is line 1
    path = _write_rows(tmp_path / "absurd.csv", rows)
    started = time.perf_counter()
    code, err = _run_fit(path, tmp_path / "out", capsys)
    assert code == 2 and time.perf_counter() - started < 30
    assert len(err.splitlines()) == 1 and "absurd.csv:6:" in err and expected in err
    assert not (tmp_path / "out").exists()


def test_ordinary_cross_sections_are_still_read(tmp_path):
    path = _write_rows(tmp_path / "ok.csv", _toy_rows())
    assert len(read_cross_sections(path, S_THRESHOLD_GEV2)) == 48


def test_dis_reader_refuses_a_huge_cross_section_and_a_tiny_error(tmp_path):
    header = "x,Q2,sigma_p,sigma_n,sigma_p_err,sigma_n_err\n"
    (tmp_path / "big.csv").write_text(header + "0.1,10,0.5,0.4,0.01,0.01\n0.2,10,1e300,0.4,0.01,0.01\n")
    with pytest.raises(DataError, match=r"big\.csv:3: column sigma_p: 1e\+300 is beyond"):
        read_dis_data(tmp_path / "big.csv")
    (tmp_path / "tiny.csv").write_text(header + "0.1,10,0.5,0.4,0.01,1e-300\n")
    with pytest.raises(DataError, match=r"tiny\.csv:2: column sigma_n_err: 1e-300 is below"):
        read_dis_data(tmp_path / "tiny.csv")


def test_femto_reader_refuses_a_huge_correlation_function(tmp_path):
    (tmp_path / "c.csv").write_text("k_mev,C,error\n10,1.5,0.01\n20,1e300,0.01\n30,1.1,0.01\n")
    with pytest.raises(DataError, match=r"c\.csv:3: column C: 1e\+300 is beyond"):
        read_correlation_csv(tmp_path / "c.csv")


# ---- written files honour the umask like open() -------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path, umask):
    from hadrinv.data.pwa_events import write_events

    events = tuple(torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64) for _ in range(3))
    previous = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as handle:
            handle.write("x")
        written = [
            atomic_write_text(tmp_path / "a.txt", "text\n"),
            atomic_write_json(tmp_path / "a.json", {"a": 1}),
            atomic_write_csv(tmp_path / "a.csv", ["a"], [[1]]),
            atomic_torch_save({"t": torch.zeros(2)}, tmp_path / "a.pt"),
            *(write_events(tmp_path / f"events.{suffix}", events) for suffix in ("csv", "parquet", "root")),
        ]
    finally:
        os.umask(previous)
    expected = stat.S_IMODE(os.stat(tmp_path / "plain.txt").st_mode)
    assert expected == 0o666 & ~umask
    for path in written:
        assert stat.S_IMODE(os.stat(path).st_mode) == expected, path.name


# ---- simulate femto writes the error column femto-inverse --data needs ---------------------------------


def test_simulated_femto_file_reads_back_as_measured_data(tmp_path, capsys):
    path = tmp_path / "c.csv"
    assert main(["simulate", "femto", "--k", "10,40,80,150", "--relative-error", "0.02", "--out", str(path)]) == 0
    data = read_correlation_csv(path, require_error=True)  # what `run femto-inverse --data` reads
    potential = GaussianYukawaPotential(HAL_N_OMEGA["b1"], HAL_N_OMEGA["b2"], HAL_N_OMEGA["b3"], HAL_N_OMEGA["b4"])
    C, _ = correlation_function(potential, torch.tensor([10.0, 40.0, 80.0, 150.0], dtype=torch.float64), 1.3)
    np.testing.assert_allclose(data.C, C[0].numpy(), rtol=1e-12)  # exact values, no noise
    np.testing.assert_allclose(data.error, 0.02 * data.C, rtol=1e-12)
    assert json.loads(path.with_name("c.csv.truth.json").read_text())["relative_error"] == 0.02


def test_simulated_femto_file_has_an_error_column_by_default(tmp_path):
    path = tmp_path / "c.csv"
    assert main(["simulate", "femto", "--k", "10,40,80", "--out", str(path)]) == 0
    assert path.read_text().splitlines()[0] == "k_mev,C,error,delta_deg"
    data = read_correlation_csv(path)
    np.testing.assert_allclose(data.error, 0.01 * data.C, rtol=1e-12)


@pytest.mark.parametrize("value", ["0", "-0.1"])
def test_simulate_femto_refuses_a_non_positive_relative_error(tmp_path, capsys, value):
    code = main(["simulate", "femto", "--k", "10,40,80", "--relative-error", value, "--out", str(tmp_path / "c.csv")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--relative-error" in err
    assert not (tmp_path / "c.csv").exists()


# ---- simulate pwa shows progress ----------------------------------------------------------------------


def test_generate_events_reports_increasing_counts_ending_at_the_request():
    calls = []
    n = 3000
    events = generate_events(
        read_model("R0"),
        n,
        acceptance=no_acceptance,
        generator=torch.Generator().manual_seed(2),
        batch=2000,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert len(events[0]) == n
    assert len(calls) > 1, "one batch cannot show progress: make the batch smaller than the request"
    done = [d for d, _ in calls]
    assert all(t == n for _, t in calls)
    assert done == sorted(done) and done[-1] == n and done[0] < n


def test_simulate_pwa_logs_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    out = tmp_path / "ev.csv"
    assert main(["simulate", "pwa", "--model", "R0", "--events", "300", "--acceptance", "none", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1] == "generated 300 / 300 events" and len(err) <= 10
    assert out.is_file() and out.with_name("ev.csv.model.yaml").is_file()


# ---- simulate pipi: nonsense options stop with one line ------------------------------------------------


@pytest.mark.parametrize(
    "option, value",
    [
        ("--n-s", "0"),
        ("--n-z", "0"),
        ("--n-s", "-3"),
        ("--f0-width", "-0.1"),
        ("--rho-width", "0"),
        ("--rho-mass", "-1"),
        ("--noise", "0"),
        ("--noise", "nan"),
        ("--s-max", "0.01"),
        ("--seed", "-1"),
    ],
)
def test_simulate_pipi_refuses_nonsense_with_one_line(tmp_path, capsys, option, value):
    out = tmp_path / "pipi.csv"
    assert main(["simulate", "pipi", "--out", str(out), option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {option}:") and "Traceback" not in err
    assert not out.exists()


def test_irregular_grid_needs_two_angles_and_spec_checks_apply_to_the_library():
    from hadrinv.data.pipi_toy import PipiSpecError

    with pytest.raises(PipiSpecError, match="n_z"):
        PipiToySpec(n_z=1, grid="irregular")
    with pytest.raises(ValueError, match="n_s"):
        PipiToySpec(n_s=0)
    spec = PipiToySpec(n_s=3, n_z=3)
    spec.noise = 0.0  # changed after construction: simulate checks again
    with pytest.raises(ValueError, match="noise"):
        simulate_pipi(spec)
