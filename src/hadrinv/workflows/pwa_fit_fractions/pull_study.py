"""pwa-pull-study: does the unbinned fit return unbiased values with honest errors? (talk 002)

Each toy generates its own data set of a model (default R0) through the toy acceptance, its own accepted
MC for the normalisation and its own generator-level MC for the fit fractions (by default importance-
sampled along the toy's own m_pipi spectrum, with weights; compressed into m_pipi bins,
`AmplitudeModel.binned_cache`), fits the same model starting from the generated values
(a pull study tests the errors at the minimum, not the search for it: random restarts are the job of
pwa-fit-fractions), and propagates the errors to the fit fractions. One Ray task per toy, checkpointed:
a killed study resumes with --resume and loses only the toys in flight.

The pull of a quantity is (fitted - generated) / error, with the generated fit fraction computed on the
same toy's fraction MC (so that MC noise common to both cancels). For correct estimates and errors the
pulls are standard normal: mean 0, width 1. Toys whose fit is not valid are counted and left out.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from hadrinv.data.io import atomic_write_csv, atomic_write_text
from hadrinv.data.pwa_model import ACCEPTANCES, generate_events, m_spectrum, mc_chunks_of, mc_samplers, read_model
from hadrinv.inference.ensemble import run_tasks
from hadrinv.inference.unbinned import UnbinnedNLL, fit_unbinned
from hadrinv.models.pwa import AmplitudeModel, constraint_penalties
from hadrinv.workflows.execution import require_device, thread_limit
from hadrinv.workflows.output import CHECKPOINTS, finish_output, prepare_output
from hadrinv.workflows.pwa_fit_fractions.config import PwaFitSettings
from hadrinv.workflows.registry import RunContext


class PwaPullStudyConfig(PwaFitSettings):
    """The toys; the fit settings (acceptance, MC sampling, minimiser, execution) are PwaFitSettings'."""

    model: str = Field("R0", description="packaged model name or YAML path: generates every toy and is fitted to it")
    toys: int = Field(20, ge=2, description="at least 20 toys; 100 (paper preset) to judge widths to +-0.07")
    events: int = Field(100_000, ge=100, description="events per toy (1e5, as pwa-fit-fractions' default sample)")
    mc_events: int = Field(2_000_000, ge=1000, description="accepted phase-space MC per toy (normalisation of -ln L)")
    fraction_mc_events: int = Field(
        1_000_000, ge=1000, description="generator-level phase-space MC per toy (fit fractions)"
    )
    out: str = "runs/pwa-pull-study"


PRESETS: dict[str, dict] = {
    "quick": {"toys": 6, "events": 20_000, "mc_events": 200_000, "fraction_mc_events": 200_000},
    "paper": {"toys": 100},
}


def pull_toy(
    model: dict,
    toy: int,
    seed: int,
    events: int,
    mc_events: int,
    fraction_mc_events: int,
    bin_width_gev: float,
    acceptance: str,
    method: str,
    max_iterations: int,
    chunk: int,
    threads: int | None,
    mc_sampling: str = "importance",
) -> dict:
    """Generate, fit and summarise one toy (a top-level function: it runs as a Ray task)."""
    from hadrinv.data.pwa_model import PWAModel

    thread_limit(threads)
    started = time.perf_counter()
    pwa_model = PWAModel.model_validate(model)
    am = AmplitudeModel(pwa_model)
    efficiency = ACCEPTANCES[acceptance]
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(toy))
    generated_events = generate_events(pwa_model, events, acceptance=efficiency, generator=g)
    data = am.cache(*generated_events)
    pion = pwa_model.pion_mass
    accepted, generated = mc_samplers(mc_sampling, m_spectrum(data["m"], pion_mass=pion), efficiency, pion)
    mc = am.binned_cache(mc_chunks_of(mc_events, accepted, g), bin_width_gev)
    fraction_mc = am.binned_cache(mc_chunks_of(fraction_mc_events, generated, g), bin_width_gev)
    nll = UnbinnedNLL(am.intensity, data, mc, penalties=constraint_penalties(pwa_model, am), chunk_size=chunk)
    truth = am.initial()
    fit = fit_unbinned(
        nll, truth.numpy(), bounds=am.bounds(), method=method, names=am.names, max_iterations=max_iterations
    )
    params = torch.as_tensor(fit.values, dtype=torch.float64)
    with torch.no_grad():
        F_true = am.fit_fractions(truth, fraction_mc)[0]
        F = am.fit_fractions(params, fraction_mc)[0]
    covariance = np.asarray(fit.covariance)
    F_err = (
        am.fit_fraction_errors(params, covariance, fraction_mc, chunk)[0]
        if np.all(np.isfinite(covariance))
        else torch.full_like(F, math.nan)
    )
    return {
        "toy": toy,
        "valid": bool(fit.is_valid),
        "message": fit.message,
        "n_calls": int(fit.n_calls),
        "fval": float(fit.fval),
        "names": list(am.names),
        "truth": truth.tolist(),
        "values": [float(v) for v in fit.values],
        "errors": [float(e) for e in np.asarray(fit.recommended_errors, dtype=float)],
        "resonances": [r.name for r in pwa_model.resonances],
        "F_true": F_true.tolist(),
        "F": F.tolist(),
        "F_err": F_err.tolist(),
        "seconds": time.perf_counter() - started,
    }


