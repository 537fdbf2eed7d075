"""The cINN's flow on the Gaussian unfolding benchmark against its exact posterior, by training batch size.

    python benchmarks/cinn_flow_batch.py [--seeds 3] [--batches 512,2048] [--threads 2]

MC truth N(0.2, 0.8) smeared by N(0, 0.5): the exact posterior of gen given reco r is Gaussian, of mean
0.056 + 0.719 r and width 0.424 for every event. Each flow
trains (the cINN's settings, `CINNSettings`) on a random half of 9.5e4 MC events, as the cINN's flows do, and
samples 20 posteriors for each of 1e5 data events (truth N(0, 1)). Printed per batch size and seed: the training
time and epochs, the samples' standardised mean and width against the exact posterior (0 and 1 when exact), over
all events and over |r| > 1.5, and the relative deviation of the unfolded histogram (20 bins on [-3, 3], one
pass, MC prior) from that of exact posterior draws: its rms over bins and its largest value. The last line: the
mean rms and time per batch size, and their ratios to the first.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hadrinv.inference.unfolding.cinn import CINNSettings

EDGES = np.linspace(-3.0, 3.0, 21)
SIGMA_MC, MU_MC, SMEAR = 0.8, 0.2, 0.5


def histogram(values: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(values.ravel(), EDGES)
    return counts / counts.sum() / np.diff(EDGES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--batches", default="512,2048")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    gen = rng.normal(MU_MC, SIGMA_MC, 95_000)
    reco = gen + rng.normal(0, SMEAR, gen.shape)
    data = rng.normal(0, 1, 100_000) + rng.normal(0, SMEAR, 100_000)
    # Gaussian prior times Gaussian likelihood: a Gaussian posterior
    precision = 1 / SIGMA_MC**2 + 1 / SMEAR**2
    mean = (MU_MC / SIGMA_MC**2 + data / SMEAR**2) / precision
    width = precision**-0.5
    exact = histogram(mean[:, None] + width * rng.normal(size=(len(data), 20)))
    tail = np.abs(data) > 1.5
    summary = {}
    for batch in (int(b) for b in args.batches.split(",")):
        for seed in range(args.seeds):
            half = np.sort(np.random.default_rng([seed, 3]).permutation(len(gen))[: len(gen) // 2])
            start = time.perf_counter()
            flow, history = CINNSettings(batch_size=batch).train(gen[half, None], reco[half, None], seed)
            seconds = time.perf_counter() - start
            with torch.no_grad():
                drawn = flow.sample(torch.as_tensor(data[:, None], dtype=torch.float32), 20)
            u = (drawn.numpy()[:, :, 0].astype(np.float64) - mean[:, None]) / width
            deviation = histogram(mean[:, None] + width * u) / exact - 1
            rms = float(np.sqrt(np.mean(deviation**2)))
            summary.setdefault(batch, []).append((rms, seconds))
            print(
                f"batch {batch:5d} seed {seed}: {seconds:5.0f} s, {history['epochs']:3d} epochs | standardised mean "
                f"{u.mean():+.3f} width {u.std():.3f}; |r| > 1.5: {u[tail].mean():+.3f}, {u[tail].std():.3f} | "
                f"histogram deviation rms {rms:.3f}, largest {np.abs(deviation).max():.3f}",
                flush=True,
            )
    first = np.mean(next(iter(summary.values())), 0)
    for batch, rows in summary.items():
        rms, seconds = np.mean(rows, 0)
        print(
            f"batch {batch}: mean rms {rms:.3f} ({rms / first[0]:.2f} x), mean time {seconds:.0f} s "
            f"({seconds / first[1]:.2f} x)"
        )


if __name__ == "__main__":
    main()
