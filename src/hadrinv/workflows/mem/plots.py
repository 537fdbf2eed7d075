"""The matrix-element-method plot: -2 Delta ln L of the first pseudo-data set, and every set's estimate."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from hadrinv.data.io import atomic_write_file

COLORS = {"true hard": "black", "known detector": "tab:blue", "learned MEM": "tab:red"}


def mem(path: Path, fits: dict[str, list[dict]], truth: float, parameter: str) -> Path:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, results in fits.items():
        grid, scan = results[0].get("curve", results[0]["scan"])
        left.plot(grid, 2 * (scan - np.nanmin(scan)), color=COLORS.get(method), label=method)
        sets = np.arange(len(results)) + {"true hard": -0.2, "known detector": 0.0}.get(method, 0.2)
        values = [f["value"] for f in results]
        errors = [f["error"] for f in results]
        right.errorbar(sets, values, errors, fmt="o", ms=3, color=COLORS.get(method), label=method)
    left.axvline(truth, color="grey", linestyle=":")
    left.set(xlabel=parameter, ylabel="-2 Delta ln L (first set)", ylim=(0, 12))
    right.axhline(truth, color="grey", linestyle=":", label="truth")
    right.set(xlabel="pseudo-data set", ylabel=parameter, xticks=range(len(next(iter(fits.values())))))
    left.legend()
    right.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_file(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path
