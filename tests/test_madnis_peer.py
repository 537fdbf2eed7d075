"""MadNIS as a peer integrator: the right value, and an honest account of the integrand calls."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("madnis", reason="madnis (the MadNIS peer) is not installed")

from hadrinv.workflows.nis_benchmark.madnis_peer import madnis_available, madnis_integrate  # noqa: E402

ALPHA = 0.2
MADNIS_BATCH = 1024  # Integrator's default training batch


def gaussian(dim: int):
    norm = (1 / (ALPHA * math.sqrt(math.pi))) ** dim
    return lambda x: norm * torch.exp(-((x - 0.5) ** 2).sum(-1) / ALPHA**2)


def test_available():
    assert madnis_available() is None


def test_gaussian_2d_within_errors_and_calls_accounted():
    calls = 20_000
    result = madnis_integrate(gaussian(2), 2, calls, train_fraction=0.5, seed=0)
    exact = math.erf(1 / (2 * ALPHA)) ** 2
    assert result.is_valid, result.message
    assert result.method == "madnis"
    assert abs(result.value - exact) < 4 * result.error
    assert result.calls <= calls + MADNIS_BATCH
    assert calls // 2 - MADNIS_BATCH < result.train_calls <= calls // 2
    assert math.isfinite(result.relative_std) and 0 < result.unweighting_efficiency <= 1
    assert len(result.sample_weights) == result.calls - result.train_calls


def test_one_dimension():
    result = madnis_integrate(gaussian(1), 1, 10_000, seed=1)
    assert result.is_valid, result.message
    assert abs(result.value - math.erf(1 / (2 * ALPHA))) < 4 * result.error


def test_seeded_and_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = madnis_integrate(gaussian(2), 2, 5_000, seed=7)
    assert torch.equal(torch.rand(3), expected_next)
    second = madnis_integrate(gaussian(2), 2, 5_000, seed=7)
    assert first.value == second.value
    np.testing.assert_array_equal(first.sample_weights, second.sample_weights)


def test_sparse_integrand_cannot_overrun_the_training_budget():
    # f != 0 on 1/400 of the square: MadNIS redraws each training batch until half its points hit it
    calls = 20_000
    result = madnis_integrate(lambda x: (x < 0.05).all(-1).double(), 2, calls, seed=0)
    assert result.train_calls <= calls // 2
    assert result.calls == calls
    assert "training stopped early" in result.message


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="train_fraction"):
        madnis_integrate(gaussian(2), 2, 1_000, train_fraction=1.0)
    with pytest.raises(ValueError, match="dim >= 1"):
        madnis_integrate(gaussian(2), 0, 1_000)
