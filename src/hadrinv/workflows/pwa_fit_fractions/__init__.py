"""Partial-wave analysis of J/psi -> gamma pi pi: the talk's fit-fraction study and a pull study (talk 002)."""

from hadrinv.workflows.pwa_fit_fractions import pull_study
from hadrinv.workflows.pwa_fit_fractions.config import PRESETS, PwaFitFractionsConfig
from hadrinv.workflows.pwa_fit_fractions.run import PwaFitFractionsResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "pwa-fit-fractions",
        "J/psi -> gamma pi pi unbinned fits of the talk's R0 / R+4 models, fit fractions and the SF constraint "
        "(talk 002)",
        PwaFitFractionsConfig,
        run,
        PRESETS,
    )
)

PULL_STUDY = register(
    Workflow(
        "pwa-pull-study",
        "J/psi -> gamma pi pi: toys generated and fitted, pulls of masses, widths and fit fractions (talk 002)",
        pull_study.PwaPullStudyConfig,
        pull_study.run,
        pull_study.PRESETS,
    )
)

__all__ = ["PwaFitFractionsConfig", "PwaFitFractionsResult", "run", "WORKFLOW", "PULL_STUDY"]
