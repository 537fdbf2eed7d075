"""flat and vegas on i-flow's Gaussian and camel (width 0.2) in d = 2 and 4, at equal calls, against their
closed forms: pull of each estimate against the exact value, its error, the calls, and the variance ratio.

    python benchmarks/integration_closed_forms.py [--calls 40000]
"""

from __future__ import annotations

import argparse
import math

import torch

from hadrinv.integration import integrate

ALPHA = 0.2


def one_dim(c: float) -> float:
    return 0.5 * (math.erf((1 - c) / ALPHA) + math.erf(c / ALPHA))


def gaussian(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-((x - 0.5) ** 2).sum(-1) / ALPHA**2) / (ALPHA * math.sqrt(math.pi)) ** x.shape[-1]


def camel(x: torch.Tensor) -> torch.Tensor:
    peaks = torch.exp(-((x - 1 / 3) ** 2).sum(-1) / ALPHA**2) + torch.exp(-((x - 2 / 3) ** 2).sum(-1) / ALPHA**2)
    return 0.5 * peaks / (ALPHA * math.sqrt(math.pi)) ** x.shape[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40_000)
    args = parser.parse_args()
    print("function   d  method  pull    error      calls   variance / flat's")
    for name, f, exact in (("gaussian", gaussian, one_dim(0.5)), ("camel", camel, one_dim(1 / 3))):
        for dim in (2, 4):
            results = {m: integrate(f, dim, m, calls=args.calls, seed=dim) for m in ("flat", "vegas")}
            for method, r in results.items():
                pull = (r.value - exact**dim) / r.error
                ratio = (r.error / results["flat"].error) ** 2
                print(f"{name:9s} {dim:2d}  {method:6s} {pull:+5.2f}  {r.error:9.3g}  {r.calls:7d}   {ratio:.4f}")


if __name__ == "__main__":
    main()
