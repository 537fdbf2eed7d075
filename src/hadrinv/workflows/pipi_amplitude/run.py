"""pipi-amplitude: the pi pi amplitude (modulus and phase) from dsigma/dOmega, talk 000.

Loads (or simulates) the data, runs the baseline fit and/or the GAN ensemble, writes per method
partial_waves.csv, amplitude.csv and plots into OUT/<method>/, and metrics.json (last) into OUT.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.cross_sections import CrossSectionData, read_cross_sections, write_cross_sections
from hadrinv.data.io import atomic_torch_save, load_checkpoint
from hadrinv.data.pipi_toy import PipiToySpec, simulate_pipi, truth_resonances
from hadrinv.inference.diagnostics import replica_band_factor
from hadrinv.inference.ensemble import run_tasks
from hadrinv.models.pipi import PipiProblem
from hadrinv.physics.partial_waves import amplitude_from_waves, elastic_wave
from hadrinv.physics.pipi import S_THRESHOLD_GEV2, breit_wigner_phase_shifts, breit_wigner_waves
from hadrinv.workflows.execution import require_device
from hadrinv.workflows.output import CHECKPOINTS, TaskProgress, finish_output, prepare_output
from hadrinv.workflows.pipi_amplitude import plots
from hadrinv.workflows.pipi_amplitude.config import PipiAmplitudeConfig
from hadrinv.workflows.pipi_amplitude.diffusion_method import diffusion_extraction, run_diffusion
from hadrinv.workflows.pipi_amplitude.extraction import (
    Extraction,
    align_to_truth_period,
    amplitude_at_points,
    data_metrics,
    rad2deg,
    truth_metrics,
    waves_on_fine_grid,
)
from hadrinv.workflows.pipi_amplitude.fit_method import (
    amplitude_with_errors,
    chi2_p_value,
    fit_is_valid,
    fit_phase_shifts,
    require_degrees_of_freedom,
)
from hadrinv.workflows.pipi_amplitude.gan_method import train_member
from hadrinv.workflows.registry import RunContext


@dataclass
class PipiAmplitudeResult:
    out: Path
    extractions: dict[str, Extraction]
    metrics: dict

    def summary_columns(self) -> list[str]:
        return ["quantity", *self.extractions]

    def invalid_methods(self) -> list[str]:
        return [m for m, e in self.extractions.items() if not e.metrics.get("is_valid", True)]

    @property
    def failures(self) -> list[str]:
        """One line per method that did not converge; a run with any exits non-zero from the CLI."""
        return [failure_line(name, self.extractions[name].metrics) for name in self.invalid_methods()]

    def summary_rows(self) -> list[tuple[str, ...]]:
        """(quantity, value per method) rows for the terminal summary."""
        methods = list(self.extractions)
        keys = [
            k
            for k in (
                "chi2_ndf",
                "chi2_p_value",
                "unitarity_loss",
                "delta0_rms_error_deg",
                "delta1_rms_error_deg",
                "delta0_band_coverage",
                "delta1_band_coverage",
                "delta0_coverage_95",
                "delta1_coverage_95",
                "calibration_coverage_68",
                "calibration_coverage_95",
                "band_scale",
                "converged_fraction",
                "seconds",
            )
            if any(k in self.extractions[m].metrics for m in methods)
        ]
        rows = []
        for k in keys:
            values = []
            for m in methods:
                v = self.extractions[m].metrics.get(k)
                values.append("-" if v is None else f"{v:.4g}")
            rows.append((k, *values))
        return rows


def load_data(config: PipiAmplitudeConfig) -> CrossSectionData:
    if config.data:
        return read_cross_sections(config.data, S_THRESHOLD_GEV2)
    spec = PipiToySpec(**config.simulation.model_dump(), seed=config.seed)
    return simulate_pipi(spec)


def run(config: PipiAmplitudeConfig, context: RunContext | None = None) -> PipiAmplitudeResult:
    context = context or RunContext()
    started = time.perf_counter()
    data = load_data(config)  # validates before anything is written
    require_device(config.execution.device)
    problem = PipiProblem.from_data(data, config.l_max, config.assumed_relative_error)
    if {"fit", "diffusion"} & set(config.methods()):
        require_degrees_of_freedom(problem, data.source)
    elif config.gan.start == "fit":  # the GAN's smooth curves share information across energies; its start does not
        try:
            require_degrees_of_freedom(problem, data.source)
        except ValueError as error:
            raise ValueError(f"{error}; or start the GAN from a ramp (gan.start: ramp)") from None
    out = prepare_output(config.out, config, context)
    if not config.data:
        write_cross_sections(data, out / "data.csv")
    resonances = truth_resonances(data.truth)
    truth_deg = None
    if resonances is not None:
        truth_deg = np.zeros((problem.n_energies, problem.n_waves))
        known = min(problem.n_waves, 2)
        truth_deg[:, :known] = rad2deg(breit_wigner_phase_shifts(problem.energies, resonances))[:, :known]
    context.log(f"data: {data.source}: {len(problem)} points at {problem.n_energies} energies, l_max = {config.l_max}")

    extractions: dict[str, Extraction] = {}
    methods = config.methods()
    fit = start = None
    if "fit" in methods or "diffusion" in methods or ("gan" in methods and config.gan.start == "fit"):
        fit = _run_fit(problem, config, out / CHECKPOINTS / "fit.pt", context)
        start = (torch.as_tensor(np.radians(fit.delta_deg)), torch.as_tensor(np.radians(fit.delta_err_deg)))
    if "fit" in methods:
        extractions["fit"] = fit
    if "gan" in methods:
        gan_start = start if config.gan.start == "fit" else None
        extractions["gan"] = _run_gan(problem, config, out / CHECKPOINTS / "gan", out / "gan", context, gan_start)
    if "diffusion" in methods:
        extractions["diffusion"] = _run_diffusion(problem, config, start, out / CHECKPOINTS / "diffusion.pt", context)

    for name, extraction in extractions.items():
        folder = out / name
        if truth_deg is not None:
            aligned = align_to_truth_period(extraction.delta_deg, truth_deg)
            shift, extraction.delta_deg = aligned - extraction.delta_deg, aligned
            if extraction.intervals_deg:
                intervals = extraction.intervals_deg.items()
                extraction.intervals_deg = {k: (lo + shift, hi + shift) for k, (lo, hi) in intervals}
            extraction.metrics.update(
                truth_metrics(extraction.delta_deg, extraction.delta_err_deg, truth_deg, extraction.intervals_deg)
            )
            if extraction.pooled_err_deg is not None:
                pooled = truth_metrics(extraction.delta_deg, extraction.pooled_err_deg, truth_deg)
                extraction.metrics.update(
                    {
                        k.replace("band_coverage", "pooled_band_coverage"): v
                        for k, v in pooled.items()
                        if "coverage" in k
                    }
                )
        extraction.write(folder, problem)
        _plots(folder, problem, extraction, resonances, plot_title(name, extraction.metrics))
    curves = [
        {
            "label": n if e.metrics.get("is_valid", True) else f"{n} (NOT VALID)",
            "s": e.energies,
            "delta_deg": e.delta_deg,
            "delta_err_deg": e.delta_err_deg,
        }
        for n, e in extractions.items()
    ]
    invalid = "; ".join(plot_title(n, e.metrics) for n, e in extractions.items() if not e.metrics.get("is_valid", True))
    plots.plot_phase_shifts(out / "phase_shifts.png", curves, _fine_truth(problem, resonances), title=invalid)
    metrics = {
        "workflow": "pipi-amplitude",
        "data": data.source,
        "n_points": len(problem),
        "n_energies": problem.n_energies,
        "errors_given": problem.errors_given,
        "seconds": time.perf_counter() - started,
        **{name: e.metrics for name, e in extractions.items()},
    }
    result = PipiAmplitudeResult(out=out, extractions=extractions, metrics=metrics)
    finish_output(out, metrics, result.failures)
    return result


def failure_line(method: str, metrics: dict) -> str:
    """Why a method's result is not valid, in one line."""
    if "members_converged" in metrics:
        return (
            f"{method}: {metrics['members_converged']} of {metrics['members']} members converged (at least "
            f"{metrics['members_required']} needed); chi2/ndf of the mean {metrics['chi2_ndf']:.3g}"
        )
    line = f"{method}: chi2/ndf {metrics['chi2_ndf']:.3g}, p-value {metrics.get('chi2_p_value', float('nan')):.2g}"
    if not metrics.get("minimiser_valid", True):
        line += ", the minimiser did not converge"
    if "calibration_coverage_68" in metrics:
        line += f", held-out 68 % coverage {metrics['calibration_coverage_68']:.2f}"
    return line


