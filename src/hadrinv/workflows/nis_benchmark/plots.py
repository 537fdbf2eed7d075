"""The benchmark at a glance: each method's variance relative to vegas's, per integrand, at equal calls."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hadrinv.data.io import atomic_write_file  # noqa: E402


def variance_ratios(rows: list[dict], path: Path) -> Path:
    """Grouped bars of error^2 / vegas's error^2 on a log axis; hatched bars: not valid or |pull| > 4."""
    integrands = list(dict.fromkeys(r["integrand"] for r in rows))
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "vegas"]
    cell = {(r["integrand"], r["method"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(integrands) + 2), 4.0))
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(integrands))
    for k, method in enumerate(methods):
        heights, hatches = [], []
        for name in integrands:
            r = cell.get((name, method))
            ratio = r["variance_over_vegas"] if r else None
            heights.append(ratio if ratio else np.nan)
            hatches.append(bool(r) and (not r["is_valid"] or abs(r["pull"]) > 4))
        bars = ax.bar(x + (k - (len(methods) - 1) / 2) * width, heights, width, label=method)
        for bar, hatch in zip(bars, hatches, strict=True):
            if hatch:
                bar.set_hatch("//")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(x, integrands, rotation=30, ha="right")
    ax.set_ylabel("variance / vegas's (equal total calls)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write_file(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return path
