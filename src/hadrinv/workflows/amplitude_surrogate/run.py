"""amplitude-surrogate: regression of log |M|^2 from Lorentz invariants, with uncertainties, and the talk's boostings.

Features: log s_ij for every pair of particles (incoming included), s_ij = (p_i + p_j)^2 in GeV^2. They are
Lorentz invariant, the amplitude's poles sit where one of them vanishes (collinear and soft limits), and the
log turns those poles into ramps a smooth network can follow; they carry the overall scale too, so tables at
several energies work. Target: log |M|^2, so that a relative precision Delta = (A_NN - A) / A is an absolute
error of the regression and the many decades of |M|^2 weigh alike. The predicted amplitude is
A_NN = exp(mean); its uncertainties (stat, syst, total) are A_NN times those of the log, to first order.

The Bayesian network and the ensemble fit on all but `calibration_fraction` of the training points and scale
their uncertainties by one factor measured on the rest (`Surrogate.calibrate`); the plain MLP fits on all.
Each (method, boost) variant trains as one task (Ray by default, checkpointed: --resume redoes only the
unfinished ones) and is evaluated on the test set: the quantiles of |Delta|, the share within 1 % and 5 %,
and for the methods with uncertainties the calibration, pulls (log A - mean) / sigma_tot, their width and
the 68 / 95 % coverage. OUT/<method>-<boost>/ holds each variant's predictions.parquet and model.pt;
OUT/predictions.parquet and OUT/model.pt are those of the variant with the smallest 68 % quantile of |Delta|
on the test set (the table's best; every variant's own files stay beside it).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.amplitude_tables import AmplitudeTable, read_amplitudes
from hadrinv.data.io import atomic_write_file
from hadrinv.physics.rambo import pair_invariants
from hadrinv.workflows.amplitude_surrogate import plots
from hadrinv.workflows.amplitude_surrogate.config import BOOSTS, AmplitudeSurrogateConfig
from hadrinv.workflows.execution import thread_limit
from hadrinv.workflows.output import CHECKPOINTS, TaskProgress, finish_output, prepare_output
from hadrinv.workflows.registry import RunContext

PREDICTIONS = "predictions.parquet"
MODEL = "model.pt"
PREDICTION_COLUMNS = ("amp2", "amp2_pred", "amp2_sigma", "amp2_sigma_stat", "amp2_sigma_syst")


@dataclass
class AmplitudeSurrogateResult:
    out: Path
    rows: list[dict]
    metrics: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def summary_columns(self) -> list[str]:
        return ["method", "boost", "|Delta| 68 % / 99 %", "within 1 % / 5 %", "pull width", "coverage 68 / 95", "s"]

    def summary_rows(self) -> list[tuple[str, ...]]:
        rows = []
        for r in self.rows:
            t = r["test"]
            calibration = (
                ("-", "-")
                if t["pull_width"] is None
                else (f"{t['pull_width']:.3f}", f"{t['coverage_68']:.3f} / {t['coverage_95']:.3f}")
            )
            rows.append(
                (
                    r["method"],
                    r["boost"],
                    f"{t['delta_q68']:.2e} / {t['delta_q99']:.2e}",
                    f"{t['within_1pc']:.3f} / {t['within_5pc']:.3f}",
                    *calibration,
                    f"{r['seconds']:.0f}",
                )
            )
        return rows


def features(momenta: torch.Tensor) -> torch.Tensor:
    """log s_ij (GeV^2) of every pair of particles: (N, n(n-1)/2), float64."""
    s = pair_invariants(momenta.to(torch.float64))
    if bool((s <= 0).any()):
        # only unphysical momenta (negative energies) give s_ij <= 0 for pairs of physical particles
        raise ValueError("a pair invariant s_ij <= 0: the momenta are not physical (negative energy?)")
    return torch.log(s)


def surrogate_settings(config: AmplitudeSurrogateConfig, method: str, boost: str, seed: int):
    from hadrinv.inference.surrogates import SurrogateSettings

    n = config.network
    rounds = {"none": 1, "loss": 4, "performance": 20}[boost]  # the talk's repetitions
    per_round = max(n.boost_epochs // rounds, 1) if n.boost_epochs else 0
    # equal training time: the unboosted fit trains the boosted ones' extra epochs too
    epochs = n.epochs + (n.boost_epochs if boost == "none" else 0)
    return SurrogateSettings(
        method=method,
        hidden=n.hidden,
        layers=n.layers,
        epochs=epochs,
        batch=n.batch,
        lr=n.lr,
        members=n.members,
        prior_sigma=n.prior_sigma,
        boost=boost,
        boost_epochs=per_round,
        seed=seed,
    )


def train_task(
    x: torch.Tensor,
    y: torch.Tensor,
    config: dict,
    method: str,
    boost: str,
    model_path: str,
    seed: int,
    threads: int | None,
    device: str,
) -> dict:
    """One variant (a Ray task): fit, calibrate, save the model where the driver will read it, return a record."""
    from hadrinv.inference.surrogates import fit_surrogate

    thread_limit(threads)
    parsed = AmplitudeSurrogateConfig.model_validate(config)
    settings = surrogate_settings(parsed, method, boost, seed)
    fit, held_out = calibration_split(len(x), parsed, method)
    start = time.perf_counter()
    model = fit_surrogate(x[fit], y[fit], settings, device=device)
    seconds = time.perf_counter() - start
    scale = None
    if held_out is not None:
        scale = model.calibrate(
            x[held_out].to(device), y[held_out].to(device), samples=parsed.network.samples, seed=parsed.seed
        )
    model.save(model_path)
    return {"method": method, "boost": boost, "model": model_path, "seconds": seconds, "sigma_scale": scale}


def calibration_split(
    n: int, config: AmplitudeSurrogateConfig, method: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(rows to fit, rows to calibrate on or None): the same split for every variant of a run."""
    if method == "mlp" or config.calibration_fraction == 0:
        return torch.arange(n), None
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + 17))
    held = max(int(round(config.calibration_fraction * n)), 20)
    return order[held:], order[:held]


