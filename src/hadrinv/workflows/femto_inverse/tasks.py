"""Tasks of the femto-inverse run, executed on Ray workers (top-level functions: Ray pickles them by module path)."""

from __future__ import annotations

import time

import numpy as np
import torch

from hadrinv.inference import Regressor
from hadrinv.inference.diagnostics import hpd_coverage
from hadrinv.inference.fit import least_squares
from hadrinv.workflows.amortized_runs import build_estimator, timed_sample
from hadrinv.workflows.execution import thread_limit
from hadrinv.workflows.femto_inverse.config import PARAMETERS, PhysicsConfig
from hadrinv.workflows.femto_inverse.metrics import LEVELS
from hadrinv.workflows.femto_inverse.problem import simulate


def simulation_task(theta5: torch.Tensor, k_mev: torch.Tensor, physics: dict, threads: int | None) -> dict:
    return simulate(theta5, k_mev, physics, threads)


def regressor_task(
    x_train, theta_train, evaluations: dict, options: dict, training: dict, seed: int, threads, device
) -> dict:
    """Train the talk's DNN (or the set-encoder DNN) and predict on every evaluation input."""
    thread_limit(threads)
    torch.manual_seed(seed)
    x_dim = x_train.shape[-1]
    model = Regressor(theta_train.shape[1], x_dim, **options).to(device)
    history = model.fit(theta_train.float(), x_train, seed=seed, **training)
    predictions = {name: model.predict(x) for name, x in evaluations.items()}
    return {"predictions": predictions, "history": history.as_dict(), "estimator": model.to_payload()}


def flow_task(
    x_train,
    theta_train,
    evaluations: dict,
    hpd_inputs: dict,
    bounds,
    options: dict,
    training: dict,
    samples: int,
    seed: int,
    threads,
    device,
) -> dict:
    """Train the posterior flow (a mixture of flows with options["members"] > 1); posterior samples (and
    HPD coverage) on every evaluation input."""
    thread_limit(threads)
    torch.manual_seed(seed)
    flow = build_estimator("flow", theta_train.shape[1], x_train.shape[-1], options, bounds=bounds).to(device)
    history = flow.fit(theta_train.float(), x_train, seed=seed, **training)
    out = {"history": history.as_dict(), "estimator": flow.to_payload(), "samples": {}, "sample_seconds": {}, "hpd": {}}
    for name, x in evaluations.items():
        out["samples"][name], out["sample_seconds"][name] = timed_sample(flow, x, samples)
    for name, (theta, x) in hpd_inputs.items():
        joint = hpd_coverage(flow, theta.float(), x, LEVELS, n_samples=samples)
        out["hpd"][name] = {str(a): float(joint[a]) for a in LEVELS}
    return out


def fit_task(
    C_obs: torch.Tensor,
    relative_error: float | torch.Tensor,
    k_mev: torch.Tensor,
    library_theta: torch.Tensor,
    library_logc: torch.Tensor,
    low: list[float],
    high: list[float],
    physics: dict,
    starts: int,
    max_evaluations: int,
    samples: int,
    threads,
) -> dict:
    """Least squares on log C of each curve with Hessian (Gauss-Newton) errors: the classical baseline.
    ``relative_error``: one number for every point, or one per point (K,).

    Parameters are fitted as z with theta = low + (high - low) sigmoid(z), so a fit stays inside the
    training ranges; starts are the library curves (training set) closest in chi^2. The Jacobian comes
    from central differences evaluated as one batched solver call (2 d + 1 potentials): 23-36 ms against
    47-54 ms for forward-mode autodiff through the radial march (60 momenta, one thread, docs/results.md)."""
    thread_limit(threads)
    physics = PhysicsConfig.model_validate(physics)
    started = time.perf_counter()
    lo, hi = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)
    to_theta = lambda z: lo + (hi - lo) * torch.sigmoid(z)

    def model_logc(z_rows: torch.Tensor) -> torch.Tensor:
        theta = to_theta(z_rows)
        return torch.log(simulate(theta, k_mev, physics)["C"].clamp_min(1e-12))

    values, errors, chi2s, valid, converged, accurate, draws = [], [], [], [], [], [], []
    generator = torch.Generator().manual_seed(0)
    step = 1e-5
    for observed in torch.log(C_obs.double()):

        def pulls(z, observed=observed):
            return (model_logc(z[None])[0] - observed) / relative_error

        def jacobian(z, observed=observed):
            shifts = torch.cat(
                [
                    torch.zeros(1, len(z), dtype=z.dtype),
                    step * torch.eye(len(z), dtype=z.dtype),
                    -step * torch.eye(len(z), dtype=z.dtype),
                ]
            )
            rows = model_logc(z[None] + shifts)
            d = len(z)
            return ((rows[1 : 1 + d] - rows[1 + d :]) / (2 * step)).T / torch.as_tensor(relative_error).reshape(-1, 1)

        chi2_library = ((library_logc.double() - observed) / relative_error).pow(2).sum(1)
        best = None
        for index in torch.argsort(chi2_library)[:starts]:
            u = ((library_theta[index].double() - lo) / (hi - lo)).clamp(1e-4, 1 - 1e-4)
            result = least_squares(
                pulls,
                torch.logit(u).numpy(),
                list(PARAMETERS),
                jacobian=jacobian,
                exact_hessian=False,
                max_evaluations=max_evaluations,
            )
            if best is None or result.fval < best.fval:
                best = result
        z = torch.as_tensor(best.values)
        cov = torch.as_tensor(np.nan_to_num(best.covariance, nan=0.0, posinf=1e6))
        cov = 0.5 * (cov + cov.T) + 1e-9 * torch.eye(len(z), dtype=cov.dtype)
        # Gaussian in z, mapped to theta: the fit's error band in the same form as the posterior samples
        eigenvalues, vectors = torch.linalg.eigh(cov)
        root = vectors * eigenvalues.clamp_min(0).sqrt()
        z_draws = z + torch.randn(samples, len(z), generator=generator, dtype=torch.float64) @ root.T
        draws.append(to_theta(z_draws).float())
        values.append(to_theta(z))
        jac = (hi - lo) * torch.sigmoid(z) * (1 - torch.sigmoid(z))
        errors.append(jac * torch.as_tensor(best.errors))
        chi2s.append(best.fval / max(best.ndf, 1))
        # scipy's own success flag stays False along the flat directions (b2, b4) long after chi^2 has settled;
        # a fit counts as converged when chi^2/ndf is acceptable
        valid.append(best.fval / max(best.ndf, 1) < 2.0)
        converged.append(best.is_valid)
        # a singular Hessian is the expected answer for parameters C(k) does not determine (b2, b4)
        accurate.append(best.has_accurate_covar)
    return {
        "values": torch.stack(values),
        "errors": torch.stack(errors),
        "samples": torch.stack(draws),
        "chi2_per_ndf": torch.tensor(chi2s),
        "valid": torch.tensor(valid),
        "scipy_converged": torch.tensor(converged),
        "accurate_covariance": torch.tensor(accurate),
        "seconds": time.perf_counter() - started,
    }


def _dispatch(kind: str, **kwargs) -> dict:
    return {"simulate": simulation_task, "regressor": regressor_task, "flow": flow_task, "fit": fit_task}[kind](
        **kwargs
    )
