"""The unfolding workflow: iterative Bayesian unfolding, OmniFold and the cINN on the same MC and data.

1. the problem: the user's paired MC and data tables (`hadrinv.data.unfolding_tables`), or a built-in case with
   its known truth (`cases`); the observables common to both are unfolded;
2. binning: ``bins`` equal bins per observable over the truth's range (built-in) or the MC's 0.1-99.9 %
   quantiles, and a second one of ``check_bins`` bins for the unbinned methods, evaluated after the fact;
3. each method runs as one task (Ray by default, checkpointed: --resume redoes only what is missing);
4. per method and observable: the unfolded distribution at unit area with its errors, and where the truth is
   known its chi2 / ndf, sum over bins of (unfolded - truth)^2 / (error^2 + truth error^2), ndf = bins - 1
   (the unit area removes one); the truth is exact for the Gaussian cases, a histogram of the data's own
   particle-level events otherwise.

Outputs: unfolded_hist.csv (method, observable, bin_low, bin_high, value, error), covariance.npy (methods x
observables x bins x bins, in the order metrics.json lists them), weights.parquet (OmniFold's particle-level weights
of the MC events), samples.parquet (cINN: event, gen_NAME), plots, metrics.json.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hadrinv.data.io import atomic_write_file
from hadrinv.data.unfolding_tables import read_unfolding_data, read_unfolding_mc
from hadrinv.workflows.output import CHECKPOINTS, TaskProgress, finish_output, prepare_output
from hadrinv.workflows.registry import RunContext
from hadrinv.workflows.unfold import cases, plots
from hadrinv.workflows.unfold.config import UnfoldConfig
from hadrinv.workflows.unfold.methods import unfold_task, write_samples


@dataclass
class Problem:
    observables: tuple[str, ...]
    gen: np.ndarray
    reco: np.ndarray
    mc_weight: np.ndarray | None
    reco_data: np.ndarray
    data_weight: np.ndarray | None
    truth: np.ndarray | None  # the data's particle-level values (built-in cases)
    exact: bool  # the truth's marginals are N(0, 1) exactly (the Gaussian cases)
    ranges: dict[str, tuple[float, float]]
    source: str


@dataclass
class UnfoldResult:
    out: Path
    rows: list[dict]
    metrics: dict = field(default_factory=dict)

    def summary_columns(self) -> list[str]:
        return ["method", "observable", "chi2/ndf", "chi2/ndf (check bins)", "CPU s", "notes"]

    def summary_rows(self) -> list[tuple[str, ...]]:
        def f(value):
            return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"

        rows = []
        for r in self.rows:
            for name, obs in r["observables"].items():
                rows.append(
                    (
                        r["method"],
                        name,
                        f(obs["chi2_per_ndf"]),
                        f(obs["check_chi2_per_ndf"]),
                        f"{r['cpu_seconds']:.0f}",
                        r.get("notes", ""),
                    )
                )
        return rows


def load_problem(config: UnfoldConfig, context: RunContext) -> Problem:
    if (config.mc is None) != (config.data is None):
        raise ValueError("give both --mc and --data, or neither (the built-in case)")
    if config.mc is None:
        context.log(f"simulating the {config.case} case: {config.events} MC and data events")
        case = cases.simulate(config.case, config.events, config.seed)
        mc, data, truth, ranges = case.mc, case.data, case.truth, case.truth_ranges
        exact = config.case in ("gaussian", "gaussian-4d")
    else:
        wanted = tuple(config.observables) if config.observables else None
        mc = read_unfolding_mc(config.mc, wanted)
        data = read_unfolding_data(config.data, mc.observables)
        truth, ranges, exact = None, {}, False
    chosen = [o for o in (config.observables or data.observables) if o in data.observables]
    if not chosen:
        raise ValueError(f"observables: none of {', '.join(config.observables)} is in both MC and data")
    k_mc = [mc.observables.index(o) for o in chosen]
    k_data = [data.observables.index(o) for o in chosen]
    # the MC's reconstruction is all-or-none per event: lost in any unfolded observable, lost in all
    reco = mc.reco[:, k_mc]
    reco[~np.isfinite(reco).all(1)] = np.nan
    return Problem(
        tuple(chosen),
        mc.gen[:, k_mc],
        reco,
        mc.weight,
        data.reco[:, k_data],
        data.weight,
        None if truth is None else truth[:, k_mc],
        exact,
        ranges,
        config.mc or f"simulated {config.case}",
    )


def binnings(config: UnfoldConfig, problem: Problem) -> list[dict]:
    """[report binning, check binning]: {observable: edges}."""
    out = []
    for bins in (config.bins, config.check_bins):
        edges = {}
        for k, name in enumerate(problem.observables):
            low, high = problem.ranges.get(name) or tuple(np.quantile(problem.gen[:, k], [0.001, 0.999]))
            edges[name] = np.linspace(low, high, bins + 1)
        out.append(edges)
    return out


def truth_density(problem: Problem, k: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The truth at unit area in the bins and its error (zero when exact); None without a truth."""
    width = np.diff(edges)
    if problem.exact:
        from scipy.stats import norm

        p = np.diff(norm.cdf(edges))
        return p / p.sum() / width, np.zeros_like(width)
    if problem.truth is None:
        return None
    counts, _ = np.histogram(problem.truth[:, k], edges)
    total = counts.sum()
    return counts / total / width, np.sqrt(counts) / total / width


