"""Ratio plots of generated against held-out events: every observable of one generator, and the first observable
of every generator side by side (the narrow structures of m_pipi for J/psi -> gamma pi pi)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from hadrinv.data.io import atomic_write_file


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    atomic_write_file(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def _grid(panels: list[tuple[str, object]], title: str):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hadrinv.inference.event_metrics import ratio_panel

    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(
        2 * rows, columns, figsize=(4.2 * columns, 4.0 * rows), squeeze=False, height_ratios=[3, 1] * rows
    )
    for i, (label, comparison) in enumerate(panels):
        r, c = divmod(i, columns)
        ratio_panel(axes[2 * r, c], axes[2 * r + 1, c], comparison, label)
    for i in range(len(panels), rows * columns):
        r, c = divmod(i, columns)
        axes[2 * r, c].set_visible(False)
        axes[2 * r + 1, c].set_visible(False)
    fig.suptitle(title)
    return fig


def ratios(path: Path, comparisons: dict, method: str) -> Path:
    return _save(_grid(list(comparisons.items()), f"{method}: generated / held-out"), path)


def peaks(path: Path, rows: list[dict]) -> Path:
    panels = []
    for r in rows:
        comparisons = r.get("_comparisons")
        if comparisons:
            name = next(iter(comparisons))
            panels.append((f"{name} ({r['method']})", comparisons[name]))
    return _save(_grid(panels, "first observable, every generator"), path)
