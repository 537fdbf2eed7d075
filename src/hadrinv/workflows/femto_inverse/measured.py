"""A measured correlation function (--data): posterior, point estimates, bands of V(r), delta(k), C(k), and a
least-squares fit beside them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.femto import CorrelationData, read_correlation_csv
from hadrinv.data.io import atomic_write_csv
from hadrinv.data.validation import DataError
from hadrinv.inference.amortized import AmortizedEstimator
from hadrinv.models.femtoscopy import point_cloud
from hadrinv.workflows.femto_inverse import plots
from hadrinv.workflows.femto_inverse.config import PARAMETERS, FemtoInverseConfig
from hadrinv.workflows.femto_inverse.problem import potential_of, simulate
from hadrinv.workflows.femto_inverse.tasks import fit_task


def _read_user_data(path: str) -> CorrelationData:
    data = read_correlation_csv(path, require_error=True)
    bad = np.flatnonzero(data.C <= 0)
    if len(bad):
        raise DataError(
            path, f"C = {data.C[bad[0]]} at k = {data.k_mev[bad[0]]} MeV: the posterior works on log C and needs C > 0"
        )
    return data


def analyse_user_data(
    data: CorrelationData, flow_payload: dict, regressor_payload: dict, config: FemtoInverseConfig, out: Path, log=print
) -> dict:
    """Posterior for a measured curve, point estimates, and bands of V(r), delta(k), C(k) from posterior draws."""
    ph, post = config.physics, config.posterior
    k = torch.as_tensor(data.k_mev, dtype=torch.float64)
    C = torch.as_tensor(data.C, dtype=torch.float64)
    relative = torch.as_tensor(data.error, dtype=torch.float64) / C
    summary: dict = {"source": data.source, "points": len(data), "median_relative_error": float(relative.median())}
    warnings = []
    if not (post.relative_noise[0] / 2 <= float(relative.median()) <= 2 * post.relative_noise[1]):
        warnings.append(
            f"the relative errors (median {float(relative.median()):.3g}) lie outside the trained range "
            f"{post.relative_noise}"
        )
    if k.min() < ph.k_min_mev - 1e-9 or k.max() > ph.k_max_mev + 1e-9:
        warnings.append(f"momenta outside the trained [{ph.k_min_mev}, {ph.k_max_mev}] MeV: the networks extrapolate")
    for w in warnings:
        log(f"[bold red]warning[/]: {w}")
    summary["warnings"] = warnings
    flow = AmortizedEstimator.from_payload(flow_payload)
    cloud = point_cloud(k[None], C[None], relative[None])[0]
    samples = flow.sample(cloud, post.samples).double()
    regressor = AmortizedEstimator.from_payload(regressor_payload)
    point = regressor.predict(cloud[:, :2]).double()
    quantiles = torch.quantile(samples, torch.tensor([0.16, 0.5, 0.84], dtype=torch.float64), dim=0)
    summary["parameters"] = {
        p: {
            "median": float(quantiles[1, i]),
            "low_68": float(quantiles[0, i]),
            "high_68": float(quantiles[2, i]),
            "dnn_flexible": float(point[i]),
        }
        for i, p in enumerate(PARAMETERS)
    }
    rows = [
        (
            p,
            f"{float(quantiles[1, i]):.6g}",
            f"{float(quantiles[0, i]):.6g}",
            f"{float(quantiles[2, i]):.6g}",
            f"{float(point[i]):.6g}",
        )
        for i, p in enumerate(PARAMETERS)
    ]
    atomic_write_csv(out / "data_posterior.csv", ["parameter", "median", "low_68", "high_68", "dnn_flexible"], rows)
    # bands from a subset of draws pushed through the forward model
    draws = samples[: min(200, len(samples))]
    k_dense = torch.linspace(max(1.0, float(k.min()) * 0.5), float(k.max()) * 1.05, 120, dtype=torch.float64)
    curves = simulate(draws, k_dense, ph)
    r = torch.linspace(0.01, 4.0, 200, dtype=torch.float64)
    V = potential_of(draws, ph)(r)
    # posterior predictive check: how well do the posterior's own draws describe the data?
    error = torch.as_tensor(data.error, dtype=torch.float64)
    C_draws = simulate(draws, k, ph)["C"]
    chi2_draws = (((C_draws - C) / error) ** 2).sum(1) / len(C)
    best = int(torch.argmin(chi2_draws))
    summary["posterior_predictive"] = {
        "draws": len(draws),
        "best_chi2_per_point": float(chi2_draws[best]),
        "median_chi2_per_point": float(chi2_draws.median()),
        "fraction_with_chi2_per_point_below_2": float((chi2_draws < 2).double().mean()),
        "best_draw": dict(zip(PARAMETERS, draws[best].tolist())),
    }
    summary["chi2_per_point_of_median_parameters"] = float(
        (((simulate(quantiles[1][None], k, ph)["C"][0] - C) / error) ** 2).mean()
    )
    if float(chi2_draws[best]) > 2:
        warnings.append(
            f"no posterior draw describes the data (best chi2 per point {float(chi2_draws[best]):.3g}): "
            "the curve may lie outside "
            "what the training ranges produce, or the flow is inaccurate there; see data_bands.png"
        )
        log(f"[bold red]warning[/]: {warnings[-1]}")
    # the classical answer beside it: least squares started from the posterior draws that fit best
    low, high = ph.ranges.low_high()
    fit = fit_task(
        C[None],
        relative,
        k,
        draws,
        torch.log(C_draws),
        low,
        high,
        ph.model_dump(),
        starts=3,
        max_evaluations=post.fit_max_evaluations,
        samples=10,
        threads=None,
    )
    summary["least_squares_from_posterior"] = {
        "chi2_per_ndf": float(fit["chi2_per_ndf"][0]),
        # an infinite error (a flat direction of chi^2: b2, b4 typically) is written as null
        "parameters": {
            p: {"value": float(v), "hessian_error": float(e) if math.isfinite(float(e)) else None}
            for p, v, e in zip(PARAMETERS, fit["values"][0], fit["errors"][0])
        },
    }
    log(f"least squares from the best posterior draws: chi2/ndf {float(fit['chi2_per_ndf'][0]):.3g}")
    plots.plot_data_bands(out / "data_bands.png", data, k_dense, curves["C"], curves["delta_deg"], r, V, best=best)
    return summary
