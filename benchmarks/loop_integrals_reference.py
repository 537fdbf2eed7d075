"""Loop integrals above threshold against independent libraries: Monte Carlo on the learned contour.

References: COLLIER's values (through pyCollier 0.3.3, printed in its own test suite, tests/test_Collier.py)
at C0(200, 1000, 200, 100, 10, 50) and D0(1e3, 2e3, 3e3, 1e2, 1e4, -3e3, 1e2, 1e2, 3e2, 3e2), and pySecDec
(sector decomposition, its own contour deformation, quasi-Monte Carlo; `pip install pysecdec`) there and at
random kinematics above threshold: unequal masses of 50-200 GeV, timelike and spacelike legs, s12 of 300-600
GeV squared (LoopTools argument order, squared invariants and masses). The contour is trained on part of the
budget (its evaluations count), the rest goes to the integrator; each line prints the pulls of the real and
imaginary parts against the reference, the deviation |I - I_ref| / |I_ref| and the relative error, with
`--calls` (10^6) in all.

    python benchmarks/loop_integrals_reference.py [--calls 1000000] [--methods vegas flow] [--random 2]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from hadrinv.inference.contour import deformed_integrand, train_deformation
from hadrinv.integration import integrate
from hadrinv.physics.loop_integrals import box, triangle
from hadrinv.workflows.loop_integral import pysecdec_peer
from hadrinv.workflows.loop_integral.run import random_kinematics

COLLIER = {
    ("triangle", (200.0, 1000.0, 200.0, 100.0, 10.0, 50.0)): 0.004769595279977717 - 0.007570567427108271j,
    ("box", (1e3, 2e3, 3e3, 1e2, 1e4, -3e3, 1e2, 1e2, 3e2, 3e2)): -3.921393574718075e-7 - 3.209559917467113e-7j,
}
MAKE = {"triangle": triangle, "box": box}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--methods", nargs="+", default=["vegas", "flow"])
    parser.add_argument("--steps", type=int, default=100, help="contour training steps of 1024 points")
    parser.add_argument("--random", type=int, default=2, help="random points per topology (pySecDec only)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    reason = pysecdec_peer.missing_reason()
    cases = []  # (topology, point, reference, source)
    for topology in ("triangle", "box"):
        points = [p for t, p in COLLIER if t == topology]
        if reason is None:
            points += random_kinematics(topology, args.random, seed=args.seed)
            peers = pysecdec_peer.evaluate(topology, points)
        else:
            print(f"pySecDec: {reason}; COLLIER's points only")
            peers = [None] * len(points)
        for point, peer in zip(points, peers, strict=True):
            if (topology, point) in COLLIER:
                cases.append((topology, point, COLLIER[topology, point], "COLLIER"))
            if peer is not None:
                cases.append((topology, point, peer.value, "pySecDec"))
    for topology, point, reference, source in cases:
        loop = MAKE[topology](*point)
        name = f"{'C0' if topology == 'triangle' else 'D0'}({', '.join(f'{v:.6g}' for v in point)})"
        if source == "pySecDec" and (topology, point) in COLLIER:
            deviation = abs(reference - COLLIER[topology, point]) / abs(reference)
            print(f"{name}: pySecDec {reference.real:.10g} {reference.imag:+.10g}i, {deviation:.1e} from COLLIER")
            continue  # the Monte Carlo is compared with COLLIER on this point
        for method in args.methods:
            start = time.perf_counter()
            contour = train_deformation(loop.F, loop.integrand, loop.dim, steps=args.steps, batch=1024, seed=0)
            spent = args.steps * 1024 + 4096 + 16384  # training batches, the scale probe of F, the sign check
            r = integrate(
                deformed_integrand(loop.integrand, contour), loop.dim, method, args.calls - spent, seed=args.seed
            )
            value = complex(r.value, r.value_imag)
            pulls = (r.value - reference.real) / r.error, (r.value_imag - reference.imag) / r.error_imag
            deviation = abs(value - reference) / abs(reference)
            relative = math.hypot(r.error, r.error_imag) / abs(reference)
            print(
                f"{name} {method} vs {source}: {value.real:.10g} {value.imag:+.10g}i, pulls {pulls[0]:+.2f} "
                f"{pulls[1]:+.2f}, deviation {deviation:.2e}, relative error {relative:.2e}, calls {r.calls + spent}, "
                f"{time.perf_counter() - start:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
