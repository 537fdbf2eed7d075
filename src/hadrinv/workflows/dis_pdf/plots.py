"""Plots of the dis-pdf workflow (PNG): the talk's figures for one control set."""

from __future__ import annotations

import numpy as np
import torch

from hadrinv.physics.dis import cross_sections, parton_distributions
from hadrinv.workflows.amortized_plots import _pyplot, _save, plot_coverage  # noqa: F401  (plot_coverage: used by run)

SHOWN_Q2_GEV2 = (1.0, 10.0)


def _bands(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.percentile(values, 16, 0), np.percentile(values, 50, 0), np.percentile(values, 84, 0)


def plot_distributions(path, samples: dict, truth, problem, n_curves: int = 400):
    """x u(x) and x d(x) at Q0^2 = 1 and 10 GeV^2: each method's 68% band, and the truth."""
    plt = _pyplot()
    x = torch.logspace(-2, np.log10(0.9), 120, dtype=torch.float64)
    fig, axes = plt.subplots(2, len(SHOWN_Q2_GEV2), figsize=(4.2 * len(SHOWN_Q2_GEV2), 6), squeeze=False)
    full = problem.space.full_parameters
    for c, q2 in enumerate(SHOWN_Q2_GEV2):
        q2_t = torch.full_like(x, q2)
        for k, (name, s) in enumerate(samples.items()):
            q = parton_distributions(full(s[:n_curves].double()), x, q2_t).numpy()  # (n, points, 2)
            for row in range(2):
                low, mid, high = _bands(x.numpy() * q[..., row])
                axes[row, c].fill_between(x.numpy(), low, high, alpha=0.3, color=f"C{k}", label=name)
        if truth is not None:
            q = parton_distributions(full(truth.double().unsqueeze(0)), x, q2_t)[0].numpy()
            for row in range(2):
                axes[row, c].plot(x.numpy(), x.numpy() * q[:, row], "k--", lw=1.2, label="truth")
        for row, flavour in enumerate("ud"):
            axes[row, c].set_xscale("log")
            axes[row, c].set_xlabel("x")
            axes[row, c].set_ylabel(f"x {flavour}(x, Q$^2$ = {q2:g} GeV$^2$)")
    axes[0, 0].legend(fontsize=7)
    return _save(plt, fig, path)


def plot_cross_section_ratios(path, samples: dict, truth, problem, kinematics, n_curves: int = 400):
    """Reconstructed over true sigma_p and sigma_n at the control set's bins (median and 68% band per method)."""
    plt = _pyplot()
    x, q2 = (torch.as_tensor(a, dtype=torch.float64) for a in kinematics)
    order = torch.argsort(x)
    x, q2 = x[order], q2[order]
    full = problem.space.full_parameters
    true = cross_sections(full(truth.double().unsqueeze(0)), x, q2)[0]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for k, (name, s) in enumerate(samples.items()):
        ratio = (cross_sections(full(s[:n_curves].double()), x, q2) / true).numpy()
        for col in range(2):
            low, mid, high = _bands(ratio[..., col])
            axes[col].errorbar(
                x.numpy() * (1 + 0.02 * k),
                mid,
                yerr=[mid - low, high - mid],
                fmt="o",
                ms=2,
                lw=0.8,
                color=f"C{k}",
                label=name,
            )
    for col, label in enumerate(("p", "n")):
        axes[col].axhline(1.0, color="k", lw=0.8)
        axes[col].set_xscale("log")
        axes[col].set_xlabel("x")
        axes[col].set_ylabel(rf"$\sigma_{label}$ reconstructed / true")
    axes[0].legend(fontsize=7)
    return _save(plt, fig, path)
