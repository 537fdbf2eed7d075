"""Loop integrals above threshold against COLLIER: Monte Carlo on the learned contour, vegas and flow.

COLLIER's values (through pyCollier 0.3.3, printed in its own test suite, tests/test_Collier.py) at generic
kinematics above several thresholds: the triangle C0(200, 1000, 200, 100, 10, 50) and the box
D0(1e3, 2e3, 3e3, 1e2, 1e4, -3e3, 1e2, 1e2, 3e2, 3e2) (LoopTools argument order, squared invariants and
masses). The contour is trained on part of the budget (its evaluations count), the rest goes to the
integrator; each line prints the pulls of the real and imaginary parts, the deviation |I - I_COLLIER| / |I|
and the relative error, with 10^6 calls in all.

    python benchmarks/loop_integrals_collier.py [--calls 1000000] [--methods vegas flow]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from hadrinv.inference.contour import deformed_integrand, train_deformation
from hadrinv.integration import integrate
from hadrinv.physics.loop_integrals import box, triangle

CASES = {
    "C0(200, 1000, 200, 100, 10, 50)": (
        triangle(200.0, 1000.0, 200.0, 100.0, 10.0, 50.0),
        0.004769595279977717 - 0.007570567427108271j,
    ),
    "D0(1e3, 2e3, 3e3, 1e2, 1e4, -3e3, 1e2, 1e2, 3e2, 3e2)": (
        box(1e3, 2e3, 3e3, 1e2, 1e4, -3e3, 1e2, 1e2, 3e2, 3e2),
        -3.921393574718075e-7 - 3.209559917467113e-7j,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--methods", nargs="+", default=["vegas", "flow"])
    parser.add_argument("--steps", type=int, default=100, help="contour training steps of 1024 points")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, (loop, reference) in CASES.items():
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
                f"{name} {method}: {value.real:.10g} {value.imag:+.10g}i, pulls {pulls[0]:+.2f} {pulls[1]:+.2f}, "
                f"deviation {deviation:.2e}, relative error {relative:.2e}, calls {r.calls + spent}, "
                f"{time.perf_counter() - start:.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
