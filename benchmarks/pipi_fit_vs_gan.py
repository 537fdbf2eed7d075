"""Compare the baseline fit, the GAN ensemble and the diffusion model on pi pi pseudo-data: accuracy,
band coverage (1 sigma; 68 and 95 % intervals where a method gives them), time.

    python benchmarks/pipi_fit_vs_gan.py [--members 10] [--datasets talk,varied] [--methods all] [--out DIR]

Data sets: 'talk' = the talk's 64 x 64 grid with noise 0.01 (of the maximum); 'varied' = five data sets
unlike it: 2 % errors on every point, regular, scattered (random energies, the same regular angles) and
irregular (random energies and angles) grids, and f0 and rho masses and widths each drawn uniformly
within +-20 % of the defaults (seeded, printed). Any single one of these can be named too
('regular-40x24', ...). Prints one table; the talk itself reports no accuracy figure (its results are
plots). Times are wall-clock on this machine, measured in the same run for every method.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from hadrinv.data.cross_sections import write_cross_sections
from hadrinv.data.pipi_toy import PipiToySpec, simulate_pipi
from hadrinv.physics.pipi import F0_500, RHO_770
from hadrinv.workflows.registry import RunContext, get_workflow


def varied_sets(seed: int = 2026) -> dict[str, PipiToySpec]:
    """Five data sets with 2 % point errors, their grids and resonance parameters other than the talk's."""
    rng = np.random.default_rng(seed)
    layouts = [
        ("regular", 40, 24),
        ("scattered", 40, 24),
        ("irregular", 40, 24),
        ("scattered", 60, 12),
        ("irregular", 25, 32),
    ]
    sets = {}
    for i, (grid, n_s, n_z) in enumerate(layouts):
        f0m, f0w, rhom, rhow = rng.uniform(0.8, 1.2, 4) * [
            F0_500.mass_gev,
            F0_500.width_gev,
            RHO_770.mass_gev,
            RHO_770.width_gev,
        ]
        sets[f"{grid}-{n_s}x{n_z}"] = PipiToySpec(
            n_s=n_s,
            n_z=n_z,
            grid=grid,
            noise=0.02,
            noise_relative_to="point",
            f0_mass_gev=round(float(f0m), 4),
            f0_width_gev=round(float(f0w), 4),
            rho_mass_gev=round(float(rhom), 4),
            rho_width_gev=round(float(rhow), 4),
            seed=seed + i,
        )
    return sets


DATASETS = {"talk": PipiToySpec(), **varied_sets()}
GROUPS = {"varied": [name for name in DATASETS if name != "talk"]}


COLUMNS = (
    ("rms d0 [deg]", "delta0_rms_error_deg"),
    ("rms d1 [deg]", "delta1_rms_error_deg"),
    ("1-sigma d0", "delta0_band_coverage"),
    ("1-sigma d1", "delta1_band_coverage"),
    ("95% d0", "delta0_coverage_95"),
    ("95% d1", "delta1_coverage_95"),
    ("valid", "is_valid"),
    ("chi2/ndf", "chi2_ndf"),
    ("time [s]", "seconds"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--datasets", default="talk,varied")
    parser.add_argument("--methods", default="all", help="fit, gan, diffusion, both (fit and gan) or all")
    parser.add_argument("--out", default="runs/bench-pipi")
    parser.add_argument("--preset", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-seeds",
        default=None,
        help="comma-separated seeds of the pseudo-data: repeats each data set (coverage study)",
    )
    args = parser.parse_args()
    workflow = get_workflow("pipi-amplitude")
    rows, report = [], {"machine": platform.platform(), "members": args.members, "datasets": {}}
    jobs = []
    names = [n for group in args.datasets.split(",") for n in GROUPS.get(group, [group])]
    for name in names:
        seeds = [int(x) for x in args.data_seeds.split(",")] if args.data_seeds else [DATASETS[name].seed]
        jobs += [
            (name if len(seeds) == 1 else f"{name}-seed{seed}", replace(DATASETS[name], seed=seed)) for seed in seeds
        ]
    for name, spec in jobs:
        out = Path(args.out) / name
        data_path = write_cross_sections(simulate_pipi(spec), out / "data.csv")
        config = workflow.config(
            args.preset,
            overrides={
                "data": str(data_path),
                "out": str(out / "run"),
                "seed": args.seed,
                "method": args.methods,
                "execution": {"members": args.members},
            },
        )
        started = time.perf_counter()
        result = workflow.run(config, RunContext(progress=False, log=lambda message: None))
        report["datasets"][name] = {"seconds": time.perf_counter() - started, **result.metrics}
        for method in config.methods():
            m = result.metrics[method]
            rows.append((name, method, *(float(m.get(key, float("nan"))) for _, key in COLUMNS)))
    header = ("data", "method", *(label for label, _ in COLUMNS), "time / fit")
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    fit_time = {r[0]: r[-1] for r in rows if r[1] == "fit"}
    for r in rows:
        ratio = r[-1] / fit_time[r[0]] if r[0] in fit_time else float("nan")
        print(" | ".join([r[0], r[1]] + [f"{v:.3g}" for v in r[2:]] + [f"{ratio:.3g}"]))
    for method in dict.fromkeys(r[1] for r in rows):
        sel = [r for r in rows if r[1] == method]
        means = [sum(r[k] for r in sel) / len(sel) for k in range(2, len(header) - 1)]
        print(f"mean over {len(sel)} data sets | {method} | " + " | ".join(f"{v:.3g}" for v in means) + " | -")
    for name, metrics in report["datasets"].items():
        if "diffusion" in metrics:
            c68, c95 = (metrics["diffusion"][f"calibration_coverage_{level}"] for level in (68, 95))
            scale = metrics["diffusion"].get("band_scale", 1.0)
            print(f"{name}: diffusion held-out coverage {c68:.3f} / {c95:.3f} at 68 / 95 % (band x {scale:.3f})")
    print("talk 000: no accuracy figure (plots of converged / non-converged GANs)")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
