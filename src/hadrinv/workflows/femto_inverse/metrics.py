"""Metrics of the femto-inverse run: R^2 against the talk's table, PCA of the curves, posterior calibration,
and the markdown comparison table."""

from __future__ import annotations

import numpy as np
import torch

from hadrinv.inference.diagnostics import marginal_coverage
from hadrinv.workflows.femto_inverse.config import PARAMETERS

# the talk's R^2 table (training = test in both cases)
TALK_R2 = {"five": dict(zip(PARAMETERS, (0.99, 0.86, 0.02, 0.90, 0.00))), "two": {"b1": 0.99, "b3": 0.99}}
LEVELS = (0.68, 0.95)


MIN_R2_CURVES = 8  # R^2 of fewer curves says more about their spread than about the method


def r_squared(prediction: torch.Tensor, truth: torch.Tensor, names) -> dict[str, float]:
    if len(truth) < MIN_R2_CURVES:
        return {n: None for n in names}
    residual = (prediction.double() - truth.double()).pow(2).sum(0)
    total = (truth.double() - truth.double().mean(0)).pow(2).sum(0)
    return {n: float(1 - r / t) for n, r, t in zip(names, residual, total)}


def pca(C: torch.Tensor) -> dict:
    """Explained-variance ratios of the centred curves (and of log C)."""
    out = {}
    for name, values in (("C", C.double()), ("log_C", torch.log(C.double()))):
        centred = (values - values.mean(0)).numpy()
        singular = np.linalg.svd(centred, compute_uv=False)
        ratio = singular**2 / (singular**2).sum()
        out[name] = {
            "explained_variance_ratio": ratio[:10].tolist(),
            "components_for_99_percent": int(np.searchsorted(np.cumsum(ratio), 0.99) + 1),
            "components_for_99_9_percent": int(np.searchsorted(np.cumsum(ratio), 0.999) + 1),
        }
    return out


def posterior_metrics(samples: torch.Tensor, truth: torch.Tensor, prior_std: torch.Tensor) -> dict:
    cover = marginal_coverage(samples, truth.float(), LEVELS)
    std = samples.double().std(1)  # (curves, parameters)
    return {
        "coverage_68": cover[0.68],
        "coverage_95": cover[0.95],
        "rms_error_over_prior_std": (
            (samples.double().mean(1) - truth.double()).pow(2).mean(0).sqrt() / prior_std
        ).tolist(),
        "per_parameter_68": cover.per_parameter[0.68],
        "per_parameter_95": cover.per_parameter[0.95],
        "width_over_prior": (std / prior_std).mean(0).tolist(),
        "curves": int(truth.shape[0]),
    }


def comparison_table(metrics: dict) -> str:
    lines = [
        "## R^2 (1 is perfect)",
        "",
        "| model | data | " + " | ".join(PARAMETERS) + " |",
        "|---|---|" + "---|" * len(PARAMETERS),
    ]
    for model, tables in metrics["r2"].items():
        for data, values in tables.items():
            lines.append(
                f"| {model} | {data} | "
                + " | ".join(f"{values[p]:.3f}" if values.get(p) is not None else "-" for p in PARAMETERS)
                + " |"
            )
    for name in ("five", "two"):
        lines.append(
            f"| talk, {name}-parameter | test | "
            + " | ".join(f"{TALK_R2[name][p]:.2f}" if p in TALK_R2[name] else "-" for p in PARAMETERS)
            + " |"
        )
    lines += [
        "",
        "## Posterior calibration (marginal coverage at 68 / 95 %, joint HPD) and width / prior width",
        "",
        "| method | curves | coverage 68 | coverage 95 | HPD 68 | HPD 95 | "
        + " | ".join(f"width {p}" for p in PARAMETERS)
        + " | s / curve |",
        "|---|---|---|---|---|---|" + "---|" * len(PARAMETERS) + "---|",
    ]
    for method, m in metrics["posterior"].items():
        hpd = m.get("hpd_coverage", {})
        lines.append(
            f"| {method} | {m['curves']} | {m['coverage_68']:.3f} | {m['coverage_95']:.3f} | "
            f"{hpd.get('0.68', float('nan')):.3f} | "
            f"{hpd.get('0.95', float('nan')):.3f} | "
            + " | ".join(f"{w:.2f}" for w in m["width_over_prior"])
            + f" | {m['seconds_per_curve']:.3g} |"
        )
    p = metrics["pca"]["C"]
    lines += [
        "",
        f"PCA of C: explained variance {', '.join(f'{v:.4f}' for v in p['explained_variance_ratio'][:5])}; "
        f"{p['components_for_99_percent']} components for 99 %, {p['components_for_99_9_percent']} for 99.9 %.",
        "",
    ]
    return "\n".join(lines) + "\n"
