"""femto-inverse: potentials from femtoscopic correlation functions (talk 001, "Inverse Femtoscopy").

Steps (simulation and training tasks run through Ray, each checkpointed; --resume skips finished ones):
1. simulate the talk's data sets with the batched Schroedinger solver and store them in OUT/dataset.h5;
2. PCA of the 5-parameter correlation functions (the talk: at most 3 components matter);
3. the talk's DNN inverse maps C(k) -> parameters (5 and 2 free parameters), R^2 on training and test
   sets beside the talk's table; a set-encoder DNN that takes any k grid (flexible input length);
4. beyond the talk: a conditional normalizing flow posterior on curves with errors, its coverage, how far
   each parameter is narrowed from the prior; a least-squares fit with Hessian errors on the same curves
   as the classical baseline;
5. with --data: posterior, point estimates and bands of V(r), delta(k), C(k) for a measured curve.
"""

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hadrinv.data.io import atomic_write_text
from hadrinv.inference.ensemble import run_tasks
from hadrinv.models.femtoscopy import (
    SimulatedSet,
    log_c,
    noisy,
    point_cloud,
    random_subsets,
    sample_uniform,
    two_to_five,
)
from hadrinv.workflows.amortized_runs import training_for, with_members
from hadrinv.workflows.execution import RESUMABLE_KEYS, require_device
from hadrinv.workflows.femto_inverse import plots
from hadrinv.workflows.femto_inverse.config import PARAMETERS, FemtoInverseConfig
from hadrinv.workflows.femto_inverse.measured import _read_user_data, analyse_user_data
from hadrinv.workflows.femto_inverse.metrics import TALK_R2, comparison_table, pca, posterior_metrics, r_squared
from hadrinv.workflows.femto_inverse.problem import k_grid, random_momenta, save_dataset
from hadrinv.workflows.femto_inverse.tasks import _dispatch
from hadrinv.workflows.output import CHECKPOINTS, finish_output, prepare_output
from hadrinv.workflows.registry import RunContext


@dataclass
class FemtoInverseResult:
    out: Path
    metrics: dict

    def summary_columns(self) -> list[str]:
        return ["model", "data", *PARAMETERS]

    def summary_rows(self) -> list[tuple[str, ...]]:
        rows = []
        for model, tables in self.metrics["r2"].items():
            for data, values in tables.items():
                rows.append(
                    (
                        model,
                        f"R2 {data}",
                        *(f"{values[p]:.3f}" if values.get(p) is not None else "-" for p in PARAMETERS),
                    )
                )
        for name in ("five", "two"):
            rows.append(
                (
                    f"talk {name}-param",
                    "R2 test",
                    *(f"{TALK_R2[name][p]:.2f}" if p in TALK_R2[name] else "-" for p in PARAMETERS),
                )
            )
        for method, m in self.metrics["posterior"].items():
            rows.append(
                (
                    method,
                    "coverage 68/95",
                    *(f"{m['per_parameter_68'][i]:.2f}/{m['per_parameter_95'][i]:.2f}" for i in range(len(PARAMETERS))),
                )
            )
            rows.append((method, "width / prior", *(f"{w:.2f}" for w in m["width_over_prior"])))
        return rows

    def invalid_methods(self) -> list[str]:
        return [name for name, m in self.metrics["posterior"].items() if not m.get("is_valid", True)]


def _draw_parameters(config: FemtoInverseConfig) -> dict[str, dict]:
    """All random draws of the run, from the seed: parameters and momenta of every simulated set."""
    ph, ds = config.physics, config.dataset
    g = torch.Generator().manual_seed(config.seed * 7919 + 17)
    low5, high5 = ph.ranges.low_high()
    low2, high2 = ph.ranges.low_high(("b1", "b3"))
    five = sample_uniform(ds.five_parameter, low5, high5, g)
    two = sample_uniform(ds.two_parameter, low2, high2, g)
    rand = sample_uniform(ds.random_k, low5, high5, g)
    # held-out curves for the flexible-input check on two grids the set encoder never trained on
    coarse = sample_uniform(max(50, int(ds.test_fraction * ds.random_k)), low5, high5, g)
    k_fixed = k_grid(ph)
    k_coarse = torch.linspace(10.0, 200.0, 20, dtype=torch.float64)
    return {
        "five": {"names": PARAMETERS, "theta": five, "theta5": five, "k": k_fixed},
        "two": {"names": ("b1", "b3"), "theta": two, "theta5": two_to_five(two, ph.two_parameter_fixed), "k": k_fixed},
        "random_k": {
            "names": PARAMETERS,
            "theta": rand,
            "theta5": rand,
            "k": random_momenta(len(rand), ph.k_points, ph, g),
        },
        "coarse_grid": {"names": PARAMETERS, "theta": coarse, "theta5": coarse, "k": k_coarse},
    }


