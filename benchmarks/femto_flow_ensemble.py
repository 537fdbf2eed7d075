"""Joint (HPD) calibration of the femtoscopy posterior: one conditional flow against an equal-weight
mixture of independently initialised flows (a deep ensemble), on the fixed 60-point grid.

    python benchmarks/femto_flow_ensemble.py --dataset runs/femto-inverse/dataset.h5 \\
        [--members 3] [--train 8000] [--box-support]

The dataset is the HDF5 file of `hadrinv run femto-inverse` (its "five" set). Each curve gets a relative
error log-uniform in 0.5-5 %; the flow sees (log C_obs at 60 points, log error). Prints marginal and
joint highest-density coverage at 68 / 95 % on 500 held-out curves for member 1 alone and for the mixture.
Members train in parallel processes through Ray (one torch thread each).
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import tempfile
from pathlib import Path

import torch

from hadrinv.inference import ConditionalFlow
from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.inference.diagnostics import marginal_coverage
from hadrinv.inference.ensemble import run_tasks
from hadrinv.models.femtoscopy import noisy
from hadrinv.workflows.femto_inverse.config import PhysicsConfig
from hadrinv.workflows.femto_inverse.problem import load_dataset

LEVELS = (0.68, 0.95)


def inputs(dataset: str, train: int, test: int) -> dict:
    sets, _ = load_dataset(dataset)
    tr, te = sets["five"].split(0.2)
    g = torch.Generator().manual_seed(0)
    rel = lambda n: torch.exp(
        math.log(0.005) + (math.log(0.05) - math.log(0.005)) * torch.rand(n, 1, generator=g, dtype=torch.float64)
    )
    x_of = lambda C, r: torch.cat([torch.log(noisy(C, r, g)), torch.log(r)], 1).float()
    return {
        "theta": tr.theta[:train].float(),
        "x": x_of(tr.C[:train], rel(min(train, len(tr.C)))),
        "x_test": x_of(te.C[:test], rel(min(test, len(te.C)))),
        "truth": te.theta[:test].float(),
    }


def train_member(theta, x, seed: int, box_support: bool = False) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    low, high = PhysicsConfig().ranges.low_high()
    flow = ConditionalFlow(
        5,
        x.shape[1],
        bounds=(low, high),
        transforms=5,
        hidden=128,
        embedding="mlp",
        embedding_options={"features": 64, "hidden": 256},
        box_support=box_support,
    )
    history = flow.fit(theta, x, max_epochs=150, patience=15, seed=seed)
    return {"estimator": flow.to_payload(), "epochs": len(history.train_loss)}


def coverage(samples, log_density, truth, x) -> tuple[dict, dict]:
    marginal = marginal_coverage(samples, truth, LEVELS)
    ranks = (log_density(samples, x) > log_density(truth[:, None, :], x)).double().mean(1)
    return {a: marginal[a] for a in LEVELS}, {a: float((ranks < a).double().mean()) for a in LEVELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--samples", type=int, default=999)
    parser.add_argument(
        "--box-support",
        action="store_true",
        help="flows with a uniform base on the prior box (ConditionalFlow box_support)",
    )
    args = parser.parse_args()
    print("$ python " + " ".join(shlex.quote(a) for a in sys.argv))
    data = inputs(args.dataset, args.train, args.test)
    with tempfile.TemporaryDirectory() as folder:
        results = run_tasks(
            train_member,
            {"theta": data["theta"], "x": data["x"], "box_support": args.box_support},
            [{"seed": s} for s in range(1, args.members + 1)],
            [Path(folder) / f"{s}.pt" for s in range(args.members)],
        )
    flows = [AmortizedEstimator.from_payload(r["estimator"]) for r in results]
    x, truth = data["x_test"], data["truth"]
    per_member = args.samples // args.members
    torch.manual_seed(0)
    single = coverage(flows[0].sample(x, per_member * args.members), flows[0].log_prob_per_observation, truth, x)
    mixture_density = lambda t, x: (
        torch.logsumexp(torch.stack([f.log_prob_per_observation(t, x) for f in flows]), 0) - math.log(len(flows))
    )
    mixture = coverage(torch.cat([f.sample(x, per_member) for f in flows], 1), mixture_density, truth, x)
    print(f"{args.train} training curves, {args.test} held-out curves, epochs {[r['epochs'] for r in results]}")
    print(f"{'':<22}{'marginal 68':>12}{'marginal 95':>12}{'HPD 68':>9}{'HPD 95':>9}")
    for name, (m, h) in (("one flow", single), (f"mixture of {len(flows)} flows", mixture)):
        print(f"{name:<22}{m[0.68]:>12.3f}{m[0.95]:>12.3f}{h[0.68]:>9.3f}{h[0.95]:>9.3f}")


if __name__ == "__main__":
    main()
