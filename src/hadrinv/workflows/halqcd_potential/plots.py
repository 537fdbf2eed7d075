"""Plots of the halqcd-potential workflow (PNG): learned against true phase shifts, V_eff, the U map."""

from __future__ import annotations

import numpy as np
import torch

from hadrinv.workflows.amortized_plots import _pyplot, _save


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _band(ax, x, band: dict, alpha: float, label: str, mean_label: str) -> None:
    """The ensemble's mean and its 2-sigma band."""
    ax.fill_between(
        x, _np(band["mean"] - 2 * band["std"]), _np(band["mean"] + 2 * band["std"]), alpha=alpha, label=label
    )
    ax.plot(x, _np(band["mean"]), label=mean_label)


def plot_phase_shifts(path, k, band: dict, truth, baseline, units, case: str):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    k = _np(k)
    ax = axes[0]
    _band(ax, k, band, 0.25, "NN ensemble (2 sigma)", "NN ensemble mean")
    if truth is not None:
        ax.plot(k, _np(truth), "k--", label="truth")
    ax.plot(k, _np(baseline), ":", label="baseline")
    ax.set(xlabel=f"k ({units.momentum})", ylabel="delta_0 (deg)", title=case)
    ax.legend(fontsize=8)
    ax = axes[1]
    reference, name = (truth, "truth") if truth is not None else (baseline, "baseline")
    ax.fill_between(k, _np(-2 * band["std"]), _np(2 * band["std"]), alpha=0.25)
    ax.plot(k, _np(band["mean"] - reference), label=f"NN - {name}")
    if truth is not None:
        ax.plot(k, _np(baseline - truth), ":", label="baseline - truth")
    ax.axhline(0, color="k", lw=0.6)
    ax.set(xlabel=f"k ({units.momentum})", ylabel="delta_0 difference (deg)")
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def plot_v_eff(path, r, band: dict, truth, baseline, units, window, case: str):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    r = _np(r)
    _band(ax, r, band, 0.3, "V_eff, NN (2 sigma)", "V_eff, NN mean")
    if truth is not None:
        ax.plot(r, _np(truth), "k--", label="truth")
    if baseline is not None:
        ax.plot(r, _np(baseline), ":", label="leading-order V (baseline)")
    ax.axvspan(*window, color="gray", alpha=0.08)
    t = _np(truth if truth is not None else band["mean"])
    lo, hi = float(np.min(t)), float(np.max(t[r >= window[0]])) if case != "separable" else float(np.max(t))
    pad = 0.3 * (hi - lo) + 1e-12
    ax.set(
        xlabel=f"r ({units.length})",
        ylabel=f"V_eff ({units.energy})",
        ylim=(lo - pad, hi + pad),
        xlim=(0, min(r[-1], 4 * window[1] if window[1] else r[-1])),
    )
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def plot_kernel_map(path, r, U, U_true, units, options_radius: float):
    """The talk's "3D map": r r' U(r, r') (learned, and true when the truth is a smooth kernel)."""
    plt = _pyplot()
    panels = [("learned r r' U", U)] + ([("true r r' U", U_true)] if U_true is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.9), squeeze=False)
    r = _np(r)
    keep = r <= 1.2 * options_radius
    for ax, (title, M) in zip(axes[0], panels):
        M = _np(M)[np.ix_(keep, keep)] * np.outer(r[keep], r[keep])
        image = ax.imshow(
            M,
            origin="lower",
            extent=(r[keep][0], r[keep][-1], r[keep][0], r[keep][-1]),
            cmap="RdBu_r",
            vmin=-np.abs(M).max(),
            vmax=np.abs(M).max(),
        )
        ax.set(xlabel=f"r ({units.length})", ylabel=f"r' ({units.length})", title=title)
        fig.colorbar(image, ax=ax)
    _save(plt, fig, path)


def plot_histories(path, histories: list[list[float]]):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for h in histories:
        ax.semilogy(np.arange(len(h)), h, lw=0.8)
    ax.set(xlabel="log step (Adam every 100 steps; last point after L-BFGS)", ylabel="relative residual")
    _save(plt, fig, path)
