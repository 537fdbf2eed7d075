"""One-loop scalar integrals in Feynman-parameter form, their closed forms, and the learned contour deformation.

Truth comes from outside this code: closed forms (B0, the gluon-fusion triangle, the Usyukina-Davydychev
massless triangle), scipy quadrature of the Feynman-parameter form, i-flow's published values below
threshold, COLLIER values printed in pyCollier's own test suite, pySecDec (sector decomposition with its own
contour deformation; the test extra) and pyCollier, when they are installed.
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from scipy import integrate as scipy_integrate

from hadrinv.inference.contour import ContourDeformation, check_sign, deformed_integrand, train_deformation
from hadrinv.integration import integrate
from hadrinv.physics import loop_integrals as loops
from hadrinv.physics.loop_closed_forms import c0_two_massless_legs
from hadrinv.physics.quadrature import gauss_legendre
from hadrinv.workflows.loop_integral import pysecdec_peer
from hadrinv.workflows.loop_integral.run import random_kinematics

M_TOP_SQ = 175.0**2
# i-flow (Gao, Isaacson, Krause, arXiv:2001.05486), all in GeV
IFLOW_TRIANGLE = -1.70721682537767509e-5  # C0(0, 0, 125^2, 175^2, 175^2, 175^2)
IFLOW_BOX = 1.93696402386819321e-10  # D0(0, 0, 0, 125^2, 130^2, -130^2 / 2, 175^2 x 4)
# COLLIER through pyCollier 0.3.3, tests/test_Collier.py (mu^2 = 100^2, Delta = 0)
COLLIER_B0 = 5.2277622590786335 + 2.0116008064341786j  # B0(1000, 100, 200)
COLLIER_C0 = 0.004769595279977717 - 0.007570567427108271j  # C0(200, 1000, 200, 100, 10, 50)
COLLIER_D0 = -3.921393574718075e-7 - 3.209559917467113e-7j  # D0(1e3, 2e3, 3e3, 1e2, 1e4, -3e3, 1e2, 1e2, 3e2, 3e2)
# above threshold: s12 = 400^2 > (2 m_t)^2
BOX_ABOVE = (0.0, 0.0, 0.0, 125.0**2, 400.0**2, -(130.0**2) / 2, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cube_rule(f, dim: int, n: int, smooth_corners: bool = False) -> complex:
    """Gauss-Legendre product rule on [0, 1]^dim; smooth_corners substitutes t = u^2 (3 - 2u) per axis."""
    nodes, weights = gauss_legendre(n, 0.0, 1.0)
    if smooth_corners:
        weights = weights * 6 * nodes * (1 - nodes)
        nodes = nodes * nodes * (3 - 2 * nodes)
    points = torch.cartesian_prod(*([nodes] * dim)).reshape(-1, dim)
    w = torch.cartesian_prod(*([weights] * dim)).reshape(-1, dim).prod(-1)
    return complex((f(points) * w).sum())


def rel(a: complex, b: complex) -> float:
    return abs(a - b) / abs(b)


def vegas(f, dim: int, calls: int = 100_000, seed: int = 0) -> tuple[complex, float, float]:
    result = integrate(f, dim, method="vegas", calls=calls, seed=seed)
    return complex(result.value, result.value_imag), result.error, result.error_imag


def assert_within_errors(value: complex, error_re: float, error_im: float, ref: complex, n_sigma: float, rtol: float):
    assert abs(value.real - ref.real) < n_sigma * error_re, (value, error_re, ref)
    assert abs(value.imag - ref.imag) < n_sigma * error_im, (value, error_im, ref)
    assert rel(value, ref) < rtol, (value, ref)


@pytest.fixture(scope="module")
def trained_box():
    box = loops.box(*BOX_ABOVE)
    return box, train_deformation(box.F, box.integrand, box.dim, steps=200, batch=1024, seed=0)


@pytest.fixture(scope="module")
def trained_triangle():
    tri = loops.triangle(0.0, 0.0, 400.0**2, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ)
    return tri, train_deformation(tri.F, tri.integrand, tri.dim, steps=200, batch=1024, seed=0)


# --- below threshold: the real contour ---------------------------------------------------------------------


def test_c0_at_zero_momenta_is_minus_one_over_two_m_squared_and_real():
    msq = 1.7
    tri = loops.triangle(0.0, 0.0, 0.0, msq, msq, msq)
    assert tri.dim == 2
    assert cube_rule(tri.integrand, 2, 10) == pytest.approx(-1 / (2 * msq), rel=1e-13)
    t = torch.rand(1000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    below_threshold = (
        loops.bubble(1.0, 2.0, 3.0),
        loops.triangle(0.0, 0.0, 125.0**2, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ),
        loops.box(*BOX_ABOVE[:4], 130.0**2, -(130.0**2) / 2, *BOX_ABOVE[6:]),
    )
    for loop in below_threshold:
        values = loop.integrand(t[:, : loop.dim])
        assert values.dtype == torch.complex128 and bool((values.imag == 0).all())
        assert loop.F(t[:, : loop.dim]).dtype == torch.float64


def test_iflow_values_below_threshold_pin_the_convention():
    tri = loops.triangle(0.0, 0.0, 125.0**2, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ)
    box = loops.box(0.0, 0.0, 0.0, 125.0**2, 130.0**2, -(130.0**2) / 2, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ)
    assert rel(cube_rule(tri.integrand, 2, 40), IFLOW_TRIANGLE) < 1e-6
    assert rel(cube_rule(box.integrand, 3, 30), IFLOW_BOX) < 1e-6
    assert rel(complex(c0_two_massless_legs(125.0**2, M_TOP_SQ)), IFLOW_TRIANGLE) < 1e-12


# --- closed forms -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "p2, m1sq, m2sq",
    [
        (500.0**2, M_TOP_SQ, M_TOP_SQ),  # above threshold, equal masses
        (500.0**2, 100.0**2, 300.0**2),  # above threshold, unequal
        (200.0**2, M_TOP_SQ, M_TOP_SQ),  # below threshold
        (150.0**2, 100.0**2, 300.0**2),  # between the pseudo-threshold and the threshold
        (50.0**2, 100.0**2, 300.0**2),  # below the pseudo-threshold
        (-(300.0**2), 50.0**2, 80.0**2),  # spacelike
        (0.0, 4.0, 9.0),
        (0.0, 4.0, 4.0),
    ],
)
def test_b0_closed_form_against_feynman_parameters(p2, m1sq, m2sq):
    def F(x):
        return x * m2sq + (1 - x) * m1sq - x * (1 - x) * p2

    roots = sorted(r.real for r in np.roots([p2, m2sq - m1sq - p2, m1sq]) if abs(r.imag) < 1e-12 and 0 < r.real < 1)
    real = scipy_integrate.quad(lambda x: -math.log(abs(F(x))), 0, 1, points=roots or None, epsabs=1e-13, limit=200)[0]
    below_zero = roots[1] - roots[0] if len(roots) == 2 else 0.0  # F < 0 between the roots: log(F - i0) = ... - i pi
    value = complex(loops.b0(p2, m1sq, m2sq))
    assert value.real == pytest.approx(real, rel=1e-9)
    assert value.imag == pytest.approx(math.pi * below_zero, abs=1e-12)


def test_b0_imaginary_part_and_collier_value():
    s, msq = 500.0**2, M_TOP_SQ
    beta = math.sqrt(1 - 4 * msq / s)
    assert complex(loops.b0(s, msq, msq)).imag == pytest.approx(math.pi * beta, rel=1e-14)
    assert rel(complex(loops.b0(1000.0, 100.0, 200.0)) + math.log(100.0**2), COLLIER_B0) < 1e-13


def test_li2_against_mpmath():
    mpmath = pytest.importorskip("mpmath")
    z = [0.3, -2.0, 0.9 + 0.2j, -0.5 + 1.5j, 2j, 0.7 - 0.7j, -5 - 3j, 10 + 0.1j, 0.99, 1.0, 0.5 + 0.86j]
    values = loops.li2(torch.tensor(z, dtype=torch.complex128))
    for zi, v in zip(z, values):
        assert rel(complex(v), complex(mpmath.polylog(2, zi))) < 1e-14
    assert complex(loops.li2(3.0)).imag == pytest.approx(math.pi * math.log(3.0))  # 3 + i0


def _c0_massless_by_scipy(p1sq, p2sq, p12sq):
    # x3 = 1 - x1 - x2 eliminated by hand: independent of the stick-breaking map of `OneLoop`
    def integrand(x2, x1):
        x3 = 1 - x1 - x2
        return 1.0 / (x1 * x2 * p1sq + x2 * x3 * p2sq + x1 * x3 * p12sq)

    return scipy_integrate.dblquad(integrand, 0, 1, 0, lambda x1: 1 - x1, epsabs=0, epsrel=1e-11)[0]


@pytest.mark.parametrize(
    "invariants",
    [(-1.0, -1.0, -1.0), (-1.0, -2.0, -3.0), (-5.0, -0.3, -1.0), (-0.01, -1.0, -1.0), (-100.0, -400.0, -900.0)],
    ids=["symmetric", "lambda2>0", "lambda2<0-far", "near-collinear", "lambda=0"],
)
def test_c0_massless_euclidean_against_scipy(invariants):
    value = complex(loops.c0_massless(*invariants))
    assert value.imag == 0 and value.real < 0
    assert value.real == pytest.approx(_c0_massless_by_scipy(*invariants), rel=1e-9)
    # all timelike: homogeneity of degree -1, real
    assert complex(loops.c0_massless(*(-s for s in invariants))) == pytest.approx(-value, rel=1e-14)


def test_c0_massless_mixed_signs_against_deformed_contour():
    invariants = (-(100.0**2), 2 * 100.0**2, -3 * 100.0**2)  # p2^2 timelike: an imaginary part
    tri = loops.triangle(*invariants, 0.0, 0.0, 0.0)
    deformation = ContourDeformation(tri.dim, tri.F)
    ok, _ = check_sign(tri.F, deformation, torch.rand(20000, 2, dtype=torch.float64))
    assert ok
    ref = complex(loops.c0_massless(*invariants))
    assert ref.imag < 0
    # the integrand is ~ 1 / r at the corners of the simplex: u^2 (3 - 2u) makes it bounded
    assert rel(cube_rule(deformed_integrand(tri.integrand, deformation), 2, 200, smooth_corners=True), ref) < 1e-7


# --- above threshold: deformed contours -------------------------------------------------------------------


@pytest.mark.parametrize("masses_sq", [(M_TOP_SQ, M_TOP_SQ), (100.0**2, 300.0**2)], ids=["equal", "unequal"])
def test_b0_above_threshold_with_untrained_and_trained_deformation(masses_sq):
    p2 = 500.0**2
    bubble = loops.bubble(p2, *masses_sq)
    ref = complex(loops.b0(p2, *masses_sq))
    untrained = ContourDeformation(1, bubble.F)
    assert rel(cube_rule(deformed_integrand(bubble.integrand, untrained), 1, 200), ref) < 1e-10
    trained = train_deformation(bubble.F, bubble.integrand, 1, steps=150, batch=1024, seed=1)
    assert trained.history["loss"][-1] < 0.5  # variance relative to the untrained contour
    value, err_re, err_im = vegas(deformed_integrand(bubble.integrand, trained), 1)
    assert_within_errors(value, err_re, err_im, ref, n_sigma=4, rtol=1e-4)


def test_triangle_above_threshold_against_closed_form(trained_triangle):
    tri, trained = trained_triangle
    ref = complex(c0_two_massless_legs(400.0**2, M_TOP_SQ))
    assert ref.imag < 0
    untrained = ContourDeformation(tri.dim, tri.F)
    assert rel(cube_rule(deformed_integrand(tri.integrand, untrained), 2, 120), ref) < 1e-9
    assert rel(cube_rule(deformed_integrand(tri.integrand, trained), 2, 60), ref) < 1e-9
    value, err_re, err_im = vegas(deformed_integrand(tri.integrand, trained), 2)
    assert_within_errors(value, err_re, err_im, ref, n_sigma=3, rtol=1e-3)


def test_collier_values_above_several_thresholds():
    tri = loops.triangle(200.0, 1000.0, 200.0, 100.0, 10.0, 50.0)
    box = loops.box(1e3, 2e3, 3e3, 1e2, 1e4, -3e3, 1e2, 1e2, 3e2, 3e2)
    for loop, ref, n in ((tri, COLLIER_C0, 200), (box, COLLIER_D0, 60)):
        deformation = ContourDeformation(loop.dim, loop.F)
        ok, _ = check_sign(loop.F, deformation, torch.rand(20000, loop.dim, dtype=torch.float64))
        assert ok
        assert rel(cube_rule(deformed_integrand(loop.integrand, deformation), loop.dim, n), ref) < 1e-5


def test_box_above_threshold_trained_agrees_with_untrained(trained_box):
    box, trained = trained_box
    untrained = ContourDeformation(box.dim, box.F)
    ref = cube_rule(deformed_integrand(box.integrand, untrained), 3, 40)
    # Cauchy: a different contour with the same end points gives the same integral
    assert rel(cube_rule(deformed_integrand(box.integrand, trained), 3, 40), ref) < 1e-6
    value, err_re, err_im = vegas(deformed_integrand(box.integrand, trained), 3)
    assert_within_errors(value, err_re, err_im, ref, n_sigma=3, rtol=3e-3)


# --- the deformation itself -------------------------------------------------------------------------------


def test_training_reduces_variance_and_keeps_the_sign(trained_box):
    box, trained = trained_box
    x = torch.rand(20000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    ok, violating = check_sign(box.F, trained, x)
    assert ok and violating == 0.0
    untrained = ContourDeformation(box.dim, box.F)
    w_trained = deformed_integrand(box.integrand, trained)(x)
    w_untrained = deformed_integrand(box.integrand, untrained)(x)
    assert w_trained.var() < 0.8 * w_untrained.var()
    # the wrong side: the same contour for -F puts every pole of 1 / (-F - i delta) on it
    flipped_ok, flipped = check_sign(lambda t: -box.F(t), trained, x)
    assert not flipped_ok and flipped > 0.99


def test_deformation_fixes_faces_and_its_jacobian_is_exact(trained_box):
    box, trained = trained_box
    x = torch.rand(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for j in range(3):
        for end in (0.0, 1.0):
            face = x.clone()
            face[:, j] = end
            z, _ = trained(face)
            assert bool((z[:, j] == end).all())
    corners = torch.cartesian_prod(*([torch.tensor([0.0, 1.0], dtype=torch.float64)] * 3))
    z, det = trained(corners)
    assert bool((z == corners.to(torch.complex128)).all())
    # det(dz/dx) against central differences of z
    z, det = trained(x)
    eps = 1e-6
    columns = []
    for k in range(3):
        step = torch.zeros(3, dtype=torch.float64)
        step[k] = eps
        columns.append((trained(x + step)[0] - trained(x - step)[0]) / (2 * eps))
    numeric = torch.linalg.det(torch.stack(columns, -1))
    assert torch.allclose(det, numeric, rtol=1e-6, atol=0)


# --- pyCollier, when it is installed ------------------------------------------------------------------------


def _collier():
    for name in ("pyCollier", "pycollier"):  # the distribution pycollier installs the module pyCollier
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    pytest.skip("pycollier is not installed (its build downloads COLLIER from hepforge)")


def test_against_pycollier_above_threshold(trained_triangle, trained_box):
    collier = _collier()
    collier.set_renscale(1.0)
    collier.set_delta(0.0)
    assert (
        rel(complex(loops.b0(500.0**2, M_TOP_SQ, M_TOP_SQ)), complex(collier.b0(500.0**2, M_TOP_SQ, M_TOP_SQ))) < 1e-10
    )
    tri, trained_tri = trained_triangle
    box, trained_b = trained_box
    cases = (
        (tri, trained_tri, complex(collier.c0(0.0, 0.0, 400.0**2, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ))),
        (box, trained_b, complex(collier.d0(*BOX_ABOVE))),
    )
    for loop, trained, ref in cases:
        value, err_re, err_im = vegas(deformed_integrand(loop.integrand, trained), loop.dim)
        assert_within_errors(value, err_re, err_im, ref, n_sigma=3, rtol=1e-3)
        assert rel(cube_rule(deformed_integrand(loop.integrand, trained), loop.dim, 40), ref) < 1e-5


# --- pySecDec, when it is installed ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pysecdec(tmp_path_factory):
    reason = pysecdec_peer.missing_reason()
    if reason:
        pytest.skip(reason)
    cache = tmp_path_factory.mktemp("pysecdec")
    return lambda topology, points: [p.value for p in pysecdec_peer.evaluate(topology, points, cache=cache)]


def test_pysecdec_reproduces_published_values(pysecdec):
    # the adapter's argument order and normalisation, against i-flow and COLLIER
    tri = pysecdec("triangle", [(0.0, 0.0, 125.0**2, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ), (200, 1000, 200, 100, 10, 50)])
    box = pysecdec("box", [(0.0, 0.0, 0.0, 125.0**2, 130.0**2, -(130.0**2) / 2, *[M_TOP_SQ] * 4)])
    assert rel(tri[0], IFLOW_TRIANGLE) < 1e-8 and rel(box[0], IFLOW_BOX) < 1e-8
    assert rel(tri[1], COLLIER_C0) < 1e-7


def test_monte_carlo_agrees_with_pysecdec_above_threshold(pysecdec, trained_triangle, trained_box):
    tri, trained_tri = trained_triangle
    box, trained_b = trained_box
    (tri_ref,) = pysecdec("triangle", [(0.0, 0.0, 400.0**2, M_TOP_SQ, M_TOP_SQ, M_TOP_SQ)])
    (box_ref,) = pysecdec("box", [BOX_ABOVE])
    for loop, trained, ref in ((tri, trained_tri, tri_ref), (box, trained_b, box_ref)):
        value, err_re, err_im = vegas(deformed_integrand(loop.integrand, trained), loop.dim)
        assert_within_errors(value, err_re, err_im, ref, n_sigma=3, rtol=1e-3)


@pytest.mark.parametrize("topology, nodes", [("triangle", 60), ("box", 40)])
def test_deformed_contour_agrees_with_pysecdec_at_random_kinematics(pysecdec, topology, nodes):
    points = random_kinematics(topology, 3, seed=11)
    make = loops.triangle if topology == "triangle" else loops.box
    for point, ref in zip(points, pysecdec(topology, points), strict=True):
        loop = make(*point)
        deformation = ContourDeformation(loop.dim, loop.F)
        value = cube_rule(deformed_integrand(loop.integrand, deformation), loop.dim, nodes, smooth_corners=True)
        assert rel(value, ref) < 1e-4, (point, value, ref)
