"""pipi-isospin: delta_0^0, delta_1^1, delta_0^2 and the inelasticities from several pi pi charge channels.

Below the K Kbar threshold the waves are elastic and the channels fix the three phases at every energy: the
energy-by-energy fit and the diffusion posterior (`extraction`). Above it the channels fix the waves only up
to a common phase (`physics.pipi_isospin.common_phase_interval`); both methods resolve it by the stated
assumption that the P and S2 waves are nearly elastic (`fit.inelastic_family`, `inelastic`), unless the
data hold the S0 wave's inelastic flux (channel "S0-inelastic", from pi pi -> K Kbar), which fixes it. Writes
per method waves.csv, the plots phase_shifts.png and inelasticities.png, and metrics.json last.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.channel_cross_sections import (
    ChannelCrossSections,
    read_channel_cross_sections,
    write_channel_cross_sections,
)
from hadrinv.data.io import atomic_torch_save, atomic_write_csv, load_checkpoint
from hadrinv.models.pipi_isospin import WAVE_NAMES, IsospinProblem, cfd_truth, simulate_cfd
from hadrinv.workflows.execution import require_device
from hadrinv.workflows.output import CHECKPOINTS, finish_output, prepare_output
from hadrinv.workflows.pipi_isospin import plots
from hadrinv.workflows.pipi_isospin.config import PipiIsospinConfig
from hadrinv.workflows.pipi_isospin.extraction import (
    IsospinExtraction,
    diffusion_isospin,
    family_extraction,
    fit_extraction,
)
from hadrinv.workflows.pipi_isospin.fit import InelasticFamily, fit_isospin, inelastic_family
from hadrinv.workflows.pipi_isospin.inelastic import diffusion_inelastic, spline_fit_inelastic
from hadrinv.workflows.registry import RunContext

TRUTH_MODEL = "pipi-cfd"
REGIONS = ("elastic", "inelastic")
REFERENCE = ("spline-fit",)  # reported beside the requested methods; not valid: a warning, not a failure


@dataclass
class PipiIsospinResult:
    out: Path
    extractions: dict[str, dict[str, IsospinExtraction]]  # method -> region -> extraction
    metrics: dict

    def invalid_methods(self) -> list[str]:
        """Reference methods beside the requested ones (the spline fit) that are not valid: a warning only."""
        return [
            m
            for m in REFERENCE
            if any(not e.metrics.get("is_valid", True) for e in self.extractions.get(m, {}).values())
        ]

    @property
    def failures(self) -> list[str]:
        """One line per requested method and region whose result is not valid; any makes the CLI exit non-zero."""
        lines = []
        for method, regions in self.extractions.items():
            if method in REFERENCE:
                continue
            for region, extraction in regions.items():
                m = extraction.metrics
                if not m.get("is_valid", True):
                    reason = f"chi2 {m['chi2']:.1f} / ndf {m['ndf']}, p-value {m['chi2_p_value']:.2g}"
                    if "calibration_coverage_68" in m:
                        reason += f", held-out 68 % coverage {m['calibration_coverage_68']:.2f}"
                    lines.append(f"{method} ({region}): {reason}")
        return lines

    def summary_columns(self) -> list[str]:
        return ["quantity", *[f"{m} ({r})" for m, regions in self.extractions.items() for r in regions]]

    def summary_rows(self) -> list[tuple[str, ...]]:
        columns = [e for regions in self.extractions.values() for e in regions.values()]
        keys = ["chi2_p_value", "calibration_coverage_68", "band_scale"]
        keys += [f"rms_{w}_deg" for w in WAVE_NAMES] + [f"coverage_68_{w}" for w in WAVE_NAMES]
        keys += [f"max_eta{w.removeprefix('delta')}_err" for w in WAVE_NAMES] + ["seconds"]
        rows = []
        for key in keys:
            if any(key in e.metrics for e in columns):
                values = [e.metrics.get(key) for e in columns]
                rows.append((key, *("-" if v is None else f"{float(v):.4g}" for v in values)))
        return rows


def load_data(config: PipiIsospinConfig) -> ChannelCrossSections:
    if config.data:
        return read_channel_cross_sections(config.data)
    spec = config.simulation.model_dump()
    problem = simulate_cfd(**spec, seed=config.seed)
    return problem.to_data("simulate pipi-channels (CFD)", {"model": TRUTH_MODEL, **spec, "seed": config.seed})


def require_points(problem: IsospinProblem, source: str) -> None:
    """Three phases at an elastic energy, five combinations at an inelastic one (six with S0-inelastic), and a
    degree of freedom: fewer points leave the fit undetermined there; say so before any work."""
    counts = torch.bincount(problem.energy_index, minlength=problem.n_energies)
    needed = torch.where(problem.inelastic, 6, 4)
    short = torch.nonzero(counts < needed).flatten()
    if len(short):
        i = int(short[0])
        raise ValueError(
            f"{source}: {int(counts[i])} point(s) at sqrt(s) = {math.sqrt(float(problem.energies[i])):.4g} GeV, "
            f"{int(needed[i])} needed there (three phases{', three inelasticities' if problem.inelastic[i] else ''} "
            "and a degree of freedom); "
            f"{len(short)} energies are short"
        )


def run(config: PipiIsospinConfig, context: RunContext | None = None) -> PipiIsospinResult:
    context = context or RunContext()
    started = time.perf_counter()
    data = load_data(config)  # validates before anything is written
    require_device(config.execution.device)
    device = config.execution.device
    problem = IsospinProblem.from_data(data)
    require_points(problem, data.source)
    out = prepare_output(config.out, config, context)
    if not config.data:
        write_channel_cross_sections(data, out / "data.csv")
    checkpoints = out / CHECKPOINTS
    elastic = problem.at_energies(~problem.inelastic) if bool((~problem.inelastic).any()) else None
    inelastic = problem if bool(problem.inelastic.any()) else None
    context.log(
        f"data: {data.source}: {len(problem)} points in {', '.join(problem.channels)} at {problem.n_energies} "
        f"energies ({0 if elastic is None else elastic.n_energies} below the K Kbar threshold)"
    )
    methods = config.methods()
    extractions: dict[str, dict[str, IsospinExtraction]] = {m: {} for m in methods}
    if elastic is not None:
        fit = _stage(checkpoints / "fit.pt", context, "fit (elastic)", lambda: _fit_elastic(elastic, config))
        if "fit" in methods:
            extractions["fit"]["elastic"] = fit
        if "diffusion" in methods:
            start = (torch.deg2rad(torch.as_tensor(fit.delta_deg)), torch.deg2rad(torch.as_tensor(fit.delta_err_deg)))
            extractions["diffusion"]["elastic"] = _stage(
                checkpoints / "diffusion.pt",
                context,
                "diffusion (elastic)",
                lambda: diffusion_isospin(elastic, start, config.diffusion, seed=config.seed, device=device),
            )
    if inelastic is not None:
        cfg = config.inelastic
        family_file = checkpoints / "family.pt"
        if context.resume and family_file.is_file():
            family = InelasticFamily(**load_checkpoint(family_file))
        else:
            family = inelastic_family(
                inelastic,
                starts=cfg.starts,
                seed=config.seed,
                nearly_elastic=tuple(cfg.nearly_elastic),
                replicas=cfg.replicas,
                elastic_tolerance=cfg.elastic_tolerance,
            )
            atomic_torch_save(asdict(family), family_file)
        if "fit" in methods:
            extractions["fit"]["inelastic"] = family_extraction(family)
            extractions["spline-fit"] = {
                "inelastic": spline_fit_inelastic(
                    inelastic, family, elastic_width=cfg.elastic_width, nearly_elastic=tuple(cfg.nearly_elastic)
                )
            }
        if "diffusion" in methods:
            extractions["diffusion"]["inelastic"] = _stage(
                checkpoints / "diffusion_inelastic.pt",
                context,
                "diffusion (inelastic)",
                lambda: diffusion_inelastic(
                    inelastic,
                    family,
                    cfg.diffusion,
                    elastic_width=cfg.elastic_width,
                    nearly_elastic=tuple(cfg.nearly_elastic),
                    seed=config.seed,
                    device=device,
                ),
            )
    truth = data.truth.get("model") == TRUTH_MODEL
    for regions in extractions.values():
        _join_regions(regions)
        for extraction in regions.values():
            if truth:
                delta_deg, eta = (t.numpy() for t in cfd_truth(torch.as_tensor(extraction.energies)))
                extraction.metrics.update(extraction.compare(delta_deg, eta if extraction.eta is not None else None))
    for method, regions in extractions.items():
        folder = out / method
        folder.mkdir(exist_ok=True)
        write_waves(folder / "waves.csv", list(regions.values()))
    result = PipiIsospinResult(out, extractions, {})
    not_valid = result.failures + [f"{m}: not valid" for m in result.invalid_methods()]
    plots.plot_waves(out, extractions, problem.inelastic_from_gev2, truth, not_valid)
    result.metrics = {
        "workflow": "pipi-isospin",
        "data": data.source,
        "channels": list(problem.channels),
        "n_points": len(problem),
        "n_energies": problem.n_energies,
        "n_inelastic_energies": int(problem.inelastic.sum()),
        "assumption_above_threshold": _assumption(problem, config),
        "seconds": time.perf_counter() - started,
        **{m: {r: e.metrics for r, e in regions.items()} for m, regions in extractions.items()},
    }
    finish_output(out, result.metrics, result.failures)
    return result


def _assumption(problem: IsospinProblem, config: PipiIsospinConfig) -> str:
    inelastic = problem.inelastic
    if not bool(inelastic.any()):
        return "none: no energy above the K Kbar threshold"
    measured = problem.flux_measured[inelastic]
    if bool(measured.all()):
        return "none: the S0-inelastic channel fixes the common phase at every energy above the threshold"
    waves = ", ".join(WAVE_NAMES[k] for k in config.inelastic.nearly_elastic)
    where = "" if not bool(measured.any()) else f" at the {int((~measured).sum())} energies without S0-inelastic data"
    return f"{waves} nearly elastic{where}"


def _fit_elastic(problem: IsospinProblem, config: PipiIsospinConfig) -> IsospinExtraction:
    return fit_extraction(problem, fit_isospin(problem, starts=config.fit.starts, seed=config.seed))


def _stage(path: Path, context: RunContext, name: str, compute) -> IsospinExtraction:
    """An extraction from its checkpoint on --resume, else computed and saved (tensors and plain values)."""
    if context.resume and path.is_file():
        context.log(f"{name}: loaded from checkpoint")
        return _from_saved(load_checkpoint(path))
    extraction = compute()
    atomic_torch_save(_to_saved(extraction), path)
    m = extraction.metrics
    context.log(
        f"{name}: {'valid' if m['is_valid'] else 'NOT VALID'}, p = {m['chi2_p_value']:.3g}, {m['seconds']:.0f} s"
    )
    return extraction


def _to_saved(value):
    if isinstance(value, IsospinExtraction):
        return {k: _to_saved(v) for k, v in asdict(value).items()}
    if isinstance(value, np.ndarray):
        return torch.as_tensor(value)
    if isinstance(value, dict):
        return {k: _to_saved(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_to_saved(v) for v in value)
    return value


def _from_saved(saved: dict) -> IsospinExtraction:
    def back(value):
        if isinstance(value, torch.Tensor):
            return value.numpy()
        if isinstance(value, dict):
            return {k: back(v) for k, v in value.items()}
        if isinstance(value, tuple):
            return tuple(back(v) for v in value)
        return value

    return IsospinExtraction(**{k: back(v) for k, v in saved.items()})


def _join_regions(regions: dict[str, IsospinExtraction]) -> None:
    """Phases are fixed modulo 180 degrees in each region: move the inelastic curves by the multiples of 180
    that continue the elastic ones (the last elastic phase against the first inelastic one)."""
    if set(regions) != set(REGIONS):
        return
    last, first = regions["elastic"].delta_deg[-1], regions["inelastic"].delta_deg[0]
    shift = np.round((last - first) / 180.0) * 180.0
    high = regions["inelastic"]
    high.delta_deg = high.delta_deg + shift
    high.intervals_deg = {k: (lo + shift, hi + shift) for k, (lo, hi) in high.intervals_deg.items()}


def write_waves(path: Path, parts: list[IsospinExtraction]) -> Path:
    """CSV: one row per energy; phases in degrees with 1-sigma errors and 68 / 95 % intervals, and the
    inelasticities (1 with no interval below the threshold)."""
    header = ["sqrt_s_gev", "s_gev2"]
    for w in WAVE_NAMES:
        eta = "eta" + w.removeprefix("delta")
        header += [f"{w}_deg", f"{w}_err_deg", f"{w}_lo68_deg", f"{w}_hi68_deg", f"{w}_lo95_deg", f"{w}_hi95_deg"]
        header += [eta, f"{eta}_err", f"{eta}_lo68", f"{eta}_hi68", f"{eta}_lo95", f"{eta}_hi95"]
    blocks = []
    for part in parts:
        ones = np.ones_like(part.delta_deg)
        eta = part.eta if part.eta is not None else ones
        eta_err = part.eta_err if part.eta_err is not None else 0 * ones
        eta_iv = part.eta_intervals or {68: (ones, ones), 95: (ones, ones)}
        per_wave = [part.delta_deg, part.delta_err_deg, *part.intervals_deg[68], *part.intervals_deg[95]]
        per_wave += [eta, eta_err, *eta_iv[68], *eta_iv[95]]
        columns = np.stack(per_wave, -1).reshape(len(part.energies), -1)  # wave-major, as the header
        blocks.append(np.column_stack([np.sqrt(part.energies), part.energies, columns]))
    rows = [[f"{v:.8g}" for v in row] for row in np.concatenate(blocks)]
    return atomic_write_csv(path, header, rows)
