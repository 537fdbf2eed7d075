"""Random restarts: many fits of one objective from random starting points, run by
`hadrinv.inference.ensemble.run_tasks` (Ray or serial, checkpointed), each fit by
`hadrinv.inference.minimize.find_minimum` or a front end with the same signature.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hadrinv.inference.ensemble import run_tasks
from hadrinv.inference.minimize import Bounds, MinimizeResult, bounds_arrays, find_minimum

__all__ = ["RestartResult", "given", "random_restarts", "restart_task", "uniform_in_bounds"]


@dataclass
class RestartResult:
    """Fits from random starting points, valid fits first, each group sorted by fval.

    best: the valid fit with the lowest fval (the lowest finite one if none is valid); n_at_best: how many
    valid fits reached it within ``tolerance`` in the objective. Unpacks as (fits, best, n_at_best).
    """

    fits: list[MinimizeResult]
    best: MinimizeResult
    n_at_best: int
    tolerance: float

    @property
    def n(self) -> int:
        return len(self.fits)

    @property
    def n_valid(self) -> int:
        return sum(f.is_valid for f in self.fits)

    def summary(self) -> str:
        return (
            f"{self.n_at_best} of {self.n} restarts reached the minimum (fval = {self.best.fval:.6f} within "
            f"{self.tolerance:g}; {self.n_valid} valid fits)"
        )

    def __iter__(self):
        return iter((self.fits, self.best, self.n_at_best))


def given(objective):
    """Factory returning an already built objective (for `random_restarts` with an instance)."""
    return objective


def restart_task(
    make_objective: Callable[..., Any],
    objective_kwargs: dict,
    x0: list[float],
    fit_options: dict,
    threads: int | None = None,
    fit: Callable[..., MinimizeResult] | None = None,
) -> dict:
    """One restart: (fit or find_minimum)(make_objective(**objective_kwargs), x0, **fit_options).to_dict()."""
    if threads:
        torch.set_num_threads(threads)
    return (fit or find_minimum)(make_objective(**objective_kwargs), x0, **fit_options).to_dict()


def uniform_in_bounds(bounds: Bounds) -> Callable[[torch.Generator], torch.Tensor]:
    """sample_start drawing each parameter uniformly between its bounds (all of them finite)."""
    lo, hi = bounds_arrays(bounds, len(list(bounds)))
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError("random starts within bounds need finite bounds on every parameter")
    low, width = torch.as_tensor(lo), torch.as_tensor(hi - lo)
    return lambda generator: low + width * torch.rand(len(lo), generator=generator, dtype=torch.float64)


def random_restarts(
    make_objective: Callable[..., Any],
    sample_start: Callable[[torch.Generator], Any] | None,
    n: int,
    executor: str = "ray",
    seed: int = 0,
    *,
    objective_kwargs: dict | None = None,
    tolerance: float = 1e-3,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    workers: int | None = None,
    ray_address: str | None = None,
    threads: int | None = None,
    on_done: Callable[[int, dict], None] | None = None,
    fit: Callable[..., MinimizeResult] = find_minimum,
    result_type: type[MinimizeResult] = MinimizeResult,
    **fit_options,
) -> RestartResult:
    """n fits fit(make_objective(**objective_kwargs), x0, **fit_options), run by `run_tasks`.

    The starts x0 = sample_start(generator) come from one torch.Generator seeded by ``seed``, drawn in the
    driver, so they do not depend on the executor; sample_start None draws uniformly within
    ``fit_options['bounds']``. Each task rebuilds the objective from the picklable top-level factory
    ``make_objective`` and its ``objective_kwargs`` (shipped once per Ray worker through the object store), so
    closures and large caches are not pickled per task; to ship a built objective instead, pass `given` and
    objective_kwargs={'objective': it}. ``fit`` must be a top-level function returning a ``result_type``.
    Each result is checkpointed in ``checkpoint_dir`` (a temporary directory if None); resume=True loads
    finished ones. threads: torch threads per task (default 1 on Ray, untouched when serial).
    """
    if sample_start is None:
        if fit_options.get("bounds") is None:
            raise ValueError("without bounds, random starts need sample_start")
        sample_start = uniform_in_bounds(fit_options["bounds"])
    generator = torch.Generator().manual_seed(int(seed))
    as_start = lambda s: np.asarray(torch.as_tensor(s, dtype=torch.float64).reshape(-1).numpy(), dtype=float)
    starts = [as_start(sample_start(generator)) for _ in range(n)]
    if threads is None and executor == "ray":
        threads = 1
    shared = {
        "make_objective": make_objective,
        "objective_kwargs": dict(objective_kwargs or {}),
        "fit_options": dict(fit_options),
        "threads": threads,
        "fit": fit,
    }
    per_task = [{"x0": s.tolist()} for s in starts]

    def run(directory: Path) -> list[dict]:
        files = [directory / f"restart_{i:04d}.pt" for i in range(n)]
        return run_tasks(
            restart_task,
            shared,
            per_task,
            files,
            resume=resume,
            executor=executor,
            workers=workers,
            ray_address=ray_address,
            on_done=on_done,
        )

    if checkpoint_dir is None:
        with tempfile.TemporaryDirectory(prefix="restarts_") as tmp:
            raw = run(Path(tmp))
    else:
        raw = run(Path(checkpoint_dir))
    fits = [result_type.from_dict(r) for r in raw]
    fits.sort(key=lambda f: (not f.is_valid, f.fval if math.isfinite(f.fval) else math.inf))
    best = fits[0]
    n_at_best = sum(1 for f in fits if f.is_valid and best.is_valid and f.fval <= best.fval + tolerance)
    return RestartResult(fits=fits, best=best, n_at_best=n_at_best, tolerance=tolerance)
