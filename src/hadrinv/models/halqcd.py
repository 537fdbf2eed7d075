"""The two HAL QCD test cases as data for a kernel fit, with their truths.

A case provides: the radial mesh, the functions the potential acts on (`inputs`) and the free side of the
equation (`outputs`) for each ensemble member, the true potential, reference phase shifts and the function
R(r) used for V_eff. Each case is built from plain settings (`SeparableSettings`, `OmegaOmegaSettings`)
whose defaults are the talk's; the classical baselines are fits, and belong to the workflow.

Not `ForwardModel`s: a case is one truth and its synthetic data, with no prior over potentials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hadrinv.data.correlators import CorrelatorData, simulate_correlators
from hadrinv.data.validation import read_truth
from hadrinv.physics.halqcd import (
    HBARC_MEV_FM,
    LATTICE_SPACING_FM,
    OMEGA_MASS_LATTICE_MEV,
    GaussianSumPotential,
    potential_action,
    stationary_lhs,
    time_dependent_lhs,
)
from hadrinv.physics.nonlocal_scattering import RadialMesh, SeparablePotential, bound_state_energies, box_states
from hadrinv.physics.schrodinger import solve_s_wave, zero_energy_scattering_length

__all__ = ["KernelData", "OmegaOmegaCase", "OmegaOmegaSettings", "SeparableCase", "SeparableSettings", "Units"]


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


@dataclass(frozen=True)
class SeparableSettings:
    """The talk's mock test, in units of mu: U = w exp(-mu r) exp(-mu r'), NBS wave functions at a set of momenta."""

    mu: float = 1.0
    strength: float = -0.017  # w in mu^4
    mass: float = 3.30  # m in H0 = -nabla^2/(2m)
    range_r: float = 2.5  # the talk's R in 1/mu (regulator at 3R)
    momenta: tuple[float, float, int] = (0.1, 2.0, 20)  # training momenta: k_min, k_max, count
    mesh_step: float = 0.1  # radial step of the data (1/mu)
    r_max: float = 12.0  # data and scattering mesh radius (1/mu)
    laplacian_order: int = 4
    phase_k_max: float = 2.0  # phase shifts compared up to this k (mu)
    phase_points: int = 100

    def __post_init__(self):
        if not (0 < self.momenta[0] < self.momenta[1] and self.momenta[2] >= 1):
            raise ValueError("momenta: need 0 < k_min < k_max and count >= 1")


# (field, test, requirement) of the Omega-Omega settings, checked on construction
_OMEGA_OMEGA_LIMITS = (
    ("hadron_mass_mev", lambda v: v > 0, "> 0"),
    ("lattice_spacing_fm", lambda v: v > 0, "> 0"),
    ("box_sites", lambda v: v >= 10, ">= 10"),
    ("configurations", lambda v: v >= 2, ">= 2"),
    ("relative_error", lambda v: v >= 0, ">= 0"),
    ("noise_growth", lambda v: v >= 0, ">= 0"),
    ("correlation_length_fm", lambda v: v > 0, "> 0"),
    ("time_correlation", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("phase_k_max_mev", lambda v: v > 0, "> 0"),
    ("phase_points", lambda v: v >= 5, ">= 5"),
)


@dataclass(frozen=True)
class OmegaOmegaSettings:
    """A local Gaussian-sum potential of the HAL QCD Omega-Omega (1S0) type and its synthetic lattice data.

    V(r) = sum_j c_j exp(-(r / d_j)^2) (c in MeV, d in fm); R(t, r) of two hadrons of mass m in a spherical
    box of box_sites lattice steps, one correlator per source ('wall' or a Gaussian width in fm), with
    lattice-like noise per configuration (relative_error at the first slice, growing as
    exp(noise_growth x slice), correlated over correlation_length_fm and between slices). report_time,
    v_eff_range_fm and the phase grid say where the learned potential is compared with the truth.
    """

    strengths_mev: tuple[float, ...] = (914.0, 305.0, -112.0)
    ranges_fm: tuple[float, ...] = (0.143, 0.305, 0.949)
    hadron_mass_mev: float = OMEGA_MASS_LATTICE_MEV  # m_Omega of the lattice ensemble (a0 = 4.49 fm with these c, d)
    lattice_spacing_fm: float = LATTICE_SPACING_FM  # a (a^-1 = 2333 MeV): radial step and time step
    box_sites: int = 96  # wall at (box_sites + 1) a
    times: tuple[int, int] = (5, 25)  # first and last time slice t/a
    sources: tuple[str | float, ...] = ("wall", 0.5, 1.0)
    configurations: int = 200  # gauge configurations (noise samples) per source
    relative_error: float = 0.01  # 0: noise-free
    noise_growth: float = 0.05  # the signal-to-noise problem
    correlation_length_fm: float = 0.3
    time_correlation: float = 0.9  # AR(1) coefficient of the noise between slices
    report_time: int = 13  # t/a at which V_eff(r) is reported
    v_eff_range_fm: tuple[float, float] = (0.2, 2.0)
    phase_k_max_mev: float = 300.0
    phase_points: int = 60

    def __post_init__(self):
        for name in ("strengths_mev", "ranges_fm", "times", "sources", "v_eff_range_fm"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # lists from a config or a command line
        for name, ok, requirement in _OMEGA_OMEGA_LIMITS:
            if not ok(getattr(self, name)):
                raise ValueError(f"{name} must be {requirement}, got {getattr(self, name)}")
        if not self.ranges_fm or len(self.strengths_mev) != len(self.ranges_fm) or min(self.ranges_fm) <= 0:
            raise ValueError("need one positive range per strength")
        if not (1 <= self.times[0] and self.times[1] - self.times[0] >= 2):
            raise ValueError("times: need 1 <= first and at least three slices")
        if not self.times[0] < self.report_time < self.times[1]:
            raise ValueError("report_time must lie strictly inside the time slices")
        for s in self.sources:
            if s != "wall" and not (isinstance(s, (int, float)) and s > 0):
                raise ValueError(f"source {s!r}: use 'wall' or a positive Gaussian width in fm")

    def potential(self) -> GaussianSumPotential:
        return GaussianSumPotential(tuple(self.strengths_mev), tuple(self.ranges_fm))

    def correlators(self, seed: int) -> CorrelatorData:
        """Synthetic R(t, r) of the potential; seed draws the configurations' noise."""
        return simulate_correlators(
            self.potential(),
            self.hadron_mass_mev,
            self.lattice_spacing_fm,
            self.box_sites,
            self.times,
            self.sources,
            self.configurations,
            self.relative_error,
            self.noise_growth,
            self.correlation_length_fm,
            self.time_correlation,
            seed=seed,
        )

    def truth(self) -> dict:
        """What a correlator file's sidecar records of its generation (read back by `OmegaOmegaCase`)."""
        return {
            "strengths_mev": list(self.strengths_mev),
            "ranges_fm": list(self.ranges_fm),
            "hadron_mass_mev": self.hadron_mass_mev,
            "lattice_spacing_fm": self.lattice_spacing_fm,
            "sources": [str(s) for s in self.sources],
            "relative_error": self.relative_error,
        }


