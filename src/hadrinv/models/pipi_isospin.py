"""pi pi scattering in several charge channels: S0, P and S2 waves with inelasticity, as one forward model.

Data: dsigma/dOmega of charge channels (pi+pi- -> pi+pi-, pi0pi0 -> pi0pi0, pi+pi+ -> pi+pi+, pi+pi0 -> pi+pi0,
...) at points (s, cos theta), grouped by energy. Each channel is a fixed combination of the isospin
amplitudes (`physics.pipi_isospin.CHANNELS`), so together they fix the three waves of definite isospin.
A channel of `INELASTIC_CHANNELS` ("S0-inelastic") holds instead 1 - eta^2 of one wave, dimensionless, one
point per energy (its cos theta is not used); above the K Kbar threshold it fixes what the pi pi channels
cannot (`physics.pipi_isospin.common_phase_interval`).

Parameters, energy-major: the phase shifts (delta_0^0, delta_1^1, delta_0^2)(s_i) in radians at every
energy, then, at the energies at or above `inelastic_from_gev2` (default the K Kbar threshold, below which
pi pi scattering is elastic to good accuracy), u_l with eta_l = cos^2 u_l for the same three waves:
0 <= eta <= 1 for any u, so unitarity as an inequality holds by construction (a map without a flat
plateau, which exp(-u^2) has at large u, where fits stalled at eta = 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.data.channel_cross_sections import ChannelCrossSections
from hadrinv.physics.pipi_isospin import (
    ALL_CHANNELS,
    CHANNELS,
    INELASTIC_CHANNELS,
    S_K_GEV2,
    S_PI_GEV2,
    cfd_inelasticity,
    cfd_phase_shift_deg,
    cfd_waves,
    channel_cross_section,
    inelastic_flux,
    inelastic_wave,
    isospin_amplitude,
)

WAVE_NAMES = ("delta00", "delta11", "delta02")  # delta_l^I: (I, l) = (0, 0), (1, 1), (2, 0)


@dataclass
class IsospinProblem:
    energies: torch.Tensor  # (n_s,) distinct s, GeV^2, sorted
    energy_index: torch.Tensor  # (n_points,) index into energies
    channel_index: torch.Tensor  # (n_points,) index into channels
    s: torch.Tensor  # (n_points,) GeV^2
    cos_theta: torch.Tensor  # (n_points,)
    dsigma: torch.Tensor  # (n_points,) GeV^-2 (1 - eta^2, dimensionless, for an inelastic channel)
    error: torch.Tensor  # (n_points,) same units
    channels: tuple[str, ...]
    inelastic_from_gev2: float = S_K_GEV2

    def __post_init__(self):
        unknown = [c for c in self.channels if c not in ALL_CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}; known: {', '.join(ALL_CHANNELS)}")
        zero = (0.0, 0.0, 0.0)
        self._coefficients = torch.tensor([CHANNELS.get(c, zero) for c in self.channels], dtype=torch.float64)
        self._flux_wave = torch.tensor([INELASTIC_CHANNELS.get(c, -1) for c in self.channels])

    @property
    def flux_points(self) -> torch.Tensor:
        """(n_points,) bool: points of an inelastic channel (1 - eta^2 of a wave)."""
        return self._flux_wave.to(self.channel_index.device)[self.channel_index] >= 0

    @property
    def flux_measured(self) -> torch.Tensor:
        """(n_s,) bool: energies where an inelastic channel was measured."""
        measured = torch.zeros(self.n_energies, dtype=torch.bool, device=self.energies.device)
        return measured.index_fill_(0, self.energy_index[self.flux_points], True)

    @classmethod
    def from_data(cls, data: ChannelCrossSections, inelastic_from_gev2: float = S_K_GEV2) -> IsospinProblem:
        """The problem of a validated table (`data.channel_cross_sections`); channels in the order of
        `ALL_CHANNELS`, energies sorted (points at the same s, in any channel, share an energy)."""
        channels = tuple(c for c in ALL_CHANNELS if c in set(data.channel.tolist()))
        energies = np.unique(data.s)
        as_tensor = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64))  # noqa: E731
        return cls(
            as_tensor(energies),
            torch.as_tensor(np.searchsorted(energies, data.s)),
            torch.as_tensor(np.array([channels.index(c) for c in data.channel.tolist()], dtype=np.int64)),
            as_tensor(data.s),
            as_tensor(data.cos_theta),
            as_tensor(data.dsigma_domega),
            as_tensor(data.error),
            channels,
            inelastic_from_gev2,
        )

    def to_data(self, source: str = "<memory>", truth: dict | None = None) -> ChannelCrossSections:
        """The points as a table, to write with `write_channel_cross_sections`."""
        return ChannelCrossSections(
            np.array(self.channels)[self.channel_index.cpu().numpy()],
            self.s.cpu().numpy(),
            self.cos_theta.cpu().numpy(),
            self.dsigma.cpu().numpy(),
            self.error.cpu().numpy(),
            source,
            truth or {},
        )

    @property
    def n_energies(self) -> int:
        return len(self.energies)

    @property
    def n_waves(self) -> int:
        return 3

    @property
    def inelastic(self) -> torch.Tensor:
        """(n_s,) bool: energies whose inelasticities are free."""
        return self.energies >= self.inelastic_from_gev2

    @property
    def n_parameters(self) -> int:
        return 3 * self.n_energies + 3 * int(self.inelastic.sum())

    def __len__(self) -> int:
        return len(self.s)

    def at_energies(self, keep: torch.Tensor) -> IsospinProblem:
        """The sub-problem of the energies where keep (n_s,) bool is true (the energies decouple)."""
        points = keep[self.energy_index]
        renumber = torch.cumsum(keep.long(), 0) - 1
        return IsospinProblem(
            self.energies[keep],
            renumber[self.energy_index[points]],
            self.channel_index[points],
            self.s[points],
            self.cos_theta[points],
            self.dsigma[points],
            self.error[points],
            self.channels,
            self.inelastic_from_gev2,
        )

    def to(self, dtype=None, device=None) -> IsospinProblem:
        f = lambda x: x.to(dtype=dtype, device=device)
        moved = IsospinProblem(
            f(self.energies),
            self.energy_index.to(device),
            self.channel_index.to(device),
            f(self.s),
            f(self.cos_theta),
            f(self.dsigma),
            f(self.error),
            self.channels,
            self.inelastic_from_gev2,
        )
        moved._coefficients = moved._coefficients.to(device=device)
        moved._flux_wave = moved._flux_wave.to(device=device)
        return moved

    def unpack(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(delta (..., n_s, 3) radians, eta (..., n_s, 3)) from parameters (..., n_parameters)."""
        n = 3 * self.n_energies
        delta = params[..., :n].reshape(*params.shape[:-1], self.n_energies, 3)
        u = params[..., n:].reshape(*params.shape[:-1], -1, 3)
        rows = torch.nonzero(self.inelastic).squeeze(-1).to(params.device)
        full = torch.zeros_like(delta).index_copy(-2, rows, u)  # u = 0, eta = 1 at the elastic energies
        return delta, torch.cos(full) ** 2

    def waves(self, params: torch.Tensor) -> torch.Tensor:
        """Complex (..., n_s, 3): f_0^0, f_1^1, f_0^2."""
        return inelastic_wave(*self.unpack(params))

    def cross_section_from_waves(self, waves: torch.Tensor) -> torch.Tensor:
        """dsigma/dOmega (..., n_points) from waves (..., n_s, 3), each point in its channel."""
        at_points = waves[..., self.energy_index, :]
        amplitudes = torch.stack(
            [isospin_amplitude(at_points[..., i : i + 1], self.cos_theta, i) for i in range(3)], dim=-1
        )  # (..., n_points, 3): A_0, A_1, A_2
        amplitude = (amplitudes * self._coefficients[self.channel_index]).sum(-1)
        sigma = (amplitude.real**2 + amplitude.imag**2) / (64.0 * math.pi**2 * self.s)
        if not bool(self.flux_points.any()):
            return sigma
        wave = self._flux_wave[self.channel_index].clamp(min=0)  # (n_points,)
        flux = inelastic_flux(at_points.gather(-1, wave.expand(at_points.shape[:-1])[..., None]).squeeze(-1))
        return torch.where(self.flux_points, flux, sigma)

    def cross_section(self, params: torch.Tensor) -> torch.Tensor:
        return self.cross_section_from_waves(self.waves(params))

    def pulls(self, params: torch.Tensor) -> torch.Tensor:
        return (self.cross_section(params) - self.dsigma) / self.error

    def chi2_per_energy(self, params: torch.Tensor) -> torch.Tensor:
        """(..., n_s): the energies decouple, so each has its own chi^2."""
        pulls2 = self.pulls(params) ** 2
        out = torch.zeros(*pulls2.shape[:-1], self.n_energies, dtype=pulls2.dtype, device=pulls2.device)
        return out.index_add_(-1, self.energy_index, pulls2)


