"""Massless n-body phase space by RAMBO (Kleiss, Stirling, Ellis, Comput. Phys. Commun. 40 (1986) 359),
pair invariants, and the standard jet cuts (pT, rapidity, Delta R) on the generated events.

Four-momenta are (..., 4) tensors (E, px, py, pz) in GeV, float64, metric (+, -, -, -). Events are in the
centre-of-mass frame with the two incoming momenta along +z and -z.

Normalisation: the phase-space measure is

    d Phi_n = prod_i d^3 p_i / ((2 pi)^3 2 E_i) * (2 pi)^4 delta^4(P - sum_i p_i),

whose total volume for n massless particles at centre-of-mass energy squared s is

    Phi_n = (2 pi)^(4 - 3 n) (pi / 2)^(n - 1) s^(n - 2) / ((n - 1)! (n - 2)!),

e.g. Phi_2 = 1 / (8 pi) and Phi_3 = s / (256 pi^3). RAMBO points are uniform in this measure, so every event
carries the same weight Phi_n and the Monte Carlo estimate of int d Phi_n f is mean(weight * f).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "cut_mask",
    "generate_with_cuts",
    "massless_phase_space_volume",
    "pair_index",
    "pair_invariants",
    "rambo",
]


def massless_phase_space_volume(n_final: int, sqrt_s_gev: float) -> float:
    """Phi_n of n_final massless particles at sqrt(s) = sqrt_s_gev, in GeV^(2 n - 4) (normalisation above)."""
    n = n_final
    s = sqrt_s_gev**2
    return (
        (2.0 * math.pi) ** (4 - 3 * n)
        * (0.5 * math.pi) ** (n - 1)
        * s ** (n - 2)
        / (math.factorial(n - 1) * math.factorial(n - 2))
    )


def _check_rambo_arguments(n_final: int, sqrt_s_gev: float, n_events: int) -> None:
    if n_final < 2:
        raise ValueError(f"n_final must be >= 2, got {n_final}")
    if not sqrt_s_gev > 0.0:
        raise ValueError(f"sqrt_s_gev must be > 0, got {sqrt_s_gev}")
    if n_events < 1:
        raise ValueError(f"n_events must be >= 1, got {n_events}")


def rambo(
    n_final: int,
    sqrt_s_gev: float,
    n_events: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n_events points of massless n_final-body phase space at sqrt(s) = sqrt_s_gev, centre-of-mass frame.

    Returns (momenta, weights): momenta (n_events, 2 + n_final, 4), first the incoming (sqrt_s/2, 0, 0, +sqrt_s/2)
    and (sqrt_s/2, 0, 0, -sqrt_s/2), then the final-state momenta; weights (n_events,), all equal to Phi_n of
    the module docstring (massless RAMBO is exactly flat in phase space).
    """
    _check_rambo_arguments(n_final, sqrt_s_gev, n_events)
    rho = torch.rand(n_events, n_final, 4, generator=generator, dtype=dtype)
    # 1 - rho lies in (0, 1]: the logarithm stays finite
    rho = 1.0 - rho
    cos_theta = 2.0 * rho[..., 0] - 1.0
    sin_theta = torch.sqrt(torch.clamp(1.0 - cos_theta**2, min=0.0))
    phi = 2.0 * math.pi * rho[..., 1]
    q0 = -torch.log(rho[..., 2] * rho[..., 3])
    unit = torch.stack([sin_theta * torch.cos(phi), sin_theta * torch.sin(phi), cos_theta], dim=-1)
    q_vec = q0[..., None] * unit

    # isotropic massless momenta with energies ~ q0 exp(-q0), then the conformal map (boost to the rest frame of
    # their sum Q, and scaling) that brings the sum to (sqrt_s, 0); the map preserves the flat measure, which is
    # the point of RAMBO. Q^2 and Q.q_i come from the pair products q_i.q_j = q0_i q0_j |n_i - n_j|^2 / 2, sums
    # of positive terms: Q0^2 - |Q|^2 cancels catastrophically when the q_i are nearly collinear (frequent at
    # n = 2), and the boost would then lose masslessness
    pair = 0.5 * q0[:, :, None] * q0[:, None, :] * ((unit[:, :, None, :] - unit[:, None, :, :]) ** 2).sum(dim=-1)
    q_dot_total = pair.sum(dim=-1)
    mass = torch.sqrt(q_dot_total.sum(dim=-1))
    total0 = q0.sum(dim=-1)
    total_vec = q_vec.sum(dim=-2)
    x = sqrt_s_gev / mass
    rest_energy = q_dot_total / mass[:, None]
    # rest-frame momentum of q: q_vec - Q_vec (q0 + E_rest) / (Q0 + M)
    p_vec = q_vec - total_vec[:, None, :] * ((q0 + rest_energy) / (total0 + mass)[:, None])[..., None]
    final = x[:, None, None] * torch.cat([rest_energy[..., None], p_vec], dim=-1)

    half = 0.5 * sqrt_s_gev
    incoming = torch.tensor([[half, 0.0, 0.0, half], [half, 0.0, 0.0, -half]], dtype=dtype)
    momenta = torch.cat([incoming.expand(n_events, 2, 4), final], dim=1)
    weights = torch.full((n_events,), massless_phase_space_volume(n_final, sqrt_s_gev), dtype=dtype)
    return momenta, weights


