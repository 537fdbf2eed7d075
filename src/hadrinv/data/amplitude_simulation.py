"""Simulated amplitude tables: RAMBO phase-space points with the standard cuts and exact tree-level |M|^2.

The points are flat in phase space (RAMBO's weight is constant for massless particles), which is how a
surrogate's training set is drawn in the talk: every region the cuts allow is represented, the collinear
and soft corners, where |M|^2 is large, only as often as their volume says.
"""

from __future__ import annotations

import torch

from hadrinv.data.amplitude_tables import AmplitudeTable
from hadrinv.physics.rambo import generate_with_cuts
from hadrinv.physics.tree_amplitudes import PROCESSES


def simulate_amplitudes(
    process: str,
    sqrt_s_gev: float,
    n_events: int,
    seed: int = 0,
    pt_min_gev: float | None = 20.0,
    abs_rapidity_max: float | None = 2.5,
    delta_r_min: float | None = 0.4,
) -> AmplitudeTable:
    """n_events points of `process` (a key of `hadrinv.physics.tree_amplitudes.PROCESSES`) that pass the cuts,
    with their squared matrix elements (couplings one; see that module for the normalisation)."""
    if process not in PROCESSES:
        raise ValueError(f"process {process!r}: choose from {', '.join(PROCESSES)}")
    spec = PROCESSES[process]
    generator = torch.Generator().manual_seed(seed)
    momenta, _, _ = generate_with_cuts(
        spec.n_final,
        sqrt_s_gev,
        n_events,
        generator,
        pt_min_gev=pt_min_gev,
        abs_rapidity_max=abs_rapidity_max,
        delta_r_min=delta_r_min,
    )
    return AmplitudeTable(momenta=momenta, amp2=spec.amp2(momenta), n_incoming=2, path=f"simulated {process}")
