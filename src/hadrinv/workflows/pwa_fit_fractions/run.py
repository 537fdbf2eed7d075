"""pwa-fit-fractions: the talk's fit-fraction study (talk 002, Tables 1-4).

Steps:
1. data: events of the generator model (R0) through the toy acceptance, or a user's event file (--data);
   accepted phase-space MC for the normalisation of -ln L, generator-level MC for the fit fractions;
2. each fit of the config (the talk's: R0 with -ln L, R0 with L~, R+4 with L~) from random starting
   points, one Ray task per restart (checkpointed), Newton steps with the exact autodiff Hessian;
3. per fit: parameters with inverse-Hessian errors, fit fractions and SF with propagated errors, -ln L
   without the penalty, how many restarts reached the best minimum; a table beside the talk's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_csv, atomic_write_text
from hadrinv.data.pwa_events import read_events
from hadrinv.data.pwa_model import ACCEPTANCES, accepted_phase_space, generate_events, read_model
from hadrinv.inference.unbinned import UnbinnedNLL, random_restarts
from hadrinv.physics import pwa
from hadrinv.workflows.amortized_runs import EXECUTION_KEYS
from hadrinv.workflows.output import CHECKPOINTS, finish_output, prepare_output
from hadrinv.workflows.pwa_fit_fractions.amplitude_model import AmplitudeModel, constraint_penalties
from hadrinv.workflows.pwa_fit_fractions.config import PwaFitFractionsConfig
from hadrinv.workflows.registry import RunContext, require_device

# the talk's tables: name -> (F %, mass GeV, width GeV) (Table 1 generated; Tables 2-4 fitted)
TALK_TABLES = {
    "R0 (generated, Table 1)": {"f0(980)": (39.5, 0.979, 0.107), "f2(2340)": (37.1, 2.548, 0.324), "f2'(1525)": (24.7, 1.5223, 0.0858),
                                "f0(1710)": (8.30, 1.6762, 0.1627), "f2(1270)": (3.16, 1.290, 0.196), "f2(2150)": (2.22, 2.162, 0.159)},
    "R0, -ln L": {"f0(980)": (39.2, 1.015, 0.102), "f2(2340)": (37.5, 2.571, 0.281), "f2'(1525)": (23.5, 1.5233, 0.0841),
                  "f0(1710)": (8.66, 1.6714, 0.159), "f2(1270)": (2.68, 1.288, 0.181), "f2(2150)": (2.52, 2.152, 0.170)},
    "R0, L~": {"f0(980)": (39.3, 1.017, 0.101), "f2(2340)": (37.5, 2.571, 0.282), "f2'(1525)": (23.6, 1.5233, 0.0842),
               "f0(1710)": (8.72, 1.6712, 0.159), "f2(1270)": (2.72, 1.288, 0.182), "f2(2150)": (2.52, 2.152, 0.170)},
    "R+4, L~": {"f2(2340)": (40.0, 2.577, 0.296), "f0(980)": (34.3, 1.007, 0.094), "f2'(1525)": (24.8, 1.524, 0.088),
                "f0(1710)": (9.88, 1.666, 0.162), "f2(1270)": (2.92, 1.279, 0.184), "f2(2150)": (2.23, 2.140, 0.134),
                "f2(2010)": (0.37, 2.011, 0.202), "f0(1500)": (0.20, 1.507, 0.112), "f0(1370)": (0.15, 1.347, 0.200),
                "f2(1640)": (0.08, 1.639, 0.099)},
}


@dataclass
class PwaFitFractionsResult:
    out: Path
    metrics: dict

    def summary_columns(self) -> list[str]:
        return ["fit", "resonance", "F (%)", "talk F (%)", "mass (GeV)", "width (GeV)"]

    def summary_rows(self) -> list[tuple[str, ...]]:
        rows = []
        for fit in self.metrics["fits"]:
            talk = TALK_TABLES.get(fit["name"], {})
            for r in fit["resonances"]:
                t = talk.get(r["name"])
                mass = f"{r['mass']:.4f} +- {r['mass_err']:.4f}" if r.get("mass_err") is not None else f"{r['mass']:.4f}"
                width = f"{r['width']:.4f} +- {r['width_err']:.4f}" if r.get("width_err") is not None else f"{r['width']:.4f}"
                rows.append((fit["name"], r["name"], f"{100 * r['F']:.2f} +- {100 * r['F_err']:.2f}", f"{t[0]:.2f}" if t else "-", mass, width))
            rows.append((fit["name"], "SF", f"{100 * fit['SF']:.1f} +- {100 * fit['SF_err']:.1f}", "-", fit["restarts"], f"-lnL {fit['nll']:.2f}"))
        return rows


def make_nll(model: dict, data_cache: dict, mc_cache: dict, fraction_cache: dict, sf_target: float | None, lam: float,
             n_events: int, chunk: int) -> UnbinnedNLL:
    """Top-level (picklable) factory: each restart task rebuilds the NLL from the model and the caches."""
    from hadrinv.data.pwa_model import PWAModel

    pwa_model = PWAModel.model_validate(model)
    am = AmplitudeModel(pwa_model)
    penalties = constraint_penalties(pwa_model, am)
    if sf_target is not None and lam > 0:
        penalties["sf"] = am.sf_penalty(fraction_cache, sf_target, lam, n_events, chunk_size=chunk)
    return UnbinnedNLL(am.intensity, data_cache, mc_cache, penalties=penalties, chunk_size=chunk)


def _starts(am: AmplitudeModel, spread: float = 1.0):
    """Random starting points around the model file's values: masses +- 20 MeV, widths and g_pipi x
    exp(+-0.2), couplings +- 30 % of their size (x spread)."""
    x0 = am.initial()

    def sample(generator: torch.Generator) -> list[float]:
        z = torch.randn(len(x0), generator=generator, dtype=torch.float64) * spread
        x = x0.clone()
        for i, name in enumerate(am.names):
            if name.endswith(".mass"):
                x[i] = x0[i] + 0.02 * z[i]
            elif name.endswith(".width") or name.endswith(".g_pipi"):
                x[i] = x0[i] * math.exp(0.2 * float(z[i]))
            else:
                x[i] = x0[i] + 0.3 * z[i] * max(abs(float(x0[i])), 0.05)
        return x.tolist()

    return sample


def run(config: PwaFitFractionsConfig, context: RunContext | None = None) -> PwaFitFractionsResult:
    context = context or RunContext()
    started = time.perf_counter()
    require_device(config.device)
    user = read_events(config.data) if config.data else None  # validate before anything is written
    models = {spec.name: read_model(spec.model) for spec in config.fits}
    out = prepare_output(config.out, config, context.resume, EXECUTION_KEYS)
    g = torch.Generator().manual_seed(config.seed)
    acceptance = ACCEPTANCES[config.acceptance]
    if user is None:
        generator_model = read_model(config.generator_model)
        data = generate_events(generator_model, config.events, acceptance=acceptance, generator=g)
        context.log(f"generated {config.events} events of {generator_model.name} ({config.acceptance} acceptance)")
    else:
        data = (user.gamma, user.pi1, user.pi2)
        context.log(f"read {len(user)} events from {config.data}")
    pion = pwa.M_PI_CHARGED
    mc = accepted_phase_space(config.mc_events, acceptance, pion, generator=g)
    fraction_mc = pwa.phase_space_events(config.fraction_mc_events, (0.0, pion, pion), generator=g)
    metrics: dict = {"workflow": "pwa-fit-fractions", "events": len(data[0]), "mc_events": config.mc_events,
                     "fraction_mc_events": config.fraction_mc_events, "fits": []}
    for index, spec in enumerate(config.fits):
        model = models[spec.name]
        am = AmplitudeModel(model)
        caches = {"data_cache": am.cache(*data), "mc_cache": am.cache(*mc), "fraction_cache": am.cache(*fraction_mc)}
        kwargs = {"model": model.model_dump(by_alias=True), **caches, "sf_target": spec.sf_target, "lam": spec.lam,
                  "n_events": len(data[0]), "chunk": config.chunk}
        fit_started = time.perf_counter()
        restarts = random_restarts(make_nll, _starts(am), config.restarts, executor=config.execution.executor, seed=config.seed + 101 * index,
                                   nll_kwargs=kwargs, checkpoint_dir=out / CHECKPOINTS / f"fit_{index}", resume=context.resume,
                                   workers=config.execution.workers, ray_address=config.execution.ray_address, threads=config.threads_per_task,
                                   method=config.method, names=am.names, bounds=am.bounds(), max_iterations=config.max_iterations)
        best = restarts.best
        context.log(f"{spec.name}: {restarts.summary()} ({time.perf_counter() - fit_started:.0f} s)")
        metrics["fits"].append(_summarise(spec, am, best, restarts, caches, make_nll(**kwargs), config))
        _write_table(out / f"fit_{index}.csv", out / f"fit_{index}.md", metrics["fits"][-1])
    metrics["seconds"] = time.perf_counter() - started
    finish_output(out, metrics)
    return PwaFitFractionsResult(out=out, metrics=metrics)


def _summarise(spec, am: AmplitudeModel, best, restarts, caches, nll: UnbinnedNLL, config) -> dict:
    params = torch.as_tensor(best.values, dtype=torch.float64)
    covariance = np.asarray(best.covariance)
    F, interference, SF = am.fit_fractions(params, caches["fraction_cache"], config.chunk)
    F_err, SF_err, _ = am.fit_fraction_errors(params, covariance, caches["fraction_cache"], config.chunk)
    errors = dict(zip(am.names, np.asarray(best.recommended_errors, dtype=float)))
    fitted = am.to_model(params)
    resonances = []
    for k, r in enumerate(fitted.resonances):
        width_name = f"{r.name}.g_pipi" if r.lineshape == "flatte" else f"{r.name}.width"
        resonances.append({"name": r.name, "F": float(F[k]), "F_err": float(F_err[k]), "mass": r.mass,
                           "mass_err": _finite(errors.get(f"{r.name}.mass")), "width": r.g_pipi if r.lineshape == "flatte" else r.width,
                           "width_err": _finite(errors.get(width_name))})
    with torch.no_grad():
        nll_only = float(nll.nll_only(params))
    return {"name": spec.name, "model": spec.model, "sf_target": spec.sf_target, "lambda": spec.lam, "valid": bool(best.is_valid),
            "nll": nll_only, "objective": float(best.fval), "SF": float(SF), "SF_err": float(SF_err),
            "restarts": f"{restarts.n_at_best}/{restarts.n} at best", "parameters": dict(zip(am.names, map(float, best.values))),
            "errors": {k: _finite(v) for k, v in errors.items()}, "resonances": resonances,
            "interference": interference.tolist()}


def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _write_table(csv_path: Path, md_path: Path, fit: dict) -> None:
    talk = TALK_TABLES.get(fit["name"], {})
    rows = [(r["name"], 100 * r["F"], 100 * r["F_err"], r["mass"], r["mass_err"], r["width"], r["width_err"],
             *(talk.get(r["name"]) or (None, None, None))) for r in fit["resonances"]]
    header = ["resonance", "F_percent", "F_err_percent", "mass_gev", "mass_err_gev", "width_gev", "width_err_gev",
              "talk_F_percent", "talk_mass_gev", "talk_width_gev"]
    atomic_write_csv(csv_path, header, rows)
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    lines = [f"## {fit['name']} (SF = {100 * fit['SF']:.1f} +- {100 * fit['SF_err']:.1f} %, -ln L = {fit['nll']:.2f}, {fit['restarts']})", "",
             "| resonance | F (%) | talk F (%) | mass (GeV) | talk mass | width (GeV) | talk width |", "|---|---|---|---|---|---|---|"]
    for r, t in zip(fit["resonances"], [talk.get(r["name"]) for r in fit["resonances"]]):
        lines.append(f"| {r['name']} | {100 * r['F']:.2f} +- {100 * r['F_err']:.2f} | {fmt(t and t[0], '.2f')} | "
                     f"{r['mass']:.4f} +- {fmt(r['mass_err'], '.4f')} | {fmt(t and t[1], '.4f')} | {r['width']:.4f} +- {fmt(r['width_err'], '.4f')} | "
                     f"{fmt(t and t[2], '.4f')} |")
    atomic_write_text(md_path, "\n".join(lines) + "\n")
