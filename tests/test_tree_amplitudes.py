"""The tree-level squared matrix elements of tree_amplitudes against computations that do not use their formulas.

g g -> g g g: a Berends-Giele recursion with colour-ordered Feynman rules (Tr(T^a T^b) = delta^ab, Feynman gauge)
and explicit spinor-built polarisation vectors gives the colour-ordered amplitudes for every helicity and
ordering; the colour sum is done both with the full 24 x 24 colour matrix of explicit SU(3) traces and with the
leading-colour formula. The same recursion at four points reproduces the textbook g g -> g g, which fixes the
normalisation of the machinery independently.

e+ e- -> q qbar g: the two Feynman diagrams squared by numerical Dirac traces (explicit gamma matrices), the
Ellis-Stirling-Webber (x1^2 + x2^2) / ((1 - x1)(1 - x2)) after the average over the lepton direction, and the
soft-gluon limit onto e+ e- -> q qbar.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from hadrinv.physics.rambo import rambo
from hadrinv.physics.tree_amplitudes import PROCESSES, Process, ee_qqg_amp2, gg_ggg_amp2

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N = 3
CF = (N**2 - 1) / (2 * N)
METRIC = np.array([1.0, -1.0, -1.0, -1.0])
SQRT_S = 91.2
INCOMING_SIGN = np.array([-1.0, -1.0, 1.0, 1.0, 1.0])


def _dot(a, b):
    return a[..., 0] * b[..., 0] - a[..., 1] * b[..., 1] - a[..., 2] * b[..., 2] - a[..., 3] * b[..., 3]


def _points(n_final: int, n_events: int, seed: int) -> np.ndarray:
    momenta, _ = rambo(n_final, SQRT_S, n_events, generator=torch.Generator().manual_seed(seed))
    return momenta.numpy()


# ---------------------------------------------------------------- spinors and polarisation vectors
def _lambda(p: np.ndarray) -> np.ndarray:
    """Holomorphic spinor of a physical massless p: p_{a adot} = E + p.sigma = lambda lambda^*."""
    energy, px, py, pz = np.moveaxis(p, -1, 0)
    plus, minus = energy + pz, energy - pz
    # two equivalent forms; the one with the larger denominator is stable (p along -z has E + pz = 0)
    use_plus = plus >= minus
    safe_plus, safe_minus = np.where(use_plus, plus, 1.0), np.where(use_plus, 1.0, minus)
    a = np.where(use_plus, np.sqrt(safe_plus), (px - 1j * py) / np.sqrt(safe_minus))
    b = np.where(use_plus, (px + 1j * py) / np.sqrt(safe_plus), np.sqrt(safe_minus))
    return np.stack([a, b], axis=-1)


def _vector(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The complex four-vector V with V^0 + V.sigma = left right^T."""
    m00, m01 = left[..., 0] * right[..., 0], left[..., 0] * right[..., 1]
    m10, m11 = left[..., 1] * right[..., 0], left[..., 1] * right[..., 1]
    return np.stack([(m00 + m11) / 2, (m01 + m10) / 2, (m10 - m01) / 2j, (m00 - m11) / 2], axis=-1)


