"""Active learning moves the training set to where the posterior was wrong."""

from __future__ import annotations

import torch

from hadrinv.inference import MDN
from hadrinv.inference.active_learning import active_learning, posterior_predictive_misfit


def simulate(theta: torch.Tensor) -> torch.Tensor:
    return theta + 0.05 * torch.randn_like(theta)


def test_active_learning_repairs_a_model_trained_on_too_narrow_a_range():
    # trained on theta in [0, 1]; the data to analyse have theta in [1.5, 2.5]: the posterior mean must
    # end near the truth, though no simulation in the first training set came near it
    torch.manual_seed(0)
    theta0 = torch.rand(1500, 1)
    x0 = simulate(theta0)
    truth = torch.linspace(1.5, 2.5, 12).unsqueeze(-1)
    targets = simulate(truth)
    mdn = MDN(1, 1, components=3, hidden=32, bounds=([-1.0], [4.0]))
    fit_options = {"max_epochs": 60, "patience": 8}
    mdn.fit(theta0, x0, **fit_options)

    def error(estimator) -> float:
        return float((estimator.sample(targets, 200).mean(1) - truth).abs().mean())

    result = active_learning(
        mdn,
        simulate,
        theta0,
        x0,
        targets,
        rounds=4,
        per_round=6,
        samples_per_candidate=30,
        probe=4,
        widen=0.5,
        scale=0.05,
        clip=lambda t: t.clamp(-0.99, 3.99),
        evaluate=error,
        fit_options=fit_options,
    )
    assert result.simulations[0] == 1500
    assert result.simulations[-1] == 1500 + 4 * (12 * 4 + 6 * 30)  # every simulation counted, probes included
    assert result.metric[0] > 0.3  # the model extrapolated badly
    assert result.metric[-1] < 0.1 and result.metric[-1] < result.metric[0] / 4


def test_misfit_is_small_where_the_posterior_explains_the_data():
    torch.manual_seed(1)
    theta = torch.rand(2000, 1) * 3
    mdn = MDN(1, 1, components=2, hidden=32)
    mdn.fit(theta, simulate(theta), max_epochs=40, patience=6)
    inside, outside = torch.tensor([[1.5]]), torch.tensor([[6.0]])
    score, probed, simulated = posterior_predictive_misfit(
        mdn, simulate, torch.cat([inside, outside]), probe=50, scale=0.05
    )
    assert probed.shape == (100, 1) and simulated.shape == (100, 1)
    assert score[0] < 5 and score[1] > 20 * score[0]
