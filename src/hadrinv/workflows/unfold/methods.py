"""One unfolding method on the workflow's arrays (a Ray task): unfolded unit-area histograms per observable in the
report's binning and in a second binning chosen after the fact, and what each method adds."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hadrinv.inference.unfolding.normalise import unit_area
from hadrinv.workflows.execution import thread_limit


def _ibu(gen, reco, reco_data, mc_weight, data_weight, config: dict, binnings: list[dict]) -> dict:
    from hadrinv.inference.unfolding.ibu import IBUSettings, ibu

    settings = IBUSettings(**config["ibu"])
    hist, iterations = {}, []
    for k, name in enumerate(binnings[0]):
        edges = binnings[0][name]
        result = ibu(gen[:, k], reco[:, k], reco_data[:, k], edges, edges, mc_weight, data_weight, settings)
        hist[name] = result.density()
        iterations.append(result.iterations)
    return {"hist": [hist], "iterations": iterations}


def _omnifold(gen, reco, reco_data, mc_weight, data_weight, config: dict, binnings: list[dict], seed: int) -> dict:
    from hadrinv.inference.unfolding.omnifold import OmniFoldSettings, omnifold

    result = omnifold(gen, reco, reco_data, mc_weight, data_weight, OmniFoldSettings(**config["omnifold"], seed=seed))
    hists = []
    for binning in binnings:
        hist = {}
        for k, (name, edges) in enumerate(binning.items()):
            density, _, covariance = result.histogram(gen[:, k], edges)
            width = np.diff(edges)  # OmniFold normalises to all events: renormalise inside the bins
            hist[name] = unit_area(density * width, covariance * np.outer(width, width), width)
        hists.append(hist)
    return {
        "hist": hists,
        "weights": result.weights,
        "ess_fraction": result.ess_fraction,
        "weight_range": list(result.weight_range),
        "iterations": result.iterations,
    }


def _cinn(gen, reco, reco_data, mc_weight, data_weight, config: dict, binnings: list[dict], seed: int) -> dict:
    from hadrinv.inference.unfolding.cinn import CINNSettings, calibration, cinn_unfold
    from hadrinv.inference.unfolding.member_classifiers import ClassifierSettings

    options = dict(config["cinn"])
    held = min(options.pop("calibration_events"), len(gen) // 5)
    options["prior_classifier"] = ClassifierSettings(epochs=options.pop("prior_epochs"), seed=seed)
    order = np.random.default_rng(seed).permutation(len(gen))
    train, test = order[held:], order[:held]
    weight = None if mc_weight is None else mc_weight[train]
    result = cinn_unfold(gen[train], reco[train], reco_data, weight, data_weight, CINNSettings(**options, seed=seed))
    hists = [{name: result.histogram(k, edges) for k, (name, edges) in enumerate(b.items())} for b in binnings]
    coverage = calibration(result.estimator, gen[test], reco[test])
    return {
        "hist": hists,
        "samples": result.samples.astype(np.float32),
        "calibration": coverage,
        "history": result.history,
        "updates": result.updates,
    }


def unfold_task(
    gen: np.ndarray,
    reco: np.ndarray,
    reco_data: np.ndarray,
    mc_weight: np.ndarray | None,
    data_weight: np.ndarray | None,
    config: dict,
    binnings: list[dict],
    method: str,
    seed: int,
    threads: int | None,
) -> dict:
    """``binnings``: [report binning, check binning], each {observable: edges}. Returns the method's record."""
    thread_limit(threads)
    start, cpu = time.perf_counter(), time.process_time()
    if method == "ibu":
        record = _ibu(gen, reco, reco_data, mc_weight, data_weight, config, binnings)
    elif method == "omnifold":
        record = _omnifold(gen, reco, reco_data, mc_weight, data_weight, config, binnings, seed)
    else:
        record = _cinn(gen, reco, reco_data, mc_weight, data_weight, config, binnings, seed)
    record.update(method=method, seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu)
    return record


def write_samples(path: Path, samples: np.ndarray, observables: tuple[str, ...]) -> None:
    """cINN samples as a long table: one row per (data event, sample), columns event, gen_NAME."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hadrinv.data.io import atomic_write_file

    m, s, _ = samples.shape
    columns = {"event": np.repeat(np.arange(m), s)}
    columns.update({f"gen_{name}": samples[:, :, k].reshape(-1) for k, name in enumerate(observables)})
    table = pa.table(columns)
    atomic_write_file(path, lambda tmp: pq.write_table(table, tmp))
