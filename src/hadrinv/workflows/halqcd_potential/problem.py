"""The two test cases as data for a kernel fit, with their truths and classical baselines.

A case provides: the radial mesh, the functions the potential acts on (`inputs`) and the free side of the
equation (`outputs`) for each ensemble member, the true potential, reference phase shifts, the function
R(r) used for V_eff, and its classical baseline (a fit of the separable form; the leading-order local
potential of the time-dependent HAL QCD method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from hadrinv.data.correlators import CorrelatorData, simulate_correlators
from hadrinv.data.validation import read_truth
from hadrinv.inference.fit import least_squares
from hadrinv.physics.halqcd import (
    HBARC_MEV_FM,
    GaussianSumPotential,
    leading_order_potential,
    potential_action,
    stationary_lhs,
    time_dependent_lhs,
)
from hadrinv.physics.nonlocal_scattering import RadialMesh, SeparablePotential, bound_state_energies, box_states
from hadrinv.physics.schrodinger import solve_s_wave, zero_energy_scattering_length
from hadrinv.workflows.halqcd_potential.config import HalqcdPotentialConfig


@dataclass
class KernelData:
    """What one member fits: sum_j U(r_i, r_j) measure_j inputs[b, j] = outputs[b, i], i < outputs.shape[1]."""

    nodes: torch.Tensor
    measure: torch.Tensor
    inputs: torch.Tensor
    outputs: torch.Tensor
    residual_weights: torch.Tensor


@dataclass
class Units:
    length: str
    momentum: str
    energy: str
    energy_per_internal: float  # V [energy unit] = V [internal, 1/length] x this


class SeparableCase:
    """The talk's mock test: learn U from the analytic NBS wave functions phi_k at a set of momenta."""

    name = "separable"

    def __init__(self, config: HalqcdPotentialConfig):
        c = config.separable
        self.config = c
        self.potential = SeparablePotential(strength=c.strength, mu=c.mu, mass=c.mass)
        self.mass = c.mass
        self.mesh = RadialMesh(c.mesh_step, c.r_max)
        self.units = Units(length="1/mu", momentum="mu", energy="mu", energy_per_internal=1.0)
        self.default_scale = abs(c.strength)
        self.default_regulator_radius = 3.0 * c.range_r
        self.default_regulator = "both"
        self.length_scale = c.range_r
        r = self.mesh.nodes()
        k = torch.linspace(*c.momenta[:2], c.momenta[2], dtype=torch.float64)
        self.train_momenta = k
        phi = self.potential.wave_function(k, r)
        lhs = stationary_lhs(phi, k, c.mesh_step, c.mass, c.laplacian_order)
        self._data = KernelData(nodes=r, measure=4.0 * math.pi * r**2 * self.mesh.weights(), inputs=phi, outputs=lhs,
                                residual_weights=(4.0 * math.pi * r**2 * self.mesh.weights())[: lhs.shape[-1]])

    def member_data(self, member: int, seed: int) -> KernelData:
        return self._data  # exact wave functions: members differ by their initialisation only

    def true_kernel(self, r: torch.Tensor) -> torch.Tensor:
        return self.potential.matrix(r)

    def to_internal_momenta(self, k: torch.Tensor) -> torch.Tensor:
        return k

    def phase_momenta(self) -> torch.Tensor:
        return torch.linspace(self.config.phase_k_max / self.config.phase_points, self.config.phase_k_max, self.config.phase_points, dtype=torch.float64)

    def true_phase_shifts(self, k: torch.Tensor) -> torch.Tensor:
        # the closed form gives delta modulo pi; Levinson's branch needs the number of bound states
        n_bound = len(bound_state_energies(self.mesh, self.mass, U=self.true_kernel(self.mesh.nodes())))
        return self.potential.phase_shift(k, n_bound=n_bound)

    def true_scattering_length(self) -> float:
        return self.potential.scattering_length()

    def v_eff_function(self) -> torch.Tensor:
        """R(t -> infinity, r): the bound state of the true potential (nodeless, so V_eff has no poles)."""
        energies, u = box_states(self.mesh, self.mass, U=self.true_kernel(self.mesh.nodes()))
        phi = u[:, 0] / self.mesh.nodes()
        return phi * torch.sign(phi[0])

    def true_v_eff(self) -> torch.Tensor:
        r, R = self.mesh.nodes(), self.v_eff_function()
        return potential_action(self.true_kernel(r), R, r, self.mesh.weights()) / R

    def v_eff_range(self) -> tuple[float, float]:
        return (0.0, 3.0 * self.config.range_r)

    def depth(self) -> float:
        return float(-self.true_v_eff().min())

    def baseline(self) -> dict:
        """A least-squares fit of the separable form w exp(-mu r) exp(-mu r') to the same residual (Hessian errors)."""
        d = self._data
        r = d.nodes
        m = d.outputs.shape[-1]
        norm = torch.sqrt((d.outputs**2 * d.residual_weights).sum())

        def pulls(x):
            U = x[0] * torch.exp(-x[1] * r)[:, None] * torch.exp(-x[1] * r)[None, :]
            residual = d.outputs - (d.inputs * d.measure) @ U[:m].T
            return (residual * torch.sqrt(d.residual_weights)).reshape(-1) / norm

        fit = least_squares(pulls, [-0.01, 0.7], names=["w", "mu"])
        fitted = SeparablePotential(strength=float(fit.values[0]), mu=float(fit.values[1]), mass=self.mass)
        k = self.phase_momenta()
        return {
            "method": "fit of the separable form (w, mu), Hessian errors",
            "parameters": {n: [float(v), float(e)] for n, v, e in zip(fit.names, fit.values, fit.errors)},
            "phase_shifts_rad": fitted.phase_shift(k),
            "scattering_length": fitted.scattering_length(),
            "v_eff": None,
            "chi2_per_ndf": fit.chi2_per_ndf,
            "is_valid": fit.is_valid,
        }


