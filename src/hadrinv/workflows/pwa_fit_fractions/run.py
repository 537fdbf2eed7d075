"""pwa-fit-fractions: the talk's fit-fraction study (talk 002, Tables 1-4).

Steps:
1. data: events of the generator model (R0) through the toy acceptance, or a user's event file (--data,
   optional per-event weights); accepted phase-space MC for the normalisation of -ln L and generator-level
   MC for the fit fractions, both importance-sampled along the data's m_pipi spectrum and binned in m_pipi
   by default;
2. each fit of the config (the talk's: R0 with -ln L, R0 with L~, R+4 with L~) from random starting
   points, one Ray task per restart (checkpointed), MIGRAD with the autodiff gradient (or Newton steps
   with the exact Hessian), errors from the exact autodiff Hessian;
3. per fit: parameters with inverse-Hessian errors, fit fractions and SF with propagated errors, -ln L
   without the penalty, how many restarts reached the best minimum; a table beside the talk's, the
   correlation matrix, projections of data and fit;
4. optionally the SF_target scan and the component scan.
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
from hadrinv.data.pwa_model import ACCEPTANCES, generate_events, m_spectrum, mc_chunks_of, mc_samplers, read_model
from hadrinv.inference.unbinned import UnbinnedNLL, random_restarts
from hadrinv.models.pwa import AmplitudeModel, constraint_penalties
from hadrinv.physics import pwa
from hadrinv.workflows.execution import require_device
from hadrinv.workflows.output import CHECKPOINTS, finish_output, prepare_output
from hadrinv.workflows.pwa_fit_fractions.config import FitSpec, PwaFitFractionsConfig
from hadrinv.workflows.pwa_fit_fractions.plots import projections, write_correlations, write_projections
from hadrinv.workflows.registry import RunContext

# the talk's tables: name -> (F %, mass GeV, width GeV) (Table 1 generated; Tables 2-4 fitted)
TALK_TABLES = {
    "R0 (generated, Table 1)": {
        "f0(980)": (39.5, 0.979, 0.107),
        "f2(2340)": (37.1, 2.548, 0.324),
        "f2'(1525)": (24.7, 1.5223, 0.0858),
        "f0(1710)": (8.30, 1.6762, 0.1627),
        "f2(1270)": (3.16, 1.290, 0.196),
        "f2(2150)": (2.22, 2.162, 0.159),
    },
    "R0, -ln L": {
        "f0(980)": (39.2, 1.015, 0.102),
        "f2(2340)": (37.5, 2.571, 0.281),
        "f2'(1525)": (23.5, 1.5233, 0.0841),
        "f0(1710)": (8.66, 1.6714, 0.159),
        "f2(1270)": (2.68, 1.288, 0.181),
        "f2(2150)": (2.52, 2.152, 0.170),
    },
    "R0, L~": {
        "f0(980)": (39.3, 1.017, 0.101),
        "f2(2340)": (37.5, 2.571, 0.282),
        "f2'(1525)": (23.6, 1.5233, 0.0842),
        "f0(1710)": (8.72, 1.6712, 0.159),
        "f2(1270)": (2.72, 1.288, 0.182),
        "f2(2150)": (2.52, 2.152, 0.170),
    },
    "R+4, L~": {
        "f2(2340)": (40.0, 2.577, 0.296),
        "f0(980)": (34.3, 1.007, 0.094),
        "f2'(1525)": (24.8, 1.524, 0.088),
        "f0(1710)": (9.88, 1.666, 0.162),
        "f2(1270)": (2.92, 1.279, 0.184),
        "f2(2150)": (2.23, 2.140, 0.134),
        "f2(2010)": (0.37, 2.011, 0.202),
        "f0(1500)": (0.20, 1.507, 0.112),
        "f0(1370)": (0.15, 1.347, 0.200),
        "f2(1640)": (0.08, 1.639, 0.099),
    },
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
                mass = (
                    f"{r['mass']:.4f} +- {r['mass_err']:.4f}" if r.get("mass_err") is not None else f"{r['mass']:.4f}"
                )
                width = (
                    f"{r['width']:.4f} +- {r['width_err']:.4f}"
                    if r.get("width_err") is not None
                    else f"{r['width']:.4f}"
                )
                rows.append(
                    (
                        fit["name"],
                        r["name"],
                        f"{100 * r['F']:.2f} +- {100 * r['F_err']:.2f}",
                        f"{t[0]:.2f}" if t else "-",
                        mass,
                        width,
                    )
                )
            rows.append(
                (
                    fit["name"],
                    "SF",
                    f"{100 * fit['SF']:.1f} +- {100 * fit['SF_err']:.1f}",
                    "-",
                    fit["restarts"],
                    f"-lnL {fit['nll']:.2f}",
                )
            )
        return rows


def make_nll(
    model: dict,
    data_cache: dict,
    mc_cache: dict,
    fraction_cache: dict,
    sf_target: float | None,
    lam: float,
    n_events: float,
    chunk: int,
    data_weights: torch.Tensor | None = None,
) -> UnbinnedNLL:
    """Top-level (picklable) factory: each restart task rebuilds the NLL from the model and the caches."""
    from hadrinv.data.pwa_model import PWAModel

    pwa_model = PWAModel.model_validate(model)
    am = AmplitudeModel(pwa_model)
    penalties = constraint_penalties(pwa_model, am)
    if sf_target is not None and lam > 0:
        penalties["sf"] = am.sf_penalty(fraction_cache, sf_target, lam, n_events, chunk_size=chunk)
    return UnbinnedNLL(
        am.intensity, data_cache, mc_cache, data_weights=data_weights, penalties=penalties, chunk_size=chunk
    )


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
    require_device(config.execution.device)
    user = read_events(config.data) if config.data else None  # validate before anything is written
    models = {spec.name: read_model(spec.model) for spec in config.fits}
    out = prepare_output(config.out, config, context)
    g = torch.Generator().manual_seed(config.seed)
    acceptance = ACCEPTANCES[config.acceptance]
    weights = None
    if user is None:
        generator_model = read_model(config.generator_model)
        data = generate_events(generator_model, config.events, acceptance=acceptance, generator=g)
        context.log(f"generated {config.events} events of {generator_model.name} ({config.acceptance} acceptance)")
    else:
        data = (user.gamma, user.pi1, user.pi2)
        weights = user.weight
        context.log(f"read {len(user)} events from {config.data}")
    pion = pwa.M_PI_CHARGED
    spectrum = m_spectrum(
        pwa.invariant_mass(data[1] + data[2]), weights, pion_mass=pion
    )  # the MC follows the data's m_pipi
    accepted, generated = mc_samplers(config.mc_sampling, spectrum, acceptance, pion)
    mc_chunks = list(mc_chunks_of(config.mc_events, accepted, g))
    fraction_chunks = list(mc_chunks_of(config.fraction_mc_events, generated, g))
    n_events = float(weights.sum()) if weights is not None else len(data[0])  # N of the SF penalty
    projection_mc = mc_chunks[0]  # event by event: the angles of the projections need the events
    metrics: dict = {
        "workflow": "pwa-fit-fractions",
        "events": len(data[0]),
        "weighted_events": n_events,
        "mc_events": config.mc_events,
        "fraction_mc_events": config.fraction_mc_events,
        "fits": [],
    }

    def fit(model, spec: FitSpec, key: str, seed: int, restarts_n: int, plots: bool) -> dict:
        """Random restarts of one model on the data; the summary dict of the best minimum."""
        am = AmplitudeModel(model)
        caches = {
            "data_cache": am.cache(*data),
            "mc_cache": _mc_cache(am, mc_chunks, config),
            "fraction_cache": _mc_cache(am, fraction_chunks, config),
        }
        kwargs = {
            "model": model.model_dump(by_alias=True),
            **caches,
            "sf_target": spec.sf_target,
            "lam": spec.lam,
            "n_events": n_events,
            "chunk": config.chunk,
            "data_weights": weights,
        }
        fit_started = time.perf_counter()
        restarts = random_restarts(
            make_nll,
            _starts(am),
            restarts_n,
            executor=config.execution.executor,
            seed=seed,
            nll_kwargs=kwargs,
            checkpoint_dir=out / CHECKPOINTS / key,
            resume=context.resume,
            workers=config.execution.workers,
            ray_address=config.execution.ray_address,
            threads=config.execution.threads_per_task,
            method=config.method,
            names=am.names,
            bounds=am.bounds(),
            max_iterations=config.max_iterations,
        )
        best = restarts.best
        context.log(f"{spec.name}: {restarts.summary()} ({time.perf_counter() - fit_started:.0f} s)")
        summary = _summarise(spec, am, best, restarts, caches, make_nll(**kwargs), config)
        if plots:
            _write_table(out / f"{key}.csv", out / f"{key}.md", summary)
            write_correlations(
                out / f"correlations_{key}.csv", out / f"correlations_{key}.png", am.names, best.covariance
            )
            proj = projections(
                am, best.values, data, projection_mc[:3], weights, projection_mc[3] if len(projection_mc) == 4 else None
            )
            write_projections(out / f"projections_{key}.csv", out / f"projections_{key}.png", proj, spec.name)
            summary["projection_chi2"] = {name: {"chi2": p["chi2"], "bins": p["bins"]} for name, p in proj.items()}
        return summary

    for index, spec in enumerate(config.fits):
        metrics["fits"].append(
            fit(models[spec.name], spec, f"fit_{index}", config.seed + 101 * index, config.restarts, plots=True)
        )
    if config.sf_scan is not None:
        metrics["sf_scan"] = _sf_scan(config, fit)
        _write_sf_scan(out, metrics["sf_scan"])
    if config.component_scan is not None:
        metrics["component_scan"] = _component_scan(config, fit)
        _write_component_scan(out, metrics["component_scan"])
    metrics["seconds"] = time.perf_counter() - started
    finish_output(out, metrics)
    return PwaFitFractionsResult(out=out, metrics=metrics)


def _sf_scan(config: PwaFitFractionsConfig, fit) -> list[dict]:
    """The talk's SF_target scan: the same model fitted with L~ at each SF_target; -ln L (without the
    penalty), SF and every fit fraction per point."""
    scan = config.sf_scan
    model = read_model(scan.model)
    points = []
    for i, target in enumerate(scan.targets):
        spec = FitSpec(name=f"{model.name}, SF_target {target:.3f}", model=scan.model, sf_target=target, lam=scan.lam)
        summary = fit(model, spec, f"sf_scan_{i}", config.seed + 7919 + 31 * i, scan.restarts, plots=False)
        points.append(
            {
                "sf_target": target,
                "lambda": scan.lam,
                "valid": summary["valid"],
                "nll": summary["nll"],
                "SF": summary["SF"],
                "SF_err": summary["SF_err"],
                "F": {r["name"]: r["F"] for r in summary["resonances"]},
                "F_err": {r["name"]: r["F_err"] for r in summary["resonances"]},
            }
        )
    return points


def _component_scan(config: PwaFitFractionsConfig, fit) -> dict:
    """Add each candidate to the base model: Delta ln L against the base fit (without penalties) and its
    significance from Wilks' theorem, 2 Delta ln L ~ chi^2(Delta ndf), quoted as the two-sided Gaussian
    equivalent (sqrt(2 Delta ln L) for one added parameter)."""
    from scipy import stats

    from hadrinv.data.pwa_model import PWAModel

    scan = config.component_scan
    base = read_model(scan.base)
    known = {r.name for r in base.resonances}
    candidates = [r for r in read_model(scan.candidates).resonances if r.name not in known]
    if not candidates:
        raise ValueError(f"component scan: {scan.candidates} has no resonance that {scan.base} lacks")
    base_fit = fit(
        base,
        FitSpec(name=f"{base.name} (scan base)", model=scan.base),
        "component_scan_base",
        config.seed + 6271,
        scan.restarts,
        plots=False,
    )
    n_base = len(base_fit["parameters"])
    rows = []
    for i, candidate in enumerate(candidates):
        model = PWAModel.model_validate(
            {
                **base.model_dump(by_alias=True),
                "name": f"{base.name} + {candidate.name}",
                "resonances": [r.model_dump(by_alias=True) for r in base.resonances]
                + [candidate.model_dump(by_alias=True)],
            }
        )
        summary = fit(
            model,
            FitSpec(name=model.name, model=scan.base),
            f"component_scan_{i}",
            config.seed + 6271 + 17 * (i + 1),
            scan.restarts,
            plots=False,
        )
        delta_ndf = len(summary["parameters"]) - n_base
        delta = base_fit["nll"] - summary["nll"]  # ln L gained by the candidate (>= 0 up to the minimiser's accuracy)
        p_value = float(stats.chi2.sf(max(2.0 * delta, 0.0), delta_ndf)) if delta_ndf > 0 else math.nan
        rows.append(
            {
                "candidate": candidate.name,
                "spin": candidate.spin,
                "delta_ln_l": delta,
                "delta_ndf": delta_ndf,
                "p_value": p_value,
                "significance": float(stats.norm.isf(p_value / 2)) if p_value > 0 else math.inf,
                "valid": summary["valid"],
                "F": next(r["F"] for r in summary["resonances"] if r["name"] == candidate.name),
            }
        )
    return {"base": base.name, "base_nll": base_fit["nll"], "base_valid": base_fit["valid"], "candidates": rows}


def _write_sf_scan(out: Path, points: list[dict]) -> None:
    names = list(points[0]["F"])
    atomic_write_csv(
        out / "sf_scan.csv",
        ["sf_target", "lambda", "valid", "nll", "SF", "SF_err", *[f"F:{n}" for n in names]],
        [
            (p["sf_target"], p["lambda"], p["valid"], p["nll"], p["SF"], p["SF_err"], *(p["F"][n] for n in names))
            for p in points
        ],
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [p["sf_target"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(targets, [p["nll"] - min(q["nll"] for q in points) for p in points], "o-")
    left.set_xlabel("SF_target")
    left.set_ylabel("-ln L - min (without the penalty)")
    for n in names:
        right.plot(targets, [100 * p["F"][n] for p in points], "o-", ms=3, label=n)
    right.set_yscale("log")
    right.set_xlabel("SF_target")
    right.set_ylabel("fit fraction (%)")
    right.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "sf_scan.png", dpi=110)
    plt.close(fig)


def _write_component_scan(out: Path, scan: dict) -> None:
    rows = [
        (
            c["candidate"],
            c["spin"],
            c["delta_ln_l"],
            c["delta_ndf"],
            c["p_value"],
            c["significance"],
            c["F"],
            c["valid"],
        )
        for c in scan["candidates"]
    ]
    atomic_write_csv(
        out / "component_scan.csv",
        ["candidate", "spin", "delta_ln_l", "delta_ndf", "p_value", "significance_sigma", "F", "valid"],
        rows,
    )
    lines = [
        f"## Component scan on {scan['base']} (-ln L = {scan['base_nll']:.2f})",
        "",
        "| candidate | spin | Delta ln L | Delta ndf | significance (sigma) | F (%) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {c['candidate']} | {c['spin']} | {c['delta_ln_l']:.2f} | {c['delta_ndf']} | {c['significance']:.2f} | "
        f"{100 * c['F']:.3f} |"
        for c in scan["candidates"]
    ]
    atomic_write_text(out / "component_scan.md", "\n".join(lines) + "\n")


def _mc_cache(am: AmplitudeModel, chunks: list, config: PwaFitFractionsConfig) -> dict:
    if config.normalisation == "binned":
        return am.binned_cache(chunks, config.bin_width_mev / 1000.0)
    caches = [am.cache(*c[:3]) for c in chunks]
    return {key: torch.cat([c[key] for c in caches]) for key in caches[0]}


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
        resonances.append(
            {
                "name": r.name,
                "F": float(F[k]),
                "F_err": float(F_err[k]),
                "mass": r.mass,
                "mass_err": _finite(errors.get(f"{r.name}.mass")),
                "width": r.g_pipi if r.lineshape == "flatte" else r.width,
                "width_err": _finite(errors.get(width_name)),
            }
        )
    with torch.no_grad():
        nll_only = float(nll.nll_only(params))
    return {
        "name": spec.name,
        "model": spec.model,
        "sf_target": spec.sf_target,
        "lambda": spec.lam,
        "valid": bool(best.is_valid),
        "nll": nll_only,
        "objective": float(best.fval),
        "SF": float(SF),
        "SF_err": float(SF_err),
        "restarts": f"{restarts.n_at_best}/{restarts.n} at best",
        "parameters": dict(zip(am.names, map(float, best.values))),
        "errors": {k: _finite(v) for k, v in errors.items()},
        "resonances": resonances,
        "interference": interference.tolist(),
    }


def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def _write_table(csv_path: Path, md_path: Path, fit: dict) -> None:
    talk = TALK_TABLES.get(fit["name"], {})
    rows = [
        (
            r["name"],
            100 * r["F"],
            100 * r["F_err"],
            r["mass"],
            r["mass_err"],
            r["width"],
            r["width_err"],
            *(talk.get(r["name"]) or (None, None, None)),
        )
        for r in fit["resonances"]
    ]
    header = [
        "resonance",
        "F_percent",
        "F_err_percent",
        "mass_gev",
        "mass_err_gev",
        "width_gev",
        "width_err_gev",
        "talk_F_percent",
        "talk_mass_gev",
        "talk_width_gev",
    ]
    atomic_write_csv(csv_path, header, rows)
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    lines = [
        f"## {fit['name']} (SF = {100 * fit['SF']:.1f} +- {100 * fit['SF_err']:.1f} %, -ln L = {fit['nll']:.2f}, "
        f"{fit['restarts']})",
        "",
        "| resonance | F (%) | talk F (%) | mass (GeV) | talk mass | width (GeV) | talk width |",
        "|---|---|---|---|---|---|---|",
    ]
    for r, t in zip(fit["resonances"], [talk.get(r["name"]) for r in fit["resonances"]]):
        lines.append(
            f"| {r['name']} | {100 * r['F']:.2f} +- {100 * r['F_err']:.2f} | {fmt(t and t[0], '.2f')} | "
            f"{r['mass']:.4f} +- {fmt(r['mass_err'], '.4f')} | {fmt(t and t[1], '.4f')} | {r['width']:.4f} +- "
            f"{fmt(r['width_err'], '.4f')} | "
            f"{fmt(t and t[2], '.4f')} |"
        )
    atomic_write_text(md_path, "\n".join(lines) + "\n")