def _run_fit(problem: PipiProblem, config: PipiAmplitudeConfig, checkpoint: Path, context: RunContext) -> Extraction:
    if context.resume and checkpoint.is_file():
        saved = load_checkpoint(checkpoint)
        context.log("fit: loaded from checkpoint")
    else:
        fitted = fit_phase_shifts(problem, restarts=config.fit.restarts, seed=config.seed)
        saved = {
            "delta": fitted.delta,
            "delta_err": fitted.delta_err,
            "covariance": torch.as_tensor(fitted.fit.covariance),
            "is_valid": fitted.fit.is_valid,  # the minimiser's verdict; the p-value is judged below
            "has_accurate_covar": fitted.fit.has_accurate_covar,
            "seconds": fitted.seconds,
        }
        atomic_torch_save(saved, checkpoint)
        context.log(
            f"fit: {'valid' if fitted.is_valid else 'NOT VALID'}, chi2/ndf = {fitted.fit.chi2_per_ndf:.3f}, "
            f"p = {fitted.chi2_p_value:.3g}, {fitted.seconds:.1f} s"
        )
    delta = saved["delta"]
    waves = elastic_wave(delta)
    amplitude, amplitude_err = amplitude_with_errors(problem, delta, saved["covariance"].numpy())
    metrics, pulls = data_metrics(problem, waves, delta.numel())
    # the p-value of the central waves, judged here once, for a fresh fit and a checkpoint alike
    p_value = chi2_p_value(metrics["chi2"], metrics["ndf"])
    metrics.update(
        is_valid=fit_is_valid(saved["is_valid"], p_value),
        minimiser_valid=bool(saved["is_valid"]),
        chi2_p_value=p_value,
        has_accurate_covar=bool(saved["has_accurate_covar"]),
        seconds=float(saved["seconds"]),
    )
    extraction = Extraction(
        "fit",
        problem.energies.numpy(),
        rad2deg(delta),
        rad2deg(saved["delta_err"]),
        waves.numpy(),
        amplitude.numpy(),
        amplitude_err.numpy(),
        metrics,
    )
    extraction.pulls = pulls
    width = 1.959964 * extraction.delta_err_deg  # Hessian errors: Gaussian intervals
    extraction.intervals_deg = {95: (extraction.delta_deg - width, extraction.delta_deg + width)}
    return extraction


