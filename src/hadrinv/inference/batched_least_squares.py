"""Many small independent least-squares problems solved at once (Levenberg-Marquardt, batched in torch).

For models whose parameters fall into groups that decouple (an energy-independent partial-wave fit: each
energy's waves meet only that energy's data) from many starts at once: B starts x G groups x k parameters
(k small). Each iteration takes the k Jacobian columns of every group in k forward-mode passes over the
whole data (the columns of one group touch only its points), forms the k x k normal equations of every
(start, group) by scatter-adding, and solves them in one batched call. scipy's least_squares on the whole
problem treats the block-diagonal Jacobian as dense and one start at a time (measured on a four-channel
pi pi fit with 19 energies and 6 parameters each: over 10 minutes for 24 starts, against 16 s for 128
starts here), and does not handle a flat direction (a continuous ambiguity) well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class GroupedFit:
    x: torch.Tensor  # (B, G, k) parameters at the minimum found from each start
    chi2: torch.Tensor  # (B, G) per group
    converged: torch.Tensor  # (B, G) bool: the last accepted step changed chi^2 by less than the tolerance
    # (relative), or no step lowers it any more


def grouped_least_squares(
    residuals: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    group: torch.Tensor,
    iterations: int = 100,
    tolerance: float = 1e-8,
) -> GroupedFit:
    """Minimise sum r^2 of every group from every start.

    residuals: (B, G, k) -> (B, n_points), residual p depending only on the parameters of group[p];
    x0: (B, G, k) starts; group: (n_points,) int, the group of every residual.
    """
    x = x0.clone()
    batch, n_groups, k = x.shape
    group = group.to(x.device)

    def per_group(values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(batch, n_groups, *values.shape[2:], dtype=values.dtype, device=values.device)
        return out.index_add_(1, group, values)

    r = residuals(x)
    chi2 = per_group(r**2)
    damping = torch.full_like(chi2, 1e-3)
    change = torch.full_like(chi2, torch.inf)
    eye = torch.eye(k, dtype=x.dtype, device=x.device)
    for _ in range(iterations):
        columns = [torch.func.jvp(residuals, (x,), (eye[j].expand_as(x),))[1] for j in range(k)]
        jac = torch.stack(columns, -1)  # (B, n_points, k)
        normal = per_group(jac[..., :, None] * jac[..., None, :])  # (B, G, k, k)
        gradient = per_group(jac * r[..., None])  # (B, G, k)
        diagonal = torch.diagonal(normal, dim1=-2, dim2=-1)
        damped = normal + torch.diag_embed(damping[..., None] * (diagonal + 1e-12))
        trial = x - torch.linalg.solve(damped, gradient)
        r_trial = residuals(trial)
        chi2_trial = per_group(r_trial**2)
        better = chi2_trial < chi2
        change = torch.where(better, (chi2 - chi2_trial) / chi2.clamp(min=1e-300), change)
        x = torch.where(better[..., None], trial, x)
        chi2 = torch.where(better, chi2_trial, chi2)
        damping = torch.where(better, damping / 3.0, damping * 4.0).clamp(1e-10, 1e10)
        r = residuals(x)
        if bool(((change < tolerance) | (damping >= 1e9)).all()):
            break
    return GroupedFit(x, chi2, (change < tolerance) | (damping >= 1e9))
