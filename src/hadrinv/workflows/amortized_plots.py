"""Plots every amortized-inference workflow draws (PNG, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

DPI = 110


def _pyplot():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def plot_coverage(path, methods: dict) -> Path:
    """Empirical vs nominal coverage (68%, 95%) per method; the band is the +-0.05 target."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.2 * len(methods) + 2, 3.2))
    names = list(methods)
    xs = np.arange(len(names))
    for k, (level, key) in enumerate(((0.68, "coverage_68"), (0.95, "coverage_95"))):
        ax.axhspan(level - 0.05, level + 0.05, color=f"C{k}", alpha=0.15)
        ax.plot(
            xs + 0.1 * (k - 0.5),
            [methods[n][key] for n in names],
            "o",
            color=f"C{k}",
            label=f"{int(level * 100)}% intervals",
        )
    ax.set_xticks(xs, names, rotation=30, fontsize=8)
    ax.set_ylabel("empirical coverage")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    return _save(plt, fig, path)
