"""Two moons (the standard simulation-based-inference benchmark): C2ST of each estimator's posterior
against exact reference posterior samples at 10 fixed observations.

    python benchmarks/two_moons.py                      # 1e4 simulations, flow, VAIM, MDN, diffusion
    python benchmarks/two_moons.py --methods flow --simulations 1000 100000

Published reference (sbi benchmark, neural posterior estimation): C2ST 0.725 / 0.606 / 0.542 at
1e3 / 1e4 / 1e5 simulations (0.5 is perfect, 1.0 fully separable).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from hadrinv.inference.diagnostics import c2st
from hadrinv.physics.toys import (
    TWO_MOONS_OBSERVATIONS,
    two_moons_prior,
    two_moons_reference_posterior,
    two_moons_simulate,
)
from hadrinv.workflows.amortized_runs import build_estimator

PUBLISHED_NPE = {1000: 0.725, 10000: 0.606, 100000: 0.542}
OPTIONS = {
    "flow": {},
    "mdn": {"components": 10},
    "vaim": {"latent_dim": 8, "hidden": 256, "blocks": 3},
    "inn": {},
    # the talk's set-up; DDIM on 100 of the 1000 steps for sampling
    "diffusion": {"steps": 1000, "beta_min": 1e-4, "beta_max": 0.02, "hidden": 256, "blocks": 6, "sampling_steps": 100},
    "flow_matching": {"hidden": 256, "blocks": 6, "ode_steps": 50},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["flow", "vaim", "mdn", "diffusion"], choices=list(OPTIONS))
    parser.add_argument("--simulations", nargs="+", type=int, default=[10000])
    parser.add_argument(
        "--samples", type=int, default=10000, help="posterior and reference samples per observation (sbibm: 10000)"
    )
    parser.add_argument("--observations", type=int, default=10)
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for n_sim in args.simulations:
        generator = torch.Generator().manual_seed(args.seed)
        theta = two_moons_prior(n_sim, generator).float()
        x = two_moons_simulate(theta, generator).float()
        for method in args.methods:
            torch.manual_seed(args.seed)
            estimator = build_estimator(method, 2, 2, OPTIONS[method], bounds=([-1.0, -1.0], [1.0, 1.0]))
            history = estimator.fit(theta, x, max_epochs=args.max_epochs, seed=args.seed)
            scores, sample_seconds = [], 0.0
            for i, x_obs in enumerate(TWO_MOONS_OBSERVATIONS[: args.observations]):
                started = time.perf_counter()
                samples = estimator.sample(x_obs.float(), args.samples)
                sample_seconds += time.perf_counter() - started
                reference = two_moons_reference_posterior(
                    x_obs, args.samples, torch.Generator().manual_seed(1000 + i)
                ).float()
                scores.append(c2st(reference, samples, seed=i))
            row = (
                n_sim,
                method,
                statistics.mean(scores),
                statistics.stdev(scores) if len(scores) > 1 else 0.0,
                max(scores),
                history.seconds,
                len(history.train_loss),
                1e6 * sample_seconds / (args.samples * len(scores)),
                PUBLISHED_NPE.get(n_sim),
            )
            rows.append(row)
            print(
                f"{method} at {n_sim}: c2st {row[2]:.3f} +- {row[3]:.3f} "
                f"(per observation: {', '.join(f'{s:.3f}' for s in scores)})",
                flush=True,
            )
    print()
    print("| simulations | method | C2ST mean | std | worst | train s | epochs | ms per 1000 samples | published NPE |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n_sim, method, mean, std, worst, train, epochs, ms, published in rows:
        print(
            f"| {n_sim} | {method} | {mean:.3f} | {std:.3f} | {worst:.3f} | {train:.0f} | {epochs} | {ms:.1f} | "
            f"{published if published else '-'} |"
        )


if __name__ == "__main__":
    main()