class SeparableCase:
    """The talk's mock test: learn U from the analytic NBS wave functions phi_k at a set of momenta."""

    name = "separable"

    def __init__(self, settings: SeparableSettings = SeparableSettings()):
        c = settings
        self.settings = c
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
        self._data = KernelData(
            nodes=r,
            measure=4.0 * math.pi * r**2 * self.mesh.weights(),
            inputs=phi,
            outputs=lhs,
            residual_weights=(4.0 * math.pi * r**2 * self.mesh.weights())[: lhs.shape[-1]],
        )

    def member_data(self, member: int, seed: int) -> KernelData:
        return self._data  # exact wave functions: members differ by their initialisation only

    def true_kernel(self, r: torch.Tensor) -> torch.Tensor:
        return self.potential.matrix(r)

    def to_internal_momenta(self, k: torch.Tensor) -> torch.Tensor:
        return k

    def phase_momenta(self) -> torch.Tensor:
        return torch.linspace(
            self.settings.phase_k_max / self.settings.phase_points,
            self.settings.phase_k_max,
            self.settings.phase_points,
            dtype=torch.float64,
        )

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
        return (0.0, 3.0 * self.settings.range_r)

    def depth(self) -> float:
        return float(-self.true_v_eff().min())


class OmegaOmegaCase:
    """A local Gaussian-sum potential learned from synthetic R(t, r) (time-dependent HAL QCD), in fm and MeV;
    or a user's R(t, r) file (`data`), compared with the truth when its sidecar holds the generating potential.
    noise_seed draws the synthetic correlators' noise (unused with `data`)."""

    name = "omega-omega"

    def __init__(
        self,
        settings: OmegaOmegaSettings = OmegaOmegaSettings(),
        data: CorrelatorData | None = None,
        noise_seed: int = 0,
    ):
        c = settings
        self.settings = c
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
            self.potential = c.potential()
            data = c.correlators(noise_seed)
        else:
            truth = read_truth(data.path)
            self.potential = (
                GaussianSumPotential(tuple(truth["strengths_mev"]), tuple(truth["ranges_fm"]))
                if {"strengths_mev", "ranges_fm"} <= set(truth)
                else None
            )
        self.data = data
        self.samples = data.samples
        self.times = data.times
        self.mesh = RadialMesh(data.step_fm, len(data.r_fm) * data.step_fm)
        if not int(self.times[0]) < c.report_time < int(self.times[-1]):
            raise ValueError(
                f"omega_omega.report_time = {c.report_time} must lie strictly inside the data's slices "
                f"t/a = {int(self.times[0])}..{int(self.times[-1])}"
            )

    def correlator(self, member: int | None, seed: int) -> torch.Tensor:
        """The configuration average (member None) or a bootstrap resample of it (one per member)."""
        if member is None or len(self.samples) == 1:
            return self.samples.mean(0)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + member)
        pick = torch.randint(len(self.samples), (len(self.samples),), generator=generator)
        return self.samples[pick].mean(0)

    def member_data(self, member: int, seed: int) -> KernelData:
        R = self.correlator(member, seed)
        lhs = torch.cat(
            [time_dependent_lhs(Rs, self.mesh.step, self.hadron_mass, time_step=self.time_step) for Rs in R]
        )  # (S (T-2), n-1)
        inputs = torch.cat([Rs[1:-1] for Rs in R])
        scale = inputs.abs().amax(-1, keepdim=True)  # every (source, slice) row counts alike
        r = self.mesh.nodes()
        measure = 4.0 * math.pi * r**2 * self.mesh.weights()
        return KernelData(
            nodes=r,
            measure=measure,
            inputs=inputs / scale,
            outputs=lhs / scale,
            residual_weights=measure[: lhs.shape[-1]],
        )

    def true_kernel(self, r: torch.Tensor) -> None:
        return None  # local: U = V(r) delta(r - r') / (4 pi r^2), no smooth kernel to compare

    def phase_momenta(self) -> torch.Tensor:
        c = self.settings
        return torch.linspace(
            c.phase_k_max_mev / c.phase_points, c.phase_k_max_mev, c.phase_points, dtype=torch.float64
        )

    def to_internal_momenta(self, k: torch.Tensor) -> torch.Tensor:
        return k / HBARC_MEV_FM

    def true_phase_shifts(self, k_mev: torch.Tensor) -> torch.Tensor | None:
        """From the independent Numerov solver of the femtoscopy workflow (continuum, not the mesh)."""
        if self.potential is None:
            return None
        return solve_s_wave(lambda r: self.potential(r)[None], k_mev, self.settings.hadron_mass_mev / 2).delta[0]

    def true_scattering_length(self) -> float | None:
        if self.potential is None:
            return None
        return float(
            zero_energy_scattering_length(lambda r: self.potential(r)[None], self.settings.hadron_mass_mev / 2)[0][0]
        )

    def report_index(self) -> int:
        return int(self.settings.report_time - int(self.times[0]))

    def v_eff_function(self) -> torch.Tensor:
        """R(t, r) of the first source at the report slice (configuration average)."""
        return self.correlator(None, 0)[0, self.report_index()]

    def true_v_eff(self) -> torch.Tensor | None:
        return None if self.potential is None else self.potential(self.mesh.nodes())  # MeV

    def v_eff_range(self) -> tuple[float, float]:
        return tuple(self.settings.v_eff_range_fm)

    def depth(self) -> float | None:
        return None if self.potential is None else self.potential.depth_mev()
