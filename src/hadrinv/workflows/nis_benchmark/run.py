"""nis-benchmark: i-flow's test suite integrated by every method at equal total calls, training included.

Each (integrand, method) pair is one task (Ray by default, checkpointed, so --resume redoes only the
missing ones). Per result: value, error, pull (value - exact) / error, relative error, calls, the weights'
relative standard deviation and unweighting efficiency, the wall time, and the variance ratio to vegas
(error^2 / vegas's error^2: below 1, the method beats vegas at the same number of calls). Peers (MadNIS)
run in the same way when installed; their results are reported, and their failures are warnings only.
Writes results.csv, variance_ratios.png and metrics.json last; any own result further than `pull_limit`
errors from the exact value, or not valid, fails the run (metrics.NOT-CONVERGED.json, exit code 3).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from hadrinv.data.io import atomic_write_csv
from hadrinv.inference.integration import DEFAULT_TRAIN_FRACTION, integrate
from hadrinv.inference.nis import FlowSettings
from hadrinv.workflows.execution import thread_limit
from hadrinv.workflows.nis_benchmark import plots
from hadrinv.workflows.nis_benchmark.config import NisBenchmarkConfig
from hadrinv.workflows.nis_benchmark.integrands import get_integrand
from hadrinv.workflows.output import CHECKPOINTS, TaskProgress, finish_output, prepare_output
from hadrinv.workflows.registry import RunContext

COLUMNS = (
    "integrand",
    "dim",
    "method",
    "exact",
    "value",
    "error",
    "pull",
    "relative_error",
    "variance_over_vegas",
    "calls",
    "train_calls",
    "relative_std",
    "unweighting_efficiency",
    "seconds",
    "is_valid",
    "message",
)


def flow_settings(flow: dict, dim: int) -> FlowSettings:
    """FlowSettings from the config's flow block; transforms None means i-flow's 2 ceil(log2 d) layers."""
    settings = dict(flow)
    if settings.get("transforms") is None:
        settings["transforms"] = max(2, 2 * math.ceil(math.log2(max(dim, 1))))
    return FlowSettings(**settings)


def integrate_task(
    integrand: str, method: str, calls: int, train_fraction: float | None, flow: dict, seed: int, threads: int | None
) -> dict:
    """One benchmark cell: the result of `method` on `integrand`, as a plain dict (a Ray task)."""
    thread_limit(threads)
    test = get_integrand(integrand)
    start = time.perf_counter()
    if method == "madnis":
        from hadrinv.workflows.nis_benchmark.madnis_peer import madnis_integrate

        # MadNIS trains on the share our flows train on, so that the two flows are compared at equal budgets
        share = DEFAULT_TRAIN_FRACTION["flow"] if train_fraction is None else train_fraction
        result = madnis_integrate(test.f, test.dim, calls, train_fraction=share, seed=seed)
    else:
        settings = flow_settings(flow, test.dim)
        result = integrate(test.f, test.dim, method, calls, train_fraction, seed, flow=settings)
    seconds = time.perf_counter() - start
    error = math.hypot(result.error, test.exact_error)
    pull = (result.value - test.exact) / error if error > 0 else (0.0 if result.value == test.exact else math.inf)
    return {
        "integrand": integrand,
        "dim": test.dim,
        "method": method,
        "exact": test.exact,
        "value": result.value,
        "error": result.error,
        "pull": pull,
        "relative_error": result.error / abs(test.exact),
        "calls": result.calls,
        "train_calls": result.train_calls,
        "relative_std": result.relative_std,
        "unweighting_efficiency": result.unweighting_efficiency,
        "seconds": seconds,
        "is_valid": bool(result.is_valid),
        "message": result.message,
    }


@dataclass
class NisBenchmarkResult:
    out: Path
    rows: list[dict]
    metrics: dict
    pull_limit: float
    peers: tuple[str, ...]

    def _bad(self, row: dict) -> str | None:
        if not row["is_valid"]:
            return f"{row['integrand']} / {row['method']}: not valid ({row['message']})"
        if not abs(row["pull"]) <= self.pull_limit:
            return f"{row['integrand']} / {row['method']}: {row['pull']:+.1f} errors from the exact value"
        return None

    @property
    def failures(self) -> list[str]:
        return [line for row in self.rows if row["method"] not in self.peers and (line := self._bad(row))]

    def invalid_methods(self) -> list[str]:
        """Peers whose results miss the exact value or are not valid: reported as a warning."""
        return [line for row in self.rows if row["method"] in self.peers and (line := self._bad(row))]

    def summary_columns(self) -> list[str]:
        return ["integrand", "method", "value +- error", "pull", "var / vegas", "calls", "s"]

    def summary_rows(self) -> list[tuple[str, ...]]:
        rows = []
        for r in self.rows:
            ratio = r["variance_over_vegas"]
            rows.append(
                (
                    r["integrand"],
                    r["method"] + ("" if r["is_valid"] else " (NOT VALID)"),
                    f"{r['value']:.6g} +- {r['error']:.2g}",
                    f"{r['pull']:+.2f}",
                    "" if ratio is None else f"{ratio:.3g}",
                    str(r["calls"]),
                    f"{r['seconds']:.1f}",
                )
            )
        return rows


def run(config: NisBenchmarkConfig, context: RunContext | None = None) -> NisBenchmarkResult:
    context = context or RunContext(progress=False, log=lambda message: None)
    started = time.perf_counter()
    out = prepare_output(config.out, config, context)
    peers = _available_peers(config.peers, context)
    methods = [*config.methods, *peers]
    cells = [(name, method) for name in config.integrands for method in methods]
    (out / CHECKPOINTS).mkdir(exist_ok=True)
    checkpoints = [out / CHECKPOINTS / f"{name}__{method.replace('+', '_')}.pt" for name, method in cells]
    progress = TaskProgress(context, len(cells), "nis-benchmark")

    def on_done(i: int, row: dict) -> None:
        progress.advance(
            f"{row['integrand']} / {row['method']}: {row['value']:.6g} +- {row['error']:.2g} "
            f"(pull {row['pull']:+.2f}, {row['seconds']:.1f} s)"
        )

    from hadrinv.inference.ensemble import run_tasks

    rows = run_tasks(
        integrate_task,
        shared={
            "calls": config.calls,
            "train_fraction": config.train_fraction,
            "flow": config.flow.model_dump(),
            "threads": config.execution.threads_per_task,
        },
        # a seed per integrand: with one seed for all, every flow would map the same base points, and the
        # errors of different integrands would be correlated; the methods on one integrand share it
        per_task=[
            {"integrand": name, "method": method, "seed": config.seed * 1009 + config.integrands.index(name)}
            for name, method in cells
        ],
        checkpoints=checkpoints,
        resume=context.resume,
        on_done=on_done,
        **config.execution.task_options(on_device=False),
    )
    progress.close()
    vegas_error = {r["integrand"]: r["error"] for r in rows if r["method"] == "vegas"}
    for r in rows:
        reference = vegas_error.get(r["integrand"])
        r["variance_over_vegas"] = (r["error"] / reference) ** 2 if reference else None
    atomic_write_csv(out / "results.csv", list(COLUMNS), [[r[c] for c in COLUMNS] for r in rows])
    plots.variance_ratios(rows, out / "variance_ratios.png")
    result = NisBenchmarkResult(out, rows, {}, config.pull_limit, tuple(peers))
    result.metrics = {
        "results": {f"{r['integrand']}/{r['method']}": {k: r[k] for k in COLUMNS[3:]} for r in rows},
        "largest_abs_pull": max(abs(r["pull"]) for r in rows if r["method"] not in peers),
        "variance_over_vegas": {
            f"{r['integrand']}/{r['method']}": r["variance_over_vegas"]
            for r in rows
            if r["variance_over_vegas"] is not None and r["method"] != "vegas"
        },
        "peers": peers,
        "peers_missing": {p: reason for p in config.peers if p not in peers for reason in [_peer_reason(p)]},
        "seconds": time.perf_counter() - started,
    }
    finish_output(out, result.metrics, result.failures)
    return result


def _peer_reason(peer: str) -> str | None:
    if peer == "madnis":
        from hadrinv.workflows.nis_benchmark.madnis_peer import madnis_available

        return madnis_available()
    return f"unknown peer {peer}"


def _available_peers(peers: list[str], context: RunContext) -> list[str]:
    available = []
    for peer in peers:
        reason = _peer_reason(peer)
        if reason is None:
            available.append(peer)
        else:
            context.log(f"peer {peer} skipped: {reason}")
    return available
