"""Where a trained dis-pdf point-cloud flow is calibrated: on the held-out clouds of the experiments' bins,
and on fresh clouds drawn like its training clouds (size range and layout), or at one fixed size.

    python benchmarks/dis_cloud_layouts.py runs/dis-pdf-calibration
    python benchmarks/dis_cloud_layouts.py RUN --clouds experiments 40-135:regions 135:regions 60:regions 135:uniform

RUN is the output folder of a `hadrinv run dis-pdf` that trained `cloud/flow`; its config.yaml rebuilds
the held-out truths (the first --sets of them) and the experiments' clouds exactly as the workflow did.
A cloud spec is `experiments` or `LOW-HIGH:LAYOUT` / `N:LAYOUT` with LAYOUT uniform or regions. Prints
one markdown row per spec: marginal, joint-ellipsoid and joint-HPD coverage at 68 / 95 %, and the rms
error of the posterior mean over the prior width.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import yaml

from hadrinv.inference import AmortizedEstimator
from hadrinv.inference.diagnostics import ellipsoid_coverage, hpd_coverage, marginal_coverage
from hadrinv.models.dis import held_out_sets, make_problem, training_clouds
from hadrinv.workflows.dis_pdf.config import DISPdfConfig

LEVELS = (0.68, 0.95)


def parse_spec(spec: str) -> tuple[tuple[int, int], str] | None:
    if spec == "experiments":
        return None
    size, _, layout = spec.partition(":")
    low, _, high = size.partition("-")
    return (int(low), int(high or low)), layout or "regions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument(
        "--clouds",
        nargs="+",
        default=["experiments", "training", "135:regions", "60:regions"],
        help="experiments, training (the run's own size range and layout), LOW-HIGH:LAYOUT or N:LAYOUT",
    )
    parser.add_argument("--sets", type=int, default=150)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=5, help="seed of the fresh clouds' bins and noise")
    parser.add_argument(
        "--estimator",
        type=Path,
        help="a saved estimator to evaluate instead of the run's cloud flow "
        "(e.g. the run's flow trained further); RUN still gives the problem and the held-out sets",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = DISPdfConfig(**yaml.safe_load((args.run / "config.yaml").read_text()))
    k = config.kinematics
    problem = make_problem(k.n_x, k.n_q2, config.relative_noise)
    test_theta, _, test_cloud, _ = held_out_sets(problem, config.test_sets, config.seed, k.test_experiments)
    truth, test_cloud = test_theta[: args.sets], test_cloud[: args.sets]
    estimator = (
        AmortizedEstimator.load(args.estimator)
        if args.estimator
        else AmortizedEstimator.from_payload(
            torch.load(args.run / "checkpoints" / "cloud__flow.pt", weights_only=True)["estimator"]
        )
    )
    width = (problem.space.high - problem.space.low).float()
    fresh = torch.Generator().manual_seed(args.seed)
    print(
        f"{args.estimator or args.run}: training clouds {k.cloud_points[0]}-{k.cloud_points[1]} bins, "
        f"layout {k.cloud_layout}; "
        f"{len(truth)} truths, {args.samples} samples each\n"
    )
    print("| evaluated on | marginal 68 / 95 | ellipsoid 68 / 95 | HPD 68 / 95 | rms error / width |")
    print("|---|---|---|---|---|")
    for spec in args.clouds:
        parsed = (tuple(k.cloud_points), k.cloud_layout) if spec == "training" else parse_spec(spec)
        if parsed is None:
            x, label = test_cloud, f"experiments ({test_cloud.shape[1]} bins)"
        else:
            points, layout = parsed
            x = training_clouds(problem, truth, points, k.cloud_x, k.cloud_q2_gev2, fresh, layout)
            label = (
                f"{layout}, {points[0]}-{points[1]} bins" if points[0] != points[1] else f"{layout}, {points[0]} bins"
            )
        with torch.no_grad():
            samples = estimator.sample(x, args.samples)
        theta = truth.float()
        marginal, joint = marginal_coverage(samples, theta, LEVELS), ellipsoid_coverage(samples, theta, LEVELS)
        hpd = hpd_coverage(estimator, theta, x, LEVELS, n_samples=args.samples)
        rms = float(((samples.mean(1) - theta) / width).pow(2).mean(0).sqrt().mean())
        print(
            f"| {label} | {marginal[0.68]:.3f} / {marginal[0.95]:.3f} | {joint[0.68]:.3f} / {joint[0.95]:.3f} | "
            f"{hpd[0.68]:.3f} / {hpd[0.95]:.3f} | {rms:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
