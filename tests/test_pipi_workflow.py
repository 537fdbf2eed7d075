"""End-to-end checks of the pipi-amplitude workflow and the CLI: simulate -> extract -> compare with truth."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from hadrinv.cli import main
from hadrinv.data.cross_sections import read_cross_sections, write_cross_sections
from hadrinv.data.pipi_toy import PipiToySpec, simulate_pipi
from hadrinv.models.pipi import PipiProblem
from hadrinv.physics.pipi import S_THRESHOLD_GEV2
from hadrinv.workflows.pipi_amplitude.config import GANConfig
from hadrinv.workflows.pipi_amplitude.gan_method import train_member
from hadrinv.workflows.registry import RunContext, get_workflow

QUIET = RunContext(progress=False, log=lambda message: None)
# the acceptance data set of issue 2, scaled for CI: irregular grid, 2% errors, non-default resonances
IRREGULAR = dict(
    n_s=40,
    n_z=24,
    grid="irregular",
    noise=0.02,
    noise_relative_to="point",
    f0_mass_gev=0.55,
    f0_width_gev=0.45,
    rho_mass_gev=0.80,
    rho_width_gev=0.18,
    seed=3,
)


def test_cli_lists_the_workflow(capsys):
    assert main(["list"]) == 0
    assert "pipi-amplitude" in capsys.readouterr().out


def test_simulate_writes_data_and_truth_that_the_reader_accepts(tmp_path, capsys):
    path = tmp_path / "pipi.csv"
    assert main(["simulate", "pipi", "--out", str(path), "--n-s", "12", "--n-z", "10", "--rho-mass", "0.8"]) == 0
    data = read_cross_sections(path, S_THRESHOLD_GEV2)
    assert len(data) == 120 and len(data.energies) == 12
    assert data.truth["rho_mass_gev"] == 0.8


BAD_FILES = {
    "missing_column.csv": ("s,cos_theta\n0.5,0.1\n", "missing column"),
    "nan.csv": ("s,cos_theta,dsigma_domega,error\n0.5,0.1,0.002,0.0001\n0.5,0.2,nan,0.0001\n", ":3:"),
    "threshold.csv": ("s,cos_theta,dsigma_domega,error\n0.05,0.1,0.002,0.0001\n", ":2:"),
    "error.csv": ("s,cos_theta,dsigma_domega,error\n0.5,0.1,0.002,0\n", ":2:"),
    "empty.csv": ("", "empty"),
    "binary.csv": (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a CSV"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_input_stops_with_one_line_exit_code_2_and_no_results(tmp_path, capsys, name):
    content, expected = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out"
    code = main(["run", "pipi-amplitude", "--data", str(path), "--out", str(out), "--method", "fit", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and name in err and expected in err
    assert not (out / "metrics.json").exists()


def test_unknown_config_key_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("gan:\n  epochz: 3\n")
    assert main(["run", "pipi-amplitude", "--config", str(config), "--out", str(tmp_path / "o")]) == 2
    assert "epochz" in capsys.readouterr().err


def test_fit_recovers_phase_shifts_on_an_irregular_grid_with_hessian_bands(tmp_path):
    data_path = write_cross_sections(simulate_pipi(PipiToySpec(**IRREGULAR)), tmp_path / "irregular.csv")
    workflow = get_workflow("pipi-amplitude")
    config = workflow.config(overrides={"data": str(data_path), "out": str(tmp_path / "out"), "method": "fit"})
    result = workflow.run(config, QUIET)
    m = result.metrics["fit"]
    assert m["is_valid"] and m["has_accurate_covar"]
    assert m["delta0_rms_error_deg"] < 1.0 and m["delta1_rms_error_deg"] < 1.0
    assert 0.5 <= m["delta0_band_coverage"] <= 0.9 and 0.5 <= m["delta1_band_coverage"] <= 0.9
    assert 0.7 < m["chi2_ndf"] < 1.3
    assert m["unitarity_loss"] < 1e-8  # exact by construction
    for name in ("partial_waves.csv", "amplitude.csv", "amplitude.png", "pulls.png"):
        assert (result.out / "fit" / name).is_file()
    header = (result.out / "fit" / "partial_waves.csv").read_text().splitlines()[0]
    assert header == "s,delta0_deg,delta0_err_deg,delta1_deg,delta1_err_deg"
    assert json.loads((result.out / "metrics.json").read_text())["fit"]["delta0_rms_error_deg"] == pytest.approx(
        m["delta0_rms_error_deg"]
    )


def _small_gan(**changes) -> GANConfig:
    return GANConfig(**{"epochs": 120, "steps_per_epoch": 20, **changes})


def test_gan_member_is_reproducible_with_the_same_seed():
    problem = PipiProblem.from_data(simulate_pipi(PipiToySpec(n_s=12, n_z=8)), l_max=1)
    cfg = _small_gan(epochs=2, steps_per_epoch=3, samples_per_member=4)
    a, b = train_member(problem, cfg, seed=5), train_member(problem, cfg, seed=5)
    assert torch.equal(a["delta"], b["delta"])
    assert not torch.equal(a["delta"], train_member(problem, cfg, seed=6)["delta"])


def test_gan_ensemble_on_ray_recovers_phase_shifts_and_resumes(tmp_path):
    """Two GAN members in parallel on a local Ray; then --resume reruns only a deleted member."""
    data_path = write_cross_sections(simulate_pipi(PipiToySpec(n_s=32, n_z=24)), tmp_path / "toy.csv")
    out = tmp_path / "out"
    workflow = get_workflow("pipi-amplitude")
    overrides = {
        "data": str(data_path),
        "out": str(out),
        "method": "gan",
        "gan": _small_gan().model_dump(),
        "execution": {"members": 2, "workers": 2},
    }
    result = workflow.run(workflow.config(overrides=overrides), QUIET)
    m = result.metrics["gan"]
    assert m["members"] == 2 and 0.0 <= m["converged_fraction"] <= 1.0
    assert m["converged_fraction"] > 0, "no GAN member converged"
    assert m["delta0_rms_error_deg"] < 3.0 and m["delta1_rms_error_deg"] < 3.0
    assert m["unitarity_loss"] < 0.02
    assert (out / "gan" / "partial_waves.csv").is_file() and (out / "metrics.json").is_file()

    kept, removed = out / "checkpoints" / "gan" / "member_000.pt", out / "checkpoints" / "gan" / "member_001.pt"
    stamp = os.stat(kept).st_mtime_ns
    removed.unlink()
    (out / "metrics.json").unlink()
    overrides["execution"]["executor"] = "serial"
    resumed = workflow.run(
        workflow.config(overrides=overrides), RunContext(resume=True, progress=False, log=lambda message: None)
    )
    assert os.stat(kept).st_mtime_ns == stamp and removed.is_file()
    assert (out / "metrics.json").is_file()
    assert resumed.metrics["gan"]["members"] == 2


def test_resume_with_a_different_config_is_refused(tmp_path):
    workflow = get_workflow("pipi-amplitude")
    data_path = write_cross_sections(simulate_pipi(PipiToySpec(n_s=10, n_z=8)), tmp_path / "toy.csv")
    base = {"data": str(data_path), "out": str(tmp_path / "out"), "method": "fit"}
    workflow.run(workflow.config(overrides=base), QUIET)
    with pytest.raises(ValueError, match="differs"):
        workflow.run(
            workflow.config(overrides={**base, "seed": 9}),
            RunContext(resume=True, progress=False, log=lambda message: None),
        )


def test_cnn_generator_path_maps_a_true_amplitude_image_to_the_true_waves_and_cross_sections():
    """The talk's CNN generator outputs (Re A, Im A) on the grid: projecting the true image must give
    the Breit-Wigner waves (trapezoid rule on 64 angles) and exactly the true cross sections."""
    from hadrinv.physics.partial_waves import amplitude_from_waves
    from hadrinv.physics.pipi import breit_wigner_waves, differential_cross_section
    from hadrinv.workflows.pipi_amplitude.gan_method import PipiGANModel

    data = simulate_pipi(PipiToySpec(n_s=6, n_z=64))
    problem = PipiProblem.from_data(data, l_max=1)
    model = PipiGANModel(problem, GANConfig(generator="cnn", cnn_channels=2, cnn_kernel=3), replica=problem.dsigma)
    grid = problem.regular_grid()
    waves = breit_wigner_waves(problem.energies)
    amplitude = amplitude_from_waves(waves[:, None, :], problem.cos_theta[grid])  # (n_s, n_z)
    image = torch.stack([amplitude.real, amplitude.imag], dim=-1)[None]
    assert torch.allclose(model.waves(image)[0], waves, atol=2e-3)
    truth = differential_cross_section(amplitude_from_waves(waves[problem.energy_index], problem.cos_theta), problem.s)
    assert torch.allclose(model.cross_section(image)[0], truth, rtol=1e-10)


def test_cnn_generator_trains_end_to_end_on_a_small_grid():
    problem = PipiProblem.from_data(simulate_pipi(PipiToySpec(n_s=8, n_z=8)), l_max=1)
    cfg = GANConfig(
        generator="cnn", cnn_channels=4, cnn_kernel=3, epochs=2, steps_per_epoch=2, batch_size=4, samples_per_member=3
    )
    result = train_member(problem, cfg, seed=0)
    assert result["delta"].shape == (3, 8, 2) and torch.isfinite(result["delta"]).all()
    assert len(result["history"]) == 2


def test_cnn_generator_refuses_an_irregular_grid():
    problem = PipiProblem.from_data(simulate_pipi(PipiToySpec(n_s=6, n_z=8, grid="irregular")), l_max=1)
    with pytest.raises(ValueError, match="regular grid"):
        train_member(
            problem, GANConfig(generator="cnn", cnn_channels=2, cnn_kernel=3, epochs=1, steps_per_epoch=1), seed=0
        )


def test_cli_run_ends_with_a_summary_and_the_results_path(tmp_path, capsys):
    data_path = write_cross_sections(simulate_pipi(PipiToySpec(n_s=10, n_z=8)), tmp_path / "toy.csv")
    out = tmp_path / "out"
    assert (
        main(["run", "pipi-amplitude", "--data", str(data_path), "--out", str(out), "--method", "fit", "--no-progress"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "delta0_rms_error_deg" in printed and f"results: {out.resolve()}" in printed
    settings = (out / "config.yaml").read_text()
    assert "method: fit" in settings and str(data_path) in settings


def test_an_interrupted_rerun_never_leaves_results_that_look_complete(tmp_path, monkeypatch):
    import importlib

    run_module = importlib.import_module(
        "hadrinv.workflows.pipi_amplitude.run"
    )  # the package exports run(), the function

    workflow = get_workflow("pipi-amplitude")
    data_path = write_cross_sections(simulate_pipi(PipiToySpec(n_s=10, n_z=8)), tmp_path / "toy.csv")
    config = workflow.config(overrides={"data": str(data_path), "out": str(tmp_path / "out"), "method": "fit"})
    workflow.run(config, QUIET)
    assert (tmp_path / "out" / "metrics.json").is_file()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "fit_phase_shifts", killed)
    with pytest.raises(KeyboardInterrupt):  # over a finished run: only with force
        workflow.run(config, RunContext(force=True, progress=False, log=lambda message: None))
    assert not (tmp_path / "out" / "metrics.json").exists()
    assert not (tmp_path / "out" / "checkpoints").exists(), "a new run must not keep the previous run's checkpoints"


def test_gan_started_at_the_fit_converges_on_per_point_errors_with_calibrated_bands(tmp_path):
    """Per-point 2% errors on an irregular grid, non-default resonances: the data on which a GAN started
    from a rising ramp ends in wrong basins (chi2/ndf in the hundreds); started at the fit it converges."""
    data_path = write_cross_sections(simulate_pipi(PipiToySpec(**IRREGULAR)), tmp_path / "irregular.csv")
    workflow = get_workflow("pipi-amplitude")
    overrides = {
        "data": str(data_path),
        "out": str(tmp_path / "out"),
        "method": "gan",
        "execution": {"members": 3, "executor": "serial"},
    }
    result = workflow.run(workflow.config(preset="quick", overrides=overrides), QUIET)
    m = result.metrics["gan"]
    assert m["is_valid"] and m["members_converged"] == 3
    assert m["delta0_rms_error_deg"] < 1.0 and m["delta1_rms_error_deg"] < 1.0
    assert 0.4 <= m["delta0_band_coverage"] <= 0.95 and 0.4 <= m["delta1_band_coverage"] <= 0.95
    assert m["chi2_ndf"] < 1.5
    assert "fit" not in result.metrics, "the fit that starts the GAN is not reported unless asked for"


def test_a_run_whose_method_did_not_converge_exits_3_without_complete_looking_results(tmp_path, capsys, monkeypatch):
    from hadrinv.workflows.pipi_amplitude import plots

    titles = {}
    for name in ("plot_amplitude_maps", "plot_phase_shifts", "plot_pulls", "plot_training_history"):
        original = getattr(plots, name)

        def recorded(*args, _original=original, _name=name, **kwargs):
            titles[_name] = kwargs.get("title", "")
            return _original(*args, **kwargs)

        monkeypatch.setattr(plots, name, recorded)
    data_path = write_cross_sections(simulate_pipi(PipiToySpec(n_s=12, n_z=10)), tmp_path / "toy.csv")
    config = tmp_path / "short.yaml"
    config.write_text("gan:\n  start: ramp\n  epochs: 1\n  steps_per_epoch: 2\n")
    out = tmp_path / "out"
    argv = ["run", "pipi-amplitude", "--data", str(data_path), "--out", str(out), "--config", str(config)]
    code = main([*argv, "--method", "gan", "--members", "2", "--serial", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 3
    assert "not converged" in captured.err and "0 of 2 members converged" in captured.err
    assert not (out / "metrics.json").exists()
    report = json.loads((out / "metrics.NOT-CONVERGED.json").read_text())
    assert report["gan"]["is_valid"] is False
    assert len(titles) == 4 and all("NOT VALID" in t for t in titles.values()), titles
    # a rerun that converges replaces the report by metrics.json
    assert (
        main(["run", "pipi-amplitude", "--data", str(data_path), "--out", str(out), "--method", "fit", "--force"]) == 0
    )
    assert (out / "metrics.json").is_file() and not (out / "metrics.NOT-CONVERGED.json").exists()


def test_combining_fits_keeps_the_smooth_one_of_two_minima_the_data_cannot_tell_apart():
    from hadrinv.physics.pipi import breit_wigner_phase_shifts
    from hadrinv.workflows.pipi_amplitude.fit_method import combine_solutions

    truth = breit_wigner_phase_shifts(torch.linspace(0.1, 1.0, 40, dtype=torch.float64))
    other = truth.clone()
    other[25] = torch.tensor([0.3, 2.9], dtype=torch.float64)  # another minimum, slightly lower chi^2
    chi2 = torch.full((2, 40), 20.0, dtype=torch.float64)
    chi2[0, 25] = 18.5
    solutions = torch.stack([other, -truth])  # the second fit on the other branch of A -> -A*
    torch.testing.assert_close(combine_solutions(solutions, chi2, ambiguity_chi2=4.0), truth)
    # a minimum clearly better than the smooth one is kept: the data decide where they can
    assert torch.allclose(
        torch.remainder(combine_solutions(solutions, chi2, ambiguity_chi2=1.0)[25], math.pi), other[25]
    )


def test_scattered_grid_draws_energies_at_random_with_the_same_angles_at_each():
    data = simulate_pipi(PipiToySpec(n_s=15, n_z=9, grid="scattered", seed=4))
    s, z = torch.as_tensor(data.s), torch.as_tensor(data.cos_theta)
    energies = torch.unique(s)
    assert len(energies) == 15 and len(s) == 15 * 9
    assert float(torch.diff(energies).std()) > 0.1 * float(torch.diff(energies).mean()), "energies not regular"
    first = torch.sort(z[s == energies[0]]).values
    for e in energies:
        torch.testing.assert_close(torch.sort(z[s == e]).values, first)


def test_waves_between_energies_stay_unitary_and_pass_through_the_measured_ones():
    from hadrinv.physics.partial_waves import elastic_wave
    from hadrinv.physics.pipi import breit_wigner_phase_shifts
    from hadrinv.workflows.pipi_amplitude.extraction import waves_on_fine_grid

    energies = torch.linspace(0.1, 1.0, 12, dtype=torch.float64)[torch.randperm(12)]
    delta = breit_wigner_phase_shifts(energies)
    waves = elastic_wave(delta)
    eta = 1.0 - 0.3 * energies  # an inelastic P wave: f = (eta exp(2i delta) - 1) / 2i
    waves[:, 1] = (eta * torch.exp(2j * delta[:, 1]) - 1) / 2j
    eta = (1 + 2j * waves).abs().numpy()
    fine = waves_on_fine_grid(energies.numpy(), delta.numpy() * 180 / math.pi, waves.numpy(), energies.numpy())
    assert abs(fine - waves.numpy()).max() < 1e-12
    s_fine = torch.linspace(0.1, 1.0, 500, dtype=torch.float64).numpy()
    between = waves_on_fine_grid(energies.numpy(), delta.numpy() * 180 / math.pi, waves.numpy(), s_fine)
    assert abs(abs(1 + 2j * between[:, 0]) - 1).max() < 1e-12  # the elastic wave stays on the unitarity circle
    assert abs(1 + 2j * between[:, 1]).min() >= eta[:, 1].min() - 1e-12
    assert abs(1 + 2j * between[:, 1]).max() <= eta[:, 1].max() + 1e-12


def test_whitened_summary_of_noiseless_data_is_the_whitened_coefficients_to_first_order():
    from hadrinv.workflows.pipi_amplitude.diffusion_method import Compressor, SplinePhaseModel
    from hadrinv.workflows.pipi_amplitude.fit_method import fit_phase_shifts

    # 20 irregular energies for 12 basis functions: some knot intervals hold one energy or none
    problem = PipiProblem.from_data(simulate_pipi(PipiToySpec(**{**IRREGULAR, "n_s": 20, "n_z": 12})), 1)
    fit = fit_phase_shifts(problem)
    model = SplinePhaseModel(problem, 12)
    compress = Compressor(model, fit.delta, fit.delta_err)
    assert compress.fit.is_valid and compress.fit.fval / compress.fit.ndf < 1.5
    assert torch.isfinite(compress.scale).all() and compress.scale.abs().max() < 1e3
    n = 0.01 * torch.randn(5, model.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = compress.summary(model.cross_section(compress.coefficients(n)))
    y -= compress.summary(model.cross_section(compress.c_map))
    # y = Q_d^T Q_d n: n itself where the data, not the curvature penalty, fix the coefficients
    torch.testing.assert_close(y, n @ (compress.q.T @ compress.q), atol=2e-4, rtol=0)  # second order in n


def test_band_scale_undoes_a_too_narrow_posterior_and_a_second_set_confirms_it():
    from hadrinv.workflows.pipi_amplitude.diffusion_method import _coverage, band_scale

    generator = torch.Generator().manual_seed(4)

    def sets(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        # the true posterior of each set is N(centre, 1); the samples have width 0.8
        centre = torch.randn(n, 1, 6, generator=generator, dtype=torch.float64)
        truth = centre[:, 0] + torch.randn(n, 6, generator=generator, dtype=torch.float64)
        return centre + 0.8 * torch.randn(n, 400, 6, generator=generator, dtype=torch.float64), truth

    samples, truth = sets(300)
    assert _coverage(samples, truth, 0.68) < 0.62  # 2 Phi(0.8) - 1 = 0.58
    scale = band_scale(samples, truth, 0.68)
    assert abs(scale - 1.25) < 0.06
    check_samples, check_truth = sets(300)
    assert abs(_coverage(check_samples, check_truth, 0.68, scale) - 0.68) < 0.03
    assert abs(_coverage(check_samples, check_truth, 0.95, scale) - 0.95) < 0.02


def test_diffusion_recovers_phase_shifts_with_calibrated_68_and_95_percent_intervals(tmp_path):
    workflow = get_workflow("pipi-amplitude")
    small = {"calibration_sets": 100, "calibration_samples": 200}
    config = workflow.config(
        overrides={
            "method": "diffusion",
            "out": str(tmp_path / "out"),
            "seed": IRREGULAR["seed"],
            "simulation": {**{k: v for k, v in IRREGULAR.items() if k != "seed"}, "n_s": 30},
            "diffusion": small,
        }
    )
    result = workflow.run(config, QUIET)
    m = result.metrics["diffusion"]
    assert m["is_valid"] and m["chi2_ndf"] < 1.5, m
    assert "fit" not in result.metrics  # the fit only centres the prior
    for l in (0, 1):
        assert m[f"delta{l}_rms_error_deg"] < 1.0, m
        assert 0.4 <= m[f"delta{l}_coverage_68"] <= 0.95, m
        assert m[f"delta{l}_coverage_95"] >= 0.8, m
    assert 0.58 <= m["calibration_coverage_68"] <= 0.78 and 0.88 <= m["calibration_coverage_95"] <= 0.99, m
    assert 0.8 < m["band_scale"] < 1.25 and 0.4 < m["calibration_coverage_68_unscaled"] < 0.9, m
    assert (result.out / "diffusion" / "partial_waves.csv").is_file() and (result.out / "metrics.json").is_file()
