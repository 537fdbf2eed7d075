"""delta_0^0, delta_1^1 and delta_0^2 from four pi pi charge channels: the fit and the diffusion posterior on
CFD pseudo-data (`models.pipi_isospin.simulate_cfd`), and what the channels fix above the K Kbar threshold.

    python benchmarks/pipi_isospin.py [--sets all] [--out DIR]

Elastic sets (below 0.98 GeV): regular and irregular grids, 2 and 5 % errors, seeded. For each method:
RMS error of each phase against the CFD truth, coverage of its 68 and 95 % intervals over the energies,
time; the diffusion model also reports its held-out calibration. Inelastic sets (up to 1.4 GeV): the
fraction of energies whose true inelasticities lie within the range the data allow (the common-phase
family, widened by 0.02), and the largest |eta - truth| of the family member with the P and S2 waves
closest to elastic, up to 1.25 GeV and up to 1.4 GeV, and the fraction of true inelasticities inside its
band (the members with the P and S2 waves within 0.1 of elastic, widened by the replicas' spread). Beside
it the diffusion posterior under the same assumption (`inelastic.diffusion_inelastic`): the same
largest errors of its mean and the fraction of true inelasticities inside its 68 / 95 % intervals, and the
same for the least-squares fit of its splines (`spline_fit_inelastic`, Laplace errors). The
sets "+S0-inelastic" add 1 - eta^2 of the S0 wave at every energy above 2 m_K (error 0.03), which fixes the
common phase: no assumption is needed there beyond a choice between two discrete solutions.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from hadrinv.models.pipi_isospin import WAVE_NAMES as WAVES
from hadrinv.models.pipi_isospin import cfd_truth, simulate_cfd
from hadrinv.workflows.pipi_amplitude.fit_method import chi2_p_value
from hadrinv.workflows.pipi_isospin.extraction import diffusion_isospin, fit_extraction
from hadrinv.workflows.pipi_isospin.fit import continuous_choice, fit_isospin, inelastic_family
from hadrinv.workflows.pipi_isospin.inelastic import diffusion_inelastic, spline_fit_inelastic

ELASTIC = {
    "irregular-30x10-2%": dict(n_s=30, n_z=10, grid="irregular", noise=0.02, seed=5),
    "regular-25x12-2%": dict(n_s=25, n_z=12, grid="regular", noise=0.02, seed=1),
    "irregular-40x8-5%": dict(n_s=40, n_z=8, grid="irregular", noise=0.05, seed=2),
    "irregular-20x16-2%": dict(n_s=20, n_z=16, grid="irregular", noise=0.02, seed=3),
}
FLUX = ("pi+pi-", "pi0pi0", "pi+pi+", "pi+pi0", "S0-inelastic")  # with 1 - eta^2 of S0 (pi pi -> K Kbar), +- 0.03
INELASTIC = {
    "irregular-40x12-2%-1.4GeV": dict(n_s=40, n_z=12, grid="irregular", noise=0.02, seed=0),
    "regular-50x10-2%-1.4GeV": dict(n_s=50, n_z=10, grid="regular", noise=0.02, seed=4),
    "irregular-40x12-2%-1.4GeV+S0-inelastic": dict(n_s=40, n_z=12, grid="irregular", noise=0.02, seed=0, channels=FLUX),
    "regular-50x10-2%-1.4GeV+S0-inelastic": dict(n_s=50, n_z=10, grid="regular", noise=0.02, seed=4, channels=FLUX),
}


def elastic_row(name: str, spec: dict) -> list[dict]:
    problem = simulate_cfd(sqrt_s_max_gev=0.98, **spec)
    truth = cfd_truth(problem.energies)[0].numpy()
    fit = fit_isospin(problem)
    rows = []
    for extraction in (fit_extraction(problem, fit), diffusion_isospin(problem, fit)):
        rows.append({"set": name, "method": extraction.method, **extraction.compare(truth), **extraction.metrics})
    return rows


def inelastic_row(name: str, spec: dict) -> dict:
    problem = simulate_cfd(sqrt_s_max_gev=1.4, **spec)
    started = time.perf_counter()
    family = inelastic_family(problem)
    seconds = time.perf_counter() - started
    eta = cfd_truth(family.energies)[1]
    lo, hi = family.eta_range
    inside = ((eta >= lo - 0.02) & (eta <= hi + 0.02)).double().mean(0)
    truth_deg = cfd_truth(family.energies)[0]
    choice = torch.rad2deg(continuous_choice(family)[0][:, :3])
    shift = torch.round((truth_deg - choice).mean(0) / 180.0) * 180.0
    rms_phase = (choice + shift - truth_deg).pow(2).mean(0).sqrt()
    error = (family.eta_choice - eta).abs()
    below = torch.sqrt(family.energies) <= 1.25
    a_lo, a_hi = family.eta_assumed_range
    in_band = ((eta >= a_lo - family.eta_choice_err) & (eta <= a_hi + family.eta_choice_err)).double().mean(0)
    err2 = 2 * family.eta_choice_err
    in_band2 = ((eta >= a_lo - err2) & (eta <= a_hi + err2)).double().mean(0)
    return {
        "set": name,
        "energies": int(len(family.energies)),
        "chi2_p_below_1e-3": int(
            sum(chi2_p_value(c, n) < 1e-3 for c, n in zip(family.chi2.tolist(), family.ndf.tolist()))
        ),
        **{f"inside_range_{w}": float(inside[k]) for k, w in enumerate(WAVES)},
        **{f"max_err_eta_{w}_to_1.25": float(error[below, k].max()) for k, w in enumerate(WAVES)},
        **{f"max_err_eta_{w}_to_1.4": float(error[:, k].max()) for k, w in enumerate(WAVES)},
        **{f"band_coverage_eta_{w}": float(in_band[k]) for k, w in enumerate(WAVES)},
        **{f"band_coverage_2err_eta_{w}": float(in_band2[k]) for k, w in enumerate(WAVES)},
        "rms_phase_deg": rms_phase.tolist(),
        "median_stat_err_eta": [float(v) for v in family.eta_choice_err.median(0).values],
        "seconds": seconds,
        "diffusion": diffusion_row(problem, family, below.numpy()),
        "spline_fit": diffusion_row(problem, family, below.numpy(), spline_fit_inelastic),
    }


def diffusion_row(problem, family, below, method=diffusion_inelastic) -> dict:
    """The diffusion posterior (or the spline fit) under the same assumption: its largest eta error, and the
    fraction of true inelasticities inside its 68 / 95 % intervals, to 1.25 GeV and to 1.4 GeV."""
    extraction = method(problem, family)
    truth_deg, truth_eta = (v.numpy() for v in cfd_truth(torch.as_tensor(extraction.energies)))
    error = np.abs(extraction.eta - truth_eta)
    row = {"rms_phase_deg": [extraction.compare(truth_deg)[f"rms_{w}_deg"] for w in WAVES]}
    for level, (lo, hi) in extraction.eta_intervals.items():
        inside = (truth_eta >= lo) & (truth_eta <= hi)
        row[f"coverage_{level}_to_1.25"] = inside[below].mean(0).tolist()
        row[f"coverage_{level}_to_1.4"] = inside.mean(0).tolist()
    return {
        **row,
        "max_err_eta_to_1.25": error[below].max(0).tolist(),
        "max_err_eta_to_1.4": error.max(0).tolist(),
        **extraction.metrics,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="all", help="all, or comma-separated names")
    parser.add_argument("--out", default="runs/bench-pipi-isospin")
    args = parser.parse_args()
    chosen = set(ELASTIC) | set(INELASTIC) if args.sets == "all" else set(args.sets.split(","))
    unknown = chosen - set(ELASTIC) - set(INELASTIC)
    if unknown:
        raise SystemExit(f"unknown set(s) {sorted(unknown)}; known: {sorted(ELASTIC) + sorted(INELASTIC)}")
    rows, families = [], []
    for name, spec in ELASTIC.items():
        if name in chosen:
            rows += elastic_row(name, spec)
            r = rows[-2:]
            for row in r:
                rms = " / ".join(f"{row[f'rms_{w}_deg']:.3f}" for w in WAVES)
                c68 = " / ".join(f"{row[f'coverage_68_{w}']:.2f}" for w in WAVES)
                c95 = " / ".join(f"{row[f'coverage_95_{w}']:.2f}" for w in WAVES)
                extra = (
                    f", held-out {row['calibration_coverage_68']:.2f} / {row['calibration_coverage_95']:.2f}"
                    f" (band x {row['band_scale']:.3f})"
                    if "calibration_coverage_68" in row
                    else ""
                )
                print(
                    f"{name:22s} {row['method']:9s} rms {rms} deg  cov68 {c68}  cov95 {c95}{extra}  "
                    f"valid {row['is_valid']}  {row['seconds']:.0f} s ({row['seconds'] / r[0]['seconds']:.1f}x fit)",
                    flush=True,
                )
    for name, spec in INELASTIC.items():
        if name in chosen:
            families.append(inelastic_row(name, spec))
            print(json.dumps(families[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    (out / "isospin.json").write_text(
        json.dumps({"elastic": rows, "inelastic": families, **meta}, indent=1, default=float)
    )
    print(f"wrote {out / 'isospin.json'}")


if __name__ == "__main__":
    main()
