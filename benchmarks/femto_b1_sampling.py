"""Is b1 learnable from C(k) when b2 and b4 are drawn log-uniformly over the talk's ranges instead of
uniformly? (The talk gives the ranges, not the distribution inside them.)

    python benchmarks/femto_b1_sampling.py --sampling log --curves 12000
    python benchmarks/femto_b1_sampling.py --sampling uniform --curves 12000

Simulates the curves on the workflow's 60-point grid, trains the quick preset's DNN (256 x 3 residual
MLP on log C, clean curves, as in the talk) on 80 % of them and prints R^2 per parameter on the
training and held-out curves. One torch thread.
"""

from __future__ import annotations

import argparse
import math

import torch

from hadrinv.inference import Regressor
from hadrinv.models.femtoscopy import log_c
from hadrinv.workflows.femto_inverse.config import PARAMETERS, FemtoInverseConfig
from hadrinv.workflows.femto_inverse.metrics import r_squared
from hadrinv.workflows.femto_inverse.problem import k_grid, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sampling", choices=["uniform", "log"], default="log", help="how b2 and b4 are drawn")
    parser.add_argument("--curves", type=int, default=12000)
    parser.add_argument("--epochs", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = FemtoInverseConfig()
    low, high = (torch.tensor(v, dtype=torch.float64) for v in config.physics.ranges.low_high())
    generator = torch.Generator().manual_seed(1)
    u = torch.rand(args.curves, 5, generator=generator, dtype=torch.float64)
    theta = low + (high - low) * u
    if args.sampling == "log":
        for j in (PARAMETERS.index("b2"), PARAMETERS.index("b4")):
            theta[:, j] = torch.exp(math.log(low[j]) + (math.log(high[j]) - math.log(low[j])) * u[:, j])
    k = k_grid(config.physics)
    C = torch.cat([simulate(theta[i : i + 2000], k, config.physics)["C"] for i in range(0, args.curves, 2000)])
    x = log_c(C).float()
    n_train = int(0.8 * args.curves)
    model = Regressor(5, x.shape[1], hidden=256, blocks=3)
    model.fit(theta[:n_train].float(), x[:n_train], max_epochs=args.epochs, patience=15)
    for name, rows in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        r2 = r_squared(model.predict(x[rows]), theta[rows], PARAMETERS)
        print(f"{args.sampling} {name}: " + ", ".join(f"{p} {v:.3f}" for p, v in r2.items()))


if __name__ == "__main__":
    main()
