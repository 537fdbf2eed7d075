"""Plots of the inverse-toys workflow (PNG, Agg backend): solution sets and active learning."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hadrinv.workflows.amortized_plots import _pyplot, _save, plot_coverage  # noqa: F401  (plot_coverage: used by run)


def plot_solutions(path, shown: dict, problem) -> Path:
    """Sum-of-squares toy at f = y: the exact solution set next to each method's samples (2-D: the plane;
    any dimension: the distribution of f(theta_hat), the talk's Fig. 9)."""
    plt = _pyplot()
    methods = list(shown)
    first = shown[methods[0]][0]
    scatter = problem.theta_dim == 2
    fig, axes = plt.subplots(
        1, len(methods) + 2 if scatter else 1, figsize=(3 * (len(methods) + 2) if scatter else 6, 3.2), squeeze=False
    )
    axes = axes[0]
    exact = first["exact"].numpy()
    f_ax = axes[-1]
    bins = np.linspace(0, 2 * first["y"] + 0.5, 60)
    f_ax.hist((exact**2).sum(-1), bins=bins, histtype="step", color="k", lw=2, density=True, label="exact")
    for i, method in enumerate(methods):
        samples = shown[method][0]["samples"].numpy()
        f_ax.hist((samples**2).sum(-1), bins=bins, histtype="step", density=True, label=method)
        if scatter:
            ax = axes[i + 1]
            ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4)
            ax.set_title(method)
    if scatter:
        axes[0].scatter(exact[:, 0], exact[:, 1], s=1, alpha=0.4, color="k")
        axes[0].set_title(f"exact, f = {first['y']:g}")
        for ax in axes[:-1]:
            ax.set_xlim(-1.1, 1.1)
            ax.set_ylim(-1.1, 1.1)
            ax.set_aspect("equal")
    f_ax.set_xlabel(r"$f(\hat\theta)$")
    f_ax.set_title(f"{problem.theta_dim}-D: f of the solutions")
    f_ax.legend(fontsize=7)
    return _save(plt, fig, path)


def plot_ring(path, shown: dict) -> Path:
    """x^2 + y^2 = z: samples at every showcase z, one panel per method and the exact posterior."""
    plt = _pyplot()
    methods = list(shown)
    fig, axes = plt.subplots(1, len(methods) + 1, figsize=(3 * (len(methods) + 1), 3.2), squeeze=False)
    axes = axes[0]
    for j, item in enumerate(shown[methods[0]]):
        exact = item["exact"].numpy()
        axes[0].scatter(exact[:, 0], exact[:, 1], s=1, alpha=0.3, color=f"C{j}", label=f"z = {item['y']:g}")
    axes[0].set_title("exact")
    axes[0].legend(fontsize=6, markerscale=5)
    for i, method in enumerate(methods):
        for j, item in enumerate(shown[method]):
            samples = item["samples"].numpy()
            axes[i + 1].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.3, color=f"C{j}")
        axes[i + 1].set_title(method)
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xlim(-2.2, 2.2)
        ax.set_ylim(-2.2, 2.2)
    return _save(plt, fig, path)


def plot_active_learning(path, curves: dict) -> Path:
    """Error of the posterior at the target observations vs the number of simulations used."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for name, curve in curves.items():
        ax.plot(curve["simulations"], curve["error"], "o-", label=name)
    ax.set_xlabel("simulations")
    ax.set_ylabel(r"mean $|x^2 + y^2 - z|$ at the targets")
    ax.set_yscale("log")
    ax.legend()
    return _save(plt, fig, path)
