"""Iterative Bayesian unfolding (D'Agostini) of one binned observable, through pyunfold, with its covariance.

A Monte Carlo sample of paired particle-level ("gen", the causes) and detector-level ("reco", the effects) values
gives the response P(reco in bin j | gen in bin i) and the efficiency eps_i = sum_j P(j | i): an event that was not
reconstructed, or whose reco value falls outside the reco edges, is lost. Each iteration turns the current estimate
n_i of the causes into

    M_ij = P(j | i) n_i / (eps_i sum_k P(j | k) n_k),    n_i <- sum_j d_j M_ij,

for data counts d_j, starting from a flat prior (or the MC's own gen distribution). Few iterations regularise
(the result stays near the prior), many approach the unstable matrix inversion. ``iterations`` is fixed by
default, as is usual, so that the same call does the same on every data set; with ``tolerance`` the iterations stop
once they no longer move any bin by more than that fraction of its statistical error (pyunfold's test-statistic
stopping, measured in the errors the result reports).

The arithmetic and its error propagation are pyunfold's (`pyunfold.mix.Mixer`: Adye's propagation through the
iterations, data counts as multinomial or Poisson, response and efficiency errors from the MC's finite size).
pyunfold's `iterative_unfold` returns only the diagonal errors; the Mixer is driven here for the full covariance,
split into the data's statistical part and the MC's part.

Causes outside the gen edges are not modelled: MC events there are left out, and data events from there are
unfolded as if from inside (fakes). Choose gen edges that cover the support, with wide outer bins if needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hadrinv.inference.unfolding.normalise import unit_area


@dataclass(frozen=True)
class IBUSettings:
    """``iterations`` of the update; ``prior``: "flat" (pyunfold's default, uniform in the cause bins) or "mc" (the
    MC's gen-level distribution); ``data_errors``: "poisson" (d_j independent) or "multinomial" (total fixed).
    ``tolerance``: stop once an iteration moved no bin by more than tolerance times its statistical error;
    ``iterations`` is then the most it may take (None: exactly ``iterations``)."""

    iterations: int = 4
    prior: Literal["flat", "mc"] = "flat"
    data_errors: Literal["poisson", "multinomial"] = "poisson"
    tolerance: float | None = None

    def __post_init__(self):
        if self.iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {self.iterations}")
        if self.tolerance is not None and not self.tolerance > 0:
            raise ValueError(f"tolerance must be positive or None, got {self.tolerance}")
        if self.prior not in ("flat", "mc"):
            raise ValueError(f"prior must be 'flat' or 'mc', got {self.prior!r}")
        if self.data_errors not in ("poisson", "multinomial"):
            raise ValueError(f"data_errors must be 'poisson' or 'multinomial', got {self.data_errors!r}")


@dataclass(frozen=True)
class BinnedUnfolding:
    """Unfolded counts per gen bin with their covariance (``covariance_stat`` from the data, ``covariance_mc`` from
    the response's finite MC; ``covariance`` their sum); ``response`` (reco bins x gen bins) and ``efficiency``."""

    edges: np.ndarray
    counts: np.ndarray
    covariance: np.ndarray
    covariance_stat: np.ndarray
    covariance_mc: np.ndarray
    response: np.ndarray
    efficiency: np.ndarray
    iterations: int

    @property
    def errors(self) -> np.ndarray:
        return np.sqrt(np.diag(self.covariance))

    def density(self) -> tuple[np.ndarray, np.ndarray]:
        """The unfolded distribution normalised to unit area (per unit of the observable) and its covariance,
        propagated through the normalisation (which makes it singular: one degree of freedom less)."""
        return unit_area(self.counts, self.covariance, np.diff(self.edges))


def _weights(values: np.ndarray, weight, name: str) -> np.ndarray:
    if weight is None:
        return np.ones(len(values))
    weight = np.asarray(weight, dtype=np.float64)
    if weight.shape != (len(values),):
        raise ValueError(f"{name} has shape {weight.shape}; expected ({len(values)},)")
    bad = ~np.isfinite(weight) | (weight < 0)
    if bad.any():
        raise ValueError(f"{name} must be finite and >= 0 (first bad in row {int(np.argmax(bad))})")
    return weight


def _values(values, name: str, allow_nan: bool) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {values.shape}")
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{name} holds a non-finite value in row {int(np.argmax(bad))}")
    return values


def _edges(edges, name: str) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError(f"{name} must be increasing 1-D bin edges with at least two entries")
    return edges


def response_matrix(gen, reco, gen_edges, reco_edges, weight=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P(reco bin j | gen bin i) as (reco bins, gen bins), its error, the weighted MC count per gen bin) from
    paired MC values; reco NaN for an event that was not reconstructed. Errors: sqrt(sum w^2) per cell over the
    gen bin's weighted count (pyunfold's recommendation for the response of a finite MC)."""
    gen_bin = np.digitize(gen, gen_edges) - 1
    reco_bin = np.digitize(np.nan_to_num(reco, nan=-np.inf), reco_edges) - 1
    n_gen, n_reco = len(gen_edges) - 1, len(reco_edges) - 1
    inside = (gen_bin >= 0) & (gen_bin < n_gen)
    seen = inside & np.isfinite(reco) & (reco_bin >= 0) & (reco_bin < n_reco)
    cause = np.bincount(gen_bin[inside], weights=weight[inside], minlength=n_gen)
    flat = reco_bin[seen] * n_gen + gen_bin[seen]
    joint = np.bincount(flat, weights=weight[seen], minlength=n_reco * n_gen).reshape(n_reco, n_gen)
    joint2 = np.bincount(flat, weights=weight[seen] ** 2, minlength=n_reco * n_gen).reshape(n_reco, n_gen)
    with np.errstate(divide="ignore", invalid="ignore"):
        response = np.where(cause > 0, joint / cause, 0.0)
        error = np.where(cause > 0, np.sqrt(joint2) / cause, 0.0)
    return response, error, cause


def ibu(
    gen_mc,
    reco_mc,
    reco_data,
    gen_edges,
    reco_edges,
    mc_weight=None,
    data_weight=None,
    settings: IBUSettings | None = None,
) -> BinnedUnfolding:
    """Unfold the data's reco values (1-D) to the gen binning with the MC's response; see the module docstring."""
    from pyunfold.mix import Mixer

    s = settings or IBUSettings()
    gen_mc = _values(gen_mc, "gen_mc", allow_nan=False)
    reco_mc = _values(reco_mc, "reco_mc", allow_nan=True)
    reco_data = _values(reco_data, "reco_data", allow_nan=False)
    if len(reco_mc) != len(gen_mc):
        raise ValueError(f"reco_mc has {len(reco_mc)} events but gen_mc has {len(gen_mc)}: they must be paired")
    gen_edges, reco_edges = _edges(gen_edges, "gen_edges"), _edges(reco_edges, "reco_edges")
    w_mc, w_data = _weights(gen_mc, mc_weight, "mc_weight"), _weights(reco_data, data_weight, "data_weight")

    response, response_error, cause = response_matrix(gen_mc, reco_mc, gen_edges, reco_edges, w_mc)
    efficiency = response.sum(0)
    if not (efficiency > 0).all():
        empty = int(np.argmax(~(efficiency > 0)))
        raise ValueError(
            f"gen bin {empty} [{gen_edges[empty]:g}, {gen_edges[empty + 1]:g}) has no reconstructed MC event inside "
            "the reco edges: it cannot be unfolded (merge bins or widen the reco range)"
        )
    # the efficiency is a sum of the response's cells: its error from the same finite-MC counts
    reconstructed2 = np.square(response_error).sum(0) * cause**2
    efficiency_error = np.sqrt(reconstructed2) / cause
    data, _ = np.histogram(reco_data, bins=reco_edges, weights=w_data)
    data2, _ = np.histogram(reco_data, bins=reco_edges, weights=w_data**2)
    if not data.sum() > 0:
        raise ValueError("no data event falls inside the reco edges")
    mixer = Mixer(
        data=data,
        data_err=np.sqrt(data2),
        efficiencies=efficiency,
        efficiencies_err=efficiency_error,
        response=response,
        response_err=response_error,
        cov_type=s.data_errors,
    )
    prior = np.full(len(cause), 1.0 / len(cause)) if s.prior == "flat" else cause / cause.sum()
    counts = data.sum() * prior
    done = 0
    while done < s.iterations:
        previous, counts = counts, mixer.smear(counts)
        done += 1
        if s.tolerance is not None:
            error = np.sqrt(np.clip(np.diag(mixer.cov.getVc0()), 0, None))
            if np.all(np.abs(counts - previous) <= s.tolerance * error):
                break
    stat, mc = mixer.cov.getVc0(), mixer.cov.getVc1()
    return BinnedUnfolding(gen_edges, counts, stat + mc, stat, mc, response, efficiency, done)


def chi2(unfolded_density: np.ndarray, covariance: np.ndarray, truth_density: np.ndarray) -> tuple[float, int]:
    """chi2 of a unit-area unfolded distribution against a truth density, with the covariance's pseudo-inverse
    (the normalisation leaves it singular in one direction); ndf = bins - 1."""
    residual = unfolded_density - truth_density
    value = float(residual @ np.linalg.pinv(covariance, hermitian=True) @ residual)
    return value, len(residual) - 1
