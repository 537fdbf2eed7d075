"""J/psi -> gamma pi+ pi- for the matrix-element method: the hard process with one free parameter, a toy detector,
and the three likelihoods of that parameter (true hard events, the known detector, the learned one).

Hard variables (`hadrinv.models.pwa.HARD_VARIABLES`): m_pipi, cos theta_gamma, cos theta_pi, phi_pi; together with the
azimuth of the event about the beam, on which the intensity does not depend, they fix the event. Phase space is flat
in the angles and p q / M in m_pipi, so the hard density is f(x | alpha) = I(x; alpha) p q / M on the box of
`hard_bounds`.

Detector: each hard variable smeared by a Gaussian (``resolution``; phi_pi not wrapped, cosines not folded back:
reco values may leave the box); the event is lost with probability 1 - eps(x), eps = [|cos theta_gamma| <
max_cos_gamma] (0.9 - pion_loss cos^2 theta_pi). A physicist would parametrise exactly this for a classical MEM
(MadWeight-style transfer functions); the learned MEM sees only the MC's pairs.

Normalisation: N(alpha) = integral f eps = V <I eps>_PS over flat phase space. With the detector known, the MC events
carry weight eps(x); with the learned detector, weight 1 if reconstructed and 0 if not (the same in expectation, and
what an experiment has). Both are compressed in m_pipi bins (`AmplitudeModel.binned_cache`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.data.pwa_model import generate_events, no_acceptance, read_model
from hadrinv.inference.mem import ImportanceSamples
from hadrinv.models.pwa import AmplitudeModel, hard_bounds, hard_variables
from hadrinv.physics.phase_space import phase_space_events, two_body_phase_space_density

FIELDS = ("mass", "width", "g_pipi")


@dataclass
class Detector:
    resolution: np.ndarray  # (4,)
    max_cos_gamma: float = 0.9
    pion_loss: float = 0.4

    def efficiency(self, hard: np.ndarray) -> np.ndarray:
        inside = np.abs(hard[:, 1]) < self.max_cos_gamma
        return inside * (0.9 - self.pion_loss * hard[:, 2] ** 2)

    def apply(self, hard: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Reco values (N, 4), NaN rows for the lost events."""
        reco = hard + rng.normal(size=hard.shape) * self.resolution
        reco[rng.uniform(size=len(hard)) >= self.efficiency(hard)] = np.nan
        return reco


class Process:
    """The PWA model with only ``parameter`` free (RESONANCE.mass, .width or .g_pipi), the rest at the file's values."""

    def __init__(self, model: str, parameter: str):
        pwa_model = read_model(model)
        resonance, _, field = parameter.rpartition(".")
        names = [r.name for r in pwa_model.resonances]
        if resonance not in names or field not in FIELDS:
            choices = ", ".join(f"{n}.{f}" for n in names for f in ("mass", "width"))
            raise ValueError(f"parameter {parameter!r}: expected RESONANCE.FIELD, one of {choices} (or .g_pipi)")
        resonances = [
            r.model_copy(update={"float_": [field] if r.name == resonance else []}) for r in pwa_model.resonances
        ]
        self.model = pwa_model.model_copy(update={"resonances": resonances})
        self.amplitude = AmplitudeModel(self.model)  # refuses a width of a Flatte, a g_pipi of a Breit-Wigner
        self.parameter = parameter
        self.value = float(self.amplitude.initial()[0])
        self.low, self.high = (np.asarray(b) for b in hard_bounds(self.model.pion_mass))

    def intensity(self, alpha: float, cache: dict) -> np.ndarray:
        return self.amplitude.intensity(torch.tensor([alpha], dtype=torch.float64), cache).numpy()

    def inside(self, hard: np.ndarray) -> np.ndarray:
        return ((hard > self.low) & (hard < self.high)).all(-1)

    def log_phase_space(self, hard: np.ndarray) -> np.ndarray:
        """log of p q / M in m_pipi, -inf outside the box."""
        density = two_body_phase_space_density(torch.as_tensor(hard[:, 0]), (0.0, *(2 * [self.model.pion_mass])))
        with np.errstate(divide="ignore"):
            return np.where(self.inside(hard), np.log(density.numpy()), -np.inf)

    def hard_cache(self, hard: np.ndarray) -> dict:
        """The amplitude cache of hard points, clamped into the box (points outside carry no weight anyway)."""
        margin = 1e-9 * (self.high - self.low)
        return self.amplitude.cache_from_hard(torch.as_tensor(np.clip(hard, self.low + margin, self.high - margin)))

    def normalisation_cache(self, events, weight: np.ndarray) -> dict:
        gamma, pi1, pi2 = events
        chunks = [(gamma, pi1, pi2, torch.as_tensor(weight, dtype=torch.float64))]
        return self.amplitude.binned_cache(chunks)


@dataclass
class MonteCarlo:
    events: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    hard: np.ndarray
    reco: np.ndarray  # NaN rows: lost


def simulate_mc(process: Process, detector: Detector, n: int, seed: int) -> MonteCarlo:
    masses = (0.0, process.model.pion_mass, process.model.pion_mass)
    events = phase_space_events(n, masses, generator=torch.Generator().manual_seed(seed))
    hard = hard_variables(*events).numpy()
    reco = detector.apply(hard, np.random.default_rng([seed, 1]))
    return MonteCarlo(events, hard, reco)


@dataclass
class DataSet:
    events: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # the reconstructed events' four-momenta
    hard: np.ndarray
    reco: np.ndarray


def simulate_data(process: Process, detector: Detector, n: int, efficiency: float, seed: int) -> DataSet:
    """n reconstructed events of the model at its file's values; ``efficiency``: the expected fraction kept."""
    generator, rng = torch.Generator().manual_seed(seed), np.random.default_rng([seed, 2])
    parts, kept = [], 0
    while kept < n:
        size = int(math.ceil(1.2 * (n - kept) / efficiency)) + 10
        events = generate_events(process.model, size, no_acceptance, generator)
        hard = hard_variables(*events).numpy()
        reco = detector.apply(hard, rng)
        ok = np.isfinite(reco).all(1)
        parts.append((tuple(e[torch.as_tensor(ok)] for e in events), hard[ok], reco[ok]))
        kept += int(ok.sum())
    events = tuple(torch.cat([p[0][i] for p in parts])[:n] for i in range(3))
    return DataSet(events, np.concatenate([p[1] for p in parts])[:n], np.concatenate([p[2] for p in parts])[:n])


def known_detector_samples(
    process: Process, detector: Detector, reco: np.ndarray, samples: int, seed: int
) -> ImportanceSamples:
    """The classical MEM's integral with the known detector: hard points x_r + sigma z are draws from the Gaussian
    transfer read as a density of x_hard (it is symmetric), so the weights are the phase-space density times eps."""
    rng = np.random.default_rng([seed, 3])
    hard = reco[:, None, :] + rng.normal(size=(len(reco), samples, reco.shape[1])) * detector.resolution
    flat = hard.reshape(-1, reco.shape[1])
    with np.errstate(divide="ignore"):
        log_w = process.log_phase_space(flat) + np.log(detector.efficiency(flat))
    return ImportanceSamples(hard, log_w.reshape(len(reco), samples))
