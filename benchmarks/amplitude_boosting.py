"""What performance boosting buys a precision surrogate of |M|^2, against controls at the same training time.

Four fits of the same network on the same g g -> g g g points (90 000 training, sqrt(s) = 1 TeV, standard cuts),
measured on fresh test points:

- none-long:     epochs + boost_epochs of plain training, one cosine schedule (the workflow's unboosted variant);
- none-base:     epochs only (what the boosted fits start from);
- performance:   the base, then 20 rounds of boost_epochs / 20, the 200 least certain points 3 more times each
                 round, the rate restarting at lr / 10 every round (the talk's scheme);
- restarts-only: the base, then the same 20 restarted rounds without extra points (factor 0): the schedule
                 of `performance` without its selection.

If performance ~ restarts-only, the selected points change nothing and the difference to none-long is the
schedule. Also printed: how many of the test points with the 1 % largest |Delta| lie among the 1 % of largest
predicted sigma (the points performance boosting would pick), for the method's own uncertainty.

    python benchmarks/amplitude_boosting.py [--method mlp|ensemble|bnn] [--epochs 200] [--boost-epochs 100]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from hadrinv.data.amplitude_simulation import simulate_amplitudes
from hadrinv.inference.surrogates import SurrogateSettings, fit_surrogate
from hadrinv.workflows.amplitude_surrogate.run import features


def quantiles(log_a: torch.Tensor, mean: torch.Tensor) -> tuple[float, float]:
    delta = torch.expm1(mean - log_a).abs().numpy()
    return float(np.quantile(delta, 0.68)), float(np.quantile(delta, 0.99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="mlp", choices=["mlp", "ensemble", "bnn"])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--boost-epochs", type=int, default=100)
    parser.add_argument("--train", type=int, default=90_000)
    parser.add_argument("--test", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    train = simulate_amplitudes("gg-ggg", 1000.0, args.train, seed=args.seed)
    test = simulate_amplitudes("gg-ggg", 1000.0, args.test, seed=args.seed + 1)
    x, y = features(train.momenta), train.amp2.log()
    x_test, y_test = features(test.momenta), test.amp2.log()
    rounds = 20
    base = SurrogateSettings(method=args.method, hidden=128, layers=4, batch=1024, seed=args.seed + 5)
    per_round = max(args.boost_epochs // rounds, 1)
    variants = {
        "none-long": dataclasses.replace(base, epochs=args.epochs + args.boost_epochs),
        "none-base": dataclasses.replace(base, epochs=args.epochs),
        "performance": dataclasses.replace(base, epochs=args.epochs, boost="performance", boost_epochs=per_round),
        "restarts-only": dataclasses.replace(
            base, epochs=args.epochs, boost="performance", boost_epochs=per_round, performance_boost_factor=0
        ),
    }
    print(f"{args.method}, {args.train} training / {args.test} test points of gg -> ggg")
    print(f"{'variant':>14} {'q68 |Delta|':>12} {'q99 |Delta|':>12} {'tail in top-1% sigma':>21} {'s':>6}")
    q99 = {}
    for name, settings in variants.items():
        start = time.perf_counter()
        model = fit_surrogate(x, y, settings)
        seconds = time.perf_counter() - start
        p = model.predict(x_test, seed=args.seed)
        q68, q99[name] = quantiles(y_test, p.mean)
        delta = torch.expm1(p.mean - y_test).abs()
        k = max(len(delta) // 100, 1)
        worst = set(torch.topk(delta, k).indices.tolist())
        if float(p.sigma_tot.max()) > 0:
            surest = set(torch.topk(p.sigma_tot, k).indices.tolist())
            overlap = f"{len(worst & surest) / k:.3f}"
        else:
            overlap = "-"
        print(f"{name:>14} {q68:12.3e} {q99[name]:12.3e} {overlap:>21} {seconds:6.0f}")
    print(f"q99 ratio none-long / performance: {q99['none-long'] / q99['performance']:.3f} (>= 1.5: boosting helps)")
    print(f"q99 ratio restarts-only / performance: {q99['restarts-only'] / q99['performance']:.3f}")


if __name__ == "__main__":
    main()
