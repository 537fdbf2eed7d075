"""Accuracy and cost of the non-local s-wave scattering solver (physics/nonlocal_scattering.py).

    python benchmarks/nonlocal_solver.py [--threads 1]

(a) The talk's separable potential (mu = 1, w = -0.017, m = 3.30) against its closed-form k cot delta and
    a0, for mesh steps 0.2 ... 0.025/mu (r_max = 25/mu), 100 momenta in (0, 2] mu: the error should fall
    as step^2 (trapezoid rule).
(b) A local potential given to the same solver (the HAL QCD Omega-Omega Gaussians, m = 1711.5/2 MeV)
    against the Numerov solver of the femtoscopy workflow, 60 momenta up to 300 MeV, steps 0.1 ... 0.02 fm.
Each row gives the seconds for all momenta plus the bound-state count, measured in this run.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time

import torch

from hadrinv.physics.halqcd import HBARC_MEV_FM, OMEGA_MASS_LATTICE_MEV, OMEGA_OMEGA
from hadrinv.physics.nonlocal_scattering import RadialMesh, SeparablePotential, phase_shifts, scattering_length
from hadrinv.physics.schrodinger import solve_s_wave

DEG = 180.0 / math.pi


def _timed(function):
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"command: python benchmarks/nonlocal_solver.py {shlex.join(sys.argv[1:])}".rstrip())

    sep = SeparablePotential()
    k = torch.linspace(0.02, 2.0, 100, dtype=torch.float64)
    exact = sep.phase_shift(k)
    print("\n(a) separable potential vs closed form, r_max = 25/mu, 100 momenta")
    print(f"{'step (1/mu)':>12} {'nodes':>6} {'max |d delta| (deg)':>20} {'a0 rel. error':>14} {'seconds':>8}")
    for step in (0.2, 0.1, 0.05, 0.025):
        mesh = RadialMesh(step, 25.0)
        U = sep.matrix(mesh.nodes())
        delta, seconds = _timed(lambda: phase_shifts(k, mesh, sep.mass, U=U))
        a0 = float(scattering_length(mesh, sep.mass, U=U))
        print(
            f"{step:>12g} {mesh.size:>6d} {float((delta - exact).abs().max()) * DEG:>20.2e} "
            f"{a0 / sep.scattering_length() - 1:>14.1e} {seconds:>8.2f}"
        )

    k_mev = torch.linspace(5.0, 300.0, 60, dtype=torch.float64)
    m = OMEGA_MASS_LATTICE_MEV / 2
    reference = solve_s_wave(lambda r: OMEGA_OMEGA(r)[None], k_mev, m).delta[0]
    print("\n(b) local Omega-Omega potential vs Numerov (femtoscopy solver), r_max = 8 fm, 60 momenta to 300 MeV")
    print(f"{'step (fm)':>12} {'nodes':>6} {'max |d delta| (deg)':>20} {'seconds':>8}")
    for step in (0.1, 0.0846, 0.05, 0.02):
        mesh = RadialMesh(step, 8.0)
        V = OMEGA_OMEGA(mesh.nodes()) / HBARC_MEV_FM
        delta, seconds = _timed(lambda: phase_shifts(k_mev / HBARC_MEV_FM, mesh, m / HBARC_MEV_FM, V=V))
        print(f"{step:>12g} {mesh.size:>6d} {float((delta - reference).abs().max()) * DEG:>20.2e} {seconds:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