def chi2_per_ndf(density, covariance, truth) -> float:
    if truth is None:
        return math.nan
    value, error = truth
    variance = np.diag(covariance) + error**2
    return float(np.sum((density - value) ** 2 / variance) / (len(value) - 1))


def run(config: UnfoldConfig, context: RunContext | None = None) -> UnfoldResult:
    from hadrinv.inference.ensemble import run_tasks

    context = context or RunContext(progress=False, log=lambda message: None)
    started = time.perf_counter()
    problem = load_problem(config, context)  # bad files stop here, before the folder is touched
    edges = binnings(config, problem)
    out = prepare_output(config.out, config, context)
    (out / CHECKPOINTS).mkdir(exist_ok=True)
    methods = config.methods()
    progress = TaskProgress(context, len(methods), "unfold")
    records = run_tasks(
        unfold_task,
        shared={
            "gen": problem.gen,
            "reco": problem.reco,
            "reco_data": problem.reco_data,
            "mc_weight": problem.mc_weight,
            "data_weight": problem.data_weight,
            "config": config.model_dump(mode="json"),
            "binnings": edges,
            "seed": config.seed,
            "threads": config.execution.threads_per_task,
        },
        per_task=[{"method": m} for m in methods],
        checkpoints=[out / CHECKPOINTS / f"{m}.pt" for m in methods],
        resume=context.resume,
        on_done=lambda i, r: progress.advance(f"{r['method']}: {r['seconds']:.0f} s"),
        **config.execution.task_options(),
    )
    progress.close()
    rows, table_rows, covariances = [], [], []
    for record in records:
        row = {"method": record["method"], "seconds": record["seconds"], "cpu_seconds": record["cpu_seconds"]}
        row["observables"], covariance = {}, []
        for k, name in enumerate(problem.observables):
            density, cov = record["hist"][0][name]
            e = edges[0][name]
            obs = {"chi2_per_ndf": chi2_per_ndf(density, cov, truth_density(problem, k, e)), "check_chi2_per_ndf": None}
            if len(record["hist"]) > 1:
                check_density, check_cov = record["hist"][1][name]
                check = truth_density(problem, k, edges[1][name])
                obs["check_chi2_per_ndf"] = chi2_per_ndf(check_density, check_cov, check)
            row["observables"][name] = obs
            covariance.append(cov)
            error = np.sqrt(np.clip(np.diag(cov), 0, None))
            table_rows += [(record["method"], name, e[j], e[j + 1], density[j], error[j]) for j in range(len(density))]
        covariances.append(np.stack(covariance))
        if record["method"] == "ibu":
            row["iterations"] = record["iterations"]
            row["notes"] = "iterations " + ", ".join(str(n) for n in record["iterations"])
        if record["method"] == "omnifold":
            row.update(ess_fraction=record["ess_fraction"], weight_range=record["weight_range"])
            row["notes"] = (
                f"ESS {record['ess_fraction']:.2f}, w in [{record['weight_range'][0]:.2g}, "
                f"{record['weight_range'][1]:.2g}]"
            )
            _write_weights(out / "weights.parquet", record["weights"])
        if record["method"] == "cinn":
            row["calibration"] = record["calibration"]
            levels = record["calibration"]["marginal"]
            row["notes"] = "coverage 68/95 " + ", ".join(
                f"{a:.2f}/{b:.2f}" for a, b in zip(levels[0.68], levels[0.95], strict=True)
            )
            row["prior_updates"] = record["updates"]
            if record["updates"]:  # how far the last prior moved the samples: their effective fraction
                row["notes"] += f"; samples' ESS {record['updates'][-1]['ess_fraction']:.2f}"
            write_samples(out / "samples.parquet", record["samples"], problem.observables)
        rows.append(row)
    _write_table(out / "unfolded_hist.csv", table_rows)
    _write_array(out / "covariance.npy", np.stack(covariances))
    plots.unfolded(out, problem, edges[0], records, truth_density)
    result = UnfoldResult(out, rows)
    result.metrics = {
        "workflow": "unfold",
        "data": problem.source,
        "observables": list(problem.observables),
        "methods": {r["method"]: r for r in rows},
        "mc_events": len(problem.gen),
        "mc_reconstructed": int(np.isfinite(problem.reco).all(1).sum()),
        "data_events": len(problem.reco_data),
        "covariance_axes": ["method (methods order)", "observable (observables order)", "bin", "bin"],
        "seconds": time.perf_counter() - started,
    }
    finish_output(out, result.metrics)
    return result


def _write_table(path: Path, rows: list[tuple]) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write("method,observable,bin_low,bin_high,value,error\n")
            for method, name, low, high, value, error in rows:
                handle.write(f"{method},{name},{low:.10g},{high:.10g},{value:.10g},{error:.10g}\n")

    atomic_write_file(path, write)


def _write_array(path: Path, array: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:  # np.save given a name would append ".npy" to the temporary one
            np.save(handle, array)

    atomic_write_file(path, write)


def _write_weights(path: Path, weights: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"event": np.arange(len(weights)), "weight": weights})
    atomic_write_file(path, lambda tmp: pq.write_table(table, tmp))