@dataclass
class PwaPullStudyResult:
    out: Path
    metrics: dict

    def summary_columns(self) -> list[str]:
        return ["quantity", "pull mean", "pull width", "toys"]

    def summary_rows(self) -> list[tuple[str, ...]]:
        return [
            (
                q["quantity"],
                f"{q['mean']:+.2f} +- {q['mean_err']:.2f}",
                f"{q['width']:.2f} +- {q['width_err']:.2f}",
                str(q["n"]),
            )
            for q in self.metrics["pulls"]
            if q["kind"] != "coupling"
        ]


def _kind(name: str) -> str:
    if name.endswith(".mass"):
        return "mass"
    if name.endswith(".width") or name.endswith(".g_pipi"):
        return "width"
    return "coupling"


def pull_table(toys: list[dict]) -> tuple[list[dict], list[tuple]]:
    """Per quantity (every floating parameter, every fit fraction): pull mean and width with their
    statistical errors over the valid toys; and the rows of pulls.csv."""
    valid = [t for t in toys if t["valid"]]
    rows, quantities = [], {}

    def add(toy, name, kind, value, error, truth):
        if (
            math.isfinite(error) and error > 1e-12
        ):  # a fraction fixed by construction (a lone resonance: F = 1) has no pull
            quantities.setdefault((name, kind), []).append((value - truth) / error)
            rows.append((toy, name, value, error, truth, (value - truth) / error))

    for t in valid:
        for name, truth, value, error in zip(t["names"], t["truth"], t["values"], t["errors"]):
            add(t["toy"], name, _kind(name), value, error, truth)
        for name, truth, value, error in zip(t["resonances"], t["F_true"], t["F"], t["F_err"]):
            add(t["toy"], f"{name}.F", "fraction", value, error, truth)
    summary = []
    for (name, kind), pulls in quantities.items():
        p = np.asarray(pulls, dtype=float)
        n = len(p)
        width = float(p.std(ddof=1)) if n > 1 else math.nan
        summary.append(
            {
                "quantity": name,
                "kind": kind,
                "n": n,
                "mean": float(p.mean()),
                "mean_err": width / math.sqrt(n),
                "width": width,
                "width_err": width / math.sqrt(2 * (n - 1)) if n > 1 else math.nan,
            }
        )
    return summary, rows


