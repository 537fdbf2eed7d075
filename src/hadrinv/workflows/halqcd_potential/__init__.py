"""Non-local hadron potentials U(r, r') as neural networks learned from NBS wave functions (talk 001)."""

from hadrinv.workflows.halqcd_potential.config import PRESETS, HalqcdPotentialConfig
from hadrinv.workflows.halqcd_potential.run import HalqcdPotentialResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "halqcd-potential",
        "non-local potential U(r, r') as a symmetric neural network from NBS wave functions / R(t, r); phase shifts, "
        "V_eff (talk 001)",
        HalqcdPotentialConfig,
        run,
        PRESETS,
    )
)

__all__ = ["HalqcdPotentialConfig", "HalqcdPotentialResult", "run", "WORKFLOW"]
