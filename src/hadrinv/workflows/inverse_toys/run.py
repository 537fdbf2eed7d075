"""inverse-toys: the talk's toy inverse problems solved by every amortized estimator, side by side.

For each toy (f(x) = x0^2 + x1^2 in 2-D and 10-D, and x^2 + y^2 = z) and each method (VAIM, MDN, INN,
conditional flow, conditional diffusion, flow matching) one task trains on simulated pairs and measures:
- at the showcase observations (f = 1; several z): C2ST accuracy and MMD against exact posterior
  samples, and forward consistency |f(theta_hat) - y| (the exact posterior's own value is the floor);
- expected coverage of the 68% / 95% credible intervals on held-out simulations;
- training and sampling time.
Tasks run in parallel through Ray (or serially); each finished task is checkpointed, so --resume skips
it. The active-learning study (ring toy, observations beyond the training range) is one more task.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from hadrinv.data.io import atomic_write_text
from hadrinv.inference.active_learning import active_learning, random_acquisition
from hadrinv.inference.ensemble import run_tasks
from hadrinv.models.toys import ToyProblem, make_problem
from hadrinv.workflows.amortized_runs import (
    MethodTableResult,
    accuracy_against_exact,
    build_estimator,
    calibration,
    start_task,
    timed_sample,
    training_for,
    with_members,
)
from hadrinv.workflows.execution import require_device, thread_limit
from hadrinv.workflows.inverse_toys import plots
from hadrinv.workflows.inverse_toys.config import InverseToysConfig
from hadrinv.workflows.output import CHECKPOINTS, finish_output, prepare_output
from hadrinv.workflows.registry import RunContext

TABLE_KEYS = (
    "c2st",
    "mmd",
    "forward_error",
    "coverage_68",
    "coverage_95",
    "ellipsoid_coverage_68",
    "ellipsoid_coverage_95",
    "hpd_coverage_68",
    "hpd_coverage_95",
    "train_seconds",
    "sample_seconds_per_1000",
)


@dataclass
class InverseToysResult(MethodTableResult):
    first_column: ClassVar[str] = "toy / method"
    table_keys: ClassVar[tuple[str, ...]] = TABLE_KEYS

    def summary_rows(self) -> list[tuple[str, ...]]:
        return [
            self.row(f"{toy} / {method}", m)
            for toy, methods in self.metrics["toys"].items()
            for method, m in methods.items()
        ]


def showcase_observations(problem: ToyProblem, config: InverseToysConfig) -> list[float]:
    return [config.observed_f] if problem.kind == "sum_of_squares" else list(config.ring_observed_z)


def train_and_evaluate(
    problem: ToyProblem,
    method: str,
    options: dict,
    training: dict,
    simulations: int,
    showcase: list[float],
    posterior_samples: int,
    coverage_cases: int,
    coverage_samples: int,
    seed: int,
    threads: int | None,
    device: str,
) -> dict:
    generator, theta = start_task(problem, simulations, seed, threads)
    x = problem.simulate(theta, generator)
    estimator = build_estimator(method, problem.theta_dim, problem.x_dim, options, bounds=problem.bounds).to(device)
    history = estimator.fit(theta, x, seed=seed, **training)
    metrics: dict = {
        "train_seconds": history.seconds,
        "epochs": len(history.train_loss),
        "best_validation_loss": history.best_validation_loss,
    }
    shown, per_observation = [], []
    for i, y in enumerate(showcase):
        x_obs = torch.tensor([y])
        samples, seconds = timed_sample(estimator, x_obs, posterior_samples)
        exact = problem.exact_posterior(x_obs, posterior_samples, torch.Generator().manual_seed(seed + 17 + i))
        row = {
            "y": y,
            **accuracy_against_exact(samples, exact, seed),
            "forward_error": float((problem.forward(samples) - y).abs().mean()),
            "exact_forward_error": float((problem.forward(exact) - y).abs().mean()),
            "sample_seconds_per_1000": 1000 * seconds / posterior_samples,
        }
        per_observation.append(row)
        shown.append({"y": y, "samples": samples, "exact": exact})
    for key in ("c2st", "mmd", "forward_error", "exact_forward_error", "sample_seconds_per_1000"):
        metrics[key] = float(np.mean([r[key] for r in per_observation]))
    metrics["per_observation"] = per_observation
    held_generator = torch.Generator().manual_seed(seed + 99_991)
    theta_test = problem.sample_prior(coverage_cases, held_generator)
    x_test = problem.simulate(theta_test, held_generator)
    cover, _ = calibration(estimator, theta_test, x_test, coverage_samples)
    metrics.update(cover)
    return {"metrics": metrics, "showcase": shown, "estimator": estimator.to_payload()}


def active_learning_task(
    problem: ToyProblem, al: dict, options: dict, seed: int, threads: int | None, device: str
) -> dict:
    """Ring toy: trained on z <= radius^2, asked about z in target_z; active vs random acquisition."""
    thread_limit(threads)
    generator = torch.Generator().manual_seed(seed)
    broad = al["broad_radius"]
    bounds = ([-1.2 * broad] * 2, [1.2 * broad] * 2)
    theta0 = problem.sample_prior(al["initial_simulations"], generator)
    x0 = problem.simulate(theta0, generator)
    z_low, z_high = al["target_z"]
    targets_theta = problem.sample_prior(al["targets"], generator, radius=broad)
    # targets spread evenly over the requested z range (true radii sqrt(z)), random angles
    z_true = torch.linspace(z_low, z_high, al["targets"])
    targets_theta = targets_theta / targets_theta.norm(dim=-1, keepdim=True) * z_true.sqrt().unsqueeze(-1)
    x_targets = problem.simulate(targets_theta, generator)

    def simulate(theta):
        return problem.simulate(theta, generator)

    def clip(theta):  # proposals stay in the broad disk: the simulator's domain, well inside the bounds' box
        r = theta.norm(dim=-1, keepdim=True)
        return theta * torch.clamp(broad / r.clamp(min=1e-12), max=1.0)

    def evaluate(estimator) -> float:
        with torch.random.fork_rng():
            torch.manual_seed(seed + 5)
            samples = estimator.sample(x_targets, 200)  # (targets, 200, 2)
        return float((samples.pow(2).sum(-1) - z_true.unsqueeze(-1)).abs().mean())

    fit_options = dict(al["training"])
    curves = {}
    started = time.perf_counter()
    for strategy in ("active", "random"):
        torch.manual_seed(seed)
        estimator = build_estimator(al["method"], 2, 1, options, bounds=bounds).to(device)
        estimator.fit(theta0, x0, seed=seed, **fit_options)
        if strategy == "active":
            result = active_learning(
                estimator,
                simulate,
                theta0,
                x0,
                x_targets,
                rounds=al["rounds"],
                per_round=al["per_round"],
                samples_per_candidate=al["samples_per_candidate"],
                probe=al["probe"],
                widen=al["widen"],
                scale=problem.noise,
                clip=clip,
                evaluate=evaluate,
                fit_options=fit_options,
                seed=seed,
            )
        else:
            budgets = curves["active"]["simulations"][1:]
            result = random_acquisition(
                estimator,
                simulate,
                lambda n: problem.sample_prior(n, generator, radius=broad),
                theta0,
                x0,
                budgets,
                evaluate=evaluate,
                fit_options=fit_options,
                seed=seed,
            )
        curves[strategy] = {"simulations": result.simulations, "error": result.metric}
    # the floor: exact posterior under the broad prior (the targets lie outside the training disk)
    broad_problem = dataclasses.replace(problem, radius=broad)
    exact = torch.stack([broad_problem.exact_posterior(x, 200, generator) for x in x_targets])
    exact_error = float((exact.pow(2).sum(-1) - z_true.unsqueeze(-1)).abs().mean())
    return {"curves": curves, "exact_error": exact_error, "seconds": time.perf_counter() - started}


def _dispatch(kind: str, **kwargs) -> dict:
    return train_and_evaluate(**kwargs) if kind == "train" else active_learning_task(**kwargs)


def run(config: InverseToysConfig, context: RunContext | None = None) -> InverseToysResult:
    context = context or RunContext()
    started = time.perf_counter()
    require_device(config.execution.device)
    missing = [m for m in config.methods if m not in config.estimator_options]
    if missing:
        raise ValueError(f"estimator_options has no entry for {', '.join(missing)}")
    out = prepare_output(config.out, config, context)
    problems = {name: make_problem(name, config.noise, config.ring_radius) for name in config.toys}
    tasks, names = [], []
    for t, (name, problem) in enumerate(problems.items()):
        for m, method in enumerate(config.methods):
            tasks.append(
                {
                    "kind": "train",
                    "problem": problem,
                    "method": method,
                    "options": with_members(config.estimator_options[method], config.execution.members),
                    "training": training_for(method, config.training, config.method_training),
                    "simulations": config.simulations,
                    "showcase": showcase_observations(problem, config),
                    "posterior_samples": config.posterior_samples,
                    "coverage_cases": config.coverage_cases,
                    "coverage_samples": config.coverage_samples,
                    "seed": config.seed * 1000 + 10 * t + m,
                    "threads": config.execution.threads_per_task,
                    "device": config.execution.device,
                }
            )
            names.append((name, method))
    al = config.active_learning
    if al.enabled:
        ring = make_problem("ring", config.noise, config.ring_radius)
        tasks.append(
            {
                "kind": "active",
                "problem": ring,
                "al": al.model_dump(),
                "options": config.estimator_options[al.method],
                "seed": config.seed * 1000 + 999,
                "threads": config.execution.threads_per_task,
                "device": config.execution.device,
            }
        )
        names.append(("ring", "active_learning"))
    files = [out / CHECKPOINTS / f"{toy}__{method}.pt" for toy, method in names]

    def on_done(i: int, result: dict) -> None:
        toy, method = names[i]
        if "metrics" in result:
            m = result["metrics"]
            context.log(
                f"{toy} / {method}: c2st {m['c2st']:.3f}, coverage 68/95 "
                f"{m['coverage_68']:.2f}/{m['coverage_95']:.2f}, {m['train_seconds']:.0f} s"
            )
        else:
            context.log(f"{toy} / active learning: done in {result['seconds']:.0f} s")

    context.log(f"inverse-toys: {len(tasks)} tasks on {config.execution.executor}")
    results = run_tasks(
        _dispatch, {}, tasks, files, resume=context.resume, on_done=on_done, **config.execution.task_options()
    )
    metrics: dict = {"workflow": "inverse-toys", "toys": {}, "simulations": config.simulations}
    for (toy, method), result in zip(names, results):
        if method == "active_learning":
            metrics["active_learning"] = result
            plots.plot_active_learning(out / "active_learning.png", result["curves"])
            continue
        metrics["toys"].setdefault(toy, {})[method] = result["metrics"]
    for toy, problem in problems.items():
        shown = {
            method: r["showcase"] for (t, method), r in zip(names, results) if t == toy and method != "active_learning"
        }
        if problem.kind == "sum_of_squares":
            plots.plot_solutions(out / f"{toy}_solutions.png", shown, problem)
        else:
            plots.plot_ring(out / f"{toy}_solutions.png", shown)
        plots.plot_coverage(out / f"{toy}_coverage.png", metrics["toys"][toy])
    atomic_write_text(out / "comparison.md", comparison_table(metrics))
    metrics["seconds"] = time.perf_counter() - started
    finish_output(out, metrics)
    return InverseToysResult(out=out, metrics=metrics)


def comparison_table(metrics: dict) -> str:
    lines = []
    for toy, methods in metrics["toys"].items():
        lines += [f"## {toy}", "", "| method | " + " | ".join(TABLE_KEYS) + " |", "|---" * (len(TABLE_KEYS) + 1) + "|"]
        for method, m in methods.items():
            lines.append(
                f"| {method} | " + " | ".join("-" if m.get(k) is None else f"{m[k]:.3g}" for k in TABLE_KEYS) + " |"
            )
        lines.append("")
    return "\n".join(lines)
