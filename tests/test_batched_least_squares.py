"""Batched Levenberg-Marquardt over independent groups against scipy, one group at a time."""

from __future__ import annotations

import numpy as np
import scipy.optimize
import torch

from hadrinv.inference.batched_least_squares import grouped_least_squares


def test_each_group_reaches_scipys_minimum():
    rng = np.random.default_rng(3)
    n_groups, per_group = 7, 15
    t = np.tile(np.linspace(0.0, 3.0, per_group), n_groups)
    group = np.repeat(np.arange(n_groups), per_group)
    a, b = rng.uniform(1.0, 3.0, n_groups), rng.uniform(0.3, 2.0, n_groups)
    y = a[group] * np.exp(-b[group] * t) + 0.02 * rng.standard_normal(len(t))
    t_, y_, g_ = torch.as_tensor(t), torch.as_tensor(y), torch.as_tensor(group)

    def residuals(x: torch.Tensor) -> torch.Tensor:  # (B, G, 2) -> (B, n_points)
        p = x[:, g_]
        return (p[..., 0] * torch.exp(-p[..., 1] * t_) - y_) / 0.02

    x0 = torch.tensor([[[1.0, 1.0]] * n_groups, [[2.5, 0.2]] * n_groups], dtype=torch.float64)
    result = grouped_least_squares(residuals, x0, g_)
    assert bool(result.converged.all())
    for k in range(n_groups):
        tk, yk = t[group == k], y[group == k]
        expected = scipy.optimize.least_squares(
            lambda p, tk=tk, yk=yk: (p[0] * np.exp(-p[1] * tk) - yk) / 0.02, [1.0, 1.0], xtol=1e-14, ftol=1e-14
        )
        for start in range(2):  # both starts reach the one minimum
            np.testing.assert_allclose(result.x[start, k].numpy(), expected.x, rtol=1e-6)
            assert abs(float(result.chi2[start, k]) - 2 * expected.cost) < 1e-6 * (1 + 2 * expected.cost)
