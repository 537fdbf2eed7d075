"""Time to generate the talk's dataset: 25000 correlation functions at 60 momenta (the talk's
training set), through the same Ray simulation tasks as `hadrinv run femto-inverse`.

    python benchmarks/femto_dataset.py [--curves 25000] [--workers 2] [--chunk 1250] [--out /tmp/femto_dataset.h5]

Prints the wall time (Ray start-up included, as a user sees it) and correlation functions per second, and
in the same run the single-process rate of the same solver on one chunk, so the parallel speed-up is a
measured ratio. Writes the HDF5 file with its generating configuration.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

from hadrinv.inference.ensemble import run_tasks
from hadrinv.models.femtoscopy import SimulatedSet, sample_uniform
from hadrinv.workflows.femto_inverse.config import PARAMETERS, FemtoInverseConfig
from hadrinv.workflows.femto_inverse.problem import k_grid, save_dataset, simulate
from hadrinv.workflows.femto_inverse.tasks import simulation_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--curves", type=int, default=25000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=1250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "femto_dataset.h5"))
    args = parser.parse_args()
    print("$ python " + " ".join(shlex.quote(a) for a in sys.argv))
    config = FemtoInverseConfig(dataset={"five_parameter": args.curves, "chunk": args.chunk}, seed=args.seed)
    ph = config.physics
    theta = sample_uniform(args.curves, *ph.ranges.low_high(), torch.Generator().manual_seed(args.seed))
    k = k_grid(ph)

    torch.set_num_threads(1)
    started = time.perf_counter()
    simulate(theta[: args.chunk], k, ph, threads=1)
    single_rate = args.chunk / (time.perf_counter() - started)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        tasks = [
            {"theta5": theta[i : i + args.chunk], "k_mev": k, "physics": ph.model_dump(), "threads": 1}
            for i in range(0, args.curves, args.chunk)
        ]
        files = [Path(folder) / f"{i}.pt" for i in range(len(tasks))]
        results = run_tasks(simulation_task, {}, tasks, files, workers=args.workers)
    C = torch.cat([r["C"] for r in results])
    delta = torch.cat([r["delta_deg"] for r in results])
    simulated = time.perf_counter() - started
    save_dataset(Path(args.out), {"five": SimulatedSet(PARAMETERS, theta, theta, k, C, delta)}, config)
    total = time.perf_counter() - started
    print(f"{'curves x momenta':<36}{args.curves} x {len(k)}")
    print(f"{'Ray workers (1 torch thread each)':<36}{args.workers}")
    print(f"{'simulation wall time (s)':<36}{simulated:.1f}")
    print(f"{'with the HDF5 file (s)':<36}{total:.1f}")
    print(f"{'correlation functions / s (Ray)':<36}{args.curves / simulated:.0f}")
    print(f"{'one process, one thread (same run)':<36}{single_rate:.0f}")
    print(f"{'parallel speed-up':<36}{args.curves / simulated / single_rate:.2f}")
    print(f"{'target: <= 120 s':<36}{'PASS' if total <= 120 else 'FAIL'}")
    print(f"dataset: {args.out}")


if __name__ == "__main__":
    main()
