"""Iterative Bayesian unfolding on the Gaussian benchmark: the bias-variance trade of the iteration count, and the
reported statistical errors against the spread of data toys.

MC truth N(0.2, 0.8), data truth N(0, 1), smearing N(0, 0.5), 20 bins in [-3, 3]. Prints chi2 against the exact
truth (full covariance, ndf = bins - 1) per iteration count, then per bin the standard deviation of the unfolded
counts over data toys divided by the reported statistical error.

    python benchmarks/ibu_iterations.py [--events 100000] [--toys 200]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.stats import norm

from hadrinv.inference.unfolding.ibu import IBUSettings, chi2, ibu


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--toys", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n = args.events
    gen = rng.normal(0.2, 0.8, n)
    reco = gen + rng.normal(0, 0.5, n)

    def data() -> np.ndarray:
        return rng.normal(0, 1, n) + rng.normal(0, 0.5, n)

    edges = np.linspace(-3, 3, 21)
    p = np.diff(norm.cdf(edges))
    truth = p / p.sum() / np.diff(edges)
    observed = data()
    print("iterations  chi2 / ndf (full covariance)")
    for iterations in (1, 2, 4, 8, 16, 32):
        density, covariance = ibu(gen, reco, observed, edges, edges, settings=IBUSettings(iterations)).density()
        value, ndf = chi2(density, covariance, truth)
        print(f"{iterations:>10}  {value:8.1f} / {ndf}")
    reported = np.sqrt(np.diag(ibu(gen, reco, observed, edges, edges).covariance_stat))
    toys = np.array([ibu(gen, reco, data(), edges, edges).counts for _ in range(args.toys)])
    ratio = toys.std(0, ddof=1) / reported
    print(f"toy std / reported statistical error, {args.toys} toys, 4 iterations:")
    print(" ".join(f"{r:.2f}" for r in ratio), f"(range {ratio.min():.2f}-{ratio.max():.2f})")


if __name__ == "__main__":
    main()
