"""The built-in unfolding problems: paired MC, detector-level data and the data's particle-level truth.

- ``gaussian``: the standard benchmark of the unfolding literature (OmniFold's, arXiv:1911.09107): MC truth
  N(0.2, 0.8), data truth N(0, 1), detector smearing N(0, 0.5), every event reconstructed.
- ``gaussian-4d``: four correlated observables (correlation 0.5 between each pair), MC truth means 0.2 and
  widths 0.8, data truth means 0 and widths 1; smearing N(0, 0.5) per observable, and an efficiency that depends
  on two of them, eps = 0.3 + 0.6 sigmoid(x1 + 0.5 x2): MC and data lose events alike. Histograms over [-2.5, 2.5].
- ``pwa``: J/psi -> gamma pi+ pi- of the PWA generator; the MC is flat phase space, the data the model R0.
  Observables m_pipi (GeV), cos theta and energy of the photon (GeV); resolutions 10 MeV, 0.02 and
  2.5 % / sqrt(E / GeV); an acceptance that drops photons below 0.1 GeV or with |cos theta| > 0.9 (before smearing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.data.unfolding_tables import UnfoldingData, UnfoldingMC

CASES = ("gaussian", "gaussian-4d", "pwa")


@dataclass
class Case:
    mc: UnfoldingMC
    data: UnfoldingData
    truth: np.ndarray | None  # (M_all, K) particle-level values of all data events, lost ones included
    truth_ranges: dict[str, tuple[float, float]]  # a sensible histogram range per observable


def _gaussian(n: int, rng: np.random.Generator) -> Case:
    gen = rng.normal(0.2, 0.8, n)
    truth = rng.normal(0.0, 1.0, n)
    reco, reco_data = gen + rng.normal(0, 0.5, n), truth + rng.normal(0, 0.5, n)
    mc = UnfoldingMC(("x",), gen[:, None], reco[:, None], None, "simulated gaussian")
    data = UnfoldingData(("x",), reco_data[:, None], None, "simulated gaussian")
    return Case(mc, data, truth[:, None], {"x": (-3.0, 3.0)})


def _gaussian_4d(n: int, rng: np.random.Generator) -> Case:
    correlation = np.full((4, 4), 0.5) + 0.5 * np.eye(4)
    names = ("x1", "x2", "x3", "x4")

    def draw(mean: float, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        gen = rng.multivariate_normal(np.full(4, mean), width**2 * correlation, size=n)
        reco = gen + rng.normal(0, 0.5, gen.shape)
        eps = 0.3 + 0.6 / (1 + np.exp(-(gen[:, 0] + 0.5 * gen[:, 1])))
        return gen, reco, rng.uniform(size=n) < eps

    gen, reco, kept = draw(0.2, 0.8)
    reco[~kept] = np.nan
    truth, reco_data, kept_data = draw(0.0, 1.0)
    mc = UnfoldingMC(names, gen, reco, None, "simulated gaussian-4d")
    data = UnfoldingData(names, reco_data[kept_data], None, "simulated gaussian-4d")
    # [-3, 3] would leave the lowest gen bins of x1 and x2 (MC N(0.2, 0.8), efficiency near 0.3 there) with a few
    # reconstructed events or none: a bin that binned unfolding cannot fill
    return Case(mc, data, truth, dict.fromkeys(names, (-2.5, 2.5)))


def _pwa(n: int, rng: np.random.Generator, seed: int) -> Case:
    from hadrinv.data.pwa_model import generate_events, no_acceptance, read_model
    from hadrinv.physics.phase_space import dalitz_coordinates, phase_space_events

    def observables(gamma, pi1, pi2) -> np.ndarray:
        _, s23, cos_theta, _, _ = dalitz_coordinates(gamma, pi1, pi2)
        return torch.stack([s23.clamp_min(0).sqrt(), cos_theta, gamma[:, 0]], 1).numpy()

    def detector(gen: np.ndarray) -> np.ndarray:
        reco = gen + rng.normal(size=gen.shape) * np.stack(
            [np.full(len(gen), 0.010), np.full(len(gen), 0.02), 0.025 * np.sqrt(gen[:, 2])], 1
        )
        lost = (gen[:, 2] < 0.1) | (np.abs(gen[:, 1]) > 0.9)
        reco[lost] = np.nan
        return reco

    gen = observables(*phase_space_events(n, generator=torch.Generator().manual_seed(seed)))
    truth = observables(*generate_events(read_model("R0"), n, no_acceptance, torch.Generator().manual_seed(seed + 1)))
    reco, reco_data = detector(gen), detector(truth)
    names = ("m_pipi", "cos_theta_gamma", "E_gamma")
    mc = UnfoldingMC(names, gen, reco, None, "simulated pwa (phase space)")
    kept = np.isfinite(reco_data).all(1)
    data = UnfoldingData(names, reco_data[kept], None, "simulated pwa (R0)")
    ranges = {"m_pipi": (0.28, 3.1), "cos_theta_gamma": (-1.0, 1.0), "E_gamma": (0.0, 1.6)}
    return Case(mc, data, truth, ranges)


def simulate(case: str, events: int, seed: int) -> Case:
    """``events`` MC events and as many data events before the detector (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if case == "gaussian":
        return _gaussian(events, rng)
    if case == "gaussian-4d":
        return _gaussian_4d(events, rng)
    if case == "pwa":
        return _pwa(events, rng, seed)
    raise ValueError(f"unknown case {case!r}; choose from {', '.join(CASES)}")
