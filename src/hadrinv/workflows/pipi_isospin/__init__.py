"""pi pi waves of definite isospin (S0, P, S2) with inelasticities from several charge channels: the fit and
the diffusion posterior, below and above the K Kbar threshold (talk 000's outlook: more complex data)."""

from hadrinv.workflows.pipi_isospin.config import PRESETS, PipiIsospinConfig
from hadrinv.workflows.pipi_isospin.run import PipiIsospinResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "pipi-isospin",
        "pi pi S0, P, S2 phases and inelasticities from several charge channels: fit vs diffusion posterior "
        "(talk 000 outlook)",
        PipiIsospinConfig,
        run,
        PRESETS,
    )
)

__all__ = ["PipiIsospinConfig", "PipiIsospinResult", "run", "WORKFLOW"]
