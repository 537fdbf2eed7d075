"""Run many independent tasks (ensemble members, restarts, scans) through Ray, with checkpoints.

Each finished task's result is saved atomically as one checkpoint file by the driver; with resume=True
tasks whose checkpoint exists are loaded instead of rerun, so a killed run loses only unfinished tasks.
Ray runs locally by default; pass the address of an existing cluster to run there. The executor
"serial" runs the tasks in this process (debugging, tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hadrinv.data.io import atomic_torch_save, load_checkpoint


def run_tasks(
    function: Callable[..., dict],
    shared: dict[str, Any],
    per_task: list[dict[str, Any]],
    checkpoints: list[Path],
    resume: bool = False,
    executor: str = "ray",
    workers: int | None = None,
    ray_address: str | None = None,
    on_done: Callable[[int, dict], None] | None = None,
    gpus_per_task: float = 0.0,
) -> list[dict]:
    """results[i] = function(**shared, **per_task[i]), saved to checkpoints[i]."""
    results: list[dict | None] = [None] * len(per_task)
    todo = []
    for i, path in enumerate(checkpoints):
        if resume and Path(path).is_file():
            results[i] = load_checkpoint(path)
            if on_done:
                on_done(i, results[i])
        else:
            todo.append(i)

    def finish(i: int, result: dict) -> None:
        atomic_torch_save(result, checkpoints[i])
        results[i] = result
        if on_done:
            on_done(i, result)

    if executor == "serial":
        for i in todo:
            finish(i, function(**shared, **per_task[i]))
    elif executor == "ray":
        if todo:
            _run_on_ray(function, shared, per_task, todo, finish, workers, ray_address, gpus_per_task)
    else:
        raise ValueError(f"unknown executor {executor!r}; use 'ray' or 'serial'")
    return results  # type: ignore[return-value]


def _run_on_ray(function, shared, per_task, todo, finish, workers, ray_address, gpus_per_task) -> None:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers or os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    try:
        remote = ray.remote(num_cpus=1, num_gpus=gpus_per_task)(function)
        shared_ref = {k: ray.put(v) for k, v in shared.items()}
        pending = {remote.remote(**shared_ref, **per_task[i]): i for i in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                finish(pending.pop(ref), ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()
