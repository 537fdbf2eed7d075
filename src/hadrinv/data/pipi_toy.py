"""The talk-000 pseudo-data: dsigma/dOmega of Breit-Wigner S and P waves on an (s, cos theta) grid."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from hadrinv.data.cross_sections import CrossSectionData
from hadrinv.physics.partial_waves import amplitude_from_waves
from hadrinv.physics.pipi import F0_500, RHO_770, S_THRESHOLD_GEV2, Resonance, breit_wigner_waves, differential_cross_section


@dataclass
class PipiToySpec:
    """What to simulate. Defaults: the talk's 64 x 64 grid, s in [(2 m_pi)^2, 1] GeV^2, noise 0.01.

    noise is a fraction: the standard deviation of the Gaussian noise is noise * max(dsigma_true) on the
    whole grid (noise_relative_to="max", default: the talk's noise std on a cross section normalised to
    its maximum), or noise * dsigma_true at each point (noise_relative_to="point").
    grid="irregular" draws n_s energies uniformly in [s_min, s_max] and, per energy, a number of angles
    uniformly in [n_z // 2, 3 n_z // 2], at uniform random cos(theta).
    """

    n_s: int = 64
    n_z: int = 64
    s_min_gev2: float = S_THRESHOLD_GEV2
    s_max_gev2: float = 1.0
    grid: str = "regular"
    f0_mass_gev: float = F0_500.mass_gev
    f0_width_gev: float = F0_500.width_gev
    rho_mass_gev: float = RHO_770.mass_gev
    rho_width_gev: float = RHO_770.width_gev
    noise: float = 0.01
    noise_relative_to: str = "max"
    seed: int = 0

    @property
    def resonances(self) -> tuple[Resonance, Resonance]:
        return Resonance(self.f0_mass_gev, self.f0_width_gev), Resonance(self.rho_mass_gev, self.rho_width_gev)


def pipi_grid(spec: PipiToySpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(s, cos_theta) of every point. The lowest regular energy sits just above threshold."""
    if spec.grid == "regular":
        # the talk's grid starts at threshold, where s = (2 m_pi)^2 exactly is not a scattering state;
        # we start one step above it and end at s_max
        step = (spec.s_max_gev2 - spec.s_min_gev2) / spec.n_s
        energies = spec.s_min_gev2 + step * (np.arange(spec.n_s) + 1.0)
        angles = np.linspace(-1.0, 1.0, spec.n_z)
        s, z = np.meshgrid(energies, angles, indexing="ij")
        return s.ravel(), z.ravel()
    if spec.grid == "irregular":
        energies = np.sort(rng.uniform(spec.s_min_gev2, spec.s_max_gev2, spec.n_s))
        counts = rng.integers(max(spec.n_z // 2, 3), 3 * spec.n_z // 2 + 1, spec.n_s)
        s = np.repeat(energies, counts)
        z = np.concatenate([np.sort(rng.uniform(-1.0, 1.0, c)) for c in counts])
        return s, z
    raise ValueError(f"unknown grid {spec.grid!r}; use 'regular' or 'irregular'")


def simulate_pipi(spec: PipiToySpec = PipiToySpec()) -> CrossSectionData:
    """Noisy cross sections with their errors and the truth (the generating parameters)."""
    if spec.noise_relative_to not in ("point", "max"):
        raise ValueError(f"noise_relative_to must be 'point' or 'max', not {spec.noise_relative_to!r}")
    if spec.noise <= 0:
        raise ValueError("noise must be positive (the errors are noise x reference)")
    rng = np.random.default_rng(spec.seed)
    s, z = pipi_grid(spec, rng)
    s_t, z_t = torch.as_tensor(s), torch.as_tensor(z)
    amplitude = amplitude_from_waves(breit_wigner_waves(s_t, spec.resonances), z_t)
    truth = differential_cross_section(amplitude, s_t).numpy()
    reference = truth if spec.noise_relative_to == "point" else np.full_like(truth, truth.max())
    error = spec.noise * reference
    observed = truth + error * rng.standard_normal(len(truth))
    truth_info = {"model": "pipi-breit-wigner", **asdict(spec)}
    return CrossSectionData(s=s, cos_theta=z, dsigma_domega=observed, error=error, source="simulate pipi", truth=truth_info)


def truth_resonances(truth: dict) -> tuple[Resonance, Resonance] | None:
    """The generating resonances of a simulated data set, or None if the data are not from simulate_pipi."""
    if truth.get("model") != "pipi-breit-wigner":
        return None
    return Resonance(truth["f0_mass_gev"], truth["f0_width_gev"]), Resonance(truth["rho_mass_gev"], truth["rho_width_gev"])
