"""Time one member of the talk's set-up (`--preset paper`: CNN generator on the 64 x 64 toy, batch 256)
and extrapolate to the preset's 100 members, where running them is out of reach of the machine.

    python benchmarks/pipi_paper_member_time.py [--device cpu|cuda] [--steps 1,2] [--batch 256]

Trains one member for a few steps twice, without the pre-training (the difference removes the set-up and
sampling), and prints seconds per step, per member at the talk's 200 epochs x 40 steps plus the 300
pre-training steps (an upper bound: training stops early once converged) and for the 100 members on one
device. On a CPU a step at the talk's batch of 256 takes minutes: --batch 8 times a smaller batch and
scales linearly (the convolutions' cost is linear in the batch).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from hadrinv.data.pipi_toy import PipiToySpec, simulate_pipi
from hadrinv.models.pipi import PipiProblem
from hadrinv.workflows.pipi_amplitude.fit_method import fit_phase_shifts
from hadrinv.workflows.pipi_amplitude.gan_method import train_member
from hadrinv.workflows.registry import get_workflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", default="1,2", help="two step counts to time")
    parser.add_argument("--batch", type=int, default=None, help="batch to time (default: the preset's)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    config = get_workflow("pipi-amplitude").config("paper")
    spec = PipiToySpec(**config.simulation.model_dump(), seed=config.seed)
    problem = PipiProblem.from_data(simulate_pipi(spec), config.l_max)
    fit = fit_phase_shifts(problem)
    seconds = {}
    for steps in (int(s) for s in args.steps.split(",")):
        batch = args.batch or config.gan.batch_size
        update = {"epochs": 1, "steps_per_epoch": steps, "samples_per_member": 4, "cnn_pretrain_steps": 0}
        cfg = config.gan.model_copy(update={**update, "batch_size": batch})
        started = time.perf_counter()
        train_member(problem, cfg, seed=0, device=args.device, threads=args.threads, start=(fit.delta, fit.delta_err))
        seconds[steps] = time.perf_counter() - started
    (a, ta), (b, tb) = sorted(seconds.items())
    measured = (tb - ta) / (b - a)
    per_step = measured * config.gan.batch_size / batch
    setup = ta - a * measured
    steps = config.gan.epochs * config.gan.steps_per_epoch + config.gan.cnn_pretrain_steps
    member = setup + steps * per_step
    members = config.execution.members
    print(f"machine: {platform.platform()}, device {args.device}, {args.threads} threads")
    print(f"CNN GAN, 64 x 64: {measured:.2f} s per step at batch {batch}; set-up {setup:.0f} s")
    print(f"at the talk's batch {config.gan.batch_size}: {per_step:.1f} s per step")
    print(
        f"one member ({steps} steps with pre-training): {member / 3600:.2f} h; "
        f"{members} members on one device: {members * member / 3600:.0f} h (upper bounds: early stopping)"
    )


if __name__ == "__main__":
    main()
