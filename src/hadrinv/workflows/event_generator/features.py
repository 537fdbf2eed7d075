"""What the generators learn, per event, and the observables the report histograms.

A three-body table (the PWA layout, J/psi -> gamma pi pi, or any ``three-body`` table of particles 1, 2, 3) is
learned in its five independent variables: the Dalitz variables and the orientation, each mapped to the unit
interval by its kinematic range (m23 between m2 + m3 and M - m1, s12 between its limits at that m23, cos theta and
phi of particle 1, psi; divided by 2 pi) and then to the real line by a logit. Any point the generator produces
decodes to an event inside the Dalitz region with four-momentum conservation and on-shell masses exact
(`physics.phase_space.events_from_dalitz`). m23 rather than s23 keeps a resonance's peak a Breit-Wigner in the
learned variable. Any other table is learned column by column as it is (the generators standardise it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.data.event_tables import EventTable, ThreeBody
from hadrinv.physics.phase_space import M_JPSI, dalitz_coordinates, dalitz_s12_limits, events_from_dalitz
from hadrinv.physics.pwa import M_PI_CHARGED

_EDGE = 1e-9  # unit coordinates are clamped to [_EDGE, 1 - _EDGE] before the logit: finite at the boundary
PWA_OBSERVABLES = ("m_pipi", "m_gamma_pi1", "m_gamma_pi2", "cos_theta_gamma", "phi_gamma", "E_gamma")
DALITZ_FEATURES = ("logit_m_pipi", "logit_s_gamma_pi1", "logit_cos_theta_gamma", "logit_phi_gamma", "logit_psi")


def _logit(u: torch.Tensor) -> torch.Tensor:
    u = u.clamp(_EDGE, 1.0 - _EDGE)
    return torch.log(u) - torch.log1p(-u)


PWA_DECAY = ThreeBody(("gamma", "pi1", "pi2"), (0.0, M_PI_CHARGED, M_PI_CHARGED), M_JPSI)


@dataclass(frozen=True)
class Representation:
    """encode: table values (N, C) -> features (N, F); decode: the inverse; observables for the histograms."""

    layout: str
    columns: tuple[str, ...]
    decay: ThreeBody = PWA_DECAY  # the three-body layouts' particles and masses

    @property
    def dalitz(self) -> bool:
        return self.layout in ("pwa", "three-body")

    @property
    def masses(self) -> tuple[float, float, float]:
        return self.decay.masses

    @property
    def mass(self) -> float:
        return self.decay.parent_mass

    @property
    def feature_names(self) -> tuple[str, ...]:
        if self.layout == "pwa":
            return DALITZ_FEATURES
        if self.layout == "three-body":
            a, b, c = self.decay.particles
            return (f"logit_m_{b}_{c}", f"logit_s_{a}_{b}", f"logit_cos_theta_{a}", f"logit_phi_{a}", "logit_psi")
        return self.columns

    def _m_range(self) -> tuple[float, float]:
        m1, m2, m3 = self.masses
        return m2 + m3, self.mass - m1

    @property
    def observable_names(self) -> tuple[str, ...]:
        if self.layout == "pwa":
            return PWA_OBSERVABLES
        if self.layout == "three-body":
            a, b, c = self.decay.particles
            return (f"m_{b}_{c}", f"m_{a}_{b}", f"m_{a}_{c}", f"cos_theta_{a}", f"phi_{a}", f"E_{a}")
        return self.columns

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        values = values.to(torch.float64)
        if not self.dalitz:
            return values
        s12, s23, cos_theta, phi, psi = dalitz_coordinates(values[:, 0:4], values[:, 4:8], values[:, 8:12])
        lo, hi = self._m_range()
        m23 = torch.sqrt(s23.clamp_min(lo**2))
        s12_lo, s12_hi = dalitz_s12_limits(m23**2, self.masses, self.mass)
        unit = (
            (m23 - lo) / (hi - lo),
            (s12 - s12_lo) / (s12_hi - s12_lo).clamp_min(1e-300),
            0.5 * (cos_theta + 1.0),
            phi / (2.0 * math.pi),
            psi / (2.0 * math.pi),
        )
        return torch.stack([_logit(u) for u in unit], dim=1)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        features = features.to(torch.float64)
        if not self.dalitz:
            return features
        u = torch.sigmoid(features)
        lo, hi = self._m_range()
        m23 = lo + (hi - lo) * u[:, 0]
        s23 = m23**2
        s12_lo, s12_hi = dalitz_s12_limits(s23, self.masses, self.mass)
        s12 = s12_lo + (s12_hi - s12_lo) * u[:, 1]
        p = events_from_dalitz(
            s12, s23, 2.0 * u[:, 2] - 1.0, 2.0 * math.pi * u[:, 3], 2.0 * math.pi * u[:, 4], self.masses, self.mass
        )
        return torch.cat(p, dim=1)

    def observables(self, values: torch.Tensor) -> dict[str, np.ndarray]:
        """name -> (N,) float64: invariant masses (GeV), angles and energies for the three-body layouts; the
        columns otherwise."""
        values = values.to(torch.float64)
        if not self.dalitz:
            return {name: values[:, j].numpy() for j, name in enumerate(self.columns)}
        gamma, pi1, pi2 = values[:, 0:4], values[:, 4:8], values[:, 8:12]
        s12, s23, cos_theta, phi, _ = dalitz_coordinates(gamma, pi1, pi2)

        def mass(s):
            return torch.sqrt(s.clamp_min(0.0)).numpy()

        s13 = (gamma + pi2)[:, 0] ** 2 - ((gamma + pi2)[:, 1:] ** 2).sum(-1)
        observed = (mass(s23), mass(s12), mass(s13), cos_theta.numpy(), phi.numpy(), gamma[:, 0].numpy())
        return dict(zip(self.observable_names, observed, strict=True))


def representation_of(table: EventTable) -> Representation:
    if table.layout == "three-body":
        return Representation(table.layout, table.columns, table.decay)
    return Representation(table.layout, table.columns)
