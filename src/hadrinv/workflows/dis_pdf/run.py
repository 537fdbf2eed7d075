"""dis-pdf: quark distributions from DIS cross sections with amortized inverse mappers (talk 003).

Tasks (parallel through Ray, each checkpointed):
- grid/<method>: an estimator trained on the regular (x, Q2) grid (VAIM as in the talk; conditional
  flow and diffusion beside it);
- cloud/<method>: a point-cloud estimator (PC-VAIM, and a flow with the same PointNet embedding) trained
  on clouds with random bins and tested on clouds of experiments' bins it never saw;
- fit: the classical baseline, a least-squares fit with Hessian errors on every held-out grid set.
Every method is measured on the same held-out pseudo-data sets: coverage of its 68% / 95% intervals,
how often the truth lies within its 2-sigma interval, the error of its central values, the ratio of the
reconstructed to the true cross sections, and time. One control set is drawn as the talk's figures:
u and d with bands, and reconstructed/true cross sections.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from hadrinv.data.dis_toy import read_dis_data
from hadrinv.data.io import atomic_write_csv, atomic_write_text
from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.inference.diagnostics import ellipsoid_coverage, hpd_coverage, marginal_coverage
from hadrinv.inference.ensemble import run_tasks
from hadrinv.inference.fit import least_squares
from hadrinv.models.dis import DISProblem, held_out_sets, make_problem, training_clouds
from hadrinv.physics.dis import cross_sections
from hadrinv.workflows.amortized_runs import (
    MethodTableResult,
    build_estimator,
    start_task,
    timed_sample,
    training_for,
    with_members,
)
from hadrinv.workflows.dis_pdf import plots
from hadrinv.workflows.dis_pdf.config import DISPdfConfig
from hadrinv.workflows.execution import require_device, thread_limit
from hadrinv.workflows.output import CHECKPOINTS, finish_output, prepare_output
from hadrinv.workflows.registry import RunContext

TABLE_KEYS = (
    "coverage_68",
    "coverage_95",
    "ellipsoid_coverage_68",
    "ellipsoid_coverage_95",
    "hpd_coverage_68",
    "hpd_coverage_95",
    "within_2sigma_min",
    "all_within_2sigma",
    "rms_error_over_prior_width",
    "sigma_ratio_rms",
    "train_seconds",
    "seconds_per_set",
)
TWO_SIGMA = 0.9545


@dataclass
class DISPdfResult(MethodTableResult):
    table_keys: ClassVar[tuple[str, ...]] = TABLE_KEYS

    def summary_rows(self) -> list[tuple[str, ...]]:
        return [self.row(name, m) for name, m in self.metrics["methods"].items()]

    def invalid_methods(self) -> list[str]:
        return [name for name, m in self.metrics["methods"].items() if not m.get("is_valid", True)]


def posterior_metrics(samples: torch.Tensor, truth: torch.Tensor, problem: DISProblem) -> dict:
    """Calibration and accuracy of posterior samples (sets, n, params) against the true parameters."""
    cover = marginal_coverage(samples, truth, (0.68, 0.95, TWO_SIGMA))
    joint = ellipsoid_coverage(samples, truth, (0.68, 0.95))
    within = cover.inside[TWO_SIGMA].double()  # (sets, parameters)
    width = (problem.space.high - problem.space.low).float()
    rms = ((samples.mean(1) - truth) / width).pow(2).mean(0).sqrt()
    out = {
        "coverage_68": cover[0.68],
        "coverage_95": cover[0.95],
        "ellipsoid_coverage_68": joint[0.68],
        "ellipsoid_coverage_95": joint[0.95],
        "within_2sigma_per_parameter": dict(zip(problem.space.free_names, within.mean(0).tolist())),
        "within_2sigma_min": float(within.mean(0).min()),
        "within_2sigma_mean": float(within.mean()),
        "all_within_2sigma": float(within.all(-1).double().mean()),
        "rms_error_over_prior_width": float(rms.mean()),
    }
    return out


def sigma_ratio(samples: torch.Tensor, truth: torch.Tensor, problem: DISProblem, x, q2) -> torch.Tensor:
    """Reconstructed (from the posterior mean parameters) over true cross sections at (x, q2)."""
    full = problem.space.full_parameters
    mean = full(samples.mean(1).double())
    return cross_sections(mean, x, q2) / cross_sections(full(truth.double()), x, q2)


def estimator_task(
    problem: DISProblem,
    kind: str,
    method: str,
    options: dict,
    training: dict,
    simulations: int,
    kinematics: dict,
    test_theta: torch.Tensor,
    test_x: torch.Tensor,
    posterior_samples: int,
    seed: int,
    threads: int | None,
    device: str,
) -> dict:
    generator, theta = start_task(problem, simulations, seed, threads)
    if kind == "grid":
        x = problem.simulate(theta, generator)
        x_dim = x.shape[-1]
    else:
        x = training_clouds(
            problem,
            theta,
            tuple(kinematics["cloud_points"]),
            kinematics["cloud_x"],
            kinematics["cloud_q2_gev2"],
            generator,
            kinematics["cloud_layout"],
        )
        x_dim = x.shape[-1]
    estimator = build_estimator(method, problem.theta_dim, x_dim, options, bounds=problem.bounds).to(device)
    history = estimator.fit(theta.float(), x, seed=seed, **training)
    samples, seconds = timed_sample(estimator, test_x, posterior_samples)
    metrics = posterior_metrics(samples, test_theta.float(), problem)
    if estimator.has_log_prob and estimator.cheap_log_prob:  # joint calibration: the highest-density regions
        joint = hpd_coverage(estimator, test_theta.float(), test_x, (0.68, 0.95), n_samples=posterior_samples)
        metrics.update(hpd_coverage_68=joint[0.68], hpd_coverage_95=joint[0.95])
    # the losses tell an under-trained network (validation loss still falling) from an over-fitted one
    metrics.update(
        train_seconds=history.seconds,
        epochs=len(history.train_loss),
        seconds_per_set=seconds / len(test_x),
        simulations=simulations,
        best_validation_loss=history.best_validation_loss,
        final_train_loss=history.train_loss[-1],
    )
    return {"metrics": metrics, "samples": samples, "estimator": estimator.to_payload()}


def fit_task(problem: DISProblem, test_theta: torch.Tensor, test_x: torch.Tensor, threads: int | None) -> dict:
    """The classical baseline: chi^2 fit of the free parameters to log sigma, errors from the exact Hessian."""
    thread_limit(threads)
    started = time.perf_counter()
    full = problem.space.full_parameters
    x, q2 = torch.as_tensor(problem.grid_x), torch.as_tensor(problem.grid_q2)
    start = 0.5 * (problem.space.low + problem.space.high)
    values, errors, valid = [], [], []
    for observed in test_x.double():  # one fit per data set; each fit is itself vectorised over the bins

        def pulls(p, observed=observed):
            return (torch.log(cross_sections(full(p), x, q2)).flatten() - observed) / problem.relative_noise

        result = least_squares(pulls, start.numpy(), list(problem.space.free_names))
        values.append(result.values)
        errors.append(result.errors)
        valid.append(result.is_valid and result.has_accurate_covar)
    values, errors = torch.as_tensor(np.array(values)), torch.as_tensor(np.array(errors))
    # Gaussian samples from the Hessian errors make the fit comparable with the estimators' samples
    generator = torch.Generator().manual_seed(0)
    samples = (
        values.unsqueeze(1)
        + errors.unsqueeze(1)
        * torch.randn(len(values), 1000, values.shape[1], generator=generator, dtype=torch.float64)
    ).float()
    metrics = posterior_metrics(samples, test_theta.float(), problem)
    seconds = time.perf_counter() - started
    metrics.update(
        valid_fraction=float(np.mean(valid)),
        is_valid=bool(np.mean(valid) > 0.9),
        train_seconds=0.0,
        seconds_per_set=seconds / len(test_x),
    )
    return {"metrics": metrics, "samples": samples}


def _dispatch(kind: str, **kwargs) -> dict:
    return fit_task(**kwargs) if kind == "fit" else estimator_task(kind=kind, **kwargs)


def run(config: DISPdfConfig, context: RunContext | None = None) -> DISPdfResult:
    context = context or RunContext()
    started = time.perf_counter()
    user_data = read_dis_data(config.data) if config.data else None  # validates before anything is written
    require_device(config.execution.device)
    for kind, methods, options in (
        ("grid", config.grid_methods, config.grid_options),
        ("cloud", config.cloud_methods, config.cloud_options),
    ):
        missing = [m for m in methods if m not in options]
        if missing:
            raise ValueError(f"{kind}_options has no entry for {', '.join(missing)}")
    if user_data is not None and not config.cloud_methods:
        raise ValueError("--data is analysed by the point-cloud models: cloud_methods must not be empty")
    out = prepare_output(config.out, config, context)
    k = config.kinematics
    problem = make_problem(k.n_x, k.n_q2, config.relative_noise)
    test_theta, test_grid, test_cloud, test_kinematics = held_out_sets(
        problem, config.test_sets, config.seed, k.test_experiments
    )
    context.log(
        f"dis-pdf: {problem.theta_dim} free parameters, grid of {len(problem.grid_x)} bins, {config.test_sets} "
        "held-out sets "
        f"(clouds of {test_cloud.shape[1]} bins of {', '.join(k.test_experiments)})"
    )
    tasks, names = [], []
    common = {
        "problem": problem,
        "simulations": config.simulations,
        "kinematics": k.model_dump(),
        "posterior_samples": config.posterior_samples,
        "threads": config.execution.threads_per_task,
        "device": config.execution.device,
    }
    # the point-cloud models take longest: start them first so the parallel workers finish together
    kinds = (
        ("cloud", config.cloud_methods, config.cloud_options, test_cloud, 100),
        ("grid", config.grid_methods, config.grid_options, test_grid, 0),
    )
    for kind, methods, options, test_x, seed_offset in kinds:
        for i, method in enumerate(methods):
            tasks.append(
                {
                    "kind": kind,
                    "method": method,
                    "options": with_members(options[method], config.execution.members),
                    "training": training_for(method, config.training, config.method_training, kind),
                    "test_theta": test_theta,
                    "test_x": test_x,
                    "seed": config.seed * 1000 + seed_offset + i,
                    **common,
                }
            )
            names.append(f"{kind}/{method}")
    if config.baseline_fit:
        tasks.append(
            {
                "kind": "fit",
                "problem": problem,
                "test_theta": test_theta,
                "test_x": test_grid,
                "threads": config.execution.threads_per_task,
            }
        )
        names.append("fit")
    files = [out / CHECKPOINTS / f"{name.replace('/', '__')}.pt" for name in names]

    def on_done(i: int, result: dict) -> None:
        m = result["metrics"]
        context.log(
            f"{names[i]}: coverage 68/95 {m['coverage_68']:.2f}/{m['coverage_95']:.2f}, within 2 sigma (worst "
            f"parameter) {m['within_2sigma_min']:.2f}"
        )

    results = run_tasks(
        _dispatch, {}, tasks, files, resume=context.resume, on_done=on_done, **config.execution.task_options()
    )
    metrics: dict = {
        "workflow": "dis-pdf",
        "parameters": list(problem.space.free_names),
        "test_sets": config.test_sets,
        "methods": {},
    }
    control = 0
    truth = test_theta[control].float()
    showcase = {}
    for name, result in zip(names, results):
        samples = result["samples"][control]
        grid_ratio = sigma_ratio(
            result["samples"][:, :200],
            test_theta,
            problem,
            torch.as_tensor(problem.grid_x),
            torch.as_tensor(problem.grid_q2),
        )
        result["metrics"]["sigma_ratio_rms"] = float((grid_ratio - 1).pow(2).mean().sqrt())
        metrics["methods"][name] = result["metrics"]
        showcase[name] = samples
    plots.plot_distributions(out / "pdfs_control.png", showcase, truth, problem)
    plots.plot_cross_section_ratios(
        out / "cross_section_ratios.png", showcase, truth, problem, test_kinematics[control]
    )
    plots.plot_coverage(out / "coverage.png", metrics["methods"])
    if user_data is not None:
        metrics["data"] = analyse_user_data(user_data, names, results, problem, config, out, context.log)
    atomic_write_text(out / "comparison.md", comparison_table(metrics))
    metrics["seconds"] = time.perf_counter() - started
    finish_output(out, metrics)
    return DISPdfResult(out=out, metrics=metrics)


def analyse_user_data(data, names, results, problem: DISProblem, config: DISPdfConfig, out: Path, log=print) -> dict:
    """Posterior of the free parameters for the user's measurements, from every point-cloud model.

    The networks learned the noise model of the training data (relative_noise on every point); errors
    given in the file are not used by them, so a file whose errors differ is flagged."""
    cloud = torch.cat(
        [torch.as_tensor(np.stack([np.log(data.x), np.log(data.q2)], -1)), torch.log(torch.as_tensor(data.sigma))], -1
    ).float()
    summary = {
        "source": data.source,
        "points": len(data),
        "assumed_relative_error": config.relative_noise,
        "warnings": [],
    }
    if data.sigma_p_err is not None and data.sigma_n_err is not None:
        relative = float(np.median(np.concatenate([data.sigma_p_err / data.sigma_p, data.sigma_n_err / data.sigma_n])))
        summary["median_relative_error_in_file"] = relative
        if not 0.5 < relative / config.relative_noise < 2:
            summary["warnings"].append(
                f"the file's errors (median {relative:.3g} relative) differ from the training noise "
                f"({config.relative_noise}): "
                f"retrain with relative_noise = {relative:.3g}"
            )
    low, high = config.kinematics.cloud_points
    if not low <= len(data) <= high:  # a posterior's width depends on how many bins it saw in training
        summary["warnings"].append(
            f"the file has {len(data)} points, the point-cloud models were trained on clouds of {low}-{high}: "
            f"retrain with kinematics.cloud_points covering {len(data)}"
        )
    for warning in summary["warnings"]:
        log(f"[bold red]warning[/]: {warning}")
    rows = []
    for name, result in zip(names, results):
        if not name.startswith("cloud/"):
            continue
        estimator = AmortizedEstimator.from_payload(result["estimator"])
        samples = estimator.sample(cloud, config.posterior_samples)
        mean, std = samples.mean(0), samples.std(0)
        summary[name] = {p: {"mean": float(m), "std": float(s)} for p, m, s in zip(problem.space.free_names, mean, std)}
        rows += [
            (name, p, f"{float(m):.6g}", f"{float(s):.3g}") for p, m, s in zip(problem.space.free_names, mean, std)
        ]
        plots.plot_distributions(out / f"pdfs_data_{name.split('/')[1]}.png", {name: samples}, None, problem)
    atomic_write_csv(out / "data_posterior.csv", ["method", "parameter", "mean", "std"], rows)
    return summary


def comparison_table(metrics: dict) -> str:
    lines = ["| method | " + " | ".join(TABLE_KEYS) + " |", "|---" * (len(TABLE_KEYS) + 1) + "|"]
    for name, m in metrics["methods"].items():
        lines.append(f"| {name} | " + " | ".join("-" if m.get(k) is None else f"{m[k]:.3g}" for k in TABLE_KEYS) + " |")
    return "\n".join(lines) + "\n"
