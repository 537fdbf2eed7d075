"""The pi pi extraction problem as tensors: data points grouped by energy, and the forward map
from partial waves f_l(s_i) at the measured energies to dsigma/dOmega at every measured point.

As a `ForwardModel` its parameters are the elastic phase shifts delta_l(s_i) in [0, pi), energy-major:
f_l = exp(i delta_l) sin(delta_l) obeys elastic unitarity whatever delta is, so the box is a prior on
physical waves, and the observations carry the data's errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.data.cross_sections import CrossSectionData
from hadrinv.physics.partial_waves import legendre_polynomials


@dataclass
class PipiProblem:
    energies: torch.Tensor  # (n_s,) distinct s, GeV^2, sorted
    energy_index: torch.Tensor  # (n_points,) index into energies
    s: torch.Tensor  # (n_points,) GeV^2
    cos_theta: torch.Tensor  # (n_points,)
    dsigma: torch.Tensor  # (n_points,) GeV^-2
    error: torch.Tensor  # (n_points,) GeV^-2
    l_max: int
    errors_given: bool

    @classmethod
    def from_data(cls, data: CrossSectionData, l_max: int, assumed_relative_error: float = 0.01) -> PipiProblem:
        """Without an error column, errors are assumed_relative_error x |dsigma| (stated in the metrics)."""
        error = data.error if data.error is not None else assumed_relative_error * np.abs(data.dsigma_domega)
        if data.error is None and np.any(error <= 0):
            raise ValueError("data without an error column contain zero cross sections: add an error column")
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)
        return cls(
            energies=t(data.energies),
            energy_index=torch.as_tensor(data.energy_index, dtype=torch.long),
            s=t(data.s),
            cos_theta=t(data.cos_theta),
            dsigma=t(data.dsigma_domega),
            error=t(error),
            l_max=l_max,
            errors_given=data.error is not None,
        )

    @property
    def n_waves(self) -> int:
        return self.l_max + 1

    @property
    def n_energies(self) -> int:
        return len(self.energies)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"delta{l}(s={s:.4f})" for s in self.energies.tolist() for l in range(self.n_waves))

    @property
    def theta_dim(self) -> int:
        return self.n_energies * self.n_waves

    @property
    def bounds(self) -> tuple[list[float], list[float]]:
        return [0.0] * self.theta_dim, [math.pi] * self.theta_dim

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return math.pi * torch.rand(n, self.theta_dim, generator=generator, dtype=self.s.dtype, device=self.s.device)

    def elastic_waves(self, delta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Re f_l and Im f_l, each (..., n_s, n_waves), of f_l = exp(i delta_l) sin(delta_l);
        delta: (..., n_s * n_waves)."""
        d = delta.view(*delta.shape[:-1], self.n_energies, self.n_waves)
        sin = torch.sin(d)
        return sin * torch.cos(d), sin * sin

    def simulate(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, n_points) dsigma/dOmega of the phase shifts theta with Gaussian noise of the data's errors."""
        clean = self.cross_section(*self.elastic_waves(theta))
        return clean + self.error * torch.randn(
            clean.shape, generator=generator, dtype=clean.dtype, device=clean.device
        )

    def __len__(self) -> int:
        return len(self.s)

    def to(self, dtype=None, device=None) -> PipiProblem:
        f = lambda x: x.to(dtype=dtype, device=device)
        return PipiProblem(
            f(self.energies),
            self.energy_index.to(device),
            f(self.s),
            f(self.cos_theta),
            f(self.dsigma),
            f(self.error),
            self.l_max,
            self.errors_given,
        )

    def regular_grid(self) -> torch.Tensor:
        """Point indices as an (n_s, n_z) grid, angles ascending; ValueError unless every energy has the same angles."""
        order = torch.argsort(self.energy_index * 4.0 + self.cos_theta.to(torch.float64))  # energy-major, then z
        counts = torch.bincount(self.energy_index, minlength=self.n_energies)
        if not bool((counts == counts[0]).all()):
            raise ValueError("the CNN generator needs a regular grid: the same angles at every energy")
        grid = order.view(self.n_energies, int(counts[0]))
        if not torch.allclose(self.cos_theta[grid], self.cos_theta[grid[0]].expand_as(grid)):
            raise ValueError("the CNN generator needs a regular grid: the same angles at every energy")
        return grid

    def angular_basis(self) -> torch.Tensor:
        """(2l+1) P_l(z) at every point, shape (n_points, n_waves)."""
        degeneracy = 2 * torch.arange(self.n_waves, dtype=self.s.dtype, device=self.s.device) + 1
        return legendre_polynomials(self.cos_theta, self.l_max) * degeneracy

    def cross_section(
        self, waves_re: torch.Tensor, waves_im: torch.Tensor, basis: torch.Tensor | None = None
    ) -> torch.Tensor:
        """dsigma/dOmega at the points from Re f_l, Im f_l at the energies, each (..., n_s, n_waves).

        Real arithmetic on purpose: on a CPU it is several times faster than complex tensors here.
        """
        basis = self.angular_basis() if basis is None else basis
        re = (waves_re[..., self.energy_index, :] * basis).sum(-1)
        im = (waves_im[..., self.energy_index, :] * basis).sum(-1)
        return (re * re + im * im) / (64.0 * math.pi**2 * self.s)

    def chi2_per_energy(self, dsigma_model: torch.Tensor) -> torch.Tensor:
        """sum of squared pulls at each energy, shape (..., n_s)."""
        pulls2 = ((dsigma_model - self.dsigma) / self.error) ** 2
        out = torch.zeros(*pulls2.shape[:-1], self.n_energies, dtype=pulls2.dtype, device=pulls2.device)
        return out.index_add_(-1, self.energy_index, pulls2)
