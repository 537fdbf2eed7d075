"""How much the normalisation MC's own statistics move an unbinned fit, against its statistical errors.

    python benchmarks/pwa_mc_noise.py [--events 100000] [--mc 1000000] [--samples 5] [--sampling flat|importance]

One R0 data set (toy acceptance) is fitted K times, each time with an independent accepted phase-space MC
sample of the given size (binned normalisation, MIGRAD from the generated values); flat, or importance
sampled along the data's m_pipi spectrum (with weights). Prints, per parameter,
the spread of the fitted values over the K fits divided by the fit's Hessian error: the MC's share of the
scatter that a pull study sees and the Hessian errors do not include (pull width ~ sqrt(1 + ratio^2)).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np
import torch

from hadrinv.data.pwa_model import generate_events, m_spectrum, mc_chunks_of, mc_samplers, read_model, toy_acceptance
from hadrinv.inference.unbinned import UnbinnedNLL, fit_unbinned
from hadrinv.models.pwa import AmplitudeModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--mc", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=5, help="independent MC samples (fits)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sampling", choices=("flat", "importance"), default="flat")
    args = parser.parse_args()
    print("$ python " + " ".join(shlex.quote(a) for a in sys.argv))
    torch.set_num_threads(args.threads)
    model = read_model("R0")
    am = AmplitudeModel(model)
    g = torch.Generator().manual_seed(args.seed)
    data = am.cache(*generate_events(model, args.events, acceptance=toy_acceptance, generator=g))
    make_mc = mc_samplers(args.sampling, m_spectrum(data["m"]), toy_acceptance, model.pion_mass)[0]
    values, errors = [], None
    started = time.perf_counter()
    for k in range(args.samples):
        mc = am.binned_cache(mc_chunks_of(args.mc, make_mc, g))
        fit = fit_unbinned(
            UnbinnedNLL(am.intensity, data, mc, chunk_size=32768),
            am.initial().numpy(),
            bounds=am.bounds(),
            method="minuit",
            names=am.names,
        )
        values.append(fit.values)
        errors = fit.errors
        print(f"fit {k}: valid {fit.is_valid}", flush=True)
    ratio = np.asarray(values).std(0, ddof=1) / errors
    print(
        f"{args.events} events, {args.samples} {args.sampling} MC samples of {args.mc}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    print(f"{'parameter':<26}{'MC spread / stat. error':>24}")
    for name, r in zip(am.names, ratio):
        print(f"{name:<26}{r:>24.2f}")


if __name__ == "__main__":
    main()
