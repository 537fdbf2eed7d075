"""Exact tree-level squared matrix elements of massless 2 -> 3 processes: g g -> g g g and e+ e- -> q qbar g.

Each function takes momenta (..., 5, 4), (E, px, py, pz) in GeV as returned by hadrinv.physics.rambo.rambo:
particles 0 and 1 incoming, 2, 3 and 4 outgoing, physical (positive-energy) momenta. It returns (...,) float64
in GeV^-2: |M|^2 summed over final-state and averaged over initial-state colours and helicities, with N_c = 3.

Couplings are set to one (g_s = 1, e = 1, quark charge Q_q = 1), so that
    g g -> g g g:       multiply by g_s^6 = (4 pi alpha_s)^3,
    e+ e- -> q qbar g:  multiply by e^4 Q_q^2 g_s^2 = (4 pi alpha)^2 Q_q^2 (4 pi alpha_s).
No symmetry factor for identical final-state particles is included (the squared amplitude is per ordered final
state): a cross section of g g -> g g g over the full phase space needs the factor 1 / 3! from the user.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["N_COLOURS", "PROCESSES", "Process", "ee_qqg_amp2", "gg_ggg_amp2"]

N_COLOURS = 3
_CF = (N_COLOURS**2 - 1) / (2 * N_COLOURS)


def _check_momenta(momenta: torch.Tensor) -> None:
    if momenta.shape[-2:] != (5, 4):
        raise ValueError(f"momenta must have shape (..., 5, 4), got {tuple(momenta.shape)}")


def _dot_matrix(momenta: torch.Tensor) -> torch.Tensor:
    """(..., n, n) Minkowski products p_i . p_j."""
    metric = torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=momenta.dtype, device=momenta.device)
    return torch.einsum("...ia,...ja->...ij", momenta * metric, momenta)


# the 12 cyclic orderings (0, s1, s2, s3, s4) of five legs up to reflection: a reflection gives the same
# |A|^2, and keeping s1 < s4 picks one of each pair
_ORDERINGS_5 = [(0, *perm) for perm in itertools.permutations(range(1, 5)) if perm[0] < perm[-1]]


def gg_ggg_amp2(momenta: torch.Tensor) -> torch.Tensor:
    """g g -> g g g, |M|^2 summed over final and averaged over initial colours and helicities (g_s = 1).

    In the all-outgoing convention (incoming momenta negated, s_ij = 2 k_i . k_j with the signed k) every
    non-vanishing helicity amplitude of five gluons is MHV or anti-MHV, |A(1..5)|^2 = s_ij^4 / (s_12 s_23 s_34
    s_45 s_51) for the pair (i, j) of opposite helicity, and the leading-colour sum is exact at five points
    (colour-ordered amplitudes with Tr(T^a T^b) = delta^ab):

        sum |M|^2 = g^6 N^3 (N^2 - 1) sum_{sigma in S_4} sum_hel |A(1, sigma)|^2
                  = 4 g^6 N^3 (N^2 - 1) (sum_{i<j} s_ij^4) sum_{12 orderings} 1 / (s_{s1 s2} s_{s2 s3} ... s_{s5 s1}),

    the 4 from the two helicity classes (MHV and anti-MHV) and the two reflections of each ordering. Every
    cyclic product has an even number of incoming-outgoing (negative) invariants, so it is positive. Averaging
    divides by 2 * 2 helicities and 8 * 8 colours, which leaves 27/8 in front at N = 3. No 1 / 3! for the
    identical final gluons.
    """
    _check_momenta(momenta)
    sign = torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0], dtype=momenta.dtype, device=momenta.device)
    s = 2.0 * _dot_matrix(momenta * sign[:, None])
    rows, cols = torch.triu_indices(5, 5, offset=1)
    numerator = (s[..., rows, cols] ** 4).sum(dim=-1)
    orderings = torch.tensor(_ORDERINGS_5, device=momenta.device)
    cyclic = (s[..., orderings, orderings.roll(-1, dims=1)]).prod(dim=-1)
    n = N_COLOURS
    colour_helicity = 4.0 * n**3 * (n**2 - 1)
    average = 1.0 / (4.0 * (n**2 - 1) ** 2)
    return average * colour_helicity * numerator * (1.0 / cyclic).sum(dim=-1)


def ee_qqg_amp2(momenta: torch.Tensor) -> torch.Tensor:
    """e+(p1) e-(p2) -> q(p3) qbar(p4) g(p5) through a virtual photon, |M|^2 summed over final and averaged over
    initial helicities (e = g_s = Q_q = 1; multiply by Q_q^2 for a quark of charge Q_q e).

        (1/4) sum |M|^2 = 2 N_c C_F [(p1.p3)^2 + (p1.p4)^2 + (p2.p3)^2 + (p2.p4)^2] / [(p1.p2) (p3.p5) (p4.p5)],

    with N_c C_F = Tr(t^a t^a) = 4 the colour sum. In the soft-gluon limit it becomes the eikonal factor
    g_s^2 C_F 2 (p3.p4) / ((p3.p5) (p4.p5)) times e+ e- -> q qbar, (1/4) sum |M|^2 = 2 N_c (t^2 + u^2) / s^2;
    averaged over the lepton directions it gives the Ellis-Stirling-Webber (x1^2 + x2^2) / ((1 - x1) (1 - x2)).
    """
    _check_momenta(momenta)
    d = _dot_matrix(momenta)
    numerator = d[..., 0, 2] ** 2 + d[..., 0, 3] ** 2 + d[..., 1, 2] ** 2 + d[..., 1, 3] ** 2
    denominator = d[..., 0, 1] * d[..., 2, 4] * d[..., 3, 4]
    return 2.0 * N_COLOURS * _CF * numerator / denominator


@dataclass(frozen=True)
class Process:
    """A 2 -> 3 process: its name, particle labels (incoming first) and squared matrix element (see the module)."""

    name: str
    particles: tuple[str, ...]
    description: str
    amp2: Callable[[torch.Tensor], torch.Tensor]
    n_incoming: int = 2
    n_final: int = 3


PROCESSES: dict[str, Process] = {
    "gg-ggg": Process(
        name="gg-ggg",
        particles=("g", "g", "g", "g", "g"),
        description="g g -> g g g, colour- and helicity-averaged, g_s = 1, no 1/3! symmetry factor",
        amp2=gg_ggg_amp2,
    ),
    "ee-qqg": Process(
        name="ee-qqg",
        particles=("e+", "e-", "q", "qbar", "g"),
        description="e+ e- -> gamma* -> q qbar g, spin-averaged, e = g_s = Q_q = 1",
        amp2=ee_qqg_amp2,
    ),
}
