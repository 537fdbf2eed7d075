"""Partial-wave analysis of J/psi -> gamma pi pi: the talk's fit-fraction study (talk 002)."""

from hadrinv.workflows.pwa_fit_fractions.config import PRESETS, PwaFitFractionsConfig
from hadrinv.workflows.pwa_fit_fractions.run import PwaFitFractionsResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        name="pwa-fit-fractions",
        summary="J/psi -> gamma pi pi unbinned fits of the talk's R0 / R+4 models, fit fractions and the SF constraint (talk 002)",
        config_class=PwaFitFractionsConfig,
        run=run,
        presets=PRESETS,
    )
)

__all__ = ["PwaFitFractionsConfig", "PwaFitFractionsResult", "run", "WORKFLOW"]
