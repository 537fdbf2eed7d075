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

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.femto import CorrelationData, read_correlation_csv
from hadrinv.data.io import atomic_write_csv, atomic_write_text
from hadrinv.data.validation import DataError
from hadrinv.inference import Regressor
from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.inference.diagnostics import hpd_coverage, marginal_coverage
from hadrinv.inference.ensemble import run_tasks
from hadrinv.inference.fit import least_squares
from hadrinv.models.femtoscopy import (
    SimulatedSet,
    log_c,
    noisy,
    point_cloud,
    random_subsets,
    sample_uniform,
    two_to_five,
)
from hadrinv.workflows.amortized_runs import build_estimator, thread_limit, timed_sample, training_for, with_members
from hadrinv.workflows.execution import RESUMABLE_KEYS, require_device
from hadrinv.workflows.femto_inverse import plots
from hadrinv.workflows.femto_inverse.config import PARAMETERS, FemtoInverseConfig, PhysicsConfig
from hadrinv.workflows.femto_inverse.problem import k_grid, potential_of, random_momenta, save_dataset, simulate
from hadrinv.workflows.output import CHECKPOINTS, finish_output, prepare_output
from hadrinv.workflows.registry import RunContext

# the talk's R^2 table (training = test in both cases)
TALK_R2 = {"five": dict(zip(PARAMETERS, (0.99, 0.86, 0.02, 0.90, 0.00))), "two": {"b1": 0.99, "b3": 0.99}}
LEVELS = (0.68, 0.95)


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


MIN_R2_CURVES = 8  # R^2 of fewer curves says more about their spread than about the method


def r_squared(prediction: torch.Tensor, truth: torch.Tensor, names) -> dict[str, float]:
    if len(truth) < MIN_R2_CURVES:
        return {n: None for n in names}
    residual = (prediction.double() - truth.double()).pow(2).sum(0)
    total = (truth.double() - truth.double().mean(0)).pow(2).sum(0)
    return {n: float(1 - r / t) for n, r, t in zip(names, residual, total)}


# ---------------------------------------------------------------- tasks (run on Ray workers)


def simulation_task(theta5: torch.Tensor, k_mev: torch.Tensor, physics: dict, threads: int | None) -> dict:
    return simulate(theta5, k_mev, physics, threads)


def regressor_task(
    x_train, theta_train, evaluations: dict, options: dict, training: dict, seed: int, threads, device
) -> dict:
    """Train the talk's DNN (or the set-encoder DNN) and predict on every evaluation input."""
    thread_limit(threads)
    torch.manual_seed(seed)
    x_dim = x_train.shape[-1]
    model = Regressor(theta_train.shape[1], x_dim, **options).to(device)
    history = model.fit(theta_train.float(), x_train, seed=seed, **training)
    predictions = {name: model.predict(x) for name, x in evaluations.items()}
    return {"predictions": predictions, "history": history.as_dict(), "estimator": model.to_payload()}


def flow_task(
    x_train,
    theta_train,
    evaluations: dict,
    hpd_inputs: dict,
    bounds,
    options: dict,
    training: dict,
    samples: int,
    seed: int,
    threads,
    device,
) -> dict:
    """Train the posterior flow (a mixture of flows with options["members"] > 1); posterior samples (and
    HPD coverage) on every evaluation input."""
    thread_limit(threads)
    torch.manual_seed(seed)
    flow = build_estimator("flow", theta_train.shape[1], x_train.shape[-1], options, bounds=bounds).to(device)
    history = flow.fit(theta_train.float(), x_train, seed=seed, **training)
    out = {"history": history.as_dict(), "estimator": flow.to_payload(), "samples": {}, "sample_seconds": {}, "hpd": {}}
    for name, x in evaluations.items():
        out["samples"][name], out["sample_seconds"][name] = timed_sample(flow, x, samples)
    for name, (theta, x) in hpd_inputs.items():
        joint = hpd_coverage(flow, theta.float(), x, LEVELS, n_samples=samples)
        out["hpd"][name] = {str(a): float(joint[a]) for a in LEVELS}
    return out