class OmegaOmegaCase:
    """A local Gaussian-sum potential learned from synthetic R(t, r) (time-dependent HAL QCD), in fm and MeV;
    or a user's R(t, r) file (`data`), compared with the truth when its sidecar holds the generating potential."""

    name = "omega-omega"

    def __init__(self, config: HalqcdPotentialConfig, data: CorrelatorData | None = None):
        c = config.omega_omega
        self.config = c
        self.hadron_mass = c.hadron_mass_mev / HBARC_MEV_FM  # fm^-1
        self.mass = self.hadron_mass / 2.0
        self.time_step = c.lattice_spacing_fm
        self.units = Units(length="fm", momentum="MeV", energy="MeV", energy_per_internal=HBARC_MEV_FM)
        self.default_scale = 0.01
        self.default_regulator_radius = 3.0
        self.default_regulator = "either"
        self.length_scale = 1.0
        self.n_gaussians = len(c.strengths_mev)
        if data is None:
            self.potential = GaussianSumPotential(tuple(c.strengths_mev), tuple(c.ranges_fm))
            data = simulate_correlators(self.potential, c.hadron_mass_mev, c.lattice_spacing_fm, c.box_sites, c.times, c.sources,
                                        c.configurations, c.relative_error, c.noise_growth, c.correlation_length_fm, c.time_correlation,
                                        seed=config.seed + 7919)
        else:
            truth = read_truth(data.path)
            self.potential = (GaussianSumPotential(tuple(truth["strengths_mev"]), tuple(truth["ranges_fm"]))
                              if {"strengths_mev", "ranges_fm"} <= set(truth) else None)
        self.data = data
        self.samples = data.samples
        self.times = data.times
        self.mesh = RadialMesh(data.step_fm, len(data.r_fm) * data.step_fm)
        if not int(self.times[0]) < c.report_time < int(self.times[-1]):
            raise ValueError(f"omega_omega.report_time = {c.report_time} must lie strictly inside the data's slices "
                             f"t/a = {int(self.times[0])}..{int(self.times[-1])}")

    def correlator(self, member: int | None, seed: int) -> torch.Tensor:
        """The configuration average (member None) or a bootstrap resample of it (one per member)."""
        if member is None or len(self.samples) == 1:
            return self.samples.mean(0)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + member)
        pick = torch.randint(len(self.samples), (len(self.samples),), generator=generator)
        return self.samples[pick].mean(0)

    def member_data(self, member: int, seed: int) -> KernelData:
        R = self.correlator(member, seed)
        lhs = torch.cat([time_dependent_lhs(Rs, self.mesh.step, self.hadron_mass, time_step=self.time_step) for Rs in R])  # (S (T-2), n-1)
        inputs = torch.cat([Rs[1:-1] for Rs in R])
        scale = inputs.abs().amax(-1, keepdim=True)  # every (source, slice) row counts alike
        r = self.mesh.nodes()
        measure = 4.0 * math.pi * r**2 * self.mesh.weights()
        return KernelData(nodes=r, measure=measure, inputs=inputs / scale, outputs=lhs / scale, residual_weights=measure[: lhs.shape[-1]])

    def true_kernel(self, r: torch.Tensor) -> None:
        return None  # local: U = V(r) delta(r - r') / (4 pi r^2), no smooth kernel to compare

    def phase_momenta(self) -> torch.Tensor:
        c = self.config
        return torch.linspace(c.phase_k_max_mev / c.phase_points, c.phase_k_max_mev, c.phase_points, dtype=torch.float64)

    def to_internal_momenta(self, k: torch.Tensor) -> torch.Tensor:
        return k / HBARC_MEV_FM

    def true_phase_shifts(self, k_mev: torch.Tensor) -> torch.Tensor | None:
        """From the independent Numerov solver of the femtoscopy workflow (continuum, not the mesh)."""
        if self.potential is None:
            return None
        return solve_s_wave(lambda r: self.potential(r)[None], k_mev, self.config.hadron_mass_mev / 2).delta[0]

    def true_scattering_length(self) -> float | None:
        if self.potential is None:
            return None
        return float(zero_energy_scattering_length(lambda r: self.potential(r)[None], self.config.hadron_mass_mev / 2)[0][0])

    def report_index(self) -> int:
        return int(self.config.report_time - int(self.times[0]))

    def v_eff_function(self) -> torch.Tensor:
        """R(t, r) of the first source at the report slice (configuration average)."""
        return self.correlator(None, 0)[0, self.report_index()]

    def true_v_eff(self) -> torch.Tensor | None:
        return None if self.potential is None else self.potential(self.mesh.nodes())  # MeV

    def v_eff_range(self) -> tuple[float, float]:
        return tuple(self.config.v_eff_range_fm)

    def depth(self) -> float | None:
        return None if self.potential is None else self.potential.depth_mev()

    def baseline(self, bootstrap: int = 40, fit_radius_fm: float = 2.5) -> dict:
        """The standard HAL QCD analysis of the same data: the leading-order local potential V_LO(r) at the
        report slice (first source), fitted by a sum of Gaussians (as many as the truth has; errors of V_LO
        from a bootstrap over configurations), then the phase shifts and scattering length of the fit."""
        slice_ = self.report_index() - 1  # leading_order_potential starts at the second slice
        lo = lambda R: leading_order_potential(R[0], self.mesh.step, self.hadron_mass, time_step=self.time_step)[slice_] * HBARC_MEV_FM
        V_lo = lo(self.correlator(None, 0))
        r = self.mesh.nodes()[: len(V_lo)]
        if len(self.samples) > 1:
            sigma = torch.stack([lo(self.correlator(b, 104729)) for b in range(bootstrap)]).std(0)
        else:
            sigma = torch.ones_like(V_lo)
        sigma = sigma.clamp_min(1e-3 * float(V_lo.abs().max()))
        keep = r <= fit_radius_fm
        rk, Vk, sk = r[keep], V_lo[keep], sigma[keep]
        n_terms = self.n_gaussians

        def model(x):  # x = (c_1..c_n in MeV, log d_1..log d_n in fm)
            c, d = x[:n_terms], torch.exp(x[n_terms:])
            return (c[:, None] * torch.exp(-((rk[None, :] / d[:, None]) ** 2))).sum(0)

        # generic start (not the truth): ranges spread over the fit window, strengths by linear least squares
        d0 = torch.logspace(math.log10(0.1), math.log10(1.0), n_terms, dtype=torch.float64)
        basis = torch.exp(-((rk[:, None] / d0[None, :]) ** 2)) / sk[:, None]
        c0 = torch.linalg.lstsq(basis, Vk / sk).solution
        fit = least_squares(lambda x: (model(x) - Vk) / sk, torch.cat([c0, torch.log(d0)]).numpy(),
                            names=[f"c{j + 1}_mev" for j in range(n_terms)] + [f"log_d{j + 1}_fm" for j in range(n_terms)])
        fitted = GaussianSumPotential(tuple(float(v) for v in fit.values[:n_terms]), tuple(float(math.exp(v)) for v in fit.values[n_terms:]))
        k = self.phase_momenta()
        V_fit = lambda rr: fitted(rr)[None]

        return {
            "method": f"leading-order local potential V_LO(r) at t/a = {self.config.report_time} (same data), fitted by {n_terms} Gaussians "
                      f"on r <= {fit_radius_fm} fm; phase shifts of the fit",
            "parameters": {n: [float(v), float(e)] for n, v, e in zip(fit.names, fit.values, fit.errors)},
            "chi2_per_ndf": fit.chi2_per_ndf,
            "phase_shifts_rad": solve_s_wave(V_fit, k, self.config.hadron_mass_mev / 2).delta[0],
            "scattering_length": float(zero_energy_scattering_length(V_fit, self.config.hadron_mass_mev / 2)[0][0]),
            "v_eff": torch.cat([V_lo, V_lo[-1:]]),
            "is_valid": fit.is_valid,
        }


def build_case(config: HalqcdPotentialConfig, data: CorrelatorData | None = None):
    return SeparableCase(config) if config.case == "separable" else OmegaOmegaCase(config, data)


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
