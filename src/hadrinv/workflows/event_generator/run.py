"""The event-generator workflow: train generative networks on a Monte Carlo sample, judge them on held-out events.

1. events: the user's table (`data`), split into training and held-out events, or J/psi -> gamma pi+ pi- events of
   a PWA model from the project's accept-reject generator (its time per event is the speed reference). With an
   efficiency function, every event is kept with its efficiency: the generators learn the accepted events;
2. each method (flow, DiscFlow, OT attention with and without the Johnson-SU transform) trains as one task (Ray by
   default, checkpointed: --resume redoes only what is missing) on the same events, in the same features;
3. each generates as many events as are held out; the same metrics judge all (`hadrinv.inference.event_metrics`):
   classifier two-sample AUC without and with the generator's weights, the weights' spread, per-observable
   histograms with ratios and chi2, per-bin deviations in the windows of narrow peaks, the triangular
   discriminator on the first window, time per event; with an efficiency, the generated accepted events weighted
   by 1 / efficiency against all held-out events (the efficiency-corrected projections).

The generator with the lowest weighted AUC is the run's: DIR/generated.parquet and DIR/model.pt.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.event_tables import EventTable, read_event_table, write_event_table
from hadrinv.data.io import atomic_write_file
from hadrinv.data.pwa_events import COLUMNS
from hadrinv.data.validation import DataError
from hadrinv.workflows.event_generator import plots, training
from hadrinv.workflows.event_generator.config import DEFAULT_PEAKS, OT_WITHOUT_JSU, EventGeneratorConfig
from hadrinv.workflows.event_generator.efficiency import accept, evaluate_efficiency, load_efficiency
from hadrinv.workflows.event_generator.features import Representation, representation_of
from hadrinv.workflows.output import CHECKPOINTS, TaskProgress, finish_output, prepare_output
from hadrinv.workflows.registry import RunContext

GENERATED = "generated.parquet"
MODEL = "model.pt"


@dataclass
class Events:
    train: EventTable
    test: EventTable  # held out, accepted when there is an efficiency
    test_all: EventTable | None = None  # held out before the efficiency
    efficiency: tuple | None = None  # (label, function)
    reference_seconds_per_event: float | None = None  # the accept-reject generator's


@dataclass
class EventGeneratorResult:
    out: Path
    rows: list[dict]
    metrics: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def summary_columns(self) -> list[str]:
        return ["method", "AUC", "AUC weighted", "w in [0.5, 2]", "peak max dev", "chi2/ndf", "us/event", "train s"]

    def summary_rows(self) -> list[tuple[str, ...]]:
        def f(value, spec):
            return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

        rows = []
        for r in self.rows:
            c2st, weights = r["c2st"], r["weights"]
            rows.append(
                (
                    r["method"],
                    f(c2st["auc"], ".4f"),
                    f(c2st["auc_weighted"], ".4f"),
                    f(weights["fraction_in_band"], ".4f"),
                    f(r["peak_max_deviation"], ".3f"),
                    f(r["mean_chi2_per_ndf"], ".2f"),
                    f(1e6 * r["seconds_per_event"], ".2f"),
                    f(r["seconds"], ".0f"),
                )
            )
        return rows


def load_events(config: EventGeneratorConfig, context: RunContext) -> Events:
    """Training and held-out events, the efficiency applied; bad tables and functions stop here."""
    batch = max(config.flow.batch, config.ot.batch)
    efficiency = load_efficiency(config.efficiency) if config.efficiency else None
    reference = None
    if config.data is None:
        table, reference = simulate_pwa(config, context)
        n_test = config.test_events
    else:
        table = read_event_table(config.data, min_rows=2)
        n_test = max(int(round(config.test_fraction * len(table))), 1)
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(config.seed))
    train, test = table.subset(order[n_test:]), table.subset(order[:n_test])
    test_all = None
    if efficiency is not None:
        keep = [accept(evaluate_efficiency(*efficiency, t), config.seed + k) for k, t in enumerate((train, test))]
        test_all = test
        train, test = train.subset(keep[0]), test.subset(keep[1])
    need = math.ceil(batch / (1.0 - config.validation_fraction))
    if len(train) < need:
        where = config.data or "the simulated sample"
        raise DataError(where, f"{len(train)} training events; need at least {need} (one batch of {batch})")
    if len(test) < 2:
        raise DataError(config.data or "the simulated sample", f"{len(test)} held-out events; need at least 2")
    return Events(train, test, test_all, efficiency, reference)


def simulate_pwa(config: EventGeneratorConfig, context: RunContext) -> tuple[EventTable, float]:
    from hadrinv.data.pwa_model import generate_events, no_acceptance, read_model

    model = read_model(config.model)
    n = config.train_events + config.test_events
    context.log(f"generating {n} events of {model.name} by accept-reject")
    start = time.perf_counter()
    gamma, pi1, pi2 = generate_events(model, n, no_acceptance, torch.Generator().manual_seed(config.seed + 7))
    seconds = time.perf_counter() - start
    values = torch.cat([gamma, pi1, pi2], dim=1)
    return EventTable(COLUMNS, values, None, "pwa", f"simulated {model.name}"), seconds / n


def run(config: EventGeneratorConfig, context: RunContext | None = None) -> EventGeneratorResult:
    from hadrinv.inference.ensemble import run_tasks
    from hadrinv.inference.ot_generator import excess_kurtosis

    context = context or RunContext(progress=False, log=lambda message: None)
    started = time.perf_counter()
    events = load_events(config, context)  # bad input stops here, before the folder is touched
    rep = representation_of(events.train)
    unknown = [n for n in config.ot.johnson_su_features or [] if n not in rep.feature_names]
    if unknown:
        have = ", ".join(rep.feature_names)
        raise ValueError(f"ot.johnson_su_features: no feature {', '.join(unknown)}; have {have}")
    peak_windows(config, rep)
    x = rep.encode(events.train.values)
    n_val = int(round(config.validation_fraction * len(x)))
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(config.seed + 3))
    fit_rows, val_rows = order[n_val:], order[:n_val]
    w = events.train.weight
    out = prepare_output(config.out, config, context)
    (out / CHECKPOINTS).mkdir(exist_ok=True)
    variants = config.variants()
    folders = [out / v for v in variants]
    for folder in folders:
        folder.mkdir(exist_ok=True)
    progress = TaskProgress(context, len(variants), "event-generator")
    records = run_tasks(
        training.train_task,
        shared={
            "x": x[fit_rows],
            "weight": None if w is None else w[fit_rows],
            "x_val": x[val_rows] if n_val else None,
            "weight_val": None if w is None or not n_val else w[val_rows],
            "config": config.model_dump(mode="json"),
            "feature_names": list(rep.feature_names),
            "dalitz": rep.dalitz,
            "threads": config.execution.threads_per_task,
            "device": config.execution.device,
        },
        per_task=[
            {"method": m, "model_path": str(folder / MODEL), "seed": config.seed * 101 + _seed_index(variants, m)}
            for m, folder in zip(variants, folders, strict=True)
        ],
        checkpoints=[out / CHECKPOINTS / f"{m}.pt" for m in variants],
        resume=context.resume,
        on_done=lambda i, r: progress.advance(f"{r['method']}: trained in {r['seconds']:.0f} s"),
        **config.execution.task_options(),
    )
    progress.close()
    rows, failures = [], []
    held = HeldOut.of(events, rep)
    for record, folder in zip(records, folders, strict=True):
        row, generated = evaluate(record, config, events, rep, held)
        if row.get("failure"):
            failures.append(f"{record['method']}: {row['failure']}")
        else:
            write_event_table(folder / GENERATED, events.train.columns, *generated)
            plots.ratios(folder / "ratios.png", row["_comparisons"], record["method"])
        rows.append(row)
    usable = [r for r in rows if not r.get("failure")]
    best = min(usable, key=lambda r: _score(r)) if usable else None
    if best is not None:
        folder = out / best["method"]
        for name in (GENERATED, MODEL):
            atomic_write_file(out / name, lambda tmp, source=folder / name: shutil.copyfile(source, tmp))
        plots.peaks(out / "peaks.png", rows)
    for r in rows:
        r.pop("_comparisons", None)
    result = EventGeneratorResult(out, rows, failures=failures)
    result.metrics = {
        "workflow": "event-generator",
        "data": config.data or f"simulated {config.model} (accept-reject)",
        "layout": rep.layout,
        "features": list(rep.feature_names),
        # the OT generator's Johnson-SU transform applies where this exceeds ot.kurtosis_threshold
        "feature_excess_kurtosis": dict(zip(rep.feature_names, excess_kurtosis(x, w).tolist(), strict=True)),
        "train_events": len(events.train),
        "test_events": len(events.test),
        "efficiency": None if events.efficiency is None else events.efficiency[0],
        "accept_reject_seconds_per_event": events.reference_seconds_per_event,
        "methods": {r["method"]: r for r in rows},
        "best": None if best is None else best["method"],
        "seconds": time.perf_counter() - started,
    }
    finish_output(out, result.metrics, failures)
    return result


def _seed_index(variants: list[str], method: str) -> int:
    # the OT network without the Johnson-SU transform starts from the same weights and noise as with it, so
    # that the transform is the only difference between the two
    return variants.index("ot-attention" if method == OT_WITHOUT_JSU else method)


def _score(row: dict) -> float:
    c2st = row["c2st"]
    return c2st["auc_weighted"] if c2st["auc_weighted"] is not None else c2st["auc"]


@dataclass
class HeldOut:
    """What every generator is compared with, computed once: the held-out events' features, observables and
    weights, and with an efficiency, all held-out events where it is positive (the corrected projections')."""

    x: torch.Tensor
    observables: dict[str, np.ndarray]
    weight: np.ndarray | None
    all_observables: dict[str, np.ndarray] | None = None
    all_weight: np.ndarray | None = None

    @classmethod
    def of(cls, events: Events, rep: Representation) -> HeldOut:
        test = events.test
        held = cls(rep.encode(test.values), rep.observables(test.values), _numpy(test.weight))
        if events.efficiency is not None:
            truth = events.test_all
            positive = (evaluate_efficiency(*events.efficiency, truth) > 0).double()
            held.all_observables = rep.observables(truth.values)
            held.all_weight = (positive * (1.0 if truth.weight is None else truth.weight)).numpy()
        return held


def evaluate(record: dict, config: EventGeneratorConfig, events: Events, rep: Representation, held: HeldOut):
    """The metrics of one trained generator, and its generated (values, weights)."""
    from hadrinv.inference.event_metrics import classifier_two_sample_test, time_per_event, weight_summary

    method, device = record["method"], config.execution.device
    generator = training.load(method, record["model"], device)
    n = config.events or len(events.test)
    torch_gen = torch.Generator(device=device).manual_seed(config.seed + 11)
    z, weight = generator.sample(n, generator=torch_gen)
    z, weight = z.double().cpu(), weight.double().cpu()
    row = {"method": method, "seconds": record["seconds"], "final_loss": record["final_loss"], "generated": n}
    if method.startswith("ot-attention"):
        row["johnson_su_features"] = [rep.feature_names[j] for j in record.get("johnson_su_features", [])]
    if not (torch.isfinite(z).all() and torch.isfinite(weight).all()) or not math.isfinite(record["final_loss"]):
        row["failure"] = "non-finite training loss or generated events"
        return row, None
    values = rep.decode(z)

    def sample_and_decode(k: int):
        return rep.decode(generator.sample(k, generator=torch_gen)[0].double().cpu())

    row["seconds_per_event"] = time_per_event(sample_and_decode, min(n, 100_000))
    reference = events.reference_seconds_per_event
    row["speedup_vs_accept_reject"] = None if reference is None else reference / row["seconds_per_event"]
    weighted = not bool((weight == 1).all())
    k = min(config.c2st_events, len(held.x), n)
    c2st = classifier_two_sample_test(
        held.x[:k],
        z[:k],
        generated_weight=weight[:k] if weighted else None,
        truth_weight=None if held.weight is None else held.weight[:k],
    )
    row["c2st"] = c2st.as_dict()
    row["weights"] = weight_summary(weight).as_dict()
    generated = rep.observables(values)
    comparisons, histograms = _histograms(config, held.observables, held.weight, generated, weight.numpy())
    row["histograms"] = histograms
    row["mean_chi2_per_ndf"] = float(np.nanmean([h["chi2_per_ndf"] for h in histograms.values()]))
    row["peaks"], row["peak_max_deviation"], row["triangular_discriminator"] = _peaks(
        config, rep, held, generated, weight.numpy()
    )
    if events.efficiency is not None:
        eff = evaluate_efficiency(*events.efficiency, EventTable(events.train.columns, values, weight))
        keep = eff > 0
        _, row["efficiency_corrected"] = _histograms(
            config,
            held.all_observables,
            held.all_weight,
            {name: v[keep.numpy()] for name, v in generated.items()},
            (weight[keep] / eff[keep]).numpy(),
        )
    row["_comparisons"] = comparisons
    return row, (values, weight)


def _histograms(config, truth: dict, truth_weight, generated: dict, weight) -> tuple[dict, dict]:
    """Per observable: the comparison (for the ratio plots) and its summary."""
    from hadrinv.inference.event_metrics import histogram_comparison

    comparisons, summary = {}, {}
    for name, t in truth.items():
        c = histogram_comparison(t, generated[name], config.histogram_bins, weight, truth_weight, range=_range(t))
        comparisons[name] = c
        summary[name] = c.as_dict(config.min_bin_count)
    return comparisons, summary


def _range(truth: np.ndarray) -> tuple[float, float]:
    """The histogram range of an observable: its held-out 0.1 % to 99.9 % quantiles (a constant: +-0.5)."""
    lo, hi = np.quantile(truth, [0.001, 0.999])
    return (float(lo), float(hi)) if hi > lo else (float(truth.min()) - 0.5, float(truth.max()) + 0.5)


def _numpy(weight):
    return None if weight is None else weight.numpy()


def peak_windows(config: EventGeneratorConfig, rep: Representation) -> list:
    """The line-shape windows; an unknown observable stops the run before any training."""
    windows = config.peaks if config.peaks is not None else DEFAULT_PEAKS if rep.layout == "pwa" else []
    known = rep.observable_names
    for p in windows:
        if p.observable not in known:
            raise ValueError(f"peaks: no observable {p.observable!r}; have {', '.join(known)}")
    return windows


def _peaks(config, rep: Representation, held: HeldOut, generated: dict, weight):
    """Per window: the largest per-bin deviation where the held-out sample is well populated, chi2; the
    triangular discriminator (x 1e3) on the first window."""
    from hadrinv.inference.event_metrics import histogram_comparison, triangular_discriminator

    out, worst, delta = {}, math.nan, None
    for i, p in enumerate(peak_windows(config, rep)):
        t, g = held.observables[p.observable], generated[p.observable]
        c = histogram_comparison(t, g, p.bins, weight, held.weight, range=(p.low, p.high))
        entry = c.as_dict(config.min_bin_count)
        entry["well_populated_bins"] = int((c.truth_count > config.min_bin_count).sum())
        out[p.name] = entry
        dev = entry["max_relative_deviation"]
        if not math.isnan(dev):
            worst = dev if math.isnan(worst) else max(worst, dev)
        if i == 0:
            delta = 1e3 * triangular_discriminator(
                t, g, p.bins, generated_weight=weight, range=(p.low, p.high), truth_weight=held.weight
            )
    return out, worst, delta
