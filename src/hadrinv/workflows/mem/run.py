"""The matrix-element-method workflow: one hard-process parameter fitted on pseudo-data sets at detector level.

1. phase-space MC through the toy detector (`pwa_case`); the flows q(hard | reco), t(reco | hard) and the efficiency
   are trained on it (`hadrinv.inference.mem.fit_mem`; checkpointed, --resume reuses them);
2. ``datasets`` pseudo-data sets of ``data_events`` reconstructed events of the model at its file's values;
3. on each set, three unbinned maximum-likelihood fits of the parameter (iminuit, MIGRAD then HESSE, after a grid
   scan that picks the start):
   - ``true hard``: the hard events themselves, normalised with the same efficiency: what a perfect resolution
     would give, the reference for the error;
   - ``known detector``: the classical MEM with the detector's Gaussian resolution and efficiency given;
   - ``learned MEM``: importance sampling with the cINN and the transfer flow, normalised by the MC's reconstructed
     events: what only the simulation's pairs are needed for;
4. per method: the estimates, their errors, the pulls (estimate - truth) / error, how many sets lie within 2 sigma,
   and the ratio of the error to the true-hard fit's.

Outputs: fits.csv (dataset, method, value, error, valid), metrics.json, mem.png (the -2 Delta ln L curves of the
first set and every set's estimates).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_text
from hadrinv.inference.flow import ConditionalFlow
from hadrinv.inference.mem import ImportanceSamples, MatrixElementMethod, MEMSettings, fit_mem
from hadrinv.inference.unfolding.cinn import fit_efficiency
from hadrinv.workflows.mem import plots
from hadrinv.workflows.mem.config import MEMConfig
from hadrinv.workflows.mem.pwa_case import Detector, Process, known_detector_samples, simulate_data, simulate_mc
from hadrinv.workflows.output import CHECKPOINTS, TaskProgress, finish_output, prepare_output
from hadrinv.workflows.registry import RunContext

METHODS = ("true hard", "known detector", "learned MEM")
GRID = 21  # points of the scan that starts each fit


@dataclass
class MEMResult:
    out: Path
    rows: list[dict]
    metrics: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    def summary_columns(self) -> list[str]:
        return ["method", "mean estimate", "mean error", "error / true hard", "pull mean", "pull std", "within 2 sigma"]

    def summary_rows(self) -> list[tuple[str, ...]]:
        return [
            (
                r["method"],
                f"{r['mean_value']:.5f}",
                f"{r['mean_error']:.5f}",
                f"{r['error_ratio']:.2f}",
                f"{r['pull_mean']:+.2f}",
                f"{r['pull_std']:.2f}",
                f"{r['within_2_sigma']}/{r['fits']}",
            )
            for r in self.rows
        ]

    def invalid_methods(self) -> list[str]:
        return self.invalid


class Likelihood:
    """-ln L(alpha) of n events: sum of the events' log densities minus n ln N(alpha), with the events given as hard
    points (``samples`` None) or as importance samples of their hard values."""

    def __init__(self, process: Process, cache: dict, norm: dict, samples: ImportanceSamples | None = None):
        self.process, self.cache, self.norm, self.samples = process, cache, norm, samples

    def per_event(self, alpha: float) -> np.ndarray:
        with np.errstate(divide="ignore"):
            log_i = np.log(self.process.intensity(alpha, self.cache))
        if self.samples is None:
            return log_i
        log_i = log_i.reshape(self.samples.log_weight.shape)
        return self.samples.log_likelihood(np.where(np.isfinite(self.samples.log_weight), log_i, 0.0))

    def __call__(self, alpha: float) -> float:
        per_event = self.per_event(alpha)
        norm = float(np.mean(self.process.intensity(alpha, self.norm)))
        return -float(per_event.sum() - len(per_event) * math.log(norm))


def fit(nll: Likelihood, low: float, high: float) -> dict:
    from iminuit import Minuit

    grid = np.linspace(low, high, GRID)
    scan = np.array([nll(a) for a in grid])
    if not np.isfinite(scan).any():
        return {"value": math.nan, "error": math.nan, "valid": False, "scan": (grid, scan)}

    def fcn(alpha: float) -> float:
        return nll(alpha)

    minuit = Minuit(fcn, alpha=float(grid[np.nanargmin(scan)]))
    minuit.errordef = Minuit.LIKELIHOOD
    minuit.limits = [(low, high)]
    minuit.migrad()
    minuit.hesse()
    value, error = float(minuit.values[0]), float(minuit.errors[0])
    # a minimum at a limit is no minimum: the likelihood still falls beyond the range
    at_limit = min(value - low, high - value) < 0.5 * error
    return {"value": value, "error": error, "valid": bool(minuit.valid) and not at_limit, "scan": (grid, scan)}


def _mem(config: MEMConfig, process: Process, mc, out: Path, context: RunContext) -> tuple[MatrixElementMethod, float]:
    """Train the flows, or reload them on --resume; the efficiency trees are refitted (seconds)."""
    settings = MEMSettings(**config.flows.model_dump(), seed=config.seed)
    paths = out / CHECKPOINTS / "unfolding.pt", out / CHECKPOINTS / "transfer.pt"
    started = time.process_time()
    if context.resume and all(p.is_file() for p in paths):
        context.log("reusing the trained flows (--resume)")
        unfolding, transfer = (ConditionalFlow.load(p) for p in paths)
        kept = np.isfinite(mc.reco).all(1)
        efficiency = None if kept.all() else fit_efficiency(mc.hard, kept, np.ones(len(kept)), config.seed)
        return MatrixElementMethod(unfolding, transfer, efficiency, {"reloaded": True}), time.process_time() - started
    low, high = process.low, process.high
    mem = fit_mem(mc.hard, mc.reco, (list(low), list(high)), settings, log=context.log)
    for flow, path in zip((mem.unfolding, mem.transfer), paths, strict=True):
        flow.save(path)
    return mem, time.process_time() - started


def run(config: MEMConfig, context: RunContext | None = None) -> MEMResult:
    context = context or RunContext(progress=False, log=lambda message: None)
    started = time.perf_counter()
    process = Process(config.model, config.parameter)  # a bad model or parameter stops here
    d = config.detector
    detector = Detector(np.asarray(d.resolution), d.max_cos_gamma, d.pion_loss)
    out = prepare_output(config.out, config, context)
    (out / CHECKPOINTS).mkdir(exist_ok=True)
    context.log(f"simulating {config.mc_events} phase-space MC events")
    mc = simulate_mc(process, detector, config.mc_events, config.seed)
    reconstructed = np.isfinite(mc.reco).all(1)
    mem, train_cpu = _mem(config, process, mc, out, context)
    norm_known = process.normalisation_cache(mc.events, detector.efficiency(mc.hard))
    norm_learned = process.normalisation_cache(mc.events, reconstructed.astype(np.float64))
    low, high = process.value - config.fit_range, process.value + config.fit_range

    fits: dict[str, list[dict]] = {m: [] for m in METHODS}
    cpu = dict.fromkeys(METHODS, 0.0)
    ess, dropped = [], dict.fromkeys(METHODS, 0)
    progress = TaskProgress(context, config.datasets, "pseudo-data sets")
    for k in range(config.datasets):
        data = simulate_data(process, detector, config.data_events, float(reconstructed.mean()), config.seed + 1000 + k)
        clock = time.process_time()
        likelihoods = {"true hard": Likelihood(process, process.amplitude.cache(*data.events), norm_known)}
        cpu["true hard"] += time.process_time() - clock
        for method in METHODS[1:]:
            clock = time.process_time()
            if method == "known detector":
                samples = known_detector_samples(process, detector, data.reco, config.samples, config.seed + k)
                norm = norm_known
            else:
                torch.manual_seed(config.seed + 2000 + k)  # the flow samples: the same on a resumed run
                samples = mem.importance_samples(data.reco, config.samples, process.log_phase_space)
                norm = norm_learned
            cache = process.hard_cache(samples.hard.reshape(-1, data.hard.shape[1]))
            nll = Likelihood(process, cache, norm, samples)
            # an event none of whose samples carries weight has likelihood 0 at every alpha: it says nothing
            # about alpha and would make -ln L infinite
            alive = np.isfinite(nll.per_event(process.value))
            if not alive.all():
                dropped[method] += int((~alive).sum())
                samples = ImportanceSamples(samples.hard[alive], samples.log_weight[alive])
                rows = torch.as_tensor(np.repeat(alive, config.samples))
                nll = Likelihood(process, {key: value[rows] for key, value in cache.items()}, norm, samples)
            if method == "learned MEM":
                log_i = np.log(process.intensity(process.value, nll.cache)).reshape(samples.log_weight.shape)
                ess.append(float(np.mean(samples.ess_fraction(log_i))))
            likelihoods[method] = nll
            cpu[method] += time.process_time() - clock
        for method, nll in likelihoods.items():
            clock = time.process_time()
            fits[method].append(fit(nll, low, high))
            cpu[method] += time.process_time() - clock
            if k == 0 and fits[method][0]["valid"]:  # the plotted curve: the first set's, +- 4 sigma
                f = fits[method][0]
                grid = np.linspace(f["value"] - 4 * f["error"], f["value"] + 4 * f["error"], 41)
                f["curve"] = (grid, np.array([nll(a) for a in grid]))
        progress.advance(", ".join(f"{m}: {fits[m][-1]['value']:.4f} +- {fits[m][-1]['error']:.4f}" for m in METHODS))
    progress.close()

    reference = np.array([f["error"] for f in fits["true hard"]])
    rows = []
    for method in METHODS:
        values = np.array([f["value"] for f in fits[method]])
        errors = np.array([f["error"] for f in fits[method]])
        pulls = (values - process.value) / errors
        rows.append(
            {
                "method": method,
                "fits": len(values),
                "valid": int(sum(f["valid"] for f in fits[method])),
                "mean_value": float(np.mean(values)),
                "mean_error": float(np.mean(errors)),
                "error_ratio": float(np.mean(errors / reference)),
                "pull_mean": float(np.mean(pulls)),
                "pull_std": float(np.std(pulls, ddof=1)) if len(pulls) > 1 else math.nan,
                "within_2_sigma": int(np.sum(np.abs(pulls) <= 2)),
                # the sets' average against the truth, in units of its own error (the errors' mean / sqrt(sets))
                "average_pull": float(np.mean(values - process.value) / (np.mean(errors) / math.sqrt(len(values)))),
                "dropped_events": dropped[method],
                "cpu_seconds": cpu[method] + (train_cpu if method == "learned MEM" else 0.0),
            }
        )
    _write_fits(out / "fits.csv", fits)
    plots.mem(out / "mem.png", fits, process.value, config.parameter)
    result = MEMResult(out, rows)
    result.metrics = {
        "workflow": "mem",
        "model": config.model,
        "parameter": config.parameter,
        "truth": process.value,
        "methods": {r["method"]: r for r in rows},
        "mc_events": config.mc_events,
        "mc_reconstructed": int(reconstructed.sum()),
        "data_events": config.data_events,
        "samples": config.samples,
        "learned_ess_fraction": float(np.mean(ess)),
        "training": mem.history,
        "training_cpu_seconds": train_cpu,
        "seconds": time.perf_counter() - started,
    }
    learned = rows[-1]
    if learned["valid"] < learned["fits"]:
        result.failures.append(f"learned MEM: {learned['fits'] - learned['valid']} of {learned['fits']} fits not valid")
    result.invalid = [r["method"] for r in rows[:-1] if r["valid"] < r["fits"]]
    finish_output(out, result.metrics, result.failures)
    return result


def _write_fits(path: Path, fits: dict[str, list[dict]]) -> None:
    lines = ["dataset,method,value,error,valid"]
    for method, results in fits.items():
        lines += [f"{k},{method},{f['value']:.10g},{f['error']:.10g},{int(f['valid'])}" for k, f in enumerate(results)]
    atomic_write_text(path, "\n".join(lines) + "\n")
