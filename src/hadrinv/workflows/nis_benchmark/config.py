"""Typed configuration of the nis-benchmark workflow: i-flow's test suite, every method at equal total calls.

Defaults measure what trains in about a minute per integrand on a laptop CPU; `quick` is the CI-sized run
(a few minutes on 2 cores), `paper` i-flow's own set-up (arXiv:2001.05486 and its test script): 5000 points
per epoch, 1000 training epochs (5 x 10^6 training calls), then 10^6 fresh calls for the estimate; 16
spline bins, 2 ceil(log2 d) coupling layers with i-flow's binary masks, networks of 4 x 32 units, Adam at
1e-3 (annealed by a cosine here) with gradient clipping at 10, one gradient step per epoch on that
epoch's points.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from hadrinv.inference.integration import METHODS
from hadrinv.inference.nis import LOSSES
from hadrinv.workflows.execution import Strict, WorkflowConfig
from hadrinv.workflows.nis_benchmark.integrands import get_integrand

PEERS = ("madnis",)


class FlowConfig(Strict):
    """The flow of the `flow` and `vegas+flow` methods (`hadrinv.inference.nis.FlowSettings`)."""

    transforms: int | None = Field(6, ge=1, description="coupling layers; None: i-flow's 2 ceil(log2 d)")
    bins: int = Field(16, ge=2)
    hidden: int = Field(64, ge=1)
    layers: int = Field(2, ge=1)
    loss: Literal[LOSSES] = "variance"  # type: ignore[valid-type]
    rounds: int = Field(25, ge=1, description="rounds of fresh training points")
    steps_per_round: int = Field(40, ge=1, description="gradient steps on the buffer after each round")
    buffer_rounds: int = Field(5, ge=1)
    batch: int = Field(1024, ge=1, description="points per gradient step")
    lr: float = Field(1e-2, gt=0)
    replicas: int = Field(64, ge=0, description="scrambled Sobol replicas for the estimate (0: i.i.d. points)")


class NisBenchmarkConfig(WorkflowConfig):
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    out: str = "runs/nis-benchmark"
    integrands: list[str] = Field(
        [
            "gauss-2",
            "gauss-4",
            "gauss-8",
            "camel-2",
            "camel-4",
            "camel-8",
            "circles",
            "annulus",
            "polynomial-18",
            "triangle",
            "box",
        ],
        min_length=1,
    )
    methods: list[str] = Field(list(METHODS), min_length=1, description=f"any of {', '.join(METHODS)}")
    peers: list[str] = Field(list(PEERS), description="other libraries run beside, when installed: madnis")
    calls: int = Field(200_000, ge=100, description="integrand calls per method and integrand, training included")
    train_fraction: float | None = Field(
        None, ge=0.0, lt=1.0, description="share of the calls that adapts or trains (None: each method's default)"
    )
    flow: FlowConfig = FlowConfig()
    pull_limit: float = Field(4.0, gt=0, description="a result further than this many errors from exact fails")

    @field_validator("integrands")
    @classmethod
    def _known_integrands(cls, names: list[str]) -> list[str]:
        for name in names:
            get_integrand(name)  # raises with the known names
        return names

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: list[str]) -> list[str]:
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
        return methods

    @field_validator("peers")
    @classmethod
    def _known_peers(cls, peers: list[str]) -> list[str]:
        unknown = [p for p in peers if p not in PEERS]
        if unknown:
            raise ValueError(f"unknown peer(s) {unknown}; choose from {', '.join(PEERS)}")
        return peers


PRESETS: dict[str, dict] = {
    "quick": {
        "integrands": ["gauss-2", "gauss-4", "camel-2", "camel-4", "circles", "annulus", "polynomial-4", "triangle"],
        "calls": 50_000,
        "flow": {"rounds": 10, "steps_per_round": 15, "hidden": 32},
    },
    "paper": {
        "integrands": [
            *(f"gauss-{d}" for d in (2, 4, 8, 16)),
            *(f"camel-{d}" for d in (2, 4, 8, 16)),
            "circles",
            "annulus",
            "polynomial-18",
            "triangle",
            "box",
        ],
        "calls": 6_000_000,
        "train_fraction": 5 / 6,
        "flow": {
            "transforms": None,
            "bins": 16,
            "hidden": 32,
            "layers": 4,
            "rounds": 1000,
            "steps_per_round": 1,
            "buffer_rounds": 1,
            "batch": 5000,
            "lr": 1e-3,
        },
    },
}
