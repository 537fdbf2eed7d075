"""Diagnostic plots for the pi pi amplitude workflow (numpy in, PNG out).

Every function takes plain numpy arrays (float64 / complex128), writes one PNG (dpi 120) to the
given path with the non-interactive Agg backend, closes its figure and returns the path as a
``pathlib.Path``. The amplitude maps are drawn on a regular (s, cos theta) grid on which the caller
has evaluated the partial waves; the data points, which may lie on any grid, are shown as dots.
Every function takes a ``title``: the workflow puts "NOT VALID" there for a result that is not.

Functions:
    plot_amplitude_maps    |A| and arg A over the (s, cos theta) plane, optionally vs a truth
    plot_phase_shifts      phase shifts delta_l(s) of several fits, optionally vs a truth
    plot_pulls             histogram of pulls with the N(0, 1) density, and pulls vs s
    plot_training_history  training curves of the ensemble members, one panel per metric
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

DPI = 120
_FEW_ENERGIES = 15  # a curve with at most this many energies is drawn as points with error bars

_KEY_LABELS = {
    "mse": "mean squared error",
    "unitarity": "unitarity penalty",
    "chi2_ndf": r"$\chi^2/\mathrm{ndf}$",
    "loss_d": "discriminator loss",
    "loss": "loss",
}


def _pyplot():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def _real(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1) if a is not None else None


def _complex(a) -> np.ndarray:
    return np.asarray(a, dtype=np.complex128).reshape(-1)


def _wrap_deg(d: np.ndarray) -> np.ndarray:
    """Wrap angles in degrees to [-180, 180)."""
    return (np.asarray(d) + 180.0) % 360.0 - 180.0


def _limits(values: np.ndarray, symmetric: bool = False) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return (-1.0, 1.0) if symmetric else (0.0, 1.0)
    if symmetric:
        m = float(np.max(np.abs(v)))
        m = m if m > 0 else 1.0
        return -m, m
    lo, hi = float(v.min()), float(v.max())
    if hi - lo <= 1e-9 * max(abs(lo), abs(hi)):  # constant up to rounding
        pad = abs(lo) * 0.05 if lo != 0 else 1.0
        lo, hi = lo - pad, hi + pad
    return lo, hi


def _grid_panel(fig, ax, s, z, values, *, cmap, vmin, vmax, label, title, points=None, cyclic=False):
    """Colour map of values (n_s, n_z) on the regular grid s (n_s,) x z (n_z,), data points as dots."""
    mappable = ax.pcolormesh(s, z, values.T, cmap=cmap, vmin=vmin, vmax=vmax, shading="nearest", rasterized=True)
    if points is not None:
        ax.plot(points[0], points[1], ",", color="k", alpha=0.35)
    cb = fig.colorbar(mappable, ax=ax)
    cb.set_label(label)
    if cyclic:
        cb.set_ticks([-180, -90, 0, 90, 180])
    ax.set_xlabel(r"$s$ [GeV$^2$]")
    ax.set_ylabel(r"$\cos\theta$")
    ax.set_title(title)


def plot_amplitude_maps(path, s, cos_theta, amplitude, truth=None, title="", points=None) -> Path:
    """|A| and arg(A) [deg] on the regular grid s (n_s,) x cos_theta (n_z,) (amplitude (n_s, n_z),
    evaluated from the partial waves, so nothing is interpolated across the phase wrap); with a truth,
    rows for the truth and the differences (|A| - |A_true| and the phase difference in [-180, 180)).
    points = (s, cos_theta) of the data, drawn as dots."""
    plt = _pyplot()
    s = _real(s)
    c = _real(cos_theta)
    a = np.asarray(amplitude, dtype=np.complex128)
    t = None if truth is None else np.asarray(truth, dtype=np.complex128)
    if a.shape != (s.size, c.size) or (t is not None and t.shape != a.shape):
        raise ValueError(f"amplitude (and truth) must have shape (len(s), len(cos_theta)) = {(s.size, c.size)}")

    nrows = 3 if t is not None else 1
    fig, axes = plt.subplots(nrows, 2, figsize=(11.0, 3.6 * nrows + 0.4), squeeze=False, constrained_layout=True)
    mag = np.abs(a)
    phase = np.rad2deg(np.angle(a))
    mag_lim = _limits(mag if t is None else np.concatenate([mag, np.abs(t)]))
    if 0 < mag_lim[0] < 0.2 * mag_lim[1]:
        mag_lim = (0.0, mag_lim[1])
    grid = dict(fig=fig, s=s, z=c, points=points)
    cyclic = dict(cmap="twilight", vmin=-180.0, vmax=180.0, cyclic=True)
    rows = [("model", mag, phase)]
    if t is not None:
        rows.append(("truth", np.abs(t), np.rad2deg(np.angle(t))))
    for r, (name, m, p) in enumerate(rows):
        _grid_panel(ax=axes[r, 0], values=m, cmap="viridis", vmin=mag_lim[0], vmax=mag_lim[1],
                    label=r"$|A|$", title=rf"{name}: $|A|$", **grid)  # fmt: skip
        _grid_panel(ax=axes[r, 1], values=p, label=r"arg $A$ [deg]", title=rf"{name}: arg $A$", **cyclic, **grid)
    if t is not None:
        dmag = mag - np.abs(t)
        lo, hi = _limits(dmag, symmetric=True)
        _grid_panel(ax=axes[2, 0], values=dmag, cmap="RdBu_r", vmin=lo, vmax=hi, label=r"$|A| - |A_\mathrm{true}|$",
                    title=r"difference: $|A| - |A_\mathrm{true}|$", **grid)  # fmt: skip
        dphase = _wrap_deg(phase - np.rad2deg(np.angle(t)))
        finite = dphase[np.isfinite(dphase)]
        # phase differences are usually small: a linear diverging scale unless they span the circle
        pmax = float(np.max(np.abs(finite))) if finite.size else 1.0
        scale = cyclic if pmax > 90.0 else dict(cmap="RdBu_r", vmin=-max(pmax, 1e-9), vmax=max(pmax, 1e-9))
        _grid_panel(ax=axes[2, 1], values=dphase, label=r"$\Delta$ arg $A$ [deg]",
                    title=r"difference: arg $A$ - arg $A_\mathrm{true}$", **scale, **grid)  # fmt: skip
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def _as_waves(d, n_s: int) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    return d.reshape(n_s, -1) if d.ndim != 2 else d


def plot_phase_shifts(path, curves: Sequence[Mapping[str, Any]], truth=None, title="") -> Path:
    """One panel per wave l: delta_l(s) [deg] of each curve (points with error bars for a few
    energies, otherwise a line with a shaded 1-sigma band) and the truth as a black line."""
    plt = _pyplot()
    prepared = []
    for cv in curves:
        s = _real(cv["s"])
        d = _as_waves(cv["delta_deg"], s.size)
        e = cv.get("delta_err_deg")
        e = _as_waves(e, s.size) if e is not None else None
        order = np.argsort(s, kind="stable")
        prepared.append((str(cv.get("label", "")), s[order], d[order], None if e is None else e[order]))
    tr = None
    if truth is not None:
        ts = _real(truth["s"])
        order = np.argsort(ts, kind="stable")
        tr = (ts[order], _as_waves(truth["delta_deg"], ts.size)[order])

    n_waves = max([d.shape[1] for _, _, d, _ in prepared] + ([tr[1].shape[1]] if tr is not None else []) + [1])
    ncols = min(n_waves, 3)
    nrows = math.ceil(n_waves / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), squeeze=False, constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    n_point_curves = sum(1 for _, s, _, _ in prepared if s.size <= _FEW_ENERGIES)
    for l in range(nrows * ncols):
        ax = axes[l // ncols, l % ncols]
        if l >= n_waves:
            ax.set_visible(False)
            continue
        if tr is not None and l < tr[1].shape[1]:
            ax.plot(tr[0], tr[1][:, l], "-", color="k", lw=1.5, label="truth", zorder=5)
        k_pts = 0
        for i, (label, s, d, e) in enumerate(prepared):
            if l >= d.shape[1]:
                continue
            col = colors[i % len(colors)]
            y = d[:, l]
            err = e[:, l] if e is not None and l < e.shape[1] else None
            if s.size <= _FEW_ENERGIES:
                # small horizontal offsets so that error bars of several curves do not overlap
                span = np.ptp(s) if s.size > 1 else 1.0
                dx = (k_pts - (n_point_curves - 1) / 2) * 0.004 * span if n_point_curves > 1 else 0.0
                k_pts += 1
                ax.errorbar(s + dx, y, yerr=err, fmt="o", ms=4, capsize=2, lw=1, color=col, label=label)
            else:
                ax.plot(s, y, "-", lw=1.3, color=col, label=label)
                if err is not None:
                    ax.fill_between(s, y - err, y + err, color=col, alpha=0.25, lw=0)
        ax.set_title(rf"$\delta_{{{l}}}$")
        ax.set_xlabel(r"$s$ [GeV$^2$]")
        ax.set_ylabel(rf"$\delta_{{{l}}}$ [deg]")
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        axes[0, 0].legend(handles, labels, fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def plot_pulls(path, s, pulls, label="", title="") -> Path:
    """Histogram of pulls (model - data)/error with the standard normal density, and pulls vs s."""
    plt = _pyplot()
    s = _real(s)
    p = _real(pulls)
    if s.size != p.size:
        raise ValueError("s and pulls must have the same number of points")
    ok = np.isfinite(s) & np.isfinite(p)
    s_ok, p_ok = s[ok], p[ok]
    fig, (ax_h, ax_s) = plt.subplots(1, 2, figsize=(11.0, 4.0), constrained_layout=True)

    if p_ok.size:
        # range from the bulk (99.5% quantile), so that a few outliers do not squash the histogram
        lim = max(4.0, min(float(np.quantile(np.abs(p_ok), 0.995)) * 1.1, 10.0))
        n_bins = int(np.clip(np.sqrt(p_ok.size) * 1.5, 10, 60))
        ax_h.hist(
            np.clip(p_ok, -lim, lim),
            bins=n_bins,
            range=(-lim, lim),
            density=True,
            color="C0",
            alpha=0.6,
            label="pulls (clipped to range)" if np.any(np.abs(p_ok) > lim) else "pulls",
        )
        x = np.linspace(-lim, lim, 400)
        ax_h.plot(x, np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi), "k-", lw=1.5, label=r"$N(0, 1)$")
        mean, std = float(np.mean(p_ok)), float(np.std(p_ok))
        text = f"N = {p_ok.size}\nmean = {mean:.3f}\nstd = {std:.3f}\n|pull| > 3: {np.mean(np.abs(p_ok) > 3):.1%}"
        if p_ok.size < p.size:
            text += f"\nnon-finite: {p.size - p_ok.size}"
        ax_h.text(
            0.03,
            0.97,
            text,
            transform=ax_h.transAxes,
            va="top",
            ha="left",
            fontsize=9,
            bbox=dict(boxstyle="round", fc="white", alpha=0.8),
        )
        ax_h.legend(fontsize=8, loc="upper right")
        ax_s.scatter(s_ok, p_ok, s=6, alpha=0.6, color="C0", edgecolors="none")
        ax_s.set_ylim(-max(lim, 3.5), max(lim, 3.5))
        n_out = int(np.sum(np.abs(p_ok) > max(lim, 3.5)))
        if n_out:
            ax_s.text(
                0.02,
                0.02,
                f"{n_out} point{'s' if n_out > 1 else ''} outside the range",
                transform=ax_s.transAxes,
                fontsize=8,
            )
    else:
        for ax in (ax_h, ax_s):
            ax.text(0.5, 0.5, "no finite pulls", transform=ax.transAxes, ha="center", va="center")
    for y, ls in ((0, "-"), (1, "--"), (-1, "--"), (2, ":"), (-2, ":")):
        ax_s.axhline(y, color="k", lw=0.8, ls=ls, alpha=0.6)
    ax_h.set_xlabel("pull = (model - data) / error")
    ax_h.set_ylabel("density")
    ax_h.set_title("pull distribution" + (f" ({label})" if label else ""))
    ax_s.set_xlabel(r"$s$ [GeV$^2$]")
    ax_s.set_ylabel("pull")
    ax_s.set_title("pulls vs energy" + (f" ({label})" if label else ""))
    ax_s.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def _numeric(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def plot_training_history(path, histories, keys=("mse", "unitarity", "chi2_ndf", "loss_d"), title="") -> Path:
    """One panel per key found in any history (log y scale when all values are > 0), one thin line
    per ensemble member against the epoch."""
    plt = _pyplot()
    series: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for key in keys:
        per_member = []
        for hist in histories:
            xs, ys = [], []
            for i, rec in enumerate(hist or []):
                if key not in rec:
                    continue
                y = _numeric(rec[key])
                if y is None:
                    continue
                ep = _numeric(rec.get("epoch", i))
                xs.append(ep if ep is not None else float(i))
                ys.append(y)
            per_member.append((np.asarray(xs), np.asarray(ys)))
        if any(y.size for _, y in per_member):
            series[key] = per_member

    n = max(len(series), 1)
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.6 * nrows), squeeze=False, constrained_layout=True)
    n_members = len(histories)
    cmap = plt.get_cmap("viridis")
    for j in range(nrows * ncols):
        ax = axes[j // ncols, j % ncols]
        if j >= len(series):
            if series:
                ax.set_visible(False)
            else:
                ax.text(
                    0.5,
                    0.5,
                    "no history values for keys " + ", ".join(keys),
                    transform=ax.transAxes,
                    ha="center",
                    va="center",
                    wrap=True,
                )
                ax.set_axis_off()
            continue
        key = list(series)[j]
        all_y = np.concatenate([y for _, y in series[key] if y.size])
        for m, (x, y) in enumerate(series[key]):
            if y.size == 0:
                continue
            col = cmap(m / max(n_members - 1, 1) * 0.9) if n_members > 1 else "C0"
            lbl = f"member {m}" if n_members <= 10 else None
            if y.size == 1:
                ax.plot(x, y, "o", ms=3, color=col, label=lbl)
            else:
                ax.plot(x, y, "-", lw=0.8, alpha=0.8, color=col, label=lbl)
        if np.all(all_y > 0):
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(_KEY_LABELS.get(key, key))
        ax.set_title(key)
        ax.grid(alpha=0.3, which="both" if ax.get_yscale() == "log" else "major")
        if j == 0 and 1 < n_members <= 10:
            ax.legend(fontsize=7, ncol=2)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)
