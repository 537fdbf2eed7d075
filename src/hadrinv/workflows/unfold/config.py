"""Typed configuration of the unfolding workflow: iterative Bayesian unfolding, OmniFold and the cINN side by side.

Defaults: the Gaussian benchmark (1e5 MC and 1e5 data events), 20 bins per observable for the binned method and
the reported histograms, all three methods. With ``mc`` and ``data`` the tables are the user's
(`hadrinv.data.unfolding_tables`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hadrinv.workflows.execution import Strict, WorkflowConfig
from hadrinv.workflows.flow_config import FlowConfig

METHODS = ("ibu", "omnifold", "cinn")


class IBUConfig(Strict):
    """`hadrinv.inference.unfolding.ibu.IBUSettings`."""

    iterations: int = Field(100, ge=1, description="D'Agostini iterations (the most, with a tolerance)")
    tolerance: float | None = Field(
        0.05, gt=0, description="stop once no bin moves by more than this times its statistical error; None: fixed"
    )
    prior: Literal["flat", "mc"] = "flat"


class OmniFoldConfig(Strict):
    """`hadrinv.inference.unfolding.omnifold.OmniFoldSettings`."""

    iterations: int = Field(4, ge=1)
    hidden: int = Field(64, ge=1)
    layers: int = Field(3, ge=1)
    epochs: int = Field(30, ge=1)
    batch: int = Field(1024, ge=2)
    lr: float = Field(1e-3, gt=0)
    patience: int = Field(5, ge=1)
    bootstraps: int = Field(20, ge=0, description="replicas of data and MC resampled: the errors")
    step2: Literal["reconstructed", "all"] = Field(
        "reconstructed", description="step 2 learns from the reconstructed MC events (IBU's update) or all"
    )


class CINNConfig(FlowConfig):
    """`hadrinv.inference.unfolding.cinn.CINNSettings`; the flows' architecture and training from `FlowConfig`."""

    iterations: int = Field(4, ge=1, description="passes: 1 the cINN, more the iterative cINN (prior updated)")
    flows: int = Field(8, ge=1, description="flows on random halves of the MC, pooled; their spread is an error")
    batch_size: int = Field(2048, ge=2, description="the flows' training batch")
    bootstraps: int = Field(20, ge=0, description="Poisson replicas of data and MC for the errors (0 or >= 2)")
    replica_samples: int = Field(20, ge=1, description="samples per event the replicas use")
    prior_epochs: int = Field(20, ge=1, description="epochs of the prior update's classifier")
    samples: int = Field(100, ge=2, description="posterior samples per data event")
    calibration_events: int = Field(5000, ge=100, description="held-out MC events of the coverage check")


class UnfoldConfig(WorkflowConfig):
    mc: str | None = Field(None, description="paired MC table (gen_NAME, reco_NAME); None: the built-in case")
    data: str | None = Field(None, description="detector-level data table (reco_NAME)")
    case: Literal["gaussian", "gaussian-4d", "pwa"] = "gaussian"
    events: int = Field(100_000, ge=100, description="MC and data events of the built-in case")
    method: Literal["ibu", "omnifold", "cinn", "all"] = "all"
    observables: list[str] | None = Field(None, description="observables to unfold (default: all in common)")
    bins: int = Field(20, ge=2, description="bins per observable (IBU's and the reported histograms)")
    check_bins: int = Field(40, ge=2, description="a second binning of the unbinned methods, after the fact")
    ibu: IBUConfig = IBUConfig()
    omnifold: OmniFoldConfig = OmniFoldConfig()
    cinn: CINNConfig = CINNConfig()
    out: str = "runs/unfold"

    def methods(self) -> list[str]:
        return list(METHODS) if self.method == "all" else [self.method]


PRESETS: dict[str, dict] = {
    "quick": {
        "events": 20_000,
        "omnifold": {"iterations": 4, "epochs": 15, "bootstraps": 8},
        "cinn": {
            "flows": 2,
            "bootstraps": 8,
            "transforms": 4,
            "hidden": 32,
            "max_epochs": 40,
            "batch_size": 512,
            "samples": 50,
        },
    },
    "paper": {"events": 1_000_000, "omnifold": {"bootstraps": 50}, "cinn": {"bootstraps": 50}},
}
