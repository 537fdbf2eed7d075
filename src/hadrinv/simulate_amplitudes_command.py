"""`hadrinv simulate amplitudes`: a table of phase-space points with exact tree-level squared amplitudes.

One row per point: p{i}_E, p{i}_px, p{i}_py, p{i}_pz for the particles i = 1..n in GeV (the two incoming
first) and amp2 (couplings one: see `hadrinv.physics.tree_amplitudes`). RAMBO points, flat in phase space,
with the standard cuts on the final-state partons; Parquet for .parquet/.pq, else CSV. The file is written
atomically: an interrupted run leaves nothing that looks complete.
"""

from __future__ import annotations

import argparse


def add_parser(simulators) -> argparse.ArgumentParser:
    from hadrinv.physics.tree_amplitudes import PROCESSES

    parser = simulators.add_parser(
        "amplitudes",
        help="phase-space points with exact tree-level |M|^2 (gg -> ggg, e+e- -> q qbar g)",
        description=__doc__.splitlines()[0].split(": ", 1)[1] + " Parquet for .parquet/.pq, else CSV.",
    )
    parser.add_argument("--process", choices=sorted(PROCESSES), required=True)
    parser.add_argument("--events", type=int, required=True, help="points that pass the cuts")
    parser.add_argument("--sqrt-s", type=float, default=1000.0, help="centre-of-mass energy in GeV (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pt-min", type=float, default=20.0, help="final-state pT cut in GeV (default 20; 0: none)")
    parser.add_argument("--rapidity-max", type=float, default=2.5, help="|y| cut (default 2.5; 0: none)")
    parser.add_argument("--delta-r-min", type=float, default=0.4, help="Delta R cut between partons (default 0.4)")
    parser.add_argument("--out", required=True, help="output file (.parquet or .csv)")
    parser.set_defaults(handler=run)
    return parser


def run(args) -> int:
    from hadrinv.data.amplitude_simulation import simulate_amplitudes
    from hadrinv.data.amplitude_tables import write_amplitudes

    if args.events < 1:
        raise ValueError(f"--events {args.events}: must be positive")
    if not args.sqrt_s > 0:
        raise ValueError(f"--sqrt-s {args.sqrt_s}: must be positive")
    cuts = {"--pt-min": args.pt_min, "--rapidity-max": args.rapidity_max, "--delta-r-min": args.delta_r_min}
    for flag, value in cuts.items():
        if value < 0:
            raise ValueError(f"{flag} {value}: must not be negative")
    table = simulate_amplitudes(
        args.process,
        args.sqrt_s,
        args.events,
        seed=args.seed,
        pt_min_gev=args.pt_min or None,
        abs_rapidity_max=args.rapidity_max or None,
        delta_r_min=args.delta_r_min or None,
    )
    path = write_amplitudes(args.out, table.momenta, table.amp2, n_incoming=table.n_incoming)
    print(f"{len(table)} points of {args.process} at sqrt(s) = {args.sqrt_s:g} GeV: {path}")
    return 0