def fit_task(
    C_obs: torch.Tensor,
    relative_error: float | torch.Tensor,
    k_mev: torch.Tensor,
    library_theta: torch.Tensor,
    library_logc: torch.Tensor,
    low: list[float],
    high: list[float],
    physics: dict,
    starts: int,
    max_evaluations: int,
    samples: int,
    threads,
) -> dict:
    """Least squares on log C of each curve with Hessian (Gauss-Newton) errors: the classical baseline.
    ``relative_error``: one number for every point, or one per point (K,).

    Parameters are fitted as z with theta = low + (high - low) sigmoid(z), so a fit stays inside the
    training ranges; starts are the library curves (training set) closest in chi^2. The Jacobian comes
    from central differences evaluated as one batched solver call (2 d + 1 potentials): 23-36 ms against
    47-54 ms for forward-mode autodiff through the radial march (60 momenta, one thread, docs/results.md)."""
    thread_limit(threads)
    physics = PhysicsConfig.model_validate(physics)
    started = time.perf_counter()
    lo, hi = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)
    to_theta = lambda z: lo + (hi - lo) * torch.sigmoid(z)

    def model_logc(z_rows: torch.Tensor) -> torch.Tensor:
        theta = to_theta(z_rows)
        return torch.log(simulate(theta, k_mev, physics)["C"].clamp_min(1e-12))

    values, errors, chi2s, valid, converged, accurate, draws = [], [], [], [], [], [], []
    generator = torch.Generator().manual_seed(0)
    step = 1e-5
    for observed in torch.log(C_obs.double()):

        def pulls(z, observed=observed):
            return (model_logc(z[None])[0] - observed) / relative_error

        def jacobian(z, observed=observed):
            shifts = torch.cat(
                [
                    torch.zeros(1, len(z), dtype=z.dtype),
                    step * torch.eye(len(z), dtype=z.dtype),
                    -step * torch.eye(len(z), dtype=z.dtype),
                ]
            )
            rows = model_logc(z[None] + shifts)
            d = len(z)
            return ((rows[1 : 1 + d] - rows[1 + d :]) / (2 * step)).T / torch.as_tensor(relative_error).reshape(-1, 1)

        chi2_library = ((library_logc.double() - observed) / relative_error).pow(2).sum(1)
        best = None
        for index in torch.argsort(chi2_library)[:starts]:
            u = ((library_theta[index].double() - lo) / (hi - lo)).clamp(1e-4, 1 - 1e-4)
            result = least_squares(
                pulls,
                torch.logit(u).numpy(),
                list(PARAMETERS),
                jacobian=jacobian,
                exact_hessian=False,
                max_evaluations=max_evaluations,
            )
            if best is None or result.fval < best.fval:
                best = result
        z = torch.as_tensor(best.values)
        cov = torch.as_tensor(np.nan_to_num(best.covariance, nan=0.0, posinf=1e6))
        cov = 0.5 * (cov + cov.T) + 1e-9 * torch.eye(len(z), dtype=cov.dtype)
        # Gaussian in z, mapped to theta: the fit's error band in the same form as the posterior samples
        eigenvalues, vectors = torch.linalg.eigh(cov)
        root = vectors * eigenvalues.clamp_min(0).sqrt()
        z_draws = z + torch.randn(samples, len(z), generator=generator, dtype=torch.float64) @ root.T
        draws.append(to_theta(z_draws).float())
        values.append(to_theta(z))
        jac = (hi - lo) * torch.sigmoid(z) * (1 - torch.sigmoid(z))
        errors.append(jac * torch.as_tensor(best.errors))
        chi2s.append(best.fval / max(best.ndf, 1))
        # scipy's own success flag stays False along the flat directions (b2, b4) long after chi^2 has settled;
        # a fit counts as converged when chi^2/ndf is acceptable
        valid.append(best.fval / max(best.ndf, 1) < 2.0)
        converged.append(best.is_valid)
        # a singular Hessian is the expected answer for parameters C(k) does not determine (b2, b4)
        accurate.append(best.has_accurate_covar)
    return {
        "values": torch.stack(values),
        "errors": torch.stack(errors),
        "samples": torch.stack(draws),
        "chi2_per_ndf": torch.tensor(chi2s),
        "valid": torch.tensor(valid),
        "scipy_converged": torch.tensor(converged),
        "accurate_covariance": torch.tensor(accurate),
        "seconds": time.perf_counter() - started,
    }


def _dispatch(kind: str, **kwargs) -> dict:
    return {"simulate": simulation_task, "regressor": regressor_task, "flow": flow_task, "fit": fit_task}[kind](
        **kwargs
    )


# ---------------------------------------------------------------- orchestration


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