def pair_index(n: int) -> list[tuple[int, int]]:
    """The pairs (i, j), i < j, of n particles in the order of pair_invariants: (0, 1), (0, 2), ..., (n-2, n-1)."""
    return [(i, j) for i in range(n) for j in range(i + 1, n)]


def _minkowski_square(p: torch.Tensor) -> torch.Tensor:
    return p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(dim=-1)


def pair_invariants(momenta: torch.Tensor) -> torch.Tensor:
    """s_ij = (p_i + p_j)^2 in GeV^2 of the momenta (..., n, 4) as given, for the pairs of pair_index(n).

    The momenta are summed as given (incoming ones too), so an incoming-outgoing pair gives (p_in + p_out)^2 > 0;
    negate the incoming momenta first for the crossed (all-outgoing) invariants such as t = (p_in - p_out)^2.
    """
    i, j = zip(*pair_index(momenta.shape[-2]))
    return _minkowski_square(momenta[..., list(i), :] + momenta[..., list(j), :])


def _rapidity_phi_pt(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    energy, px, py, pz = p.unbind(dim=-1)
    pt = torch.sqrt(px**2 + py**2)
    rapidity = 0.5 * torch.log((energy + pz) / (energy - pz))
    return rapidity, torch.atan2(py, px), pt


def cut_mask(
    momenta: torch.Tensor,
    n_incoming: int = 2,
    pt_min_gev: float | None = None,
    abs_rapidity_max: float | None = None,
    delta_r_min: float | None = None,
) -> torch.Tensor:
    """Bool (...,): True for the events whose final-state particles (all but the first n_incoming) pass the cuts.

    Each final-state particle needs pT >= pt_min_gev and |y| <= abs_rapidity_max (y the rapidity
    0.5 ln((E + pz) / (E - pz))), and every final-state pair Delta R = sqrt(dy^2 + dphi^2) >= delta_r_min, with
    dphi wrapped into [-pi, pi]. A cut set to None is not applied.
    """
    final = momenta[..., n_incoming:, :]
    keep = torch.ones(final.shape[:-2], dtype=torch.bool, device=final.device)
    if pt_min_gev is None and abs_rapidity_max is None and delta_r_min is None:
        return keep
    rapidity, phi, pt = _rapidity_phi_pt(final)
    if pt_min_gev is not None:
        keep = keep & (pt >= pt_min_gev).all(dim=-1)
    if abs_rapidity_max is not None:
        keep = keep & (rapidity.abs() <= abs_rapidity_max).all(dim=-1)
    if delta_r_min is not None and final.shape[-2] > 1:
        i, j = zip(*pair_index(final.shape[-2]))
        d_rapidity = rapidity[..., list(i)] - rapidity[..., list(j)]
        d_phi = torch.remainder(phi[..., list(i)] - phi[..., list(j)] + math.pi, 2.0 * math.pi) - math.pi
        keep = keep & (d_rapidity**2 + d_phi**2 >= delta_r_min**2).all(dim=-1)
    return keep


def generate_with_cuts(
    n_final: int,
    sqrt_s_gev: float,
    n_events: int,
    generator: torch.Generator | None = None,
    pt_min_gev: float | None = None,
    abs_rapidity_max: float | None = None,
    delta_r_min: float | None = None,
    batch_size: int = 10_000,
    max_points: int = 100_000_000,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """n_events RAMBO points that pass cut_mask, drawn in batches until enough have passed.

    Returns (momenta, weights, pass_fraction): momenta (n_events, 2 + n_final, 4), weights (n_events,) equal to
    the uncut Phi_n, and pass_fraction = passed / drawn over all points drawn. The weight of a passing point is
    unchanged, so the cross section with cuts is estimated by pass_fraction * mean(weight * f) over the returned
    points (f the integrand, flux factor included), the same as mean(weight * f * pass) over all points drawn.
    Raises RuntimeError when max_points points were drawn and fewer than n_events passed.
    """
    _check_rambo_arguments(n_final, sqrt_s_gev, n_events)
    kept, n_passed, n_drawn = [], 0, 0
    while n_passed < n_events:  # a loop over batches, not events
        if n_drawn >= max_points:
            raise RuntimeError(f"only {n_passed} of {n_drawn} points passed the cuts; wanted {n_events}")
        # size the next batch by the pass fraction seen so far, with headroom, but at most 20 batch_size points in
        # memory at once
        estimate = max(n_passed, 1) / n_drawn if n_drawn else 1.0
        size = int(min(max(batch_size, 1.2 * (n_events - n_passed) / estimate), 20 * batch_size))
        size = max(1, min(size, max_points - n_drawn))
        momenta, _ = rambo(n_final, sqrt_s_gev, size, generator=generator, dtype=dtype)
        passed = momenta[cut_mask(momenta, 2, pt_min_gev, abs_rapidity_max, delta_r_min)]
        kept.append(passed)
        n_passed += passed.shape[0]
        n_drawn += size
    momenta = torch.cat(kept)[:n_events]
    weights = torch.full((n_events,), massless_phase_space_volume(n_final, sqrt_s_gev), dtype=dtype)
    return momenta, weights, n_passed / n_drawn
