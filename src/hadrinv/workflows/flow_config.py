"""The config block of a conditional flow's architecture and training, shared by the workflows built on flows
(`hadrinv.inference.flow.FlowSettings` takes the same names)."""

from __future__ import annotations

from pydantic import Field

from hadrinv.workflows.execution import Strict


class FlowConfig(Strict):
    transforms: int = Field(6, ge=1)
    hidden: int = Field(64, ge=1)
    max_epochs: int = Field(200, ge=1)
    batch_size: int = Field(512, ge=2)
    learning_rate: float = Field(1e-3, gt=0)
    patience: int = Field(15, ge=1)
