"""The matrix-element method with learned detector response: a hard-process parameter fitted on reconstructed events
through the unfolding cINN (importance sampling) and a transfer flow, beside the fit with the known detector and the
fit on the true hard events."""

from hadrinv.workflows.mem.config import PRESETS, MEMConfig
from hadrinv.workflows.mem.run import MEMResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "mem",
        "matrix-element method: fit a resonance parameter on detector-level events with a cINN and a transfer flow",
        MEMConfig,
        run,
        PRESETS,
    )
)

__all__ = ["MEMConfig", "MEMResult", "run", "WORKFLOW"]
