"""The talk's toy inverse problems solved by VAIM, MDN, INN, flow, diffusion and flow matching (talk 003)."""

from hadrinv.workflows.inverse_toys.config import PRESETS, InverseToysConfig
from hadrinv.workflows.inverse_toys.run import InverseToysResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "inverse-toys",
        "toy inverse problems (sum of squares 2-D/10-D, ring): VAIM, MDN, INN, flow, diffusion, flow matching; "
        "active learning (talk 003)",
        InverseToysConfig,
        run,
        PRESETS,
    )
)

__all__ = ["InverseToysConfig", "InverseToysResult", "run", "WORKFLOW"]