def _polarisations(p: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """eps^+(p; q) = sqrt2 V(lambda_q lambda~_p) / <q p>, eps^- its complex conjugate: null, orthogonal to p and q,
    eps^+ . eps^- = -1. Built from the physical momentum also for a crossed leg (eps(-p) = eps(p) up to a phase)."""
    lam_p, lam_q = _lambda(p), _lambda(reference)
    angle = lam_q[..., 0] * lam_p[..., 1] - lam_q[..., 1] * lam_p[..., 0]
    plus = math.sqrt(2.0) * _vector(lam_q, np.conj(lam_p)) / angle[..., None]
    return plus, np.conj(plus)


def _random_massless(n: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return np.concatenate([np.linalg.norm(v, axis=-1, keepdims=True), v], axis=-1)


# ---------------------------------------------------------------- Berends-Giele recursion
def _berends_giele(k: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Colour-ordered amplitude A(0, 1, ..., n-1) (up to an overall phase) of all-outgoing gluons with momenta k
    (..., n, 4) and polarisations eps (..., n, 4): vertices (i/sqrt2)[...] and (i/2)[...], propagator -i g / P^2."""
    n = k.shape[-2]
    cache: dict[tuple[int, int], np.ndarray] = {}

    def momentum(i, j):
        return k[..., i:j, :].sum(axis=-2)

    def current(i, j, amputate=False):
        if j - i == 1:
            return eps[..., i, :]
        if (i, j) in cache and not amputate:
            return cache[(i, j)]
        total = 0.0
        for m in range(i + 1, j):
            j1, j2 = current(i, m), current(m, j)
            p, q = momentum(i, m), momentum(m, j)
            total = total + (
                _dot(j1, j2)[..., None] * (p - q)
                + _dot(2 * q + p, j1)[..., None] * j2
                - _dot(2 * p + q, j2)[..., None] * j1
            ) / math.sqrt(2.0)
        for m1 in range(i + 1, j):
            for m2 in range(m1 + 1, j):
                j1, j2, j3 = current(i, m1), current(m1, m2), current(m2, j)
                total = (
                    total
                    + (2 * _dot(j1, j3)[..., None] * j2 - _dot(j2, j3)[..., None] * j1 - _dot(j1, j2)[..., None] * j3)
                    / 2.0
                )
        if amputate:
            return total
        cache[(i, j)] = total / _dot(momentum(i, j), momentum(i, j))[..., None]
        return cache[(i, j)]

    return _dot(current(0, n - 1, amputate=True), eps[..., n - 1, :])


HELICITIES_5 = list(itertools.product((1, -1), repeat=5))


def _ordered_amplitudes(momenta: np.ndarray, orderings, reference: np.ndarray | None = None) -> np.ndarray:
    """A(sigma) for all helicity configurations: (n_events, n_helicity, n_orderings), all-outgoing momenta."""
    n = momenta.shape[-2]
    k = momenta * INCOMING_SIGN[:n, None]
    if reference is None:
        reference = np.broadcast_to(np.array([1.0, 0.6, 0.0, 0.8]), momenta.shape)
    plus, minus = _polarisations(momenta, reference)
    helicities = np.array(list(itertools.product((1, -1), repeat=n)))
    eps = np.where((helicities == 1)[None, :, :, None], plus[:, None], minus[:, None])  # (events, hel, n, 4)
    out = []
    for order in orderings:
        out.append(_berends_giele(np.broadcast_to(k[:, None, list(order)], eps.shape), eps[:, :, list(order)]))
    return np.stack(out, axis=-1)


ORDERINGS_24 = [(0, *perm) for perm in itertools.permutations(range(1, 5))]
ORDERINGS_6 = [(0, *perm) for perm in itertools.permutations(range(1, 4))]


def _gell_mann_generators() -> np.ndarray:
    """T^a = lambda^a / sqrt2, Tr(T^a T^b) = delta^ab."""
    lam = np.zeros((8, 3, 3), dtype=complex)
    lam[0][0, 1] = lam[0][1, 0] = 1
    lam[1][0, 1], lam[1][1, 0] = -1j, 1j
    lam[2][0, 0], lam[2][1, 1] = 1, -1
    lam[3][0, 2] = lam[3][2, 0] = 1
    lam[4][0, 2], lam[4][2, 0] = -1j, 1j
    lam[5][1, 2] = lam[5][2, 1] = 1
    lam[6][1, 2], lam[6][2, 1] = -1j, 1j
    lam[7] = np.diag([1, 1, -2]) / math.sqrt(3)
    return lam / math.sqrt(2)


def _colour_matrix_5() -> np.ndarray:
    """K_{sigma tau} = sum over the 8^5 colours of Tr_sigma^* Tr_tau, Tr_sigma = Tr(T^{a_sigma1} ... T^{a_sigma5})."""
    t = _gell_mann_generators()
    traces = np.einsum("aij,bjk,ckl,dlm,emi->abcde", t, t, t, t, t)
    c = np.stack([np.transpose(traces, np.argsort(order)).ravel() for order in ORDERINGS_24])
    return np.conj(c) @ c.T


@pytest.fixture(scope="module")
def gluon_points():
    momenta = _points(3, 20, seed=11)
    return momenta, _ordered_amplitudes(momenta, ORDERINGS_24)


def test_five_gluons_match_full_colour_berends_giele(gluon_points):
    momenta, amps = gluon_points
    colour = _colour_matrix_5()
    full = np.einsum("nhs,st,nht->n", np.conj(amps), colour, amps).real / 256.0
    leading = N**3 * (N**2 - 1) * (np.abs(amps) ** 2).sum(axis=(1, 2)) / 256.0
    module = gg_ggg_amp2(torch.from_numpy(momenta)).numpy()
    assert np.max(np.abs(module / full - 1)) < 1e-10
    assert np.max(np.abs(leading / full - 1)) < 1e-10  # leading colour is exact at five gluons


def test_five_gluon_amplitudes_gauge_invariant_and_only_mhv(gluon_points):
    momenta, amps = gluon_points
    other = np.broadcast_to(np.array([1.0, -0.48, 0.6, 0.64]), momenta.shape)
    amps_other = _ordered_amplitudes(momenta, ORDERINGS_24[:4], reference=other)
    scale = np.abs(amps).max(axis=(1, 2), keepdims=True)
    assert np.max(np.abs(amps_other - amps[..., :4]) / scale) < 1e-11
    n_minus = np.array([sum(h == -1 for h in hel) for hel in HELICITIES_5])
    vanishing = (n_minus <= 1) | (n_minus >= 4)
    assert np.max(np.abs(amps[:, vanishing]) / scale) < 1e-11
    assert np.all(np.abs(amps[:, ~vanishing]) / scale > 1e-8)


def _gg_gg_textbook(momenta: np.ndarray) -> np.ndarray:
    """(1/256) sum |M|^2 of g g -> g g at g_s = 1: (9/2)(3 - t u / s^2 - u s / t^2 - s t / u^2)."""
    p = momenta
    s = 2 * _dot(p[:, 0], p[:, 1])
    t = -2 * _dot(p[:, 0], p[:, 2])
    u = -2 * _dot(p[:, 0], p[:, 3])
    return 4.5 * (3 - t * u / s**2 - u * s / t**2 - s * t / u**2)


def test_four_gluon_recursion_reproduces_textbook_gg_gg():
    momenta = _points(2, 10, seed=3)
    amps = _ordered_amplitudes(momenta, ORDERINGS_6)
    leading = N**2 * (N**2 - 1) * (np.abs(amps) ** 2).sum(axis=(1, 2)) / 256.0
    assert np.max(np.abs(leading / _gg_gg_textbook(momenta) - 1)) < 1e-12


def _soft_point(born: np.ndarray, fraction: float, direction: np.ndarray) -> np.ndarray:
    """A 2 -> 3 point: a fifth massless momentum of energy fraction * sqrt_s along direction, and the two
    outgoing momenta of born re-made as the two-body decay of P - k (same direction in its rest frame)."""
    sqrt_s = born[0, 0] + born[1, 0]
    k = fraction * sqrt_s * np.concatenate([[1.0], direction / np.linalg.norm(direction)])
    q = np.array([sqrt_s, 0.0, 0.0, 0.0]) - k
    mass = math.sqrt(_dot(q, q))
    unit = born[2, 1:] / born[2, 0]
    rest = [0.5 * mass * np.concatenate([[1.0], sign * unit]) for sign in (1.0, -1.0)]
    beta = q[1:] / q[0]
    gamma = q[0] / mass
    boosted = []
    for p in rest:
        bp = beta @ p[1:]
        energy = gamma * (p[0] + bp)
        vec = p[1:] + ((gamma - 1) * bp / (beta @ beta) + gamma * p[0]) * beta
        boosted.append(np.concatenate([[energy], vec]))
    return np.stack([born[0], born[1], boosted[0], boosted[1], k])


@pytest.mark.parametrize("fraction", [1e-3, 1e-5])
def test_soft_gluon_limit_of_five_gluons(fraction):
    born = _points(2, 4, seed=5)
    amps4 = (np.abs(_ordered_amplitudes(born, ORDERINGS_6)) ** 2).sum(axis=1)  # (events, orderings)
    direction = np.array([0.3, -0.5, 0.8])
    for event in range(born.shape[0]):
        point = _soft_point(born[event], fraction, direction)
        k = point * INCOMING_SIGN[:, None]
        hard = born[event] * INCOMING_SIGN[:4, None]

        def s(a, b, hard=hard, k=k):
            return 2 * _dot(hard[a], k[4] if b == 4 else hard[b])

        # leading colour, exact here: the soft gluon enters each gap (a, b) of each four-gluon ordering with
        # the colour-ordered eikonal factor 2 s_ab / (s_a5 s_5b), summed over its two helicities
        eikonal = 0.0
        for order, amp2 in zip(ORDERINGS_6, amps4[event]):
            gaps = sum(2 * s(a, b) / (s(a, 4) * s(b, 4)) for a, b in zip(order, order[1:] + order[:1]))
            eikonal += N * N**2 * (N**2 - 1) * gaps * amp2 / 256.0
        value = gg_ggg_amp2(torch.from_numpy(point)).item()
        assert abs(value / eikonal - 1) < 5 * fraction


def test_gg_ggg_symmetric_under_gluon_exchange():
    momenta = torch.from_numpy(_points(3, 50, seed=2))
    reference = gg_ggg_amp2(momenta)
    for perm in itertools.permutations((2, 3, 4)):
        for incoming in ((0, 1), (1, 0)):
            value = gg_ggg_amp2(momenta[:, list(incoming + perm)])
            assert torch.max(torch.abs(value / reference - 1)) < 1e-12


def _boost_rotate(momenta: torch.Tensor) -> torch.Tensor:
    rapidity = 0.7
    ch, sh = math.cosh(rapidity), math.sinh(rapidity)
    boost = torch.eye(4, dtype=torch.float64)
    boost[0, 0] = boost[3, 3] = ch
    boost[0, 3] = boost[3, 0] = sh
    q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))
    rotation = torch.eye(4, dtype=torch.float64)
    rotation[1:, 1:] = torch.from_numpy(q * np.sign(np.linalg.det(q)))
    return momenta @ (rotation @ boost).T


@pytest.mark.parametrize("amp2", [gg_ggg_amp2, ee_qqg_amp2])
def test_lorentz_invariance(amp2):
    momenta = torch.from_numpy(_points(3, 50, seed=8))
    assert torch.max(torch.abs(amp2(_boost_rotate(momenta)) / amp2(momenta) - 1)) < 1e-12


# ---------------------------------------------------------------- e+ e- -> q qbar g by Dirac traces
GAMMA = np.zeros((4, 4, 4), dtype=complex)  # Dirac representation, upper index mu
_SIGMA = [np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.array([[1, 0], [0, -1]])]
GAMMA[0] = np.diag([1, 1, -1, -1])
for _i, _s in enumerate(_SIGMA):
    GAMMA[_i + 1][:2, 2:], GAMMA[_i + 1][2:, :2] = _s, -_s


def _slash(p: np.ndarray) -> np.ndarray:
    return np.einsum("...m,mab->...ab", p * METRIC, GAMMA)


def _lower_two(tensor: np.ndarray) -> np.ndarray:
    return tensor * METRIC[:, None] * METRIC[None, :]


def _ee_qqg_traces(p: np.ndarray) -> np.ndarray:
    """(1/4) sum |M|^2 of the two diagrams (gluon off the quark, off the antiquark), e = g_s = 1, pol sum -g."""
    lepton = np.einsum("mab,nbc,vcd,nda->nmv", GAMMA, _slash(p[:, 1]), GAMMA, _slash(p[:, 0]))
    s12 = _dot(p[:, 0] + p[:, 1], p[:, 0] + p[:, 1])
    s35 = _dot(p[:, 2] + p[:, 4], p[:, 2] + p[:, 4])
    s45 = _dot(p[:, 3] + p[:, 4], p[:, 3] + p[:, 4])
    quark_prop = _slash(p[:, 2] + p[:, 4]) / s35[:, None, None]
    anti_prop = _slash(p[:, 3] + p[:, 4]) / s45[:, None, None]
    # Gamma^{mu rho} = gamma^rho (p3 + p5)slash gamma^mu / s35 - gamma^mu (p4 + p5)slash gamma^rho / s45
    vertex = np.einsum("rab,nbc,mcd->nmrad", GAMMA, quark_prop, GAMMA) - np.einsum(
        "mab,nbc,rcd->nmrad", GAMMA, anti_prop, GAMMA
    )
    vertex_bar = np.einsum("mab,nbc,rcd->nmrad", GAMMA, quark_prop, GAMMA) - np.einsum(
        "rab,nbc,mcd->nmrad", GAMMA, anti_prop, GAMMA
    )
    hadron = np.einsum("nab,nmrbc,ncd,nvsda->nmvrs", _slash(p[:, 2]), vertex, _slash(p[:, 3]), vertex_bar)
    hadron = -np.einsum("nmvrr,r->nmv", hadron, METRIC)
    total = np.einsum("nmv,nmv->n", _lower_two(lepton), hadron).real
    return N * CF * total / s12**2 / 4.0


def _ee_qq_traces(p: np.ndarray) -> np.ndarray:
    lepton = np.einsum("mab,nbc,vcd,nda->nmv", GAMMA, _slash(p[:, 1]), GAMMA, _slash(p[:, 0]))
    hadron = np.einsum("nab,mbc,ncd,vda->nmv", _slash(p[:, 2]), GAMMA, _slash(p[:, 3]), GAMMA)
    s12 = _dot(p[:, 0] + p[:, 1], p[:, 0] + p[:, 1])
    return N * np.einsum("nmv,nmv->n", _lower_two(lepton), hadron).real / s12**2 / 4.0


def _ee_qq_textbook(p: np.ndarray) -> np.ndarray:
    s = 2 * _dot(p[:, 0], p[:, 1])
    t, u = -2 * _dot(p[:, 0], p[:, 2]), -2 * _dot(p[:, 0], p[:, 3])
    return 2 * N * (t**2 + u**2) / s**2


def test_ee_qq_traces_reproduce_textbook():
    born = _points(2, 10, seed=6)
    assert np.max(np.abs(_ee_qq_traces(born) / _ee_qq_textbook(born) - 1)) < 1e-12


def test_ee_qqg_matches_dirac_traces():
    momenta = _points(3, 20, seed=7)
    module = ee_qqg_amp2(torch.from_numpy(momenta)).numpy()
    assert np.max(np.abs(module / _ee_qqg_traces(momenta) - 1)) < 1e-10


def test_ee_qqg_lepton_average_is_ellis_stirling_webber():
    # amp2 is quadratic in the lepton direction n; the six directions +-x, +-y, +-z average any polynomial of
    # degree <= 3 over the sphere exactly
    hadrons = _points(3, 10, seed=9)
    directions = np.concatenate([np.eye(3), -np.eye(3)])
    half = 0.5 * SQRT_S
    average = np.zeros(hadrons.shape[0])
    for n in directions:
        p = hadrons.copy()
        p[:, 0] = half * np.concatenate([[1.0], n])
        p[:, 1] = half * np.concatenate([[1.0], -n])
        average += ee_qqg_amp2(torch.from_numpy(p)).numpy() / len(directions)
    x1, x2 = 2 * hadrons[:, 2, 0] / SQRT_S, 2 * hadrons[:, 3, 0] / SQRT_S
    s = SQRT_S**2
    born_average = 4 * N / 3  # 2 N (t^2 + u^2) / s^2 averaged over the scattering angle
    # d sigma / (sigma_0 dx1 dx2) = C_F alpha_s / (2 pi) (x1^2 + x2^2) / ((1 - x1)(1 - x2)) with
    # d Phi_3 / Phi_2 = s dx1 dx2 / (16 pi^2)
    esw = born_average * 2 * CF * (x1**2 + x2**2) / (s * (1 - x1) * (1 - x2))
    assert np.max(np.abs(average / esw - 1)) < 1e-12


@pytest.mark.parametrize("fraction", [1e-3, 1e-5])
def test_soft_gluon_limit_of_ee_qqg(fraction):
    born = _points(2, 6, seed=10)
    direction = np.array([-0.2, 0.9, 0.4])
    for event in range(born.shape[0]):
        point = _soft_point(born[event], fraction, direction)
        p3k, p4k = _dot(born[event, 2], point[4]), _dot(born[event, 3], point[4])
        eikonal = 2 * CF * _dot(born[event, 2], born[event, 3]) / (p3k * p4k)  # -C_F (p3/p3k - p4/p4k)^2
        expected = eikonal * _ee_qq_textbook(born[event : event + 1])[0]
        value = ee_qqg_amp2(torch.from_numpy(point)).item()
        assert abs(value / expected - 1) < 5 * fraction


def test_ee_qqg_symmetric_under_charge_conjugation():
    momenta = torch.from_numpy(_points(3, 50, seed=12))
    swapped = momenta[:, [1, 0, 3, 2, 4]]
    assert torch.max(torch.abs(ee_qqg_amp2(swapped) / ee_qqg_amp2(momenta) - 1)) < 1e-12


def test_processes_registry_and_shapes():
    momenta = torch.from_numpy(_points(3, 7, seed=13)).requires_grad_(True)
    for name, process in PROCESSES.items():
        assert isinstance(process, Process) and process.name == name
        assert (process.n_incoming, process.n_final, len(process.particles)) == (2, 3, 5)
        value = process.amp2(momenta)
        assert value.shape == (7,) and value.dtype == torch.float64 and bool((value > 0).all())
        (grad,) = torch.autograd.grad(value.sum(), momenta)
        assert bool(torch.isfinite(grad).all())
    with pytest.raises(ValueError):
        gg_ggg_amp2(torch.zeros(3, 4, 4, dtype=torch.float64))
