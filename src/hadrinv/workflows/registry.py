"""Workflows by name: each has a typed config, presets and a run(config, context) -> result."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel


@dataclass
class RunContext:
    resume: bool = False
    force: bool = False  # write into an --out that holds something else than an unfinished run of this workflow
    progress: bool = True  # progress bars on the terminal
    log: Callable[[str], None] = print


@dataclass
class Workflow:
    name: str
    summary: str
    config_class: type[BaseModel]
    run: Callable[[BaseModel, RunContext], Any]
    presets: dict[str, dict] = field(default_factory=dict)

    def config(
        self, preset: str | None = None, config_file: str | Path | None = None, overrides: dict | None = None
    ) -> BaseModel:
        """Defaults < preset < YAML file < overrides (e.g. from the command line)."""
        merged: dict = {}
        if preset:
            if preset not in self.presets:
                raise ValueError(f"unknown preset {preset!r} for {self.name}; choose from {', '.join(self.presets)}")
            merged = deep_merge(merged, self.presets[preset])
        if config_file:
            merged = deep_merge(merged, read_settings(config_file))
        merged = deep_merge(merged, {k: v for k, v in (overrides or {}).items() if v is not None})
        return self.config_class.model_validate(merged)

    @property
    def ensemble(self) -> str | None:
        """What the ensemble's members are (None: the workflow has no ensemble)."""
        return getattr(self.config_class, "ensemble", None)


def read_settings(path: str | Path) -> dict:
    """A YAML file of settings, or ValueError with one line naming the file (and line) at fault."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        loaded = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text (YAML) file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}{where}: malformed YAML ({getattr(exc, 'problem', None) or exc})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of settings")
    return loaded


def deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


WORKFLOWS: dict[str, Workflow] = {}


def register(workflow: Workflow) -> Workflow:
    WORKFLOWS[workflow.name] = workflow
    return workflow


def get_workflow(name: str) -> Workflow:
    _load_builtin()
    if name not in WORKFLOWS:
        raise KeyError(f"unknown workflow {name!r}; available: {', '.join(sorted(WORKFLOWS))}")
    return WORKFLOWS[name]


def all_workflows() -> list[Workflow]:
    _load_builtin()
    return [WORKFLOWS[k] for k in sorted(WORKFLOWS)]


def _load_builtin() -> None:
    import hadrinv.workflows.amplitude_surrogate  # noqa: F401
    import hadrinv.workflows.dis_pdf  # noqa: F401  (each registers itself)
    import hadrinv.workflows.event_generator  # noqa: F401
    import hadrinv.workflows.femto_inverse  # noqa: F401
    import hadrinv.workflows.halqcd_potential  # noqa: F401
    import hadrinv.workflows.inverse_toys  # noqa: F401
    import hadrinv.workflows.loop_integral  # noqa: F401
    import hadrinv.workflows.mem  # noqa: F401
    import hadrinv.workflows.nis_benchmark  # noqa: F401
    import hadrinv.workflows.pipi_amplitude  # noqa: F401
    import hadrinv.workflows.pipi_isospin  # noqa: F401
    import hadrinv.workflows.pwa_fit_fractions  # noqa: F401
    import hadrinv.workflows.unfold  # noqa: F401
