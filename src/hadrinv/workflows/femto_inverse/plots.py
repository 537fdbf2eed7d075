"""Plots of the femto-inverse workflow (PNG)."""

from __future__ import annotations

import numpy as np
import torch

from hadrinv.workflows.amortized_plots import _pyplot, _save


def plot_pca(path, pca: dict):
    """Explained variance per component and cumulative, for C and log C (the talk: <= 3 components)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for name, p in pca.items():
        ratio = np.asarray(p["explained_variance_ratio"])
        n = np.arange(1, len(ratio) + 1)
        axes[0].semilogy(n, ratio, "o-", label=name)
        axes[1].plot(n, np.cumsum(ratio), "o-", label=name)
    axes[0].set(xlabel="component", ylabel="explained variance ratio")
    axes[1].set(xlabel="components", ylabel="cumulative", ylim=(0.8, 1.005))
    axes[1].axhline(0.99, color="gray", lw=0.8, ls="--")
    axes[0].legend()
    _save(plt, fig, path)


def plot_parity(path, cases: dict, r2: dict):
    """Predicted vs true parameters of the talk's DNNs on held-out curves."""
    plt = _pyplot()
    rows = len(cases)
    width = max(len(names) for _, _, names in cases.values())
    fig, axes = plt.subplots(rows, width, figsize=(2.8 * width, 2.8 * rows), squeeze=False)
    for row, (title, (pred, truth, names)) in enumerate(cases.items()):
        for j, name in enumerate(names):
            ax = axes[row, j]
            t, p = truth[:, j].numpy(), pred[:, j].numpy()
            ax.plot(t, p, ".", ms=1.5, alpha=0.4)
            lims = [t.min(), t.max()]
            ax.plot(lims, lims, "k-", lw=0.8)
            score = 1 - ((p - t) ** 2).sum() / ((t - t.mean()) ** 2).sum()
            ax.set_title(f"{name}: R2 = {score:.3f}", fontsize=9)
            ax.set_xlabel("true")
            if j == 0:
                ax.set_ylabel(f"{title}\npredicted", fontsize=8)
        for j in range(len(names), width):
            axes[row, j].axis("off")
    _save(plt, fig, path)


def plot_posterior_widths(path, posterior: dict, names):
    """Posterior standard deviation over the prior's, per parameter: b2 and b4 stay near 1 (not identified)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(names))
    width = 0.8 / max(1, len(posterior))
    for i, (method, m) in enumerate(posterior.items()):
        ax.bar(x + i * width, m["width_over_prior"], width, label=method)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x + 0.4 - width / 2, names)
    ax.set_ylabel("posterior std / prior std")
    ax.legend(fontsize=7)
    _save(plt, fig, path)


def plot_pairs(path, samples: torch.Tensor, truth: torch.Tensor, names, bounds):
    """Pair plot of one curve's posterior over the prior box (the truth in red)."""
    plt = _pyplot()
    d = len(names)
    s, t = samples.numpy(), truth.numpy()
    low, high = bounds
    fig, axes = plt.subplots(d, d, figsize=(1.9 * d, 1.9 * d))
    for i in range(d):
        for j in range(d):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(s[:, i], bins=40, range=(low[i], high[i]), color="C0")
                ax.axvline(t[i], color="r")
            else:
                ax.plot(s[:, j], s[:, i], ".", ms=1, alpha=0.3)
                ax.plot(t[j], t[i], "r*", ms=8)
                ax.set_xlim(low[j], high[j])
                ax.set_ylim(low[i], high[i])
            if i == d - 1:
                ax.set_xlabel(names[j])
            if j == 0 and i > 0:
                ax.set_ylabel(names[i])
            ax.tick_params(labelsize=6)
    _save(plt, fig, path)


def plot_coverage_table(path, posterior: dict):
    """Marginal coverage of each method at 68 / 95 % against nominal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    methods = list(posterior)
    x = np.arange(len(methods))
    ax.bar(x - 0.2, [posterior[m]["coverage_68"] for m in methods], 0.4, label="68 %")
    ax.bar(x + 0.2, [posterior[m]["coverage_95"] for m in methods], 0.4, label="95 %")
    for level in (0.68, 0.95):
        ax.axhspan(level - 0.05, level + 0.05, color="gray", alpha=0.2)
    ax.set_xticks(x, methods, rotation=15, fontsize=7)
    ax.set_ylabel("coverage")
    ax.legend()
    _save(plt, fig, path)


def _band(ax, x, values, color, label):
    low, mid, high = np.percentile(values, [16, 50, 84], axis=0)
    ax.fill_between(x, low, high, color=color, alpha=0.3, label=f"{label} 68%")
    ax.plot(x, mid, color=color)


def plot_data_bands(path, data, k_dense, C, delta_deg, r, V, best: int | None = None):
    """The measured curve against the posterior's C(k) band (and its best-fitting draw), and the bands of
    delta(k) and V(r)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    _band(axes[0], k_dense.numpy(), C.numpy(), "C0", "posterior")
    if best is not None:
        axes[0].plot(k_dense.numpy(), C[best].numpy(), "C3--", lw=1, label="best draw")
        axes[1].plot(k_dense.numpy(), delta_deg[best].numpy(), "C3--", lw=1)
        axes[2].plot(r.numpy(), V[best].numpy(), "C3--", lw=1)
    axes[0].errorbar(data.k_mev, data.C, yerr=data.error, fmt="k.", ms=3, label="data")
    axes[0].set(xlabel="k (MeV)", ylabel="C(k)")
    axes[0].legend(fontsize=7)
    _band(axes[1], k_dense.numpy(), delta_deg.numpy(), "C1", "posterior")
    axes[1].set(xlabel="k (MeV)", ylabel="delta (deg)")
    _band(axes[2], r.numpy(), V.numpy(), "C2", "posterior")
    axes[2].set(xlabel="r (fm)", ylabel="V(r) (MeV)", ylim=(np.percentile(V.numpy(), 2), np.percentile(V.numpy(), 98)))
    _save(plt, fig, path)
