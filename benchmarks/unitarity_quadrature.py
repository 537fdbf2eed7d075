"""Residual of the integral unitarity relation on an exactly unitary amplitude, per quadrature rule.

    python benchmarks/unitarity_quadrature.py

The talk's Breit-Wigner S and P waves on its 64 x 64 grid: max |Im A - I| over all (s, z) and the talk's
loss L_u = mean(|Im A - Re I| + |Im I|), for the talk's Simpson 64 x 10 set-up and for the default
Gauss-Legendre x periodic-trapezoid rule. Both should be 0 for an exact integral.
"""

from __future__ import annotations

import torch

from hadrinv.physics.partial_waves import UnitarityRelation
from hadrinv.physics.pipi import S_THRESHOLD_GEV2, breit_wigner_waves


def main() -> None:
    s = torch.linspace(S_THRESHOLD_GEV2, 1.0, 65, dtype=torch.float64)[1:]
    z = torch.linspace(-1.0, 1.0, 64, dtype=torch.float64)
    waves = breit_wigner_waves(s)
    print("rule | z' nodes | phi nodes | max |Im A - I| | L_u")
    print("--- | --- | --- | --- | ---")
    for rule, n_z, n_phi in (("simpson", 64, 10), ("simpson", 65, 11), ("gauss", 4, 4), ("gauss", 16, 16)):
        relation = UnitarityRelation(z, 1, n_z, n_phi, rule)
        print(
            f"{rule} | {n_z} | {n_phi} | {relation.residual(waves).abs().max().item():.2e} | "
            f"{relation.loss(waves).item():.2e}"
        )


if __name__ == "__main__":
    main()
