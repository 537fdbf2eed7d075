"""Projections of data against a fit (total and each resonance alone), and the correlation matrix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_csv
from hadrinv.physics import pwa

VARIABLES = (
    ("m_pipi", "m(pi pi) [GeV]", None),
    ("cos_theta_gamma", "cos theta_gamma", (-1.0, 1.0)),
    ("cos_theta_pi", "cos theta_pi", (-1.0, 1.0)),
)


def _variables(gamma, pi1, pi2) -> dict[str, np.ndarray]:
    angles = pwa.helicity_angles(gamma, pi1, pi2)
    return {
        "m_pipi": angles.m_pipi.numpy(),
        "cos_theta_gamma": angles.cos_theta_gamma.numpy(),
        "cos_theta_pi": torch.cos(angles.theta_pi).numpy(),
    }


def projections(
    am, params, data_events, mc_events, data_weights=None, mc_weights=None, bins: int = 60
) -> dict[str, dict]:
    """Histograms of the data and of the fit in m_pipi, cos theta_gamma and cos theta_pi.

    The fit is the accepted MC weighted by I(params) (times its own weights if importance-sampled), scaled
    to the number of data events; a component is
    the same with |a_k|^2 alone (what the resonance would give without interference). Returns per
    variable: edges, data counts, fit, per-resonance curves (all (bins,) arrays) and the chi^2 of data
    against fit over bins with at least 5 data events (variance: Poisson, or sum of w^2 for weighted data,
    plus the MC's sum of squared weights)."""
    params = torch.as_tensor(params, dtype=torch.float64)
    cache = am.cache(*mc_events)
    with torch.no_grad():
        total = am.intensity(params, cache)
        a_re, a_im = am.resonance_amplitudes(params, cache)
        alone = (a_re * a_re + a_im * a_im).sum(1)  # (N, K)
        if mc_weights is not None:
            mc_w = torch.as_tensor(mc_weights, dtype=torch.float64)
            total, alone = total * mc_w, alone * mc_w[:, None]
    w = None if data_weights is None else torch.as_tensor(data_weights, dtype=torch.float64).numpy()
    n_data = len(data_events[0]) if w is None else float(w.sum())
    scale = n_data / float(total.sum())
    data_vars, mc_vars = _variables(*data_events), _variables(*mc_events)
    out = {}
    for name, _, fixed in VARIABLES:
        low, high = fixed or (
            float(min(data_vars[name].min(), mc_vars[name].min())),
            float(max(data_vars[name].max(), mc_vars[name].max())),
        )
        edges = np.linspace(low, high, bins + 1)
        counts = np.histogram(data_vars[name], edges, weights=w)[0].astype(float)
        variance = counts if w is None else np.histogram(data_vars[name], edges, weights=w * w)[0]
        fit = np.histogram(mc_vars[name], edges, weights=total.numpy() * scale)[0]
        fit_variance = np.histogram(mc_vars[name], edges, weights=(total.numpy() * scale) ** 2)[0]  # MC statistics
        components = {
            r.name: np.histogram(mc_vars[name], edges, weights=alone[:, k].numpy() * scale)[0]
            for k, r in enumerate(am.model.resonances)
        }
        used = counts >= 5
        chi2 = float((((counts - fit) ** 2) / np.maximum(variance + fit_variance, 1.0))[used].sum())
        out[name] = {
            "edges": edges,
            "data": counts,
            "error": np.sqrt(variance),
            "fit": fit,
            "components": components,
            "chi2": chi2,
            "bins": int(used.sum()),
        }
    return out


def write_projections(csv_path: Path, png_path: Path, proj: dict[str, dict], title: str) -> None:
    rows = []
    for name, p in proj.items():
        for i in range(len(p["data"])):
            rows.append(
                (
                    name,
                    p["edges"][i],
                    p["edges"][i + 1],
                    p["data"][i],
                    p["fit"][i],
                    *(c[i] for c in p["components"].values()),
                )
            )
    names = list(next(iter(proj.values()))["components"])
    atomic_write_csv(csv_path, ["variable", "low", "high", "data", "fit", *[f"alone:{n}" for n in names]], rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(proj), figsize=(5.0 * len(proj), 4.0))
    for ax, (name, label, _) in zip(np.atleast_1d(axes), VARIABLES):
        p = proj[name]
        centres = 0.5 * (p["edges"][1:] + p["edges"][:-1])
        ax.errorbar(centres, p["data"], yerr=p["error"], fmt="k.", ms=3, label="data")
        ax.step(p["edges"], np.append(p["fit"], p["fit"][-1]), where="post", color="tab:red", lw=1.5, label="fit")
        for component, curve in p["components"].items():
            ax.step(p["edges"], np.append(curve, curve[-1]), where="post", lw=0.8, label=component)
        ax.set_xlabel(label)
        ax.set_title(f"chi2 / bins = {p['chi2']:.1f} / {p['bins']}", fontsize=9)
    np.atleast_1d(axes)[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)


def correlation_matrix(covariance) -> np.ndarray:
    cov = np.asarray(covariance, dtype=float)
    sigma = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sigma, sigma)
    return np.where(np.isfinite(corr), corr, math.nan)


def write_correlations(csv_path: Path, png_path: Path, names: list[str], covariance) -> None:
    corr = correlation_matrix(covariance)
    atomic_write_csv(csv_path, ["parameter", *names], [(n, *row) for n, row in zip(names, corr)])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(5.0, 0.28 * len(names))
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
