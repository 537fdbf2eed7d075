"""Monte Carlo integration: flat and vegas against closed forms, complex integrands, zeros, bad integrands."""

from __future__ import annotations

import math

import pytest
import torch

from hadrinv.integration import integrate

ALPHA = 0.2  # i-flow's width of the Gaussian and camel test functions


def one_dim(c: float) -> float:
    """int_0^1 exp(-(x - c)^2 / alpha^2) / (alpha sqrt(pi)) dx."""
    return 0.5 * (math.erf((1 - c) / ALPHA) + math.erf(c / ALPHA))


def gaussian(x: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1]
    return torch.exp(-((x - 0.5) ** 2).sum(-1) / ALPHA**2) / (ALPHA * math.sqrt(math.pi)) ** d


def camel(x: torch.Tensor) -> torch.Tensor:
    d = x.shape[-1]
    peaks = torch.exp(-((x - 1 / 3) ** 2).sum(-1) / ALPHA**2) + torch.exp(-((x - 2 / 3) ** 2).sum(-1) / ALPHA**2)
    return 0.5 * peaks / (ALPHA * math.sqrt(math.pi)) ** d


@pytest.mark.parametrize("method", ["flat", "vegas"])
@pytest.mark.parametrize("name, f, exact", [("gaussian", gaussian, one_dim(0.5)), ("camel", camel, one_dim(1 / 3))])
@pytest.mark.parametrize("dim", [2, 4])
def test_closed_forms_within_four_errors(method, name, f, exact, dim):
    result = integrate(f, dim, method, calls=40_000, seed=dim)
    truth = exact**dim  # the camel's two peaks are mirror images: each integrates to one_dim(1/3)^d
    assert abs(result.value - truth) < 4 * result.error, (name, result)
    assert result.is_valid and 0 < result.unweighting_efficiency <= 1 and result.relative_std > 0


def test_vegas_adapts_and_beats_flat_on_a_peak():
    flat = integrate(gaussian, 4, "flat", calls=40_000)
    adaptive = integrate(gaussian, 4, "vegas", calls=40_000)
    assert adaptive.error < flat.error / 3, (flat.error, adaptive.error)
    assert 0 < adaptive.train_calls < adaptive.calls <= 1.05 * 40_000


def test_calls_are_every_evaluation():
    seen = []

    def f(x):
        seen.append(len(x))
        return x.sum(-1)

    result = integrate(f, 3, "vegas", calls=20_000)
    assert result.calls == sum(seen) and abs(result.value - 1.5) < 4 * result.error


@pytest.mark.parametrize("method", ["flat", "vegas"])
def test_complex_integrand(method):
    result = integrate(lambda x: torch.exp(1j * x.sum(-1)), 2, method, calls=20_000)
    exact = ((complex(math.cos(1), math.sin(1)) - 1) / 1j) ** 2
    assert abs(result.value - exact.real) < 4 * result.error
    assert abs(result.value_imag - exact.imag) < 4 * result.error_imag


@pytest.mark.parametrize("method", ["flat", "vegas"])
def test_zeros_over_half_the_domain_give_no_nan(method):
    result = integrate(lambda x: (x[:, 0] < 0.5).double() * 2.0, 2, method, calls=20_000)
    assert math.isfinite(result.value) and math.isfinite(result.error) and math.isfinite(result.relative_std)
    assert abs(result.value - 1.0) < max(4 * result.error, 1e-12)


def test_bad_integrands_stop_with_one_line():
    def nan_corner(x):
        y = x.sum(-1)
        return torch.where(x[:, 0] > 0.99, torch.nan, y)

    with pytest.raises(ValueError, match=r"non-finite value\(s\) \(NaN or inf\) of \d+, the first at x = \["):
        integrate(nan_corner, 2, "flat", calls=10_000)
    with pytest.raises(ValueError, match=r"returned shape \(10000, 2\)"):
        integrate(lambda x: x, 2, "flat", calls=10_000)
    with pytest.raises(ValueError, match="unknown method 'mcmc'"):
        integrate(gaussian, 2, "mcmc")
