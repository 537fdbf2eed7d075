"""A run's output folder: resolved config first, results as they come, metrics.json last.

metrics.json is the mark of a finished run: it is removed when a new run starts and written atomically
at the very end, so an interrupted run never looks complete. A run whose method did not converge writes
its metrics to metrics.NOT-CONVERGED.json instead, so it does not look complete either. Checkpoints
live in OUT/checkpoints/: a new run clears them (they belong to the previous config), --resume keeps
them and requires the same config. A run claims its folder (OUT/.hadrinv-run) and never clears a folder
that another run or a user owns.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from pydantic import BaseModel

from hadrinv.data.io import atomic_write_json, atomic_write_text
from hadrinv.workflows.execution import RESUMABLE_KEYS

METRICS = "metrics.json"
NOT_CONVERGED = "metrics.NOT-CONVERGED.json"
CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"


MARKER = ".hadrinv-run"  # the config class of the run that owns the folder


class ResumeMismatch(ValueError):
    pass


class OutputInUse(ValueError):
    pass


def prepare_output(out: str | Path, config: BaseModel, context, resumable: tuple[str, ...] = RESUMABLE_KEYS) -> Path:
    """Claim the output folder for a run of ``config`` (``context``: resume and force flags).

    A folder that holds anything else than an unfinished run of the same workflow is refused unless
    ``context.force`` (a finished run too: ``context.resume`` reuses its results). ``resumable``: dotted
    settings that change how a run executes, not its results, and may differ on resume.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputInUse(f"{out}: is a file; give a folder for the run's outputs")
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    previous = out / CONFIG
    kind = type(config).__name__
    if out.is_dir() and any(out.iterdir()) and not context.force:
        marker = out / MARKER
        ours = marker.is_file() and marker.read_text().strip() == kind
        if not ours and not (context.resume and previous.is_file()):
            raise OutputInUse(
                f"{out}: the folder holds something else than a run of this workflow; use another --out, or --force to "
                "write into it (its checkpoints/ and metrics.json are replaced)"
            )
        if ours and (out / METRICS).is_file() and not context.resume:
            raise OutputInUse(
                f"{out}: holds a finished run; use another --out, --resume to reuse its results, or --force to run "
                "again"
            )
    if context.resume and previous.is_file():
        difference = _first_difference(
            _without(yaml.safe_load(previous.read_text()) or {}, resumable), _without(yaml.safe_load(text), resumable)
        )
        if difference:
            raise ResumeMismatch(f"{previous}: {difference}; resume with the run's settings or use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / METRICS).unlink(missing_ok=True)
    (out / NOT_CONVERGED).unlink(missing_ok=True)
    if not context.resume:
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    atomic_write_text(out / MARKER, kind + "\n")
    atomic_write_text(previous, text)
    return out


def _first_difference(before, now, path: str = "") -> str | None:
    """'key: X in the interrupted run, Y now' for the first setting that differs (dotted key), or None."""
    if isinstance(before, dict) and isinstance(now, dict):
        for key in [*before, *(k for k in now if k not in before)]:
            found = _first_difference(before.get(key), now.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if before != now:
        return f"{path or 'settings'} differs: {before!r} in the interrupted run, {now!r} now"
    return None


def finish_output(out: Path, metrics: dict, failures: list[str] | None = None) -> Path:
    """Write the metrics last; with failures (one line each), as NOT_CONVERGED and without metrics.json."""
    if failures:
        return atomic_write_json(out / NOT_CONVERGED, {"not_converged": failures, **metrics})
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


class TaskProgress:
    """A rich progress bar when the terminal wants one, else log lines."""

    def __init__(self, context, total: int, description: str):
        self.context, self.bar = context, None
        if context.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(description, total=total)

    def advance(self, message: str) -> None:
        if self.bar is not None:
            self.bar.advance(self.task)
            self.bar.console.log(message)
        else:
            self.context.log(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
