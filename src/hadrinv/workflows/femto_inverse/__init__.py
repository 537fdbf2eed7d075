"""Potentials and source sizes from femtoscopic correlation functions: DNN inverse maps, PCA, flow posterior
(talk 001)."""

from hadrinv.workflows.femto_inverse.config import PRESETS, FemtoInverseConfig
from hadrinv.workflows.femto_inverse.run import FemtoInverseResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "femto-inverse",
        "potential parameters and source size from C(k): the talk's DNN inverse map and PCA, a flow posterior, "
        "vs a fit (talk 001)",
        FemtoInverseConfig,
        run,
        PRESETS,
    )
)

__all__ = ["FemtoInverseConfig", "FemtoInverseResult", "run", "WORKFLOW"]