def pca(C: torch.Tensor) -> dict:
    """Explained-variance ratios of the centred curves (and of log C)."""
    out = {}
    for name, values in (("C", C.double()), ("log_C", torch.log(C.double()))):
        centred = (values - values.mean(0)).numpy()
        singular = np.linalg.svd(centred, compute_uv=False)
        ratio = singular**2 / (singular**2).sum()
        out[name] = {
            "explained_variance_ratio": ratio[:10].tolist(),
            "components_for_99_percent": int(np.searchsorted(np.cumsum(ratio), 0.99) + 1),
            "components_for_99_9_percent": int(np.searchsorted(np.cumsum(ratio), 0.999) + 1),
        }
    return out


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
        f"femto-inverse: simulating {total} correlation functions ({ds.five_parameter} five-parameter on {ph.k_points} k points, "
        f"{ds.two_parameter} two-parameter, {ds.random_k} on random k grids)"
    )
    sets, simulation_seconds = _simulate_all(draws, config, out, context)
    save_dataset(out / "dataset.h5", sets, config)
    context.log(
        f"simulated in {simulation_seconds:.1f} s ({total / simulation_seconds:.0f} correlation functions / s); stored in {out / 'dataset.h5'}"
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


def posterior_metrics(samples: torch.Tensor, truth: torch.Tensor, prior_std: torch.Tensor) -> dict:
    cover = marginal_coverage(samples, truth.float(), LEVELS)
    std = samples.double().std(1)  # (curves, parameters)
    return {
        "coverage_68": cover[0.68],
        "coverage_95": cover[0.95],
        "rms_error_over_prior_std": (
            (samples.double().mean(1) - truth.double()).pow(2).mean(0).sqrt() / prior_std
        ).tolist(),
        "per_parameter_68": cover.per_parameter[0.68],
        "per_parameter_95": cover.per_parameter[0.95],
        "width_over_prior": (std / prior_std).mean(0).tolist(),
        "curves": int(truth.shape[0]),
    }


def _read_user_data(path: str) -> CorrelationData:
    data = read_correlation_csv(path, require_error=True)
    bad = np.flatnonzero(data.C <= 0)
    if len(bad):
        raise DataError(
            path, f"C = {data.C[bad[0]]} at k = {data.k_mev[bad[0]]} MeV: the posterior works on log C and needs C > 0"
        )
    return data


def analyse_user_data(
    data: CorrelationData, flow_payload: dict, regressor_payload: dict, config: FemtoInverseConfig, out: Path, log=print
) -> dict:
    """Posterior for a measured curve, point estimates, and bands of V(r), delta(k), C(k) from posterior draws."""
    ph, post = config.physics, config.posterior
    k = torch.as_tensor(data.k_mev, dtype=torch.float64)
    C = torch.as_tensor(data.C, dtype=torch.float64)
    relative = torch.as_tensor(data.error, dtype=torch.float64) / C
    summary: dict = {"source": data.source, "points": len(data), "median_relative_error": float(relative.median())}
    warnings = []
    if not (post.relative_noise[0] / 2 <= float(relative.median()) <= 2 * post.relative_noise[1]):
        warnings.append(
            f"the relative errors (median {float(relative.median()):.3g}) lie outside the trained range {post.relative_noise}"
        )
    if k.min() < ph.k_min_mev - 1e-9 or k.max() > ph.k_max_mev + 1e-9:
        warnings.append(f"momenta outside the trained [{ph.k_min_mev}, {ph.k_max_mev}] MeV: the networks extrapolate")
    for w in warnings:
        log(f"[bold red]warning[/]: {w}")
    summary["warnings"] = warnings
    flow = AmortizedEstimator.from_payload(flow_payload)
    cloud = point_cloud(k[None], C[None], relative[None])[0]
    samples = flow.sample(cloud, post.samples).double()
    regressor = AmortizedEstimator.from_payload(regressor_payload)
    point = regressor.predict(cloud[:, :2]).double()
    quantiles = torch.quantile(samples, torch.tensor([0.16, 0.5, 0.84], dtype=torch.float64), dim=0)
    summary["parameters"] = {
        p: {
            "median": float(quantiles[1, i]),
            "low_68": float(quantiles[0, i]),
            "high_68": float(quantiles[2, i]),
            "dnn_flexible": float(point[i]),
        }
        for i, p in enumerate(PARAMETERS)
    }
    rows = [
        (
            p,
            f"{float(quantiles[1, i]):.6g}",
            f"{float(quantiles[0, i]):.6g}",
            f"{float(quantiles[2, i]):.6g}",
            f"{float(point[i]):.6g}",
        )
        for i, p in enumerate(PARAMETERS)
    ]
    atomic_write_csv(out / "data_posterior.csv", ["parameter", "median", "low_68", "high_68", "dnn_flexible"], rows)
    # bands from a subset of draws pushed through the forward model
    draws = samples[: min(200, len(samples))]
    k_dense = torch.linspace(max(1.0, float(k.min()) * 0.5), float(k.max()) * 1.05, 120, dtype=torch.float64)
    curves = simulate(draws, k_dense, ph)
    r = torch.linspace(0.01, 4.0, 200, dtype=torch.float64)
    V = potential_of(draws, ph)(r)
    # posterior predictive check: how well do the posterior's own draws describe the data?
    error = torch.as_tensor(data.error, dtype=torch.float64)
    C_draws = simulate(draws, k, ph)["C"]
    chi2_draws = (((C_draws - C) / error) ** 2).sum(1) / len(C)
    best = int(torch.argmin(chi2_draws))
    summary["posterior_predictive"] = {
        "draws": len(draws),
        "best_chi2_per_point": float(chi2_draws[best]),
        "median_chi2_per_point": float(chi2_draws.median()),
        "fraction_with_chi2_per_point_below_2": float((chi2_draws < 2).double().mean()),
        "best_draw": dict(zip(PARAMETERS, draws[best].tolist())),
    }
    summary["chi2_per_point_of_median_parameters"] = float(
        (((simulate(quantiles[1][None], k, ph)["C"][0] - C) / error) ** 2).mean()
    )
    if float(chi2_draws[best]) > 2:
        warnings.append(
            f"no posterior draw describes the data (best chi2 per point {float(chi2_draws[best]):.3g}): the curve may lie outside "
            "what the training ranges produce, or the flow is inaccurate there; see data_bands.png"
        )
        log(f"[bold red]warning[/]: {warnings[-1]}")
    # the classical answer beside it: least squares started from the posterior draws that fit best
    low, high = ph.ranges.low_high()
    fit = fit_task(
        C[None],
        relative,
        k,
        draws,
        torch.log(C_draws),
        low,
        high,
        ph.model_dump(),
        starts=3,
        max_evaluations=post.fit_max_evaluations,
        samples=10,
        threads=None,
    )
    summary["least_squares_from_posterior"] = {
        "chi2_per_ndf": float(fit["chi2_per_ndf"][0]),
        # an infinite error (a flat direction of chi^2: b2, b4 typically) is written as null
        "parameters": {
            p: {"value": float(v), "hessian_error": float(e) if math.isfinite(float(e)) else None}
            for p, v, e in zip(PARAMETERS, fit["values"][0], fit["errors"][0])
        },
    }
    log(f"least squares from the best posterior draws: chi2/ndf {float(fit['chi2_per_ndf'][0]):.3g}")
    plots.plot_data_bands(out / "data_bands.png", data, k_dense, curves["C"], curves["delta_deg"], r, V, best=best)
    return summary


def comparison_table(metrics: dict) -> str:
    lines = [
        "## R^2 (1 is perfect)",
        "",
        "| model | data | " + " | ".join(PARAMETERS) + " |",
        "|---|---|" + "---|" * len(PARAMETERS),
    ]
    for model, tables in metrics["r2"].items():
        for data, values in tables.items():
            lines.append(
                f"| {model} | {data} | "
                + " | ".join(f"{values[p]:.3f}" if values.get(p) is not None else "-" for p in PARAMETERS)
                + " |"
            )
    for name in ("five", "two"):
        lines.append(
            f"| talk, {name}-parameter | test | "
            + " | ".join(f"{TALK_R2[name][p]:.2f}" if p in TALK_R2[name] else "-" for p in PARAMETERS)
            + " |"
        )
    lines += [
        "",
        "## Posterior calibration (marginal coverage at 68 / 95 %, joint HPD) and width / prior width",
        "",
        "| method | curves | coverage 68 | coverage 95 | HPD 68 | HPD 95 | "
        + " | ".join(f"width {p}" for p in PARAMETERS)
        + " | s / curve |",
        "|---|---|---|---|---|---|" + "---|" * len(PARAMETERS) + "---|",
    ]
    for method, m in metrics["posterior"].items():
        hpd = m.get("hpd_coverage", {})
        lines.append(
            f"| {method} | {m['curves']} | {m['coverage_68']:.3f} | {m['coverage_95']:.3f} | {hpd.get('0.68', float('nan')):.3f} | "
            f"{hpd.get('0.95', float('nan')):.3f} | "
            + " | ".join(f"{w:.2f}" for w in m["width_over_prior"])
            + f" | {m['seconds_per_curve']:.3g} |"
        )
    p = metrics["pca"]["C"]
    lines += [
        "",
        f"PCA of C: explained variance {', '.join(f'{v:.4f}' for v in p['explained_variance_ratio'][:5])}; "
        f"{p['components_for_99_percent']} components for 99 %, {p['components_for_99_9_percent']} for 99.9 %.",
        "",
    ]
    return "\n".join(lines) + "\n"
