"""The talk's three plots of a precision surrogate: the precision histogram of Delta = (A_NN - A) / A (train and
test), the calibration histogram of the pulls (log A - mean) / sigma_tot against a unit Gaussian, and Delta
against the size of the amplitude, where the rare large (collinear) amplitudes show their worse precision."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch

DELTA_BINS = np.linspace(-0.05, 0.05, 101)
PULL_BINS = np.linspace(-5.0, 5.0, 81)


def _delta(log_a: torch.Tensor, mean: torch.Tensor) -> np.ndarray:
    return torch.expm1(mean - log_a).numpy()


def precision(path: Path, rows: list[dict], y_train: torch.Tensor, train_mean, best: dict, y_test) -> Path:
    """Test-set Delta of every variant, and train against test for the best one."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in rows:
        p = r.get("_test_prediction")
        if p is not None:
            left.hist(_delta(y_test, p.mean), DELTA_BINS, histtype="step", label=f"{r['method']} / {r['boost']}")
    left.set(yscale="log", xlabel="Delta = (A_NN - A) / A", ylabel="test points", title="precision, test set")
    left.legend(fontsize=7)
    name = f"{best['method']} / {best['boost']}"
    right.hist(_delta(y_train, train_mean), DELTA_BINS, histtype="step", density=True, label="train")
    right.hist(_delta(y_test, best["_test_prediction"].mean), DELTA_BINS, histtype="step", density=True, label="test")
    right.set(yscale="log", xlabel="Delta", ylabel="density", title=f"precision, {name}")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def calibration(path: Path, rows: list[dict], y_test: torch.Tensor) -> Path:
    """Pulls of the variants that state an uncertainty, with the unit Gaussian they should follow."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for r in rows:
        p = r.get("_test_prediction")
        if p is not None and r["test"]["pull_width"] is not None:
            pull = ((y_test - p.mean) / p.sigma_tot).numpy()
            ax.hist(pull, PULL_BINS, histtype="step", density=True, label=f"{r['method']} / {r['boost']}")
    centres = 0.5 * (PULL_BINS[1:] + PULL_BINS[:-1])
    ax.plot(centres, np.exp(-0.5 * centres**2) / np.sqrt(2 * np.pi), "k--", label="N(0, 1)")
    ax.set(yscale="log", xlabel="(log A - mean) / sigma_tot", ylabel="density", title="calibration, test set")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def delta_vs_amplitude(path: Path, y_test: torch.Tensor, best: dict) -> Path:
    """|Delta| against log10 A for the best variant: a 2-D histogram and the 68 / 99 % quantiles per bin."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = best["_test_prediction"]
    log10_a = (y_test / np.log(10.0)).numpy()
    delta = np.abs(_delta(y_test, p.mean)).clip(1e-7, None)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.hist2d(log10_a, np.log10(delta), bins=(60, 60), cmin=1, norm=matplotlib.colors.LogNorm())
    edges = np.quantile(log10_a, np.linspace(0, 1, 21))
    which = np.clip(np.searchsorted(edges, log10_a, side="right") - 1, 0, len(edges) - 2)
    centres = 0.5 * (edges[1:] + edges[:-1])
    for q, style in ((0.68, "w-"), (0.99, "w--")):
        values = [np.quantile(delta[which == k], q) if np.any(which == k) else np.nan for k in range(len(centres))]
        ax.plot(centres, np.log10(values), style, label=f"{int(q * 100)} % quantile")
    ax.set(
        xlabel="log10 A",
        ylabel="log10 |Delta|",
        title=f"precision against amplitude size, {best['method']} / {best['boost']}",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
