"""How a conditional flow's or diffusion model's calibration depends on how its training time is spent: few
simulations trained to convergence, or many fresh simulations for a few epochs (the simulators here are
analytic and free).

    python benchmarks/simulation_budget.py --problem dis-grid --simulations 100000 --epochs 25
    python benchmarks/simulation_budget.py --problem toy-10d --simulations 200000 --epochs 15
    python benchmarks/simulation_budget.py --problem dis-grid --simulations 10000 --epochs 400 --patience 20

dis-grid: the dis-pdf workflow's grid flow (its quick preset's network, 12 parameters, 3 % noise) on the
workflow's own 100 held-out sets (seed 0); toy-10d: inverse-toys' sum of squares in 10-D (noise 0.05) on
300 held-out cases. One torch thread. Prints one markdown row: simulations, epochs run (best), training
seconds, and marginal, joint-ellipsoid and joint-HPD coverage at 68 / 95 %.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml

from hadrinv.inference.diagnostics import ellipsoid_coverage, hpd_coverage, marginal_coverage
from hadrinv.models.dis import held_out_sets
from hadrinv.models.dis import make_problem as make_dis_problem
from hadrinv.models.toys import make_problem as make_toy_problem
from hadrinv.workflows.amortized_runs import build_estimator
from hadrinv.workflows.dis_pdf.config import PRESETS as DIS_PRESETS
from hadrinv.workflows.dis_pdf.config import DISPdfConfig

LEVELS = (0.68, 0.95)


# the toys' estimators are those of their calibration config, read from it so the two cannot drift apart
TOY_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "inverse_toys" / "calibration.yaml"


def dis_grid(method: str, simulations: int, test_sets: int, generator: torch.Generator):
    problem = make_dis_problem(10, 8, 0.03)
    test_theta, test_x, _, _ = held_out_sets(
        problem, test_sets, 0, DISPdfConfig().kinematics.test_experiments
    )  # the workflow's, seed 0
    theta = problem.sample_prior(simulations, generator)
    options = dict(DIS_PRESETS["quick"]["grid_options"][method])
    return theta, problem.simulate(theta, generator), test_theta, test_x, problem.bounds, options


def toy_10d(method: str, simulations: int, test_sets: int, generator: torch.Generator):
    problem = make_toy_problem("sum_of_squares_10d", 0.05, 2.0)
    held = torch.Generator().manual_seed(123)
    test_theta = problem.sample_prior(test_sets, held)
    test_x = problem.simulate(test_theta, held)
    theta = problem.sample_prior(simulations, generator)
    options = yaml.safe_load(TOY_CONFIG.read_text())["estimator_options"][method]
    return theta, problem.simulate(theta, generator), test_theta, test_x, problem.bounds, dict(options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problem", choices=["dis-grid", "toy-10d"], required=True)
    parser.add_argument("--method", choices=["flow", "diffusion"], default="flow")
    parser.add_argument("--simulations", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True, help="maximum epochs")
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--members", type=int, default=1, help="> 1: a mixture of independently trained estimators")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change an estimator option (a YAML value), e.g. --option whiten=true",
    )
    parser.add_argument(
        "--test-sets", type=int, default=None, help="held-out cases (default: 100 for dis-grid, 300 for toy-10d)"
    )
    parser.add_argument("--samples", type=int, default=500, help="posterior samples per held-out case")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    make = dis_grid if args.problem == "dis-grid" else toy_10d
    test_sets = args.test_sets or (100 if args.problem == "dis-grid" else 300)
    theta, x, test_theta, test_x, bounds, options = make(args.method, args.simulations, test_sets, generator)
    options.update({key: yaml.safe_load(value) for key, value in (o.split("=", 1) for o in args.option)})
    if args.members > 1:
        options["members"] = args.members
    estimator = build_estimator(args.method, theta.shape[1], x.shape[1], options, bounds=bounds)
    started = time.perf_counter()
    history = estimator.fit(theta.float(), x.float(), max_epochs=args.epochs, patience=args.patience, seed=args.seed)
    seconds = time.perf_counter() - started
    samples = estimator.sample(test_x.float(), args.samples)
    marginal = marginal_coverage(samples, test_theta)
    ellipsoid = ellipsoid_coverage(samples, test_theta)
    hpd = (
        hpd_coverage(estimator, test_theta.float(), test_x.float(), LEVELS, n_samples=args.samples)
        if estimator.has_log_prob
        else None
    )

    def pair(c):
        return "-" if c is None else f"{c[0.68]:.3f} / {c[0.95]:.3f}"

    print(
        "| problem | method | simulations | members | epochs (best) | train s | "
        "marginal 68 / 95 | ellipsoid 68 / 95 | HPD 68 / 95 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.problem} | {args.method} | {args.simulations} | {args.members} | "
        f"{len(history.train_loss)} ({history.best_epoch + 1}) | "
        f"{seconds:.0f} | {pair(marginal)} | {pair(ellipsoid)} | {pair(hpd)} |"
    )
    print(json.dumps({"args": vars(args), "validation_loss": history.best_validation_loss}))


if __name__ == "__main__":
    main()