def _simulate_all(
    draws: dict, config: FemtoInverseConfig, out: Path, context: RunContext
) -> tuple[dict[str, SimulatedSet], float]:
    started = time.perf_counter()
    tasks, owners = [], []
    chunk = config.dataset.chunk
    for name, d in draws.items():
        for start in range(0, len(d["theta5"]), chunk):
            rows = slice(start, start + chunk)
            k = d["k"] if d["k"].ndim == 1 else d["k"][rows]
            tasks.append(
                {
                    "kind": "simulate",
                    "theta5": d["theta5"][rows],
                    "k_mev": k,
                    "physics": config.physics.model_dump(),
                    "threads": config.execution.threads_per_task,
                }
            )
            owners.append((name, start))
    files = [out / CHECKPOINTS / f"simulate__{name}__{start:07d}.pt" for name, start in owners]
    done = [0]

    def on_done(i, result):
        done[0] += 1
        if done[0] % max(1, len(tasks) // 10) == 0 or done[0] == len(tasks):
            context.log(f"simulated {done[0]}/{len(tasks)} chunks of {chunk} correlation functions")

    results = run_tasks(
        _dispatch,
        {},
        tasks,
        files,
        resume=context.resume,
        on_done=on_done,
        **config.execution.task_options(on_device=False),
    )
    sets = {}
    for name, d in draws.items():
        parts = [r for (owner, _), r in zip(owners, results) if owner == name]
        sets[name] = SimulatedSet(
            d["names"],
            d["theta"],
            d["theta5"],
            d["k"],
            torch.cat([p["C"] for p in parts]),
            torch.cat([p["delta_deg"] for p in parts]),
        )
    return sets, time.perf_counter() - started


def run(config: FemtoInverseConfig, context: RunContext | None = None) -> FemtoInverseResult:
    context = context or RunContext()
    started = time.perf_counter()
    user_data = _read_user_data(config.data) if config.data else None  # validate before anything is written
    require_device(config.execution.device)
    ph, ds, post = config.physics, config.dataset, config.posterior
    if ph.k_max_mev <= ph.k_min_mev:
        raise ValueError(f"physics.k_max_mev ({ph.k_max_mev}) must exceed k_min_mev ({ph.k_min_mev})")
    # the measured curve is analysed after training: --resume --data FILE reuses a finished run's networks
    out = prepare_output(config.out, config, context, RESUMABLE_KEYS + ("data",))
    draws = _draw_parameters(config)
    total = sum(len(d["theta5"]) for d in draws.values())
    context.log(
        f"femto-inverse: simulating {total} correlation functions "
        f"({ds.five_parameter} five-parameter on {ph.k_points} k points, "
        f"{ds.two_parameter} two-parameter, {ds.random_k} on random k grids)"
    )
    sets, simulation_seconds = _simulate_all(draws, config, out, context)
    save_dataset(out / "dataset.h5", sets, config)
    context.log(
        f"simulated in {simulation_seconds:.1f} s ({total / simulation_seconds:.0f} correlation functions / s); "
        f"stored in {out / 'dataset.h5'}"
    )
    metrics: dict = {
        "workflow": "femto-inverse",
        "parameters": list(PARAMETERS),
        "simulation_seconds": simulation_seconds,
        "simulated_curves": total,
        "curves_per_second": total / simulation_seconds,
    }
    metrics["pca"] = pca(sets["five"].C)
    plots.plot_pca(out / "pca.png", metrics["pca"])

    # ---- training and evaluation inputs
    g = torch.Generator().manual_seed(config.seed * 104729 + 3)
    five_train, five_test = sets["five"].split(ds.test_fraction)
    two_train, two_test = sets["two"].split(ds.test_fraction)
    rand_train, rand_test = sets["random_k"].split(ds.test_fraction)
    coarse = sets["coarse_grid"]
    k_fixed = k_grid(ph)
    kt, Ct, counts = random_subsets(rand_train.k_mev, rand_train.C, ds.random_k_points, g)
    ke, Ce, counts_e = random_subsets(rand_test.k_mev, rand_test.C, ds.random_k_points, g)
    ones = lambda n: torch.ones(n, 1, dtype=torch.float64)
    flexible_train = point_cloud(kt, Ct, ones(len(Ct)), counts)[..., :2]
    flexible_eval = {
        "random grids": point_cloud(ke, Ce, ones(len(Ce)), counts_e)[..., :2],
        "fixed 60-point grid": point_cloud(five_test.k_mev, five_test.C, ones(len(five_test.C)))[..., :2],
        "coarse 20-point grid": point_cloud(coarse.k_mev, coarse.C, ones(len(coarse.C)))[..., :2],
    }
    # posterior: every training curve gets its own relative error, log-uniform over the configured range
    log_lo, log_hi = (math.log(v) for v in post.relative_noise)
    rel = lambda n: torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, 1, generator=g, dtype=torch.float64))
    rel_train = rel(len(Ct))
    flow_train = point_cloud(kt, noisy(Ct, rel_train, g), rel_train, counts)
    n_test = min(post.test_sets, len(Ce), len(five_test.C))
    rel_rand, rel_fixed = rel(n_test), rel(n_test)
    flow_eval = {
        "random grids": point_cloud(ke[:n_test], noisy(Ce[:n_test], rel_rand, g), rel_rand, counts_e[:n_test]),
        "fixed 60-point grid": point_cloud(k_fixed, noisy(five_test.C[:n_test], rel_fixed, g), rel_fixed),
    }
    flow_truth = {"random grids": rand_test.theta[:n_test], "fixed 60-point grid": five_test.theta[:n_test]}
    # the classical baseline's curves: fixed grid, one known relative error, seen by every method
    n_fit = min(post.fit_sets, n_test)
    fit_rel = torch.full((n_fit, 1), post.fit_relative_noise, dtype=torch.float64)
    fit_C = noisy(five_test.C[:n_fit], fit_rel, g)
    fit_truth = five_test.theta[:n_fit]
    if n_fit:
        flow_eval["fit curves"] = point_cloud(k_fixed, fit_C, fit_rel)
        flow_truth["fit curves"] = fit_truth
    low5, high5 = ph.ranges.low_high()
    common = {"threads": config.execution.threads_per_task, "device": config.execution.device}
    tasks = [
        {
            "kind": "flow",
            "x_train": flow_train,
            "theta_train": rand_train.theta,
            "evaluations": flow_eval,
            "hpd_inputs": {name: (flow_truth[name], x) for name, x in flow_eval.items()},
            "bounds": (low5, high5),
            "options": with_members(config.flow, config.execution.members),
            "training": training_for("flow", config.training, config.method_training),
            "samples": post.samples,
            "seed": config.seed * 1000 + 1,
            **common,
        },
        {
            "kind": "regressor",
            "x_train": flexible_train,
            "theta_train": rand_train.theta,
            "evaluations": flexible_eval,
            "options": config.flexible_regressor,
            "training": training_for("regressor", config.training, config.method_training),
            "seed": config.seed * 1000 + 2,
            **common,
        },
        {
            "kind": "regressor",
            "x_train": log_c(five_train.C),
            "theta_train": five_train.theta,
            "evaluations": {
                "train": log_c(five_train.C),
                "test": log_c(five_test.C),
                **({"fit curves": log_c(fit_C)} if n_fit else {}),
            },
            "options": config.regressor,
            "training": training_for("regressor", config.training, config.method_training),
            "seed": config.seed * 1000 + 3,
            **common,
        },
        {
            "kind": "regressor",
            "x_train": log_c(two_train.C),
            "theta_train": two_train.theta,
            "evaluations": {"train": log_c(two_train.C), "test": log_c(two_test.C)},
            "options": config.regressor,
            "training": training_for("regressor", config.training, config.method_training),
            "seed": config.seed * 1000 + 4,
            **common,
        },
    ]
    names = ["flow", "dnn_flexible", "dnn_five", "dnn_two"]
    if n_fit:
        tasks.append(
            {
                "kind": "fit",
                "C_obs": fit_C,
                "relative_error": post.fit_relative_noise,
                "k_mev": k_fixed,
                "library_theta": five_train.theta,
                "library_logc": log_c(five_train.C),
                "low": low5,
                "high": high5,
                "physics": ph.model_dump(),
                "starts": post.fit_starts,
                "max_evaluations": post.fit_max_evaluations,
                "samples": post.samples,
                "threads": config.execution.threads_per_task,
            }
        )
        names.append("fit")
    files = [out / CHECKPOINTS / f"{name}.pt" for name in names]
    results = dict(
        zip(
            names,
            run_tasks(
                _dispatch,
                {},
                tasks,
                files,
                resume=context.resume,
                on_done=lambda i, r: context.log(f"{names[i]}: done"),
                **config.execution.task_options(),
            ),
        )
    )

    # ---- the talk's R^2 tables, and the flexible-input DNN on grids it never saw
    p5 = results["dnn_five"]["predictions"]
    p2 = results["dnn_two"]["predictions"]
    metrics["r2"] = {
        "dnn five-param": {
            "train": r_squared(p5["train"], five_train.theta, PARAMETERS),
            "test": r_squared(p5["test"], five_test.theta, PARAMETERS),
        },
        "dnn two-param": {
            "train": r_squared(p2["train"], two_train.theta, ("b1", "b3")),
            "test": r_squared(p2["test"], two_test.theta, ("b1", "b3")),
        },
        "dnn flexible k": {
            name: r_squared(results["dnn_flexible"]["predictions"][name], truth, PARAMETERS)
            for name, truth in (
                ("random grids", rand_test.theta),
                ("fixed 60-point grid", five_test.theta),
                ("coarse 20-point grid", coarse.theta),
            )
        },
    }
    flow = results["flow"]
    metrics["r2"]["flow mean"] = {
        name: r_squared(flow["samples"][name].mean(1), flow_truth[name], PARAMETERS) for name in flow_eval
    }
    metrics["talk_r2"] = TALK_R2
    metrics["training"] = {name: results[name]["history"] for name in names if "history" in results[name]}
    plots.plot_parity(
        out / "dnn_parity.png",
        {
            "five-parameter (test)": (p5["test"], five_test.theta, PARAMETERS),
            "two-parameter (test)": (p2["test"], two_test.theta, ("b1", "b3")),
        },
        metrics["r2"],
    )

    # ---- posterior: calibration, narrowing, beside the least-squares baseline
    prior_std = (torch.tensor(high5) - torch.tensor(low5)) / math.sqrt(12.0)
    metrics["posterior"] = {}
    for name in flow_eval:
        metrics["posterior"][f"flow ({name})"] = posterior_metrics(flow["samples"][name], flow_truth[name], prior_std)
        metrics["posterior"][f"flow ({name})"]["hpd_coverage"] = flow["hpd"][name]
        metrics["posterior"][f"flow ({name})"]["seconds_per_curve"] = flow["sample_seconds"][name] / len(
            flow_truth[name]
        )
    if n_fit:
        fit = results["fit"]
        m = posterior_metrics(fit["samples"], fit_truth, prior_std)
        m.update(
            valid_fraction=float(fit["valid"].double().mean()),
            median_chi2_per_ndf=float(fit["chi2_per_ndf"].median()),
            scipy_converged_fraction=float(fit["scipy_converged"].double().mean())
            if "scipy_converged" in fit
            else None,
            positive_definite_hessian_fraction=float(fit["accurate_covariance"].double().mean()),
            seconds_per_curve=fit["seconds"] / n_fit,
            is_valid=bool(fit["valid"].double().mean() >= 0.9),
        )
        metrics["posterior"]["least-squares fit (fit curves)"] = m
        metrics["r2"]["least-squares fit"] = {"fit curves": r_squared(fit["values"], fit_truth, PARAMETERS)}
        metrics["r2"]["dnn five-param"]["fit curves (noisy)"] = r_squared(p5["fit curves"], fit_truth, PARAMETERS)
    plots.plot_posterior_widths(out / "posterior_widths.png", metrics["posterior"], PARAMETERS)
    control = 0
    plots.plot_pairs(
        out / "posterior_pairs.png",
        flow["samples"]["fixed 60-point grid"][control],
        flow_truth["fixed 60-point grid"][control],
        PARAMETERS,
        (low5, high5),
    )
    plots.plot_coverage_table(out / "coverage.png", metrics["posterior"])
    if user_data is not None:
        metrics["data"] = analyse_user_data(
            user_data, flow["estimator"], results["dnn_flexible"]["estimator"], config, out, context.log
        )
    atomic_write_text(out / "comparison.md", comparison_table(metrics))
    metrics["seconds"] = time.perf_counter() - started
    finish_output(out, metrics)
    return FemtoInverseResult(out=out, metrics=metrics)
