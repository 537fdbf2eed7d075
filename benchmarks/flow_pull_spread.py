"""Are the flow's errors honest? Pulls (value - exact) / error over seeds for one test integrand.

    python benchmarks/flow_pull_spread.py annulus --seeds 8 --replicas 64 [--calls 200000]

Prints each seed's pull and error, then the mean, the spread (1 for honest errors) and the largest |pull|.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from hadrinv.inference.nis import FlowSettings
from hadrinv.integration import integrate
from hadrinv.workflows.nis_benchmark.integrands import get_integrand


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("integrand", help="a nis-benchmark integrand, e.g. annulus or camel-4")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--replicas", type=int, default=64, help="Sobol replicas of the estimate (0: i.i.d.)")
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--method", default="flow")
    args = parser.parse_args()
    torch.set_num_threads(1)
    test = get_integrand(args.integrand)
    pulls = []
    for seed in range(1, args.seeds + 1):
        r = integrate(test.f, test.dim, args.method, args.calls, seed=seed, flow=FlowSettings(replicas=args.replicas))
        pulls.append((r.value - test.exact) / r.error)
        print(f"seed {seed}: pull {pulls[-1]:+.2f}, error {r.error:.3g}", flush=True)
    print(
        f"{args.integrand}, {args.method}, {args.replicas} replicas: mean pull {statistics.mean(pulls):+.2f}, "
        f"spread {statistics.stdev(pulls):.2f}, largest |pull| {max(map(abs, pulls)):.2f}"
    )


if __name__ == "__main__":
    main()
