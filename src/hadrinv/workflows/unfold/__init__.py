"""Unfolding detector effects: iterative Bayesian unfolding (pyunfold), OmniFold and the cINN with per-event
posteriors, on the same paired MC and data, judged against the truth where it is known."""

from hadrinv.workflows.registry import Workflow, register
from hadrinv.workflows.unfold.config import PRESETS, UnfoldConfig
from hadrinv.workflows.unfold.run import UnfoldResult, run

WORKFLOW = register(
    Workflow(
        "unfold",
        "unfold detector effects: iterative Bayesian unfolding, OmniFold, cINN (per-event posteriors), side by side",
        UnfoldConfig,
        run,
        PRESETS,
    )
)

__all__ = ["UnfoldConfig", "UnfoldResult", "run", "WORKFLOW"]
