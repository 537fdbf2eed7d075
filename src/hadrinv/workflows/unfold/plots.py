"""Plots of the unfolding workflow: per observable, the truth (where known), each method's unfolded distribution
and the detector-level data, with the ratio to the truth below."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from hadrinv.data.io import atomic_write_file


def unfolded(out: Path, problem, edges: dict, records: list[dict], truth_density) -> list[Path]:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for k, name in enumerate(problem.observables):
        e = edges[name]
        centers, width = 0.5 * (e[1:] + e[:-1]), np.diff(e)
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True, height_ratios=(3, 1))
        truth = truth_density(problem, k, e)
        detector, _ = np.histogram(problem.reco_data[:, k], e)
        top.stairs(detector / max(detector.sum(), 1) / width, e, color="grey", linestyle=":", label="detector level")
        if truth is not None:
            top.stairs(truth[0], e, color="black", label="truth")
        for record in records:
            density, cov = record["hist"][0][name]
            error = np.sqrt(np.clip(np.diag(cov), 0, None))
            line = top.errorbar(centers, density, error, fmt=".", label=record["method"])
            if truth is not None:
                with np.errstate(divide="ignore", invalid="ignore"):
                    bottom.errorbar(centers, density / truth[0], error / truth[0], fmt=".", color=line[0].get_color())
        bottom.axhline(1.0, color="black", linewidth=0.8)
        bottom.set_ylim(0.8, 1.2)
        bottom.set_xlabel(name)
        bottom.set_ylabel("/ truth")
        top.set_ylabel("density")
        top.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"unfolded_{name}.png"
        atomic_write_file(path, lambda tmp, fig=fig: fig.savefig(tmp, dpi=110, format="png"))
        plt.close(fig)
        paths.append(path)
    return paths
