"""A run's output folder: resolved config first, results as they come, metrics.json last.

metrics.json is the mark of a finished run: it is removed when a new run starts and written atomically
at the very end, so an interrupted run never looks complete. Checkpoints live in OUT/checkpoints/: a new
run clears them (they belong to the previous config), --resume keeps them and requires the same config.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from pydantic import BaseModel

from hadrinv.data.io import atomic_write_json, atomic_write_text

METRICS = "metrics.json"
CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"


class ResumeMismatch(ValueError):
    pass


def prepare_output(out: str | Path, config: BaseModel, resume: bool, execution_keys: tuple[str, ...] = ()) -> Path:
    """execution_keys: dotted settings that change how a run executes, not its results (may differ on resume)."""
    out = Path(out)
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    previous = out / CONFIG
    if resume and previous.is_file() and _without(yaml.safe_load(previous.read_text()), execution_keys) != _without(yaml.safe_load(text), execution_keys):
        raise ResumeMismatch(f"{previous}: the config differs from the interrupted run's; resume with the same settings or use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS).unlink(missing_ok=True)
    if not resume:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    atomic_write_text(previous, text)
    return out


def finish_output(out: Path, metrics: dict) -> Path:
    return atomic_write_json(out / METRICS, metrics)


def _without(settings: dict, dotted_keys: tuple[str, ...]) -> dict:
    for dotted in dotted_keys:
        *parents, last = dotted.split(".")
        node = settings
        for key in parents:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return settings
