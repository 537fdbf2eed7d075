"""The shared minimiser (hadrinv.inference.minimize): bounds, non-finite objectives, exact-Hessian errors,
validity, restarts, and the generic and unbinned front ends reaching the same minimum through it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hadrinv.inference.fit import CHI2, NEGATIVE_LOG_LIKELIHOOD, least_squares, minimize
from hadrinv.inference.minimize import (
    MinimizeResult,
    Objective,
    assess_minimum,
    find_minimum,
)
from hadrinv.inference.restarts import given, random_restarts
from hadrinv.inference.unbinned import UnbinnedNLL, fit_unbinned

F64 = torch.float64
MU = np.array([0.7, -1.2, 2.0])
COV = np.array([[0.5, 0.2, -0.1], [0.2, 0.8, 0.3], [-0.1, 0.3, 1.5]])
METHODS = ["newton", "minuit"]


def quadratic_nll(p):
    """-ln L of a Gaussian with mean MU and covariance COV: its inverse Hessian is COV."""
    d = p - torch.as_tensor(MU)
    return 0.5 * d @ torch.linalg.solve(torch.as_tensor(COV), d)


@pytest.mark.parametrize("method", METHODS)
def test_errors_are_the_inverse_exact_hessian_of_a_quadratic(method):
    result = find_minimum(quadratic_nll, np.zeros(3), method=method, errordef=NEGATIVE_LOG_LIKELIHOOD)
    assert result.is_valid and result.has_accurate_covar, str(result)
    np.testing.assert_allclose(result.values, MU, atol=1e-4)
    np.testing.assert_allclose(result.covariance, COV, rtol=1e-10)
    np.testing.assert_allclose(result.errors, np.sqrt(np.diag(COV)), rtol=1e-10)
    np.testing.assert_allclose(result.hessian, np.linalg.inv(COV), rtol=1e-10)
    # the same form as a chi^2 (twice the -ln L) with errordef 1 gives the same covariance
    chi2 = minimize(lambda p: 2.0 * quadratic_nll(p), np.zeros(3), errordef=CHI2, method=method)
    np.testing.assert_allclose(chi2.covariance, COV, rtol=1e-10)


def test_least_squares_errors_come_from_the_same_hessian_code():
    inverse_tril = torch.as_tensor(np.linalg.inv(np.linalg.cholesky(COV)))
    result = least_squares(lambda p: inverse_tril @ (p - torch.as_tensor(MU)), np.zeros(3))
    assert isinstance(result, MinimizeResult) and result.method == "least_squares"
    assert result.is_valid and result.ndf == 0 and result.edm < 1e-12
    np.testing.assert_allclose(result.values, MU, atol=1e-9)
    np.testing.assert_allclose(result.covariance, COV, rtol=1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_bounds_are_respected_and_an_active_bound_is_reported(method):
    # minimum at MU = (0.7, -1.2, 2.0); the second parameter is held above -0.5, the start is outside the box
    bounds = [(None, None), (-0.5, 3.0), (None, 5.0)]
    result = find_minimum(quadratic_nll, [0.0, -4.0, 0.0], bounds=bounds, method=method)
    assert result.x0[1] == -0.5  # clipped into the bounds
    assert result.values[1] == -0.5  # put on the active bound
    assert result.is_valid, str(result)
    assert "at a bound: x1" in result.message
    # the others sit at the conditional minimum given x1 = -0.5
    conditional = MU[[0, 2]] + COV[[0, 2], 1] / COV[1, 1] * (-0.5 - MU[1])
    np.testing.assert_allclose(result.values[[0, 2]], conditional, atol=1e-4)
    # the generic front end takes the same bounds
    generic = minimize(quadratic_nll, [0.0, -4.0, 0.0], errordef=NEGATIVE_LOG_LIKELIHOOD, bounds=bounds, method=method)
    assert generic.values[1] == -0.5


def test_a_non_finite_value_is_rejected_as_infinity():
    objective = Objective(lambda p: torch.log(p[0]) ** 2)
    assert objective.value(np.array([-1.0])) == math.inf
    assert objective.n_nonfinite == 1 and objective.n_calls == 1 and objective.best_x is None
    assert objective.value(np.array([2.0])) == pytest.approx(math.log(2.0) ** 2)
    np.testing.assert_array_equal(objective.best_x, [2.0])


@pytest.mark.parametrize("method", METHODS)
def test_a_non_finite_start_gives_an_invalid_result_not_an_exception(method):
    f = lambda p: torch.log(p[0]) ** 2 + p[1] ** 2
    for fit in (lambda: find_minimum(f, [-1.0, 0.0], method=method), lambda: minimize(f, [-1.0, 0.0], method=method)):
        result = fit()
        assert not result.is_valid and math.isinf(result.fval)
        assert np.isnan(result.errors).all()
        assert "not finite at the starting point" in result.message


@pytest.mark.parametrize("method", METHODS)
def test_steps_into_a_non_finite_region_are_rejected(method):
    # minimum at p = 0.1; from p = 1 the first steps land at p <= 0, where the value and the Hessian are not finite
    f = lambda p: p[0] / 0.1 - torch.log(p[0] / 0.1)
    result = find_minimum(f, [1.0], method=method)
    assert result.is_valid, str(result)
    assert "non-finite objective were rejected" in result.message
    assert result.values[0] == pytest.approx(0.1, abs=1e-4)


def test_a_saddle_point_is_flagged_invalid():
    saddle = lambda p: p[0] ** 2 - p[1] ** 2
    result = find_minimum(saddle, [0.0, 0.0], method="newton")  # zero gradient: the minimiser stops at once
    assert not result.is_valid
    assert "saddle point" in result.message
    # the shared judgement: the same point, assessed directly
    judged = assess_minimum(
        Objective(saddle), np.zeros(2), names=["a", "b"], errordef=CHI2, method="newton", edm_tolerance=1e-5
    )
    assert not judged.is_valid and not judged.has_accurate_covar


@pytest.mark.parametrize("method,limit", [("newton", {"max_iterations": 2}), ("minuit", {"max_calls": 5})])
def test_an_unconverged_fit_is_flagged_invalid(method, limit):
    rosenbrock = lambda p: (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2
    stopped = find_minimum(rosenbrock, [-1.2, 1.0], method=method, errordef=CHI2, **limit)
    assert not stopped.is_valid and stopped.edm > 1e-5, str(stopped)
    converged = find_minimum(rosenbrock, [-1.2, 1.0], method=method, errordef=CHI2)
    assert converged.is_valid
    np.testing.assert_allclose(converged.values, [1.0, 1.0], atol=1e-3)


def test_generic_and_unbinned_fits_reach_the_same_minimum():
    g = torch.Generator().manual_seed(5)
    x = 2.0 * torch.rand(4000, generator=g, dtype=F64) - 1.0
    data = x[torch.rand(4000, generator=g, dtype=F64) * 1.8 < 1.0 + 0.5 * x + 0.3 * x**2]
    nll = UnbinnedNLL(lambda p, c: 1.0 + p[0] * c + p[1] * c**2, data, torch.linspace(-1.0, 1.0, 4001, dtype=F64))
    generic = minimize(nll, [0.0, 0.0], errordef=NEGATIVE_LOG_LIKELIHOOD)
    unbinned = [fit_unbinned(nll, [0.0, 0.0], method=m) for m in METHODS]
    for fit in [generic, *unbinned]:
        assert fit.is_valid, str(fit)
        np.testing.assert_allclose(fit.values, unbinned[0].values, atol=1e-4)
        np.testing.assert_allclose(fit.errors, unbinned[0].errors, rtol=1e-3)
        assert fit.fval == pytest.approx(unbinned[0].fval, abs=1e-6)


def double_well(p):
    """Two minima, at p = -1 (the lower one) and p = +1."""
    return (p[0] ** 2 - 1.0) ** 2 + 0.3 * p[0]


def test_random_starts_within_bounds_find_both_minima(tmp_path):
    outcome = random_restarts(
        given,
        None,
        10,
        executor="serial",
        seed=4,
        objective_kwargs={"objective": double_well},
        bounds=[(-1.5, 1.5)],
        checkpoint_dir=tmp_path,
        errordef=CHI2,
    )
    assert all(-1.5 <= f.x0[0] <= 1.5 for f in outcome.fits)
    assert len({round(float(f.x0[0]), 6) for f in outcome.fits}) == 10
    assert outcome.n_valid == 10
    assert outcome.best.values[0] == pytest.approx(-1.04, abs=0.02)
    assert 0 < outcome.n_at_best < 10  # some starts end in the other well
    # the checkpoints hold the full results
    again = random_restarts(
        given,
        None,
        10,
        executor="serial",
        seed=4,
        objective_kwargs={"objective": double_well},
        bounds=[(-1.5, 1.5)],
        checkpoint_dir=tmp_path,
        resume=True,
        errordef=CHI2,
    )
    np.testing.assert_array_equal(again.best.covariance, outcome.best.covariance)
    np.testing.assert_array_equal(again.best.hessian, outcome.best.hessian)
    with pytest.raises(ValueError, match="sample_start"):
        random_restarts(given, None, 2, executor="serial", objective_kwargs={"objective": double_well})
