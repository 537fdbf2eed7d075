"""Typed configuration of the loop-integral workflow: a one-loop scalar triangle C0 or box D0 at given
kinematics, integrated by Monte Carlo in Feynman-parameter form, on a learned complex contour above threshold.

Conventions (GeV throughout, LoopTools argument order, mass m_j on the propagator q_j of
`hadrinv.physics.loop_integrals`):

- `internal_masses`: the propagator masses m_j themselves, not squared; 3 for a triangle, 4 for a box, or
  one value for all of them.
- `external`: the external legs as signed masses, p_i^2 = m |m| (a negative entry is a spacelike leg,
  p^2 = -m^2). Triangle: sqrt(p1^2), sqrt(p2^2), sqrt((p1 + p2)^2). Box: sqrt(p1^2), ..., sqrt(p4^2).
- `s12`, `s23`: the box's Mandelstam invariants (p1 + p2)^2 and (p2 + p3)^2 in GeV^2, signed squares as
  they are (a triangle has none).

The defaults are the points of i-flow (Gao, Isaacson, Krause, arXiv:2001.05486), both below threshold: the
gluon-fusion triangle C0(0, 0, 125^2, 175^2 x 3) and the box D0(0, 0, 0, 125^2, 130^2, -130^2 / 2, 175^2 x 4).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from hadrinv.workflows.execution import Strict, WorkflowConfig

LEGS = {"triangle": 3, "box": 4}
DEFAULT_EXTERNAL = {"triangle": [0.0, 0.0, 125.0], "box": [0.0, 0.0, 0.0, 125.0]}
DEFAULT_S12 = 130.0**2
DEFAULT_S23 = -(130.0**2) / 2


class DeformationConfig(Strict):
    """The learned contour above threshold (`hadrinv.inference.contour`); its evaluations come out of `calls`."""

    train: bool = Field(True, description="train lambda(x); false: the constant lambda = lam")
    steps: int = Field(100, ge=0, description="gradient steps on the variance of the deformed integrand")
    batch: int = Field(1024, ge=16, description="uniform points per step (each one an integrand call)")
    lr: float = Field(3e-3, gt=0)
    hidden: int = Field(32, ge=1, description="width of the MLP behind lambda(x)")
    lam: float = Field(0.3, gt=0, description="lambda of the untrained contour")
    lam_max: float = Field(1.0, gt=0, description="bound of lambda (halved while the sign condition fails)")
    check_points: int = Field(16384, ge=256, description="uniform points of each check of Im F(z) <= 0")

    @model_validator(mode="after")
    def _lam_below_max(self):
        if not self.lam < self.lam_max:
            raise ValueError(f"deformation.lam: must be below lam_max = {self.lam_max}, got {self.lam}")
        return self


class LoopIntegralConfig(WorkflowConfig):
    devices: ClassVar[tuple[str, ...]] = ("cpu",)  # batches of thousands of points in 2 or 3 dimensions

    topology: Literal["triangle", "box"] = "triangle"
    internal_masses: list[float] = Field(
        [175.0], min_length=1, description="propagator masses in GeV (not squared); one value: all equal"
    )
    external: list[float] | None = Field(
        None,
        description="external legs as signed masses in GeV, p^2 = m |m| (negative: spacelike); triangle: p1, p2, "
        "p1 + p2; box: p1 .. p4 (default: i-flow's point)",
    )
    s12: float | None = Field(None, description="box: (p1 + p2)^2 in GeV^2, signed (default 130^2)")
    s23: float | None = Field(None, description="box: (p2 + p3)^2 in GeV^2, signed (default -130^2 / 2)")
    calls: int = Field(1_000_000, ge=1000, description="integrand calls in all, the deformation's training included")
    method: Literal["flat", "vegas", "flow", "vegas+flow"] = Field(
        "vegas", description="integration method (hadrinv.integration.integrate)"
    )
    train_fraction: float | None = Field(
        None, ge=0, lt=1, description="of the integrator's calls, those that adapt it (None: the method's default)"
    )
    deformation: DeformationConfig = DeformationConfig()
    peers: list[Literal["pysecdec"]] = Field(
        ["pysecdec"],
        description="independent libraries evaluated beside, when installed: pysecdec (the reference where no "
        "closed form covers the kinematics)",
    )
    out: str = "runs/loop-integral"

    @model_validator(mode="after")
    def _kinematics(self):
        legs = LEGS[self.topology]
        masses = self.internal_masses
        if len(masses) not in (1, legs):
            raise ValueError(
                f"internal_masses: a {self.topology} has {legs} propagators; give {legs} masses or one for all, "
                f"got {len(masses)}"
            )
        numbers = {"internal_masses": masses, "external": self.external or [], "s12": [self.s12], "s23": [self.s23]}
        for name, values in numbers.items():
            if any(v is not None and not math.isfinite(v) for v in values):
                raise ValueError(f"{name}: NaN or inf is no kinematic value, got {values}")
        if any(m < 0 for m in masses):
            raise ValueError(f"internal_masses: a mass cannot be negative, got {masses}")
        if self.external is not None and len(self.external) != legs:
            raise ValueError(
                f"external: a {self.topology} has {legs} external legs (signed masses in GeV), got {len(self.external)}"
            )
        if self.topology == "triangle" and (self.s12 is not None or self.s23 is not None):
            raise ValueError("s12: s12 and s23 are the box's invariants; a triangle's are its three external legs")
        return self

    def masses(self) -> list[float]:
        """The propagator masses in GeV, one per propagator."""
        legs = LEGS[self.topology]
        return list(self.internal_masses) * legs if len(self.internal_masses) == 1 else list(self.internal_masses)

    def legs(self) -> list[float]:
        """The external legs as signed masses in GeV."""
        return list(self.external) if self.external is not None else list(DEFAULT_EXTERNAL[self.topology])

    def invariants(self) -> dict[str, float]:
        """The squared invariants in GeV^2 by LoopTools name: p1sq, p2sq, p12sq (triangle) or p1sq .. p4sq,
        s12, s23 (box)."""
        squares = [m * abs(m) for m in self.legs()]
        if self.topology == "triangle":
            return dict(zip(("p1sq", "p2sq", "p12sq"), squares, strict=True))
        named = dict(zip(("p1sq", "p2sq", "p3sq", "p4sq"), squares, strict=True))
        named["s12"] = DEFAULT_S12 if self.s12 is None else self.s12
        named["s23"] = DEFAULT_S23 if self.s23 is None else self.s23
        return named


PRESETS: dict[str, dict] = {
    "quick": {"calls": 200_000, "deformation": {"steps": 40, "check_points": 8192}},
    "paper": {"calls": 1_000_000},
}
