"""hadrinv: inverse problems of hadron and particle physics with physics-constrained deep learning.

Layers, each importing only those before it: ``hadrinv.physics`` (batched, differentiable forward
physics), ``hadrinv.data`` (files, validation, simulation), ``hadrinv.models`` (parameterised forward
models), ``hadrinv.inference`` (generic estimators, fits, samplers), ``hadrinv.workflows`` (one study per
workflow; ``hadrinv.run(name, **settings)`` runs one).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hadrinv")
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"

_SUBPACKAGES = ("physics", "data", "models", "inference", "workflows")


def run(name: str, **settings):
    """Run a workflow by name and return its result; see `hadrinv.workflows.run`."""
    from hadrinv.workflows import run as run_workflow

    return run_workflow(name, **settings)


def __getattr__(name: str):
    # subpackages load on first use: `import hadrinv` stays light (no torch) for the version and the CLI's help
    if name in _SUBPACKAGES:
        return importlib.import_module(f"hadrinv.{name}")
    raise AttributeError(f"module 'hadrinv' has no attribute {name!r}")


__all__ = ["__version__", "run", *_SUBPACKAGES]
