"""Typed configuration of the matrix-element-method workflow.

Defaults: J/psi -> gamma pi+ pi- of the packaged model R0, the f2'(1525) mass fitted with everything else fixed at
the model's values; 2e5 phase-space MC events train the flows; 10 pseudo-data sets of 2000 reconstructed events;
100 importance samples per event.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from hadrinv.workflows.execution import Strict, WorkflowConfig
from hadrinv.workflows.flow_config import FlowConfig


class DetectorConfig(Strict):
    """Gaussian smearing of each hard variable and an efficiency; see `hadrinv.workflows.mem.pwa_case`."""

    resolution: list[float] = Field(
        [0.02, 0.03, 0.05, 0.1], description="sigma of m_pipi (GeV), cos theta_gamma, cos theta_pi, phi_pi (rad)"
    )
    max_cos_gamma: float = Field(0.9, gt=0, le=1, description="photons with |cos theta| above are lost")
    pion_loss: float = Field(0.4, ge=0, lt=0.9, description="efficiency 0.9 - pion_loss cos^2 theta_pi")

    @field_validator("resolution")
    @classmethod
    def _four_positive(cls, value):
        if len(value) != 4 or not all(v > 0 for v in value):
            raise ValueError("four positive resolutions: m_pipi, cos theta_gamma, cos theta_pi, phi_pi")
        return value


class MEMConfig(WorkflowConfig):
    devices = ("cpu",)

    case: Literal["pwa"] = "pwa"
    model: str = Field("R0", description="packaged PWA model name or YAML path: the hard process of MC and data")
    parameter: str = Field("f2'(1525).mass", description="RESONANCE.mass, .width or .g_pipi: the fitted one")
    fit_range: float = Field(0.05, gt=0, description="the fit's limits: the model's value -+ this")
    mc_events: int = Field(200_000, ge=5000, description="phase-space MC events: the flows' training sample")
    datasets: int = Field(10, ge=1, description="pseudo-data sets")
    data_events: int = Field(2000, ge=10, description="reconstructed events per pseudo-data set")
    samples: int = Field(100, ge=2, description="importance samples per reconstructed event")
    detector: DetectorConfig = DetectorConfig()
    flows: FlowConfig = Field(default_factory=FlowConfig, description="the unfolding and the transfer flow alike")
    out: str = "runs/mem"


PRESETS: dict[str, dict] = {
    "quick": {
        "mc_events": 40_000,
        "datasets": 3,
        "data_events": 500,
        "samples": 50,
        "flows": {"transforms": 4, "hidden": 32, "max_epochs": 30},
    },
    "paper": {"mc_events": 1_000_000, "data_events": 5000, "samples": 200},
}
