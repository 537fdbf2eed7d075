"""Plots of the pipi-isospin workflow: phases and inelasticities of each method against sqrt(s), with their
68 % bands, the CFD truth when the data are CFD pseudo-data, the K Kbar threshold, and "NOT VALID" in the
title of a figure that shows a result that is not."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch

from hadrinv.physics.pipi_isospin import cfd_inelasticity, cfd_phase_shift_deg

LABELS = (r"$\delta_0^0$", r"$\delta_1^1$", r"$\delta_0^2$")
ETA_LABELS = (r"$\eta_0^0$", r"$\eta_1^1$", r"$\eta_0^2$")
WAVES = ("S0", "P", "S2")


def plot_waves(out: Path, extractions: dict, threshold_gev2: float, truth: bool, failures: list[str]) -> list[Path]:
    """OUT/phase_shifts.png (all energies) and, with energies above the threshold, OUT/inelasticities.png."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = "NOT VALID: " + "; ".join(failures) if failures else ""
    written = []
    for name, key in (("phase_shifts.png", "delta"), ("inelasticities.png", "eta")):
        parts = {
            m: [e for e in regions.values() if key == "delta" or e.eta is not None]
            for m, regions in extractions.items()
        }
        if not any(parts.values()):
            continue
        fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8), constrained_layout=True)
        lo_all = min(float(np.sqrt(e.energies.min())) for es in parts.values() for e in es)
        hi_all = max(float(np.sqrt(e.energies.max())) for es in parts.values() for e in es)
        for k, ax in enumerate(axes):
            if truth:
                grid = np.linspace(lo_all, hi_all, 400)
                tensor = torch.as_tensor(grid)
                curve = cfd_phase_shift_deg(tensor, WAVES[k]) if key == "delta" else cfd_inelasticity(tensor, WAVES[k])
                ax.plot(grid, curve.numpy(), "k-", lw=1.2, label="CFD (truth)", zorder=5)
            for i, (method, es) in enumerate(parts.items()):
                for j, e in enumerate(es):
                    x = np.sqrt(e.energies)
                    y = e.delta_deg[:, k] if key == "delta" else e.eta[:, k]
                    lo, hi = (e.intervals_deg if key == "delta" else e.eta_intervals)[68]
                    label = method if j == 0 else None
                    ax.plot(x, y, ".-", color=f"C{i}", ms=3, lw=1, label=label)
                    ax.fill_between(x, lo[:, k], hi[:, k], color=f"C{i}", alpha=0.25, lw=0)
            ax.axvline(np.sqrt(threshold_gev2), color="0.6", ls=":", lw=1)
            ax.set_xlabel(r"$\sqrt{s}$ [GeV]")
            ax.set_ylabel((LABELS if key == "delta" else ETA_LABELS)[k] + (" [deg]" if key == "delta" else ""))
        axes[0].legend(fontsize=8)
        if title:
            fig.suptitle(title, color="red", fontsize=9)
        path = out / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
