"""Active learning for amortized estimators: add simulations where the current posterior is worst.

The talk's diffusion example: a model trained on a limited parameter range fails on observations from
outside it; a few rounds of targeted simulation repair it at a fraction of the cost of covering a
larger range uniformly. Each round:

1. for every candidate observation x_c (the data to be analysed, or a pool of them) draw ``probe``
   posterior samples and simulate them: the posterior-predictive misfit
   score(x_c) = mean_s |x_s - x_c|^2 / scale^2 says how badly the posterior explains x_c
   (large where the model is extrapolating or uncertain);
2. for the ``per_round`` worst candidates draw more posterior samples, widened by ``widen`` times the
   posterior spread so the new simulations bracket the right answer, and simulate them;
3. add every simulation of the round (the probes too: none is wasted) and continue training.

Every simulation is counted, so ``history`` (simulations used vs the metric) compares fairly with
adding the same number of simulations from a broad prior (``random_acquisition``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from hadrinv.inference.amortized import AmortizedEstimator


@dataclass
class ActiveLearningResult:
    estimator: AmortizedEstimator
    simulations: list[int] = field(default_factory=list)  # cumulative simulator calls after each round
    metric: list[float] = field(default_factory=list)  # evaluate(estimator) after each round
    chosen: list[torch.Tensor] = field(default_factory=list)  # candidate indices chosen each round


def posterior_predictive_misfit(
    estimator: AmortizedEstimator,
    simulate: Callable[[torch.Tensor], torch.Tensor],
    x_candidates: torch.Tensor,
    probe: int,
    scale: float | torch.Tensor = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(score per candidate, probed theta (n_c * probe, d), their simulations)."""
    theta = estimator.sample(x_candidates, probe)  # (n_c, probe, d)
    flat = theta.reshape(-1, theta.shape[-1])
    x_sim = simulate(flat)
    misfit = (
        ((x_sim.reshape(*theta.shape[:2], -1) - x_candidates.reshape(len(x_candidates), 1, -1)) / scale).pow(2).sum(-1)
    )
    return misfit.mean(1), flat, x_sim


def active_learning(
    estimator: AmortizedEstimator,
    simulate: Callable[[torch.Tensor], torch.Tensor],
    theta_train: torch.Tensor,
    x_train: torch.Tensor,
    x_candidates: torch.Tensor,
    *,
    rounds: int = 5,
    per_round: int = 10,
    samples_per_candidate: int = 100,
    probe: int = 4,
    widen: float = 0.5,
    scale: float | torch.Tensor = 1.0,
    clip: Callable[[torch.Tensor], torch.Tensor] | None = None,
    evaluate: Callable[[AmortizedEstimator], float] | None = None,
    fit_options: dict | None = None,
    seed: int = 0,
) -> ActiveLearningResult:
    """Run ``rounds`` rounds on a fitted estimator (see the module docstring). ``clip`` maps proposed
    parameters into the simulator's domain; ``evaluate`` measures the estimator after each round."""
    fit_options = dict(fit_options or {})
    generator = torch.Generator().manual_seed(seed)
    result = ActiveLearningResult(estimator)
    used = len(theta_train)
    if evaluate:
        result.simulations.append(used)
        result.metric.append(float(evaluate(estimator)))
    for round_index in range(rounds):
        torch.manual_seed(seed + 1000 * (round_index + 1))
        score, probed_theta, probed_x = posterior_predictive_misfit(estimator, simulate, x_candidates, probe, scale)
        worst = torch.argsort(score, descending=True)[:per_round]
        centre = estimator.sample(x_candidates[worst], samples_per_candidate)  # (k, m, d)
        spread = centre.std(1, keepdim=True).clamp(min=1e-6)
        proposed = (centre + widen * spread * torch.randn(centre.shape, generator=generator)).reshape(
            -1, centre.shape[-1]
        )
        if clip is not None:
            proposed = clip(proposed)
        new_theta = torch.cat([probed_theta, proposed])
        new_x = torch.cat([probed_x, simulate(proposed)])
        theta_train, x_train = torch.cat([theta_train, new_theta]), torch.cat([x_train, new_x])
        used += len(new_theta)
        estimator.fit(theta_train, x_train, seed=seed + round_index + 1, **fit_options)
        result.chosen.append(worst)
        if evaluate:
            result.simulations.append(used)
            result.metric.append(float(evaluate(estimator)))
    return result


def random_acquisition(
    estimator: AmortizedEstimator,
    simulate: Callable[[torch.Tensor], torch.Tensor],
    sample_prior: Callable[[int], torch.Tensor],
    theta_train: torch.Tensor,
    x_train: torch.Tensor,
    budgets: list[int],
    *,
    evaluate: Callable[[AmortizedEstimator], float],
    fit_options: dict | None = None,
    seed: int = 0,
) -> ActiveLearningResult:
    """The baseline: reach each cumulative simulation budget by drawing from ``sample_prior``."""
    fit_options = dict(fit_options or {})
    result = ActiveLearningResult(estimator)
    used = len(theta_train)
    result.simulations.append(used)
    result.metric.append(float(evaluate(estimator)))
    for i, budget in enumerate(budgets):
        extra = budget - used
        if extra > 0:
            new_theta = sample_prior(extra)
            theta_train, x_train = torch.cat([theta_train, new_theta]), torch.cat([x_train, simulate(new_theta)])
            used = budget
            estimator.fit(theta_train, x_train, seed=seed + i + 1, **fit_options)
        result.simulations.append(used)
        result.metric.append(float(evaluate(estimator)))
    return result