def cfd_truth(energies: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CFD phase shifts (n_s, 3) in degrees (continuous) and inelasticities (n_s, 3) at energies s (GeV^2)."""
    sqrt_s = torch.sqrt(energies.to(torch.float64))
    delta = torch.stack([cfd_phase_shift_deg(sqrt_s, w) for w in ("S0", "P", "S2")], -1)
    eta = torch.stack([cfd_inelasticity(sqrt_s, w) for w in ("S0", "P", "S2")], -1)
    return delta, eta


def simulate_cfd(
    n_s: int = 40,
    n_z: int = 12,
    sqrt_s_max_gev: float = 1.4,
    channels: Sequence[str] = ("pi+pi-", "pi0pi0", "pi+pi+", "pi+pi0"),
    noise: float = 0.02,
    seed: int = 0,
    grid: str = "irregular",
    flux_error: float = 0.03,
) -> IsospinProblem:
    """Pseudo-data from the CFD waves (`physics.pipi_isospin`): every pi pi channel at every energy and angle,
    Gaussian errors `noise` x the cross section; an inelastic channel ("S0-inelastic") once per energy above
    the K Kbar threshold, 1 - eta^2 with the absolute error `flux_error`. grid "regular": evenly spaced s
    and cos theta; "irregular": energies uniform in sqrt(s) at random, angles at random per energy and channel."""
    rng = np.random.default_rng(seed)
    pipi = [c for c in channels if c not in INELASTIC_CHANNELS]
    fluxes = [c for c in channels if c in INELASTIC_CHANNELS]
    lo = math.sqrt(S_PI_GEV2) + 0.02  # just above threshold: cross sections there are tiny
    if grid == "regular":
        sqrt_s = np.linspace(lo, sqrt_s_max_gev, n_s)
        z = np.tile(np.linspace(-0.95, 0.95, n_z), (n_s, len(pipi), 1))
    elif grid == "irregular":
        sqrt_s = np.sort(rng.uniform(lo, sqrt_s_max_gev, n_s))
        z = rng.uniform(-1.0, 1.0, (n_s, len(pipi), n_z))
    else:
        raise ValueError(f"grid must be 'regular' or 'irregular', got {grid!r}")
    energies = torch.as_tensor(sqrt_s**2)
    energy_index = torch.arange(n_s).repeat_interleave(len(pipi) * n_z)
    channel_index = torch.arange(len(pipi)).repeat_interleave(n_z).repeat(n_s)
    s = energies[energy_index]
    cos_theta = torch.as_tensor(z.reshape(-1))
    sigma = torch.zeros(0, dtype=torch.float64)
    if pipi:
        waves = cfd_waves(s)
        truth = torch.stack([channel_cross_section(waves, cos_theta, s, c) for c in pipi])  # (channels, n_points)
        sigma = truth.gather(0, channel_index[None]).squeeze(0)  # each point in its own channel
    error = noise * sigma
    above = torch.nonzero(energies >= S_K_GEV2).flatten()
    eta = cfd_truth(energies[above])[1]
    for k, name in enumerate(fluxes):
        energy_index = torch.cat([energy_index, above])
        channel_index = torch.cat([channel_index, torch.full_like(above, len(pipi) + k)])
        s = torch.cat([s, energies[above]])
        cos_theta = torch.cat([cos_theta, torch.zeros(len(above), dtype=torch.float64)])
        sigma = torch.cat([sigma, 1.0 - eta[:, INELASTIC_CHANNELS[name]] ** 2])
        error = torch.cat([error, torch.full((len(above),), flux_error, dtype=torch.float64)])
    observed = sigma + error * torch.as_tensor(rng.standard_normal(len(sigma)))
    return IsospinProblem(energies, energy_index, channel_index, s, cos_theta, observed, error, (*pipi, *fluxes))
