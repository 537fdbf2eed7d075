"""The generic symmetric-kernel network and its fit (inference layer): construction guarantees and recovery."""

import math

import pytest
import torch

from hadrinv.inference.integral_kernel import SymmetricKernel, fit_integral_kernel, smooth_cutoff


def test_smooth_cutoff_is_one_inside_zero_outside_and_monotone():
    x = torch.linspace(0, 10, 1001, dtype=torch.float64)
    c = smooth_cutoff(x, radius=7.5, width=0.15)
    assert torch.all(c[x <= 7.5 - 6 * 0.15] == 1.0)
    assert torch.all(c[x >= 7.5] == 0.0)
    assert torch.all(c.diff() <= 0)


@pytest.mark.parametrize("mode", ["both", "either"])
def test_kernel_is_symmetric_and_vanishes_past_the_regulator_by_construction(mode):
    torch.manual_seed(0)
    kernel = SymmetricKernel(features=8, hidden=16, regulator_radius=3.0, regulator=mode).double()
    for (
        p
    ) in kernel.parameters():  # a random, non-zero kernel (the zero-initialised output layer would make this trivial)
        torch.nn.init.normal_(p, std=0.5)
    x = torch.rand(5000, dtype=torch.float64) * 6
    y = torch.rand(5000, dtype=torch.float64) * 6
    with torch.no_grad():
        kxy, kyx = kernel(x, y), kernel(y, x)
        M = kernel.matrix(torch.linspace(0.05, 6, 120, dtype=torch.float64))
    assert torch.equal(kxy, kyx)
    assert torch.equal(M, M.T)
    outside = (x > 3) & (y > 3) if mode == "both" else (x > 3) | (y > 3)
    assert torch.all(kxy[outside] == 0)
    inside = (x < 2) & (y < 2)
    assert float(kxy[inside].abs().min()) >= 0 and float(kxy[inside].abs().max()) > 1e-3
    if mode == "both":  # the talk's condition leaves U(r > R, r' < R) free
        assert float(kxy[(x > 3) & (y < 2)].abs().max()) > 1e-3


def test_fit_recovers_the_action_of_a_separable_kernel_on_unseen_functions():
    torch.manual_seed(1)
    x = torch.linspace(0.1, 8.0, 80, dtype=torch.float64)
    measure = 0.1 * x**2
    true = -0.5 * torch.exp(-x)[:, None] * torch.exp(-x)[None, :]
    freqs = torch.linspace(0.2, 2.0, 10, dtype=torch.float64)
    inputs = torch.cos(freqs[:, None] * x)
    outputs = (inputs * measure) @ true.T
    # scale ~ a tenth of |K|: a larger output scale stalls Adam on this problem (measured; also on the Omega-Omega case)
    kernel = SymmetricKernel(features=8, hidden=32, scale=0.05, length=2.0, regulator_radius=7.0)
    result = fit_integral_kernel(
        kernel,
        x.float(),
        measure.float(),
        inputs.float(),
        outputs.float(),
        measure.float(),
        adam_steps=600,
        learning_rate=3e-3,
        l2=0.0,
        lbfgs_steps=200,
    )
    assert result.relative_residual < 1e-3
    assert result.history[0] > 100 * result.relative_residual
    unseen = torch.sin(1.3 * x) * torch.exp(-0.1 * x)
    with torch.no_grad():
        predicted = (unseen * measure) @ kernel.double().matrix(x).T
    expected = (unseen * measure) @ true.T
    assert float((predicted - expected).norm() / expected.norm()) < 0.05


def test_fit_rejects_inconsistent_shapes_and_non_finite_data():
    kernel = SymmetricKernel(features=4, hidden=8)
    x = torch.linspace(0.1, 1, 10)
    with pytest.raises(ValueError, match="shapes"):
        fit_integral_kernel(
            kernel, x, x, torch.ones(3, 9), torch.ones(3, 9), torch.ones(9), adam_steps=1, lbfgs_steps=0
        )
    bad = torch.ones(3, 10)
    bad[1, 2] = math.nan
    with pytest.raises(ValueError, match="finite"):
        fit_integral_kernel(kernel, x, x, bad, torch.ones(3, 10), torch.ones(10), adam_steps=1, lbfgs_steps=0)
