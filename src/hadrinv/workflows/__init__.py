"""Workflows: one study each, with a typed config (defaults, presets `quick` and `paper`), a shared
execution section, and ``run(config)`` returning a result with a summary and metrics.

From Python::

    import hadrinv
    result = hadrinv.workflows.run("pipi-amplitude", preset="quick", out="runs/pipi", execution={"executor": "serial"})
    result.metrics["fit"]["delta0_rms_error_deg"]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hadrinv.workflows.registry import RunContext, Workflow, all_workflows, get_workflow


def run(
    name: str,
    preset: str | None = None,
    config: str | Path | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    log=None,
    **settings: Any,
):
    """Run workflow ``name``: defaults < ``preset`` < ``config`` (a YAML file) < ``settings`` (keys as in the
    run's config.yaml, nested as dicts, e.g. ``execution={"members": 4}``). Returns the workflow's result."""
    workflow = get_workflow(name)
    resolved = workflow.config(preset, config, settings)
    context = RunContext(resume=resume, force=force, progress=False, log=log or (lambda message: None))
    return workflow.run(resolved, context)


__all__ = ["run", "get_workflow", "all_workflows", "Workflow", "RunContext"]
