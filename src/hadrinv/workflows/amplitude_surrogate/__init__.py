"""Precision surrogates of squared matrix elements: Bayesian networks, deep ensembles and a plain MLP, with the
talk's loss and performance boosting, judged by their precision and the calibration of their uncertainties."""

from hadrinv.workflows.amplitude_surrogate.config import PRESETS, AmplitudeSurrogateConfig
from hadrinv.workflows.amplitude_surrogate.run import AmplitudeSurrogateResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "amplitude-surrogate",
        "regression of |M|^2 from Lorentz invariants (Bayesian network, deep ensemble, MLP) with uncertainties, "
        "loss and performance boosting",
        AmplitudeSurrogateConfig,
        run,
        PRESETS,
    )
)

__all__ = ["AmplitudeSurrogateConfig", "AmplitudeSurrogateResult", "run", "WORKFLOW"]
