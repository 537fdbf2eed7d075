"""How a workflow's repeated work runs: one typed section, ``execution``, in every workflow's config.

The device, the executor (Ray, local or an existing cluster, or serial in this process), the parallel
workers, torch threads per task and, where a workflow has an ensemble, its number of members. The CLI
maps ``--device``, ``--serial``, ``--workers``, ``--ray-address`` and ``--ensemble``/``--members`` onto
this section for every workflow alike.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """A settings block that refuses unknown keys (a typo stops the run before any work)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ExecutionConfig(Strict):
    device: Literal["cpu", "cuda"] = "cpu"
    executor: Literal["ray", "serial"] = Field(
        "ray", description="ray: parallel tasks (local or a cluster); serial: in this process"
    )
    workers: int | None = Field(None, ge=1, description="parallel tasks on a local Ray (default: CPU count)")
    ray_address: str | None = Field(None, description="an existing Ray cluster, e.g. ray://head:10001 or auto")
    threads_per_task: int | None = Field(
        1, ge=1, description="torch threads inside each parallel task (None: torch's default)"
    )
    members: int | None = Field(None, ge=1, description="ensemble members, for workflows that have an ensemble")

    def task_options(self, on_device: bool = True) -> dict[str, Any]:
        """Keyword arguments of `hadrinv.inference.ensemble.run_tasks`; on_device=False for tasks that run
        on the CPU whatever the device (simulations), which then ask Ray for no GPU."""
        return {
            "executor": self.executor,
            "workers": self.workers,
            "ray_address": self.ray_address,
            "gpus_per_task": 1.0 if on_device and self.device == "cuda" else 0.0,
        }


# how tasks are run does not change the numbers: these settings may differ when a run is resumed
RESUMABLE_KEYS = (
    "execution.executor",
    "execution.workers",
    "execution.ray_address",
    "execution.threads_per_task",
    "out",
)


class WorkflowConfig(Strict):
    """Base of every workflow's config: seed, output folder and the execution section.

    Class attributes a workflow sets: ``ensemble`` says what the members are (None: no ensemble, and
    ``execution.members`` is refused), ``default_members`` fills ``execution.members`` when it is not
    given, and ``devices`` lists the devices the workflow runs on.
    """

    ensemble: ClassVar[str | None] = None
    default_members: ClassVar[int | None] = None
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")

    seed: int = 0
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)

    @model_validator(mode="after")
    def _execution_fits_workflow(self):
        if self.execution.members is not None and self.ensemble is None:
            raise ValueError("execution.members: this workflow has no ensemble")
        if self.execution.members is None and self.default_members is not None:
            self.execution.members = self.default_members
        if self.execution.device not in self.devices:
            raise ValueError(
                f"execution.device: {self.execution.device!r} is not supported here; use {' or '.join(self.devices)}"
            )
        return self


def require_device(device: str) -> None:
    """Stop before any work when --device cuda is asked for and torch sees no GPU."""
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but torch sees no CUDA device")


def thread_limit(threads: int | None) -> None:
    """Each parallel task uses its share of the cores (Ray workers otherwise oversubscribe them)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
