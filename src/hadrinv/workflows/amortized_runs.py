"""What the amortized-inference workflows share: estimators by name, training settings, and the
measurements every method gets (accuracy against an exact posterior, calibration, timings)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import torch
from pydantic import AfterValidator, Field

from hadrinv.inference import INN, MDN, VAIM, ConditionalDiffusion, ConditionalFlow, FlowMatching
from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.inference.diagnostics import c2st, ellipsoid_coverage, hpd_coverage, marginal_coverage, mmd
from hadrinv.inference.mixture import EstimatorMixture
from hadrinv.inference.options import check_estimator_options
from hadrinv.workflows.execution import Strict, WorkflowConfig, thread_limit

ESTIMATOR_CLASSES: dict[str, type[AmortizedEstimator]] = {
    "vaim": VAIM,
    "mdn": MDN,
    "inn": INN,
    "flow": ConditionalFlow,
    "diffusion": ConditionalDiffusion,
    "flow_matching": FlowMatching,
}
MethodName = Literal["vaim", "mdn", "inn", "flow", "diffusion", "flow_matching"]
COVERAGE_LEVELS = (0.68, 0.95)


class TrainingConfig(Strict):
    max_epochs: int = Field(400, ge=1)
    batch_size: int = Field(256, ge=2)
    learning_rate: float = Field(1e-3, gt=0)
    patience: int = Field(20, ge=1, description="epochs without a better validation loss before stopping")
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    lr_decay: float = Field(
        0.5, gt=0, le=1, description="learning rate x this after patience // 3 epochs without improvement"
    )
    lr_schedule: Literal["plateau", "cosine"] = Field(
        "plateau",
        description="plateau: the lr_decay rule; cosine: a half cosine from learning_rate to zero over max_epochs",
    )


# the talk's DDPM: T = 1000, beta 1e-4 .. 0.02, 6 MLP blocks of 256 units with FiLM conditioning; samples by
# deterministic DDIM on 100 of the 1000 steps (sampling_steps null: 1000 ancestral steps)
TALK_DIFFUSION = {"steps": 1000, "beta_min": 1e-4, "beta_max": 0.02, "hidden": 256, "blocks": 6, "sampling_steps": 100}


def embedded(kind: str, features: int, hidden: int, /, *, count: bool = False, **options) -> dict:
    """Estimator options with an embedding network ("mlp", "set", ...) of ``features`` outputs and ``hidden``
    units; count: a set embedding that sees, and hands on, log(number of points)."""
    embedding = {"features": features, "hidden": hidden}
    if count:
        embedding.update(count_feature=True, count_output=True)
    return {**options, "embedding": kind, "embedding_options": embedding}


def default_method_training() -> dict[str, dict]:
    # denoising losses are noisy and keep improving slowly: diffusion and flow matching need more patience
    return {"diffusion": {"patience": 40, "max_epochs": 1000}, "flow_matching": {"patience": 40, "max_epochs": 1000}}


def training_for(method: str, training: TrainingConfig, overrides: dict[str, dict], kind: str | None = None) -> dict:
    """The training settings of one method: ``training``, then ``overrides[method]``, then, for a workflow
    with several kinds of one method (dis-pdf's grid and cloud flows), ``overrides["kind/method"]``."""
    specific = overrides.get(f"{kind}/{method}", {}) if kind else {}
    return TrainingConfig.model_validate(
        {**training.model_dump(), **overrides.get(method, {}), **specific}
    ).model_dump()


def _check_method_training(overrides: dict[str, dict]) -> dict[str, dict]:
    for key, changes in overrides.items():
        if not isinstance(changes, dict):
            raise ValueError(f"{key}: expected a mapping of training settings")
        unknown = sorted(set(changes) - set(TrainingConfig.model_fields))
        if unknown:
            raise ValueError(
                f"{key}.{unknown[0]}: unknown training setting (settings: {', '.join(TrainingConfig.model_fields)})"
            )
        TrainingConfig.model_validate(changes)
    return overrides


def _check_options_by_method(options: dict[str, dict]) -> dict[str, dict]:
    for method, values in options.items():
        if method not in ESTIMATOR_CLASSES:
            raise ValueError(f"{method}: unknown method; choose from {', '.join(ESTIMATOR_CLASSES)}")
        check_estimator_options(ESTIMATOR_CLASSES[method], values, method)
    return options


# options of estimators by method name, checked against each estimator's constructor when the config loads
EstimatorOptions = Annotated[dict[str, dict], AfterValidator(_check_options_by_method)]
MethodTraining = Annotated[dict[str, dict], AfterValidator(_check_method_training)]


def options_of(estimator_class: type[AmortizedEstimator]):
    """A config field type: one estimator's options, checked against its constructor when the config loads."""
    return Annotated[dict, AfterValidator(lambda options: check_estimator_options(estimator_class, options))]


class AmortizedRunConfig(WorkflowConfig):
    """Settings every amortized-inference workflow has; a workflow's config adds its own."""

    ensemble: ClassVar[str | None] = (
        "members of each posterior estimator, a deep ensemble (unset: each estimator's own `members`)"
    )

    training: TrainingConfig = TrainingConfig()
    method_training: MethodTraining = Field(
        default_factory=default_method_training, description="per-method changes to training"
    )


@dataclass
class MethodTableResult:
    """A run whose terminal summary is one row per method: a label, then ``table_keys`` of its metrics."""

    out: Path
    metrics: dict
    first_column: ClassVar[str] = "method"
    table_keys: ClassVar[tuple[str, ...]] = ()

    def summary_columns(self) -> list[str]:
        return [self.first_column, *self.table_keys]

    def row(self, label: str, metrics: dict) -> tuple[str, ...]:
        return (label, *("-" if metrics.get(k) is None else f"{metrics[k]:.3g}" for k in self.table_keys))


def start_task(problem, simulations: int, seed: int, threads: int | None) -> tuple[torch.Generator, torch.Tensor]:
    """The start of a training task: its share of the cores, its seeds, and the prior draw of its simulations
    (in this order, so that a task's numbers depend on its seed alone)."""
    thread_limit(threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    return generator, problem.sample_prior(simulations, generator)


def with_members(options: dict, members: int | None) -> dict:
    """An estimator's options with ``execution.members``, where given, as its ensemble size."""
    return options if members is None else {**options, "members": members}


def build_estimator(
    method: str, theta_dim: int, x_dim: int, options: dict | None = None, **common
) -> AmortizedEstimator | EstimatorMixture:
    """options["members"] = K > 1 gives a deep ensemble of K such estimators (`EstimatorMixture`)."""
    if method not in ESTIMATOR_CLASSES:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(ESTIMATOR_CLASSES)}")
    options = dict(options or {})
    members = int(options.pop("members", 1))
    if members > 1:
        return EstimatorMixture.build(
            ESTIMATOR_CLASSES[method],
            members,
            theta_dim,
            x_dim,
            seed=int(torch.initial_seed()) % 2**31,
            **options,
            **common,
        )
    return ESTIMATOR_CLASSES[method](theta_dim, x_dim, **options, **common)


def timed_sample(estimator: AmortizedEstimator, x: torch.Tensor, n: int) -> tuple[torch.Tensor, float]:
    started = time.perf_counter()
    samples = estimator.sample(x, n)
    return samples, time.perf_counter() - started


def calibration(estimator: AmortizedEstimator, theta: torch.Tensor, x: torch.Tensor, n_samples: int) -> dict:
    """Expected coverage on held-out pairs: marginal central intervals and joint credible ellipsoids
    (from samples) for every method, and the joint highest-density region where the method has a
    closed-form density (flow, MDN; flow matching's density is an ODE integral per sample, too costly
    for cases x samples evaluations)."""
    samples, seconds = timed_sample(estimator, x, n_samples)
    marginal = marginal_coverage(samples, theta, COVERAGE_LEVELS)
    out = {f"coverage_{int(round(100 * a))}": float(marginal[a]) for a in COVERAGE_LEVELS}
    out["coverage_seconds"] = seconds
    ellipsoid = ellipsoid_coverage(samples, theta, COVERAGE_LEVELS)
    out.update({f"ellipsoid_coverage_{int(round(100 * a))}": float(ellipsoid[a]) for a in COVERAGE_LEVELS})
    if estimator.has_log_prob and estimator.cheap_log_prob:
        joint = hpd_coverage(estimator, theta, x, COVERAGE_LEVELS, n_samples=n_samples)
        out.update({f"hpd_coverage_{int(round(100 * a))}": float(joint[a]) for a in COVERAGE_LEVELS})
    return out, samples


def accuracy_against_exact(samples: torch.Tensor, exact: torch.Tensor, seed: int) -> dict:
    n = min(len(samples), len(exact))
    return {"c2st": float(c2st(exact[:n], samples[:n], seed=seed)), "mmd": float(mmd(exact[:n], samples[:n]))}
