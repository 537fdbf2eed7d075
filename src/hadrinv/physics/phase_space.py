"""Three-body phase space of J/psi -> gamma pi pi: flat and importance-weighted event generation in the
J/psi rest frame, Dalitz limits, and the flat m(pi pi) density.

Four-momenta are (N, 4) tensors (E, px, py, pz) in GeV, float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from hadrinv.physics.line_shapes import M_PI_CHARGED, _real_momentum

M_JPSI = 3.0969  # PDG, GeV


def dalitz_s12_limits(
    s23: torch.Tensor, masses: Sequence[float], M: float = M_JPSI
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kinematic range of s12 = m12^2 at given s23 = m23^2 (GeV^2), from the energies in the 23 rest frame."""
    m1, m2, m3 = masses
    m23 = torch.sqrt(s23)
    e2 = (s23 - m3**2 + m2**2) / (2.0 * m23)
    e1 = (M**2 - s23 - m1**2) / (2.0 * m23)
    p2 = torch.sqrt(torch.clamp(e2**2 - m2**2, min=0.0))
    p1 = torch.sqrt(torch.clamp(e1**2 - m1**2, min=0.0))
    return (e1 + e2) ** 2 - (p1 + p2) ** 2, (e1 + e2) ** 2 - (p1 - p2) ** 2


