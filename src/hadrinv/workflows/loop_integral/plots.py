"""The plot of the loop-integral workflow: where the contour leaves the real cube and how far.

With a deformation: |Im z(x)| over the unit square (triangle) or over three slices in t3 (box, one of them
through the lowest F), the in-plane imaginary shift as arrows, and the zero set F = 0 of the real cube, where
the poles sat. Without one (F > 0 on the cube): the real integrand on the same square or slices, and the title
says so. A result that is not valid says "NOT VALID" in the title.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch

from hadrinv.inference.contour import ContourDeformation
from hadrinv.physics.loop_integrals import OneLoop

GRID = 81
ARROWS = 13
BOX_SLICES = (0.25, 0.5, 0.75)


def _square(n: int, fixed: float | None) -> tuple[np.ndarray, torch.Tensor]:
    # cell centres: the faces are where the deformation vanishes and the integrand may be singular
    u = (np.arange(n) + 0.5) / n
    a, b = np.meshgrid(u, u, indexing="xy")
    points = [a.ravel(), b.ravel()] + ([] if fixed is None else [np.full(a.size, fixed)])
    return u, torch.as_tensor(np.stack(points, -1), dtype=torch.float64)


def _box_slices(loop: OneLoop, deformed: bool) -> list[float]:
    """t3 = 1/4, 1/2, 3/4; with a contour, the one nearest the lowest F on the cube moves there, so that a
    slice cuts the region F < 0 however small it is."""
    slices = list(BOX_SLICES)
    if deformed:
        u = (np.arange(GRID // 2) + 0.5) / (GRID // 2)
        grid = torch.cartesian_prod(*[torch.as_tensor(u)] * 3)
        with torch.no_grad():
            lowest = float(grid[loop.F(grid).argmin(), 2])
        slices[int(np.argmin([abs(v - lowest) for v in slices]))] = round(lowest, 3)
    return sorted(slices)


def plot_contour(path: Path, loop: OneLoop, deformation: ContourDeformation | None, failures: list[str]) -> Path:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = [None] if loop.dim == 2 else _box_slices(loop, deformation is not None)
    fig, axes = plt.subplots(1, len(slices), figsize=(4.6 * len(slices) + 1.4, 4.4), constrained_layout=True)
    axes = np.atleast_1d(axes)
    for ax, fixed in zip(axes, slices, strict=True):
        u, x = _square(GRID, fixed)
        with torch.no_grad():
            f_real = loop.F(x).numpy().reshape(GRID, GRID)
        if deformation is None:
            with torch.no_grad():
                values = loop.integrand(x).real.numpy().reshape(GRID, GRID)
            mesh = ax.pcolormesh(u, u, values, shading="auto", cmap="viridis")
            fig.colorbar(mesh, ax=ax, label="integrand (real)")
        else:
            z, _ = deformation(x)
            shift = z.imag.detach().numpy()
            mesh = ax.pcolormesh(u, u, np.linalg.norm(shift, axis=-1).reshape(GRID, GRID), shading="auto", cmap="magma")
            fig.colorbar(mesh, ax=ax, label="|Im z|")
            ua, xa = _square(ARROWS, fixed)
            za, _ = deformation(xa)
            arrows = za.imag.detach().numpy()
            ax.quiver(ua, ua, arrows[:, 0].reshape(ARROWS, ARROWS), arrows[:, 1].reshape(ARROWS, ARROWS), color="w")
            if f_real.min() < 0 < f_real.max():
                ax.contour(u, u, f_real, levels=[0.0], colors="c", linewidths=1.2)
        ax.set_xlabel("$t_1$")
        ax.set_ylabel("$t_2$")
        ax.set_aspect("equal")
        if fixed is not None:
            ax.set_title(f"$t_3$ = {fixed:g}", fontsize=9)
    name = loop.name or "integral"
    if deformation is None:
        title = f"{name}: no deformation needed (F > 0 on the cube), the integrand"
    else:
        title = f"{name}: imaginary shift of the contour (arrows: Im z),\nF = 0 on the real cube in cyan"
    if failures:
        title = "NOT VALID: " + "; ".join(failures) + "\n" + title
    fig.suptitle(title, fontsize=9, color="red" if failures else "black")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
