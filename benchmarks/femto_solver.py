"""Accuracy and speed of the batched Numerov femtoscopy solver against the independent per-point reference.

    python benchmarks/femto_solver.py [--potentials 200] [--speed-batch 2000] [--seed 0] [--threads 1]

(a) Accuracy: N random parameter sets over the talk's training ranges, r0 in [0.5, 4] fm,
    60 momenta log-spaced in [1, 300] MeV: ``correlation_function`` (default grid) against
    ``femtoscopy_reference.reference_correlation`` (scipy DOP853 + QUADPACK, one point at a time).
    Criterion: |dC| <= 1e-3 max(1, |C|) and |d delta| < 0.1 deg at every point.
(b) Speed, in the same run: correlation functions (60 momenta each) per second, for our solver on a batch
    and for the reference (a few functions, and the mean over the accuracy run).

Default runtime ~7 minutes on one core, nearly all of it in the reference.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import numpy as np
import torch

from hadrinv.physics.femtoscopy import P_OMEGA_REDUCED_MASS_MEV, GaussianYukawaPotential, correlation_function
from hadrinv.physics.femtoscopy_reference import gaussian_yukawa_numpy, reference_correlation
from hadrinv.physics.schrodinger import StretchedGrid

PARAMETER_LOW = np.array([-2145.5, 0.739, -1064.0, 0.078])  # b1 MeV, b2 fm^-2, b3 MeV fm^2, b4 fm^-2
PARAMETER_HIGH = np.array([1532.5, 147.761, 532.0, 154.422])
R0_RANGE = (0.5, 4.0)


def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    b = PARAMETER_LOW + (PARAMETER_HIGH - PARAMETER_LOW) * rng.random((n, 4))
    r0 = R0_RANGE[0] + (R0_RANGE[1] - R0_RANGE[0]) * rng.random(n)
    return b, r0


GRID = StretchedGrid()


def ours(b: np.ndarray, r0: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    C, delta = correlation_function(
        GaussianYukawaPotential.from_parameters(torch.tensor(b)),
        torch.tensor(k),
        torch.tensor(r0),
        P_OMEGA_REDUCED_MASS_MEV,
        grid=GRID,
    )
    return C.numpy(), delta.numpy()


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--potentials", type=int, default=200, help="parameter sets for the accuracy comparison")
    parser.add_argument("--speed-batch", type=int, default=2000, help="potentials in the timed batch of our solver")
    parser.add_argument("--reference-speed", type=int, default=3, help="functions timed separately for the reference")
    parser.add_argument("--k-points", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for our solver")
    parser.add_argument(
        "--step",
        type=float,
        default=StretchedGrid().step_fm,
        help="our grid's step in fm (default: the library default)",
    )
    args = parser.parse_args(argv)
    global GRID
    GRID = StretchedGrid(step_fm=args.step)

    print("$ python " + " ".join(shlex.quote(a) for a in [sys.argv[0]] + (sys.argv[1:] if argv is None else argv)))
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, float64; "
        f"reduced mass {P_OMEGA_REDUCED_MASS_MEV} MeV"
    )
    rng = np.random.default_rng(args.seed)
    k = np.geomspace(1.0, 300.0, args.k_points)

    # ---------------------------------------------------------------- (a) accuracy
    b, r0 = draw(args.potentials, rng)
    ours(b[:2], r0[:2], k)  # warm-up
    t0 = time.perf_counter()
    C, delta = ours(b, r0, k)
    t_ours_acc = time.perf_counter() - t0
    C_ref = np.empty_like(C)
    delta_ref = np.empty_like(delta)
    t0 = time.perf_counter()
    for p in range(args.potentials):
        C_ref[p], delta_ref[p] = reference_correlation(gaussian_yukawa_numpy(*b[p]), k, r0[p], P_OMEGA_REDUCED_MASS_MEV)
        if (p + 1) % 20 == 0:
            print(
                f"  reference {p + 1}/{args.potentials} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True
            )
    t_ref_acc = time.perf_counter() - t0

    dC = np.abs(C - C_ref)
    rel = dC / np.maximum(1.0, np.abs(C_ref))
    dd = np.degrees(np.abs(delta - delta_ref))
    worst = np.unravel_index(np.argmax(rel), rel.shape)
    worst_d = np.unravel_index(np.argmax(dd), dd.shape)
    n_points = rel.size
    print(
        f"\n(a) accuracy: {args.potentials} potentials x {args.k_points} momenta (log-spaced 1-300 MeV) = "
        f"{n_points} points, seed {args.seed}"
    )
    print(
        f"    b1 in [{PARAMETER_LOW[0]}, {PARAMETER_HIGH[0]}] MeV, "
        f"b2 in [{PARAMETER_LOW[1]}, {PARAMETER_HIGH[1]}] fm^-2, "
        f"b3 in [{PARAMETER_LOW[2]}, {PARAMETER_HIGH[2]}] MeV fm^2, "
        f"b4 in [{PARAMETER_LOW[3]}, {PARAMETER_HIGH[3]}] fm^-2, r0 in {list(R0_RANGE)} fm"
    )
    print(
        f"    ours: StretchedGrid(step_fm={args.step}) (Numerov, {GRID.nodes()['n']} steps); "
        "reference: DOP853 rtol 1e-11 + quad"
    )
    print(
        table(
            [
                ("max |dC|", f"{dC.max():.3e}"),
                ("max |dC| / max(1, |C|)", f"{rel.max():.3e}"),
                ("99th percentile of |dC| / max(1, |C|)", f"{np.percentile(rel, 99):.3e}"),
                ("median of |dC| / max(1, |C|)", f"{np.median(rel):.3e}"),
                ("max |d delta| (deg)", f"{dd.max():.3e}"),
                ("99th percentile |d delta| (deg)", f"{np.percentile(dd, 99):.3e}"),
                ("points with |dC| > 1e-3", f"{int((dC > 1e-3).sum())} / {n_points}"),
                ("points with |dC| > 1e-3 max(1, |C|)", f"{int((rel > 1e-3).sum())} / {n_points}"),
                ("points with |d delta| >= 0.1 deg", f"{int((dd >= 0.1).sum())} / {n_points}"),
                ("range of C (reference)", f"[{C_ref.min():.4f}, {C_ref.max():.4f}]"),
                (
                    "range of delta(1 MeV) / pi (bound states)",
                    f"[{delta_ref[:, 0].min() / np.pi:.3f}, {delta_ref[:, 0].max() / np.pi:.3f}]",
                ),
            ]
        )
    )
    for label, (p, j) in (("worst |dC|/max(1,|C|)", worst), ("worst |d delta|", worst_d)):
        print(
            f"    {label}: b = ({b[p, 0]:.2f}, {b[p, 1]:.3f}, {b[p, 2]:.2f}, {b[p, 3]:.3f}), r0 = {r0[p]:.3f} fm, "
            f"k = {k[j]:.2f} MeV: C = {C[p, j]:.8f} vs {C_ref[p, j]:.8f}, delta = {np.degrees(delta[p, j]):.5f} vs "
            f"{np.degrees(delta_ref[p, j]):.5f} deg"
        )
    passed = bool((rel <= 1e-3).all() and (dd < 0.1).all())
    print(
        "    accuracy criterion (|dC| <= 1e-3 max(1,|C|) and |d delta| < 0.1 deg everywhere): "
        f"{'PASS' if passed else 'FAIL'}"
    )

    # ---------------------------------------------------------------- (b) speed
    b_speed, r0_speed = draw(args.speed_batch, rng)
    t0 = time.perf_counter()
    ours(b_speed, r0_speed, k)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    for p in range(args.reference_speed):
        reference_correlation(gaussian_yukawa_numpy(*b_speed[p]), k, r0_speed[p], P_OMEGA_REDUCED_MASS_MEV)
    t_ref = time.perf_counter() - t0
    ours_rate = args.speed_batch / t_ours
    ref_rate = args.reference_speed / t_ref
    ref_rate_acc = args.potentials / t_ref_acc
    print(
        f"\n(b) speed: correlation functions of {args.k_points} momenta per second (wall clock; shared machine, "
        f"timings may be inflated by other jobs)"
    )
    print(
        table(
            [
                (
                    f"ours, batch of {args.speed_batch}, {args.threads} thread(s)",
                    f"{ours_rate:10.1f} /s   ({t_ours:.2f} s)",
                ),
                (
                    f"ours, accuracy batch of {args.potentials}",
                    f"{args.potentials / t_ours_acc:10.1f} /s   ({t_ours_acc:.2f} s)",
                ),
                (
                    f"reference (scipy, per point), {args.reference_speed} functions",
                    f"{ref_rate:10.3f} /s   ({t_ref:.2f} s)",
                ),
                (
                    f"reference, mean over the {args.potentials} accuracy functions",
                    f"{ref_rate_acc:10.3f} /s   ({t_ref_acc:.1f} s)",
                ),
                (
                    "speed-up (ours batch / reference)",
                    f"{ours_rate / ref_rate:10.0f} x   (vs accuracy-run mean: {ours_rate / ref_rate_acc:.0f} x)",
                ),
            ]
        )
    )


if __name__ == "__main__":
    main()