def run(config: PwaPullStudyConfig, context: RunContext | None = None) -> PwaPullStudyResult:
    context = context or RunContext()
    started = time.perf_counter()
    require_device(config.execution.device)
    model = read_model(config.model)
    out = prepare_output(config.out, config, context)
    shared = {
        "model": model.model_dump(by_alias=True),
        "seed": config.seed,
        "events": config.events,
        "mc_events": config.mc_events,
        "fraction_mc_events": config.fraction_mc_events,
        "bin_width_gev": config.bin_width_mev / 1000.0,
        "acceptance": config.acceptance,
        "mc_sampling": config.mc_sampling,
        "method": config.method,
        "max_iterations": config.max_iterations,
        "chunk": config.chunk,
        "threads": config.execution.threads_per_task,
    }
    files = [out / CHECKPOINTS / f"toy_{i:04d}.pt" for i in range(config.toys)]
    done = []

    def report(i: int, result: dict) -> None:
        done.append(i)
        context.log(
            f"toy {i}: {'valid' if result['valid'] else 'NOT valid'}, {result['n_calls']} calls, "
            f"{result['seconds']:.0f} s "
            f"({len(done)}/{config.toys})"
        )

    toys = run_tasks(
        pull_toy,
        shared,
        [{"toy": i} for i in range(config.toys)],
        files,
        resume=context.resume,
        executor=config.execution.executor,
        workers=config.execution.workers,
        ray_address=config.execution.ray_address,
        on_done=report,
    )
    summary, rows = pull_table(toys)
    atomic_write_csv(out / "pulls.csv", ["toy", "quantity", "fitted", "error", "generated", "pull"], rows)
    _write_summary(out / "pull_summary.md", summary, config, sum(t["valid"] for t in toys))
    _plot(out / "pulls.png", summary, rows)
    failed = [t["toy"] for t in toys if not t["valid"]]
    metrics = {
        "workflow": "pwa-pull-study",
        "model": model.name,
        "toys": config.toys,
        "valid_toys": config.toys - len(failed),
        "invalid_toys": failed,
        "events": config.events,
        "mc_events": config.mc_events,
        "fraction_mc_events": config.fraction_mc_events,
        "mc_sampling": config.mc_sampling,
        "method": config.method,
        "seconds_per_toy": float(np.mean([t["seconds"] for t in toys])),
        "pulls": summary,
        "acceptance": _acceptance(summary),
        "seconds": time.perf_counter() - started,
    }
    finish_output(out, metrics)
    return PwaPullStudyResult(out=out, metrics=metrics)


def _acceptance(summary: list[dict]) -> dict:
    """The pull study's criterion: for masses, widths and fit fractions, |mean| <= 0.3 and width in [0.8, 1.2]."""
    judged = [q for q in summary if q["kind"] in ("mass", "width", "fraction")]
    worst_mean = max(judged, key=lambda q: abs(q["mean"]))
    widths = [q["width"] for q in judged]
    return {
        "worst_mean": worst_mean["mean"],
        "worst_mean_quantity": worst_mean["quantity"],
        "min_width": min(widths),
        "max_width": max(widths),
        "holds": bool(abs(worst_mean["mean"]) <= 0.3 and min(widths) >= 0.8 and max(widths) <= 1.2),
    }


def _write_summary(path: Path, summary: list[dict], config: PwaPullStudyConfig, n_valid: int) -> None:
    lines = [
        f"## Pulls of {config.model}: {n_valid} valid fits of {config.toys} toys x {config.events} events",
        "",
        "| quantity | pull mean | pull width |",
        "|---|---|---|",
    ]
    for q in summary:
        lines.append(
            f"| {q['quantity']} | {q['mean']:+.3f} +- {q['mean_err']:.3f} | {q['width']:.3f} +- {q['width_err']:.3f} |"
        )
    atomic_write_text(path, "\n".join(lines) + "\n")


def _plot(path: Path, summary: list[dict], rows: list[tuple]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [q for q in summary if q["kind"] != "coupling"]
    cols = 6
    nrows = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 2.2 * nrows), squeeze=False)
    grid = np.linspace(-4, 4, 200)
    for ax, q in zip(axes.flat, shown):
        pulls = [r[5] for r in rows if r[1] == q["quantity"]]
        ax.hist(np.clip(pulls, -4, 4), bins=np.linspace(-4, 4, 17), density=True, color="tab:blue", alpha=0.6)
        ax.plot(grid, np.exp(-(grid**2) / 2) / math.sqrt(2 * math.pi), "k-", lw=1)
        ax.set_title(f"{q['quantity']}\n{q['mean']:+.2f} / {q['width']:.2f}", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
