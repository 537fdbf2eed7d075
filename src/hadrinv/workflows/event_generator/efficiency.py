"""A detector efficiency given as a user's Python function, applied to event tables.

``FILE.py:FUNCTION`` names a function of the table's columns (keyword arguments or one dict, name -> (N,)
float64 numpy array) that returns one efficiency in [0, 1] per event (booleans for accept flags). Whatever goes
wrong (the file, the function, its output) stops with one line that names the file and the function.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.event_tables import EventTable
from hadrinv.data.validation import first_line


class EfficiencyError(ValueError):
    pass


def load_efficiency(spec: str) -> tuple[str, Callable]:
    """(label, function) of ``FILE.py:FUNCTION``."""
    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise EfficiencyError(f"efficiency {spec!r}: expected FILE.py:FUNCTION")
    file = Path(path)
    if not file.is_file():
        raise EfficiencyError(f"efficiency {spec}: no such file {file}")
    module_spec = importlib.util.spec_from_file_location(f"hadrinv_efficiency_{file.stem}", file)
    if module_spec is None or module_spec.loader is None:
        raise EfficiencyError(f"efficiency {spec}: {file} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: any error it raises is reported, in one line
        raise EfficiencyError(f"efficiency {spec}: importing {file} failed ({first_line(exc)})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise EfficiencyError(f"efficiency {spec}: {file} has no function {name}")
    return spec, function


def _call(function: Callable, columns: dict[str, np.ndarray]):
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        parameters = {}
    # the columns by name when the parameters are column names (all of them with **rest); else one dict
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return function(**columns)
    if parameters and all(name in columns for name in parameters):
        return function(**{name: columns[name] for name in parameters})
    return function(columns)


def evaluate_efficiency(label: str, function: Callable, table: EventTable) -> torch.Tensor:
    """Efficiencies (N,) float64 in [0, 1] of the table's events."""
    columns = {name: values.copy() for name, values in table.column_dict().items()}
    try:
        raw = _call(function, columns)
        eff = np.asarray(raw.detach().cpu() if hasattr(raw, "detach") else raw, dtype=np.float64).reshape(-1)
    except Exception as exc:  # a user's function: any error it raises is reported, in one line
        raise EfficiencyError(f"efficiency {label}: failed on {table.path} ({first_line(exc)})") from None
    if eff.shape != (len(table),):
        raise EfficiencyError(f"efficiency {label}: returned {eff.size} values for {len(table)} events of {table.path}")
    bad = ~((eff >= 0) & (eff <= 1))
    if bad.any():
        i = int(np.argmax(bad))
        raise EfficiencyError(
            f"efficiency {label}: event {i} of {table.path} has efficiency {eff[i]!r}, outside [0, 1] "
            f"[{int(bad.sum())} of {len(eff)} events]"
        )
    if not eff.any():
        raise EfficiencyError(f"efficiency {label}: zero for every event of {table.path}")
    return torch.from_numpy(eff)


def accept(efficiency: torch.Tensor, seed: int) -> torch.Tensor:
    """Accept flags (N,) bool: each event kept with its efficiency (a seeded draw, the same on every run)."""
    draw = torch.rand(len(efficiency), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return draw < efficiency