def _run_diffusion(
    problem: PipiProblem, config: PipiAmplitudeConfig, start, checkpoint: Path, context: RunContext
) -> Extraction:
    if context.resume and checkpoint.is_file():
        result = load_checkpoint(checkpoint)
        context.log("diffusion: loaded from checkpoint")
    else:
        context.log(f"diffusion: {config.diffusion.simulations} simulations around the fit, training")
        result = run_diffusion(
            problem, config.diffusion, start, config.seed, config.execution.device, progress=context.progress
        )
        atomic_torch_save(result, checkpoint)
        context.log(
            f"diffusion: {result['training']['epochs']} epochs, held-out coverage "
            f"{result['calibration_coverage_68']:.2f} / {result['calibration_coverage_95']:.2f} at 68 / 95 % "
            f"(band x {result.get('band_scale', 1.0):.3f}), {result['seconds']:.0f} s"
        )
    return diffusion_extraction(problem, result, config.diffusion.calibration_tolerance)


def _run_gan(
    problem: PipiProblem,
    config: PipiAmplitudeConfig,
    checkpoints: Path,
    folder: Path,
    context: RunContext,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Extraction:
    started = time.perf_counter()
    n = config.execution.members
    member_files = [checkpoints / f"member_{i:03d}.pt" for i in range(n)]
    done = [0]

    progress = TaskProgress(context, n, "GAN ensemble")

    def on_done(i: int, result: dict) -> None:
        done[0] += 1
        progress.advance(
            f"member {i}: {'converged' if result['converged'] else 'not converged'} after {result['epochs']} epochs, "
            f"{result['seconds']:.0f} s"
        )

    members = run_tasks(
        train_member,
        shared={
            "problem": problem,
            "cfg": config.gan,
            "device": config.execution.device,
            "threads": config.execution.threads_per_task or 1,
            "start": start,
        },
        per_task=[{"seed": config.seed * 100_003 + i} for i in range(n)],
        checkpoints=member_files,
        resume=context.resume,
        on_done=on_done,
        **config.execution.task_options(),
    )
    progress.close()
    converged = [m for m in members if m["converged"]]
    required = max(1, math.ceil(config.gan.min_converged_fraction * n))
    used = converged or members  # with none converged we still report, flagged as not valid
    # each member: mean over its latent samples; the band is the spread of these over the members, each
    # trained on its own replica of the data (a bootstrap); the latent spread within a member is reported
    # beside it ("pooled") but is not a calibrated uncertainty
    member_delta = _align_samples(
        torch.stack([_align_samples(m["delta"]).mean(0) for m in used])
    )  # (members, n_s, n_waves)
    member_waves = torch.stack([torch.complex(m["waves_re"], m["waves_im"]).mean(0) for m in used])
    pooled = _align_samples(torch.cat([m["delta"] for m in used]))
    central_waves = member_waves.mean(0)
    amplitudes = amplitude_at_points(problem, member_waves)
    amplitude = amplitudes.mean(0)
    if len(used) > 1:  # a 68 % prediction band for the truth: the spread of the members, widened for their number
        factor = replica_band_factor(len(used))
        delta_err = factor * member_delta.std(0)
        amplitude_err = factor * torch.complex(amplitudes.real.std(0), amplitudes.imag.std(0))
    else:  # one member: only its latent spread is there to show
        delta_err = pooled.std(0)
        samples = amplitude_at_points(problem, torch.complex(used[0]["waves_re"], used[0]["waves_im"]))
        amplitude_err = torch.complex(samples.real.std(0), samples.imag.std(0))
    metrics, pulls = data_metrics(problem, central_waves, members[0]["n_shape_parameters"])
    metrics.update(
        members=n,
        members_converged=len(converged),
        converged_fraction=len(converged) / n,
        members_required=required,
        is_valid=len(converged) >= required,
        band="replicas" if len(used) > 1 else "latent",
        member_epochs_mean=float(np.mean([m["epochs"] for m in members])),
        member_seconds_mean=float(np.mean([m["seconds"] for m in members])),
        seconds=time.perf_counter() - started,
    )
    delta_mean = member_delta.mean(0)
    extraction = Extraction(
        "gan",
        problem.energies.numpy(),
        rad2deg(delta_mean),
        rad2deg(delta_err),
        central_waves.numpy(),
        amplitude.numpy(),
        amplitude_err.numpy(),
        metrics,
    )
    extraction.pooled_err_deg = rad2deg(pooled.std(0))
    if len(used) > 1:
        width = rad2deg(replica_band_factor(len(used), 0.95) * member_delta.std(0))
        extraction.intervals_deg = {95: (extraction.delta_deg - width, extraction.delta_deg + width)}
    extraction.pulls = pulls
    plots.plot_training_history(
        folder / "training.png",
        [m["history"] for m in members],
        keys=("mse", "unitarity_loss", "chi2_ndf", "loss_d"),
        title=plot_title("gan", metrics),
    )
    return extraction


def _align_samples(delta: torch.Tensor) -> torch.Tensor:
    """Shift each sample by multiples of pi to the first sample's curve (phase shifts are defined mod pi)."""
    reference = delta[0]
    shift = torch.round((delta - reference).mean(-2, keepdim=True) / math.pi) * math.pi
    return delta - shift


def _fine_truth(problem: PipiProblem, resonances) -> dict | None:
    if resonances is None:
        return None
    s = torch.linspace(float(problem.energies.min()), float(problem.energies.max()), 400, dtype=torch.float64)
    return {"s": s.numpy(), "delta_deg": rad2deg(breit_wigner_phase_shifts(s, resonances))}


def _plots(folder: Path, problem: PipiProblem, extraction: Extraction, resonances, title: str) -> None:
    s_min, s_max = float(problem.energies.min()), float(problem.energies.max())
    s = np.linspace(s_min, s_max, 240)
    z = np.linspace(-1.0, 1.0, 161)
    waves = waves_on_fine_grid(extraction.energies, extraction.delta_deg, extraction.waves, s)
    amplitude = amplitude_from_waves(torch.as_tensor(waves)[:, None, :], torch.as_tensor(z)).numpy()
    truth = None
    if resonances is not None:
        true_waves = torch.zeros(len(s), problem.n_waves, dtype=torch.complex128)
        known = min(problem.n_waves, 2)
        true_waves[:, :known] = breit_wigner_waves(torch.as_tensor(s), resonances)[:, :known]
        truth = amplitude_from_waves(true_waves[:, None, :], torch.as_tensor(z)).numpy()
    points = (problem.s.numpy(), problem.cos_theta.numpy())
    plots.plot_amplitude_maps(folder / "amplitude.png", s, z, amplitude, truth, title=title, points=points)
    plots.plot_pulls(folder / "pulls.png", points[0], extraction.pulls, label=extraction.method, title=title)


def plot_title(method: str, metrics: dict) -> str:
    """The method's name, and "NOT VALID" with the reason when its result is not valid."""
    if metrics.get("is_valid", True):
        return method
    return "NOT VALID: " + failure_line(method, metrics)
