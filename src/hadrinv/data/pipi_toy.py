"""The talk-000 pseudo-data: dsigma/dOmega of Breit-Wigner S and P waves on an (s, cos theta) grid."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from hadrinv.data.cross_sections import CrossSectionData
from hadrinv.physics.partial_waves import amplitude_from_waves
from hadrinv.physics.pipi import (
    F0_500,
    RHO_770,
    S_THRESHOLD_GEV2,
    Resonance,
    breit_wigner_waves,
    differential_cross_section,
)

GRIDS = ("regular", "irregular", "scattered")


class PipiSpecError(ValueError):
    """A PipiToySpec field that cannot be simulated; `field` lets a caller name its own option for it."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


@dataclass
class PipiToySpec:
    """What to simulate. Defaults: the talk's 64 x 64 grid, s in [(2 m_pi)^2, 1] GeV^2, noise 0.01.

    noise is a fraction: the standard deviation of the Gaussian noise is noise * max(dsigma_true) on the
    whole grid (noise_relative_to="max", default: the talk's noise std on a cross section normalised to
    its maximum), or noise * dsigma_true at each point (noise_relative_to="point").
    grid="irregular" draws n_s energies uniformly in [s_min, s_max] and, per energy, a number of angles
    uniformly in [n_z // 2, 3 n_z // 2], at uniform random cos(theta); grid="scattered" draws the energies
    the same way and measures the same n_z regular angles at each (a fixed detector, beam energies as they came).
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

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """PipiSpecError (a ValueError) naming the first field that cannot be simulated.

        Checked here, not where the grid is built, so that nonsense (no energies, a zero width) stops with
        one line before any work, instead of an empty array or a division by zero failing deep inside.
        """

        def positive_int(field: str, what: str, least: int = 1) -> None:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise PipiSpecError(field, f"{what} must be an integer >= {least}, not {value!r}")

        positive_int("n_s", "the number of energies")
        if self.grid not in GRIDS:
            raise PipiSpecError("grid", f"unknown grid {self.grid!r}; use one of {', '.join(GRIDS)}")
        # the irregular grid draws between n_z // 2 (at least 3) and 3 n_z // 2 angles: that range is empty below 2
        positive_int("n_z", "the number of angles per energy", 2 if self.grid == "irregular" else 1)
        if not (math.isfinite(self.s_min_gev2) and self.s_min_gev2 >= S_THRESHOLD_GEV2):
            raise PipiSpecError(
                "s_min_gev2",
                f"{self.s_min_gev2:g} GeV^2 is below the threshold (2 m_pi)^2 = {S_THRESHOLD_GEV2:.5f} GeV^2",
            )
        if not (math.isfinite(self.s_max_gev2) and self.s_max_gev2 > self.s_min_gev2):
            raise PipiSpecError(
                "s_max_gev2", f"{self.s_max_gev2:g} GeV^2 must be above the lowest s, {self.s_min_gev2:.5f} GeV^2"
            )
        for field in ("f0_mass_gev", "f0_width_gev", "rho_mass_gev", "rho_width_gev"):
            value = getattr(self, field)
            if not (math.isfinite(value) and value > 0):
                raise PipiSpecError(field, f"{value:g} GeV: masses and widths must be positive")
        if not (math.isfinite(self.noise) and self.noise > 0):
            raise PipiSpecError("noise", f"{self.noise:g}: noise must be positive (the errors are noise x reference)")
        if self.noise_relative_to not in ("point", "max"):
            raise PipiSpecError("noise_relative_to", f"must be 'point' or 'max', not {self.noise_relative_to!r}")
        positive_int("seed", "the seed", 0)

    @property
    def resonances(self) -> tuple[Resonance, Resonance]:
        return Resonance(self.f0_mass_gev, self.f0_width_gev), Resonance(self.rho_mass_gev, self.rho_width_gev)


def pipi_grid(spec: PipiToySpec, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(s, cos_theta) of every point. The lowest regular energy sits just above threshold."""
    if spec.grid in ("regular", "scattered"):
        # the talk's grid starts at threshold, where s = (2 m_pi)^2 exactly is not a scattering state;
        # we start one step above it and end at s_max
        step = (spec.s_max_gev2 - spec.s_min_gev2) / spec.n_s
        if spec.grid == "scattered":
            energies = np.sort(rng.uniform(spec.s_min_gev2, spec.s_max_gev2, spec.n_s))
        else:
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
    raise ValueError(f"unknown grid {spec.grid!r}; use one of {', '.join(GRIDS)}")


def simulate_pipi(spec: PipiToySpec | None = None) -> CrossSectionData:
    """Noisy cross sections with their errors and the truth (the generating parameters); default: the talk's toy."""
    spec = spec if spec is not None else PipiToySpec()
    spec.validate()  # again: the fields may have been changed since construction
    rng = np.random.default_rng(spec.seed)
    s, z = pipi_grid(spec, rng)
    s_t, z_t = torch.as_tensor(s), torch.as_tensor(z)
    amplitude = amplitude_from_waves(breit_wigner_waves(s_t, spec.resonances), z_t)
    truth = differential_cross_section(amplitude, s_t).numpy()
    reference = truth if spec.noise_relative_to == "point" else np.full_like(truth, truth.max())
    error = spec.noise * reference
    observed = truth + error * rng.standard_normal(len(truth))
    truth_info = {"model": "pipi-breit-wigner", **asdict(spec)}
    return CrossSectionData(
        s=s, cos_theta=z, dsigma_domega=observed, error=error, source="simulate pipi", truth=truth_info
    )


def truth_resonances(truth: dict) -> tuple[Resonance, Resonance] | None:
    """The generating resonances of a simulated data set, or None if the data are not from simulate_pipi."""
    if truth.get("model") != "pipi-breit-wigner":
        return None
    return Resonance(truth["f0_mass_gev"], truth["f0_width_gev"]), Resonance(
        truth["rho_mass_gev"], truth["rho_width_gev"]
    )