def load_tables(config: AmplitudeSurrogateConfig, context: RunContext) -> tuple[AmplitudeTable, AmplitudeTable]:
    """(train, test): the user's tables, a held-out share of the user's table, or simulated ones."""
    batch = config.network.batch
    if config.data is None:
        from hadrinv.data.amplitude_simulation import simulate_amplitudes

        cuts = config.cuts.model_dump()
        context.log(
            f"simulating {config.process} at sqrt(s) = {config.sqrt_s_gev:g} GeV: {config.train_points} training "
            f"and {config.test_points} test points"
        )
        train = simulate_amplitudes(config.process, config.sqrt_s_gev, config.train_points, config.seed, **cuts)
        test = simulate_amplitudes(config.process, config.sqrt_s_gev, config.test_points, config.seed + 1, **cuts)
        return train, test
    if config.test is not None:
        train = read_amplitudes(config.data, min_rows=batch)
        test = read_amplitudes(config.test, min_rows=1)
        if test.n_particles != train.n_particles:
            raise ValueError(
                f"{config.test}: {test.n_particles} particles per row, the training table {config.data} has "
                f"{train.n_particles}"
            )
        return train, test
    table = read_amplitudes(config.data, min_rows=2 * batch)
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(config.seed))
    n_test = max(int(round(config.test_fraction * len(table))), 1)
    if len(table) - n_test < batch:
        raise ValueError(f"{config.data}: {len(table) - n_test} training rows after the held-out share; need {batch}")
    pick = {"test": order[:n_test], "train": order[n_test:]}
    part = {k: AmplitudeTable(table.momenta[i], table.amp2[i], table.n_incoming, table.path) for k, i in pick.items()}
    return part["train"], part["test"]


def precision_metrics(log_a: torch.Tensor, mean: torch.Tensor, sigma: torch.Tensor | None) -> dict:
    """Quantiles of |Delta| = |A_NN - A| / A, shares within 1 and 5 %, and the calibration of sigma (of log A)."""
    delta = torch.expm1(mean - log_a).abs().numpy()
    out = {
        "delta_q68": float(np.quantile(delta, 0.68)),
        "delta_q99": float(np.quantile(delta, 0.99)),
        "within_1pc": float((delta <= 0.01).mean()),
        "within_5pc": float((delta <= 0.05).mean()),
        "pull_width": None,
        "coverage_68": None,
        "coverage_95": None,
    }
    if sigma is not None:
        pull = ((log_a - mean) / sigma).numpy()
        out["pull_width"] = float(pull.std())
        out["pull_mean"] = float(pull.mean())
        out["coverage_68"] = float((np.abs(pull) <= 1.0).mean())
        out["coverage_95"] = float((np.abs(pull) <= 1.959964).mean())
    return out


