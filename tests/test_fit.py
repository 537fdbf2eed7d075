"""MINUIT fits with exact autodiff Hessian errors, against analytic least-squares and likelihood results."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hadrinv.inference.fit import CHI2, NEGATIVE_LOG_LIKELIHOOD, FitResult, covariance_from_hessian, hessian, minimize


@pytest.fixture(scope="module")
def line_data():
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 10.0, 12)
    sigma = 0.2 + 0.1 * rng.random(12)
    y = 1.5 - 0.7 * x + sigma * rng.standard_normal(12)
    return x, y, sigma


def weighted_least_squares(x, y, sigma):
    """Analytic solution of the straight-line fit: theta = (X^T W X)^-1 X^T W y, C = (X^T W X)^-1."""
    design = np.stack([np.ones_like(x), x], axis=1)
    weight = np.diag(1.0 / sigma**2)
    covariance = np.linalg.inv(design.T @ weight @ design)
    theta = covariance @ design.T @ weight @ y
    chi2 = float((((y - design @ theta) / sigma) ** 2).sum())
    return theta, covariance, chi2


def chi2_line(x, y, sigma):
    xt, yt, st = (torch.as_tensor(v, dtype=torch.float64) for v in (x, y, sigma))
    return lambda p: (((yt - p[0] - p[1] * xt) / st) ** 2).sum()


@pytest.fixture(scope="module")
def line_fit(line_data):
    x, y, sigma = line_data
    return minimize(chi2_line(x, y, sigma), [0.0, 0.0], names=["intercept", "slope"], ndf=len(x) - 2)


def test_straight_line_values_equal_weighted_least_squares(line_data, line_fit):
    theta, _, _ = weighted_least_squares(*line_data)
    np.testing.assert_allclose(line_fit.values, theta, rtol=1e-6)


def test_straight_line_covariance_equals_analytic_inverse_of_normal_matrix(line_data, line_fit):
    _, covariance, _ = weighted_least_squares(*line_data)
    np.testing.assert_allclose(line_fit.covariance, covariance, rtol=1e-6)
    np.testing.assert_allclose(line_fit.errors, np.sqrt(np.diag(covariance)), rtol=1e-6)
    expected_rho = covariance[0, 1] / math.sqrt(covariance[0, 0] * covariance[1, 1])
    assert line_fit.correlation[0, 1] == pytest.approx(expected_rho, rel=1e-6)
    np.testing.assert_allclose(np.diag(line_fit.correlation), [1.0, 1.0], rtol=1e-12)


def test_straight_line_chi2_per_ndf(line_data, line_fit):
    _, _, chi2 = weighted_least_squares(*line_data)
    assert line_fit.fval == pytest.approx(chi2, rel=1e-6)
    assert line_fit.ndf == 10
    assert line_fit.chi2_per_ndf == pytest.approx(chi2 / 10, rel=1e-6)
    assert 0.0 < line_fit.chi2_per_ndf < 3.0


def test_chi2_per_ndf_is_nan_without_ndf(line_data):
    result = minimize(chi2_line(*line_data), [0.0, 0.0])
    assert result.ndf is None
    assert math.isnan(result.chi2_per_ndf)
    assert result.names == ["x0", "x1"]


def test_straight_line_fit_is_valid_with_accurate_covariance(line_fit):
    assert line_fit.is_valid is True
    assert line_fit.has_accurate_covar is True
    assert line_fit.n_calls > 0


def test_str_contains_parameter_names_values_and_status(line_fit):
    text = str(line_fit)
    assert "intercept" in text and "slope" in text
    assert "valid" in text and "INVALID" not in text
    assert "accurate" in text
    assert f"{line_fit.values[1]: .6g}".strip() in text


def test_chi2_error_is_independent_of_data_scatter(line_data):
    # errors of a linear chi^2 fit depend on sigma and x only, not on y
    x, y, sigma = line_data
    a = minimize(chi2_line(x, y, sigma), [0.0, 0.0])
    b = minimize(chi2_line(x, y + 3.0 * sigma * np.sin(x), sigma), [0.0, 0.0])
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-10)


@pytest.fixture(scope="module")
def gaussian_sample():
    rng = np.random.default_rng(1)
    return rng.normal(2.0, 0.5, size=400), 0.5


def test_gaussian_nll_errordef_half_gives_sigma_over_sqrt_n_for_the_mean(gaussian_sample):
    sample, sigma = gaussian_sample
    xt = torch.as_tensor(sample)

    def nll(p):
        return (0.5 * ((xt - p[0]) / sigma) ** 2).sum()

    result = minimize(nll, [0.0], names=["mu"], errordef=NEGATIVE_LOG_LIKELIHOOD)
    n = len(sample)
    assert result.values[0] == pytest.approx(sample.mean(), rel=1e-6)
    assert result.errors[0] == pytest.approx(sigma / math.sqrt(n), rel=1e-10)
    assert result.is_valid is True
    assert result.has_accurate_covar is True
    assert "mu" in str(result)


def test_gaussian_nll_with_free_width_gives_mle_errors(gaussian_sample):
    # at the MLE: error(mu) = sigma_hat / sqrt(n), error(sigma) = sigma_hat / sqrt(2 n), no correlation
    sample, _ = gaussian_sample
    xt = torch.as_tensor(sample)

    def nll(p):
        return (0.5 * ((xt - p[0]) / p[1]) ** 2 + torch.log(p[1])).sum()

    result = minimize(nll, [1.0, 1.0], names=["mu", "sigma"], errordef=NEGATIVE_LOG_LIKELIHOOD)
    n = len(sample)
    sigma_hat = sample.std()  # ddof = 0 is the MLE
    expected_errors = np.array([sigma_hat / math.sqrt(n), sigma_hat / math.sqrt(2 * n)])
    # MIGRAD stops at EDM < 2e-3 * tolerance * errordef: the values are within a small fraction of an error
    assert np.all(np.abs(result.values - [sample.mean(), sigma_hat]) < 0.02 * expected_errors)
    np.testing.assert_allclose(result.errors, expected_errors, rtol=2e-3)
    assert abs(result.correlation[0, 1]) < 1e-3
    assert result.is_valid and result.has_accurate_covar


def test_same_problem_as_chi2_and_as_nll_gives_same_errors(line_data):
    # chi^2 = 2 NLL: errordef 1 on chi^2 and errordef 0.5 on chi^2 / 2 must agree
    chi2 = chi2_line(*line_data)
    a = minimize(chi2, [0.0, 0.0], errordef=CHI2)
    b = minimize(lambda p: 0.5 * chi2(p), [0.0, 0.0], errordef=NEGATIVE_LOG_LIKELIHOOD)
    np.testing.assert_allclose(a.errors, b.errors, rtol=1e-10)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-6)


def test_exact_hessian_of_quadratic_form():
    a = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]])
    at = torch.as_tensor(a)
    h = hessian(lambda p: 0.5 * p @ at @ p + torch.sin(p[0]) * 0.0, np.array([0.3, -0.2, 1.0]))
    np.testing.assert_allclose(h, a, rtol=0, atol=1e-14)


def test_covariance_from_hessian_flags_non_positive_definite():
    cov, ok = covariance_from_hessian(np.diag([2.0, 8.0]), errordef=1.0)
    np.testing.assert_allclose(cov, np.diag([1.0, 0.25]), rtol=1e-14)
    assert ok
    _, ok = covariance_from_hessian(np.diag([2.0, -1.0]), errordef=1.0)
    assert not ok
    _, ok = covariance_from_hessian(np.diag([2.0, 0.0]), errordef=0.5)
    assert not ok


def test_flat_direction_gives_no_accurate_covariance():
    # the objective does not depend on x1 at all
    result = minimize(lambda p: (p[0] - 1.0) ** 2, [0.0, 0.0], names=["constrained", "flat"])
    assert isinstance(result, FitResult)
    assert result.has_accurate_covar is False
    assert result.values[0] == pytest.approx(1.0, abs=1e-6)
    assert "NOT positive definite" in str(result)


def test_flat_direction_error_is_not_reported_as_zero():
    result = minimize(lambda p: (p[0] - 1.0) ** 2, [0.0, 0.0], names=["constrained", "flat"])
    assert not (np.isfinite(result.errors[1]) and result.errors[1] == 0.0)


def test_least_squares_straight_line_equals_the_analytic_solution_and_covariance(line_data):
    from hadrinv.inference.fit import least_squares

    x, y, sigma = line_data
    xt, yt, st = (torch.as_tensor(v, dtype=torch.float64) for v in (x, y, sigma))
    result = least_squares(lambda p: (yt - p[0] - p[1] * xt) / st, [0.0, 0.0], names=["intercept", "slope"])
    theta, covariance, chi2 = weighted_least_squares(x, y, sigma)
    np.testing.assert_allclose(result.values, theta, rtol=1e-9)
    np.testing.assert_allclose(result.covariance, covariance, rtol=1e-9)
    assert result.fval == pytest.approx(chi2, rel=1e-9)
    assert result.ndf == len(x) - 2 and result.is_valid and result.has_accurate_covar


def test_least_squares_with_user_jacobian_and_gauss_newton_errors(line_data):
    """A linear model: a hand-written Jacobian and the Gauss-Newton Hessian give the analytic fit exactly."""
    from hadrinv.inference.fit import least_squares

    x, y, sigma = line_data
    theta, covariance, chi2 = weighted_least_squares(x, y, sigma)
    xt, yt, st = (torch.as_tensor(v, dtype=torch.float64) for v in (x, y, sigma))
    pulls = lambda p: (p[0] + p[1] * xt - yt) / st
    calls = []

    def jacobian(p):
        calls.append(1)
        return torch.stack([1.0 / st, xt / st], dim=1)

    result = least_squares(pulls, [0.0, 0.0], ["intercept", "slope"], jacobian=jacobian, exact_hessian=False)
    assert calls, "the user Jacobian must be used"
    np.testing.assert_allclose(result.values, theta, rtol=1e-8)
    np.testing.assert_allclose(result.covariance, covariance, rtol=1e-8)
    assert result.fval == pytest.approx(chi2, rel=1e-8)
