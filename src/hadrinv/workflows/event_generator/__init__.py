"""Generative event generators trained on a Monte Carlo sample: a normalising flow, DiscFlow (the flow with
classifier reweighting) and the optimal-transport attention generator with the Johnson-SU transform, judged on
held-out events by the same metrics, optionally after a detector efficiency."""

from hadrinv.workflows.event_generator.config import PRESETS, EventGeneratorConfig
from hadrinv.workflows.event_generator.run import EventGeneratorResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "event-generator",
        "generative networks for event samples (flow, DiscFlow, OT attention + Johnson-SU), judged on held-out "
        "events; detector efficiency",
        EventGeneratorConfig,
        run,
        PRESETS,
    )
)

__all__ = ["EventGeneratorConfig", "EventGeneratorResult", "run", "WORKFLOW"]