def run(config: AmplitudeSurrogateConfig, context: RunContext | None = None) -> AmplitudeSurrogateResult:
    from hadrinv.inference.ensemble import run_tasks
    from hadrinv.inference.surrogates import Surrogate

    context = context or RunContext(progress=False, log=lambda message: None)
    started = time.perf_counter()
    train, test = load_tables(config, context)  # bad tables stop here, before the folder is touched
    x_train, x_test = features(train.momenta), features(test.momenta)
    y_train, y_test = torch.log(train.amp2), torch.log(test.amp2)
    out = prepare_output(config.out, config, context)
    (out / CHECKPOINTS).mkdir(exist_ok=True)
    variants = config.variants()
    folders = [out / f"{m}-{b}" for m, b in variants]
    for folder in folders:
        folder.mkdir(exist_ok=True)
    progress = TaskProgress(context, len(variants), "amplitude-surrogate")
    records = run_tasks(
        train_task,
        shared={
            "x": x_train,
            "y": y_train,
            "config": config.model_dump(mode="json"),
            "threads": config.execution.threads_per_task,
            "device": config.execution.device,
        },
        per_task=[
            {"method": m, "boost": b, "model_path": str(folder / MODEL), "seed": config.seed * 101 + i}
            for i, ((m, b), folder) in enumerate(zip(variants, folders, strict=True))
        ],
        checkpoints=[out / CHECKPOINTS / f"{m}-{b}.pt" for m, b in variants],
        resume=context.resume,
        on_done=lambda i, r: progress.advance(f"{r['method']} / {r['boost']}: trained in {r['seconds']:.0f} s"),
        **config.execution.task_options(),
    )
    progress.close()
    rows, failures = [], []
    device = config.execution.device
    for record, folder in zip(records, folders, strict=True):
        model = Surrogate.load(record["model"], map_location=device)
        row = {
            "method": record["method"],
            "boost": record["boost"],
            "seconds": record["seconds"],
            "sigma_scale": record["sigma_scale"],
        }
        for name, x, log_a in (("train", x_train, y_train), ("test", x_test, y_test)):
            p = predict(model, x, config)
            finite = bool(torch.isfinite(p.mean).all() and torch.isfinite(p.sigma_tot).all())
            if not finite:
                failures.append(f"{record['method']} / {record['boost']}: non-finite predictions on the {name} set")
                row[name] = precision_metrics(log_a, torch.nan_to_num(p.mean), None)
                continue
            has_sigma = bool((p.sigma_tot > 0).all())
            row[name] = precision_metrics(log_a, p.mean, p.sigma_tot if has_sigma else None)
            if name == "test":
                row["_test_prediction"] = p
        rows.append(row)
        if "_test_prediction" in row:
            write_predictions(folder / PREDICTIONS, test.amp2, row["_test_prediction"])
    usable = [r for r in rows if "_test_prediction" in r]
    best = min(usable, key=lambda r: r["test"]["delta_q68"]) if usable else None
    if best is not None:
        folder = out / f"{best['method']}-{best['boost']}"
        for name in (PREDICTIONS, MODEL):
            atomic_write_file(out / name, lambda tmp, source=folder / name: shutil.copyfile(source, tmp))
        train_prediction = predict(Surrogate.load(folder / MODEL, map_location=device), x_train, config)
        plots.precision(out / "precision.png", rows, y_train, train_prediction.mean, best, y_test)
        plots.calibration(out / "calibration.png", rows, y_test)
        plots.delta_vs_amplitude(out / "delta_vs_amplitude.png", y_test, best)
    for r in rows:
        r.pop("_test_prediction", None)
    result = AmplitudeSurrogateResult(out, rows, failures=failures)
    result.metrics = {
        "workflow": "amplitude-surrogate",
        "data": config.data or f"simulated {config.process}, sqrt(s) = {config.sqrt_s_gev:g} GeV",
        "test": config.test or ("held-out share" if config.data else "simulated"),
        "particles": train.n_particles,
        "train_points": len(train),
        "test_points": len(test),
        "variants": {f"{r['method']}/{r['boost']}": {k: v for k, v in r.items()} for r in rows},
        "best": None if best is None else f"{best['method']}/{best['boost']}",
        "performance_boost_gain_q99": _boost_gain(rows),
        "seconds": time.perf_counter() - started,
    }
    finish_output(out, result.metrics, failures)
    return result


def predict(model, x: torch.Tensor, config: AmplitudeSurrogateConfig):
    """The surrogate's prediction on CPU tensors; the Bayesian network's weight draws are seeded, so that a saved
    model reproduces the saved predictions."""
    from hadrinv.inference.surrogates import Prediction

    p = model.predict(x.to(config.execution.device), samples=config.network.samples, seed=config.seed)
    return Prediction(p.mean.cpu(), p.sigma_stat.cpu(), p.sigma_syst.cpu())


def _boost_gain(rows: list[dict]) -> dict:
    """Per method: the 99 % quantile of |Delta| on the test set without boosting over that with each boosting."""
    by = {(r["method"], r["boost"]): r["test"]["delta_q99"] for r in rows}
    gains = {}
    for method in {m for m, _ in by}:
        base = by.get((method, "none"))
        for boost in BOOSTS[1:]:
            if base is not None and (method, boost) in by and by[method, boost] > 0:
                gains[f"{method}/{boost}"] = base / by[method, boost]
    return gains


def write_predictions(path: Path, amp2: torch.Tensor, p) -> Path:
    """Row-aligned with the test table: the truth and A_NN with its uncertainties, GeV units of the table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    a_nn = torch.exp(p.mean)
    columns = {
        "amp2": amp2,
        "amp2_pred": a_nn,
        "amp2_sigma": a_nn * p.sigma_tot,
        "amp2_sigma_stat": a_nn * p.sigma_stat,
        "amp2_sigma_syst": a_nn * p.sigma_syst,
    }
    table = pa.table({k: pa.array(v.to(torch.float64).numpy()) for k, v in columns.items()})
    return atomic_write_file(path, lambda tmp: pq.write_table(table, tmp))