def _rotate(v: torch.Tensor, phi: torch.Tensor, theta: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """R_z(phi) R_y(theta) R_z(psi) applied to 3-vectors (N, 3)."""

    def rz(a, x, y):
        return torch.cos(a) * x - torch.sin(a) * y, torch.sin(a) * x + torch.cos(a) * y

    x, y = rz(psi, v[..., 0], v[..., 1])
    z = v[..., 2]
    x, z = torch.cos(theta) * x + torch.sin(theta) * z, -torch.sin(theta) * x + torch.cos(theta) * z
    x, y = rz(phi, x, y)
    return torch.stack([x, y, z], dim=-1)


def phase_space_events(
    n: int, masses: Sequence[float] = (0.0, M_PI_CHARGED, M_PI_CHARGED), M: float = M_JPSI, generator=None
):
    """n events uniform in three-body Lorentz-invariant phase space of M -> 1 2 3, J/psi rest frame.

    Returns the four-momenta (p1, p2, p3), each (n, 4) in GeV, i.e. (gamma, pi1, pi2) by default.
    d Phi_3 is proportional to ds12 ds23 dOmega_1 dpsi, so we draw (s12, s23) uniform in the enclosing
    rectangle, keep the points inside the Dalitz boundary (batch rejection), and orient the event by
    R_z(phi) R_y(theta) R_z(psi) with cos(theta), phi and psi uniform (psi: rotation about particle 1).
    """
    m1, m2, m3 = (float(x) for x in masses)
    if M < m1 + m2 + m3:
        raise ValueError("decay below threshold")
    opts = {"dtype": torch.float64, "generator": generator}
    s23_lo, s23_hi = (m2 + m3) ** 2, (M - m1) ** 2
    s12_lo, s12_hi = (m1 + m2) ** 2, (M - m3) ** 2
    kept_s12, kept_s23, count = [], [], 0
    while count < n:  # a loop over batches; the acceptance is about 1/2 for gamma pi pi
        batch = max(2 * (n - count) + 1000, 1000)
        s23 = s23_lo + (s23_hi - s23_lo) * torch.rand(batch, **opts)
        s12 = s12_lo + (s12_hi - s12_lo) * torch.rand(batch, **opts)
        lo, hi = dalitz_s12_limits(s23, (m1, m2, m3), M)
        inside = (s12 >= lo) & (s12 <= hi)
        kept_s12.append(s12[inside])
        kept_s23.append(s23[inside])
        count += int(inside.sum())
    s12 = torch.cat(kept_s12)[:n]
    s23 = torch.cat(kept_s23)[:n]
    return _events_from_dalitz(s12, s23, (m1, m2, m3), M, generator)


def _events_from_dalitz(
    s12: torch.Tensor, s23: torch.Tensor, masses: Sequence[float], M: float, generator
) -> tuple[torch.Tensor, ...]:
    """Four-momenta (p1, p2, p3) of Dalitz points (s12, s23), with an isotropic orientation."""
    opts = {"dtype": torch.float64, "generator": generator}
    n = s12.shape[0]
    cos_theta = 2.0 * torch.rand(n, **opts) - 1.0
    phi = 2.0 * math.pi * torch.rand(n, **opts)
    psi = 2.0 * math.pi * torch.rand(n, **opts)
    return events_from_dalitz(s12, s23, cos_theta, phi, psi, masses, M)


def events_from_dalitz(
    s12: torch.Tensor,
    s23: torch.Tensor,
    cos_theta: torch.Tensor,
    phi: torch.Tensor,
    psi: torch.Tensor,
    masses: Sequence[float] = (0.0, M_PI_CHARGED, M_PI_CHARGED),
    M: float = M_JPSI,
) -> tuple[torch.Tensor, ...]:
    """Four-momenta (p1, p2, p3), each (N, 4) GeV in the M rest frame, of Dalitz points (s12, s23) in GeV^2 and
    an orientation: particle 1 along (theta, phi), particle 2 turned by psi about it (the rotation
    R_z(phi) R_y(theta) R_z(psi) of the event built in the x-z plane). The inverse of `dalitz_coordinates`.
    Every event conserves four-momentum and has its particles on shell, whatever the inputs inside the
    Dalitz region: the energies follow from (s12, s23), p3 = -(p1 + p2)."""
    m1, m2, m3 = masses
    e1 = (M**2 + m1**2 - s23) / (2.0 * M)
    e3 = (M**2 + m3**2 - s12) / (2.0 * M)
    e2 = M - e1 - e3
    p1 = torch.sqrt(torch.clamp(e1**2 - m1**2, min=0.0))
    p2 = torch.sqrt(torch.clamp(e2**2 - m2**2, min=0.0))
    p3_sq = torch.clamp(e3**2 - m3**2, min=0.0)
    # p3 = -(p1 + p2) fixes the opening angle between particles 1 and 2.
    cos12 = torch.clamp((p3_sq - p1**2 - p2**2) / torch.clamp(2.0 * p1 * p2, min=1e-300), -1.0, 1.0)
    sin12 = torch.sqrt(1.0 - cos12**2)
    zero = torch.zeros_like(p1)
    v1 = torch.stack([zero, zero, p1], dim=-1)
    v2 = torch.stack([p2 * sin12, zero, p2 * cos12], dim=-1)
    theta = torch.acos(cos_theta.clamp(-1.0, 1.0))
    v1, v2 = _rotate(v1, phi, theta, psi), _rotate(v2, phi, theta, psi)
    v3 = -(v1 + v2)
    return (
        torch.cat([e1[:, None], v1], dim=-1),
        torch.cat([e2[:, None], v2], dim=-1),
        torch.cat([e3[:, None], v3], dim=-1),
    )


def dalitz_coordinates(p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(s12, s23, cos_theta, phi, psi) of three-body events in their rest frame (the inverse of
    `events_from_dalitz`): the Dalitz variables in GeV^2, the polar and azimuthal angles of particle 1 and
    the azimuth psi of particle 2 about particle 1, phi and psi in [0, 2 pi)."""

    def mass2(p):
        return p[:, 0] ** 2 - (p[:, 1:] ** 2).sum(-1)

    s12, s23 = mass2(p1 + p2), mass2(p2 + p3)
    v1, v2 = p1[:, 1:], p2[:, 1:]
    cos_theta = (v1[:, 2] / v1.norm(dim=-1).clamp_min(1e-300)).clamp(-1.0, 1.0)
    phi = torch.atan2(v1[:, 1], v1[:, 0])
    sin_t, cos_p, sin_p = torch.sqrt(1.0 - cos_theta**2), torch.cos(phi), torch.sin(phi)
    # undo R_z(phi), then R_y(theta): v2 is left turned by R_z(psi) from the x-z plane
    x, y = cos_p * v2[:, 0] + sin_p * v2[:, 1], -sin_p * v2[:, 0] + cos_p * v2[:, 1]
    x = cos_theta * x - sin_t * v2[:, 2]
    psi = torch.atan2(y, x)
    two_pi = 2.0 * math.pi
    return s12, s23, cos_theta, torch.remainder(phi, two_pi), torch.remainder(psi, two_pi)


def weighted_phase_space_events(
    n: int,
    m_edges: torch.Tensor | None = None,
    m_probabilities: torch.Tensor | None = None,
    flat_fraction: float = 0.2,
    masses: Sequence[float] = (0.0, M_PI_CHARGED, M_PI_CHARGED),
    M: float = M_JPSI,
    generator=None,
):
    """n weighted three-body phase-space events whose m23 follows a given spectrum (importance sampling).

    s23 = m23^2 is drawn from a mixture: ``flat_fraction`` uniform on its range, the rest from the
    histogram (``m_edges`` (B + 1,) in GeV, ``m_probabilities`` (B,), m uniform inside a bin); s12 is
    uniform in its range at that s23, the orientation isotropic. The weight w = (s12 range at s23) / g(s23),
    normalised to mean 1, makes sum w f / sum w an estimate of the flat phase-space average of any f. With
    the histogram shaped like the data's m23 spectrum (`data.pwa_model.model_m_spectrum`), an MC average of
    the intensity has about the data's own per-event variance, where flat events leave narrow resonances
    with few events and the normalisation's MC noise scatters their fitted masses and widths by a sizeable
    fraction of their statistical errors (measured: benchmarks/pwa_mc_noise.py). Without a histogram, s23
    is uniform. Returns (p1, p2, p3, weights)."""
    m1, m2, m3 = (float(x) for x in masses)
    opts = {"dtype": torch.float64, "generator": generator}
    lo, hi = (m2 + m3) ** 2, (M - m1) ** 2
    if m_edges is None:
        flat_fraction = 1.0
    elif not 0.0 < flat_fraction <= 1.0:
        raise ValueError(f"flat_fraction must be in (0, 1], got {flat_fraction}")
    u = torch.rand(n, **opts)
    s23 = lo + (hi - lo) * u
    density = torch.full_like(s23, flat_fraction / (hi - lo))
    if flat_fraction < 1.0:
        edges = torch.as_tensor(m_edges, dtype=torch.float64).clamp(math.sqrt(lo), math.sqrt(hi))
        prob = torch.as_tensor(m_probabilities, dtype=torch.float64).clamp(min=0.0)
        prob = prob / prob.sum()
        from_histogram = torch.rand(n, **opts) >= flat_fraction
        k = torch.multinomial(prob, int(from_histogram.sum()), replacement=True, generator=generator)
        m = edges[k] + (edges[k + 1] - edges[k]) * u[from_histogram]
        s23[from_histogram] = m * m
        m_all = torch.sqrt(s23)
        b = torch.searchsorted(edges, m_all, right=True).clamp(1, len(prob)) - 1
        inside = (m_all >= edges[0]) & (m_all <= edges[-1])
        # dN/ds23 of the histogram part: p_b / (bin width in m) / (2 m)
        hist = torch.where(inside, prob[b] / (edges[b + 1] - edges[b]) / (2.0 * m_all), torch.zeros_like(m_all))
        density = density + (1.0 - flat_fraction) * hist
    s12_lo, s12_hi = dalitz_s12_limits(s23, (m1, m2, m3), M)
    s12 = s12_lo + (s12_hi - s12_lo) * torch.rand(n, **opts)
    weights = (s12_hi - s12_lo) / density
    return (*_events_from_dalitz(s12, s23, (m1, m2, m3), M, generator), weights / weights.mean())


def two_body_phase_space_density(
    m_pipi, masses: Sequence[float] = (0.0, M_PI_CHARGED, M_PI_CHARGED), M: float = M_JPSI
) -> torch.Tensor:
    """dN/dm23 of flat phase space, unnormalised: p q / M (p: particle 1 in the M frame, q: particle 2 in
    the 23 frame, both GeV); 0 outside the kinematic range."""
    m = torch.as_tensor(m_pipi, dtype=torch.float64)
    m1, m2, m3 = masses
    p = _real_momentum(torch.full_like(m, M), m1, m)
    q = _real_momentum(m, m2, m3)
    return p * q / M
