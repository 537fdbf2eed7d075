"""Typed configuration of the halqcd-potential workflow (talk 001, "HAL QCD meets DNNs", arXiv:2410.03082).

Two cases:
- ``separable``: the talk's mock test. U = w exp(-mu r) exp(-mu r'), mu = 1, w = -0.017 mu^4, m = 3.30 mu,
  R = 2.5/mu, regulator U(r > 3R, r' > 3R) = 0; the network learns from the analytic NBS wave functions
  at a set of momenta (units of mu throughout).
- ``omega-omega``: a local Gaussian-sum potential of the HAL QCD Omega-Omega (1S0) type, learned from
  synthetic time-dependent correlators R(t, r) with lattice-like noise (the talk's time-dependent form and
  finite differences R2, R1, Rr); the talk's regulator U(r > 3 fm, r' > 3 fm) = 0. With `data`, a user's
  R(t, r) file replaces the synthetic correlators (hadron mass and lattice spacing from this config).
Presets: `quick` (CI, about a minute per case on 2 cores) and `paper` (longer training, 16 members).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from hadrinv.models.halqcd import OmegaOmegaSettings
from hadrinv.physics.halqcd import LATTICE_SPACING_FM, OMEGA_MASS_LATTICE_MEV
from hadrinv.workflows.execution import Strict, WorkflowConfig

CASES = ("separable", "omega-omega")


class KernelNetworkConfig(Strict):
    """U_theta(r, r') = scale g(f(r) + f(r')) x regulator; f, g MLPs (SiLU), f: R -> R^features."""

    features: int = Field(32, ge=1)
    hidden: int = Field(64, ge=4)
    depth: int = Field(2, ge=1, description="hidden layers of f and of g")
    scale: float | None = Field(
        None, gt=0, description="output scale of U (default: |w| = 0.017 mu^4 separable, 0.01 fm^-4 omega-omega)"
    )
    regulator_radius: float | None = Field(
        None, gt=0, description="U = 0 beyond it (default: 3R = 7.5/mu separable, 3 fm omega-omega; the talk)"
    )
    regulator: Literal["both", "either"] | None = Field(
        None,
        description="both: U = 0 where r and r' exceed the radius (the talk's condition; default separable); "
        "either: where r or r' does (stronger, for short-range potentials; default omega-omega)",
    )


class KernelTrainingConfig(Strict):
    adam_steps: int = Field(2000, ge=0)
    learning_rate: float = Field(3e-3, gt=0)
    l2: float = Field(1e-5, ge=0, description="the talk's L2 regularisation lambda, on a loss normalised to the data")
    lbfgs_steps: int = Field(500, ge=0, description="L-BFGS iterations after Adam (0: Adam only, as in the talk)")


class SeparableCaseConfig(Strict):
    mu: float = Field(1.0, gt=0)
    strength: float = Field(-0.017, description="w in mu^4")
    mass: float = Field(3.30, gt=0, description="m in H0 = -nabla^2/(2m), units of mu")
    range_r: float = Field(2.5, gt=0, description="the talk's R in 1/mu (regulator at 3R)")
    momenta: tuple[float, float, int] = Field((0.1, 2.0, 20), description="training momenta: k_min, k_max (mu), count")
    mesh_step: float = Field(0.1, gt=0, description="radial step of the data (1/mu)")
    r_max: float = Field(12.0, gt=0, description="data and scattering mesh radius (1/mu)")
    laplacian_order: Literal[2, 4] = 4
    phase_k_max: float = Field(2.0, gt=0, description="phase shifts compared up to this k (mu)")
    phase_points: int = Field(100, ge=5)

    @field_validator("momenta")
    @classmethod
    def _momenta(cls, v):
        if not (0 < v[0] < v[1] and v[2] >= 1):
            raise ValueError("momenta: need 0 < k_min < k_max and count >= 1")
        return v


class OmegaOmegaCaseConfig(Strict):
    strengths_mev: tuple[float, ...] = (914.0, 305.0, -112.0)
    ranges_fm: tuple[float, ...] = (0.143, 0.305, 0.949)
    hadron_mass_mev: float = Field(
        OMEGA_MASS_LATTICE_MEV, gt=0, description="m_Omega of the lattice ensemble (a0 = 4.49 fm with these c, d)"
    )
    lattice_spacing_fm: float = Field(
        LATTICE_SPACING_FM, gt=0, description="a (a^-1 = 2333 MeV): radial step and time step"
    )
    box_sites: int = Field(96, ge=10, description="spherical box radius in lattice units (wall at (box_sites + 1) a)")
    times: tuple[int, int] = Field((5, 25), description="first and last time slice t/a of the data")
    sources: list[str | float] = Field(
        ["wall", 0.5, 1.0], description="'wall' or the width (fm) of a Gaussian source; one correlator each"
    )
    configurations: int = Field(200, ge=2, description="gauge configurations (noise samples) per source")
    relative_error: float = Field(
        0.01, ge=0, description="relative noise on one configuration at the first slice (0: noise-free)"
    )
    noise_growth: float = Field(0.05, ge=0, description="noise x exp(growth x slice): the signal-to-noise problem")
    correlation_length_fm: float = Field(0.3, gt=0, description="noise correlation length in r")
    time_correlation: float = Field(0.9, ge=0, lt=1, description="AR(1) coefficient of the noise between slices")
    report_time: int = Field(13, description="t/a at which V_eff(r) is reported (the talk's V_theta at one slice)")
    v_eff_range_fm: tuple[float, float] = Field((0.2, 2.0), description="radii where V_eff is compared with the truth")
    phase_k_max_mev: float = Field(300.0, gt=0)
    phase_points: int = Field(60, ge=5)

    @model_validator(mode="after")
    def _check(self):
        OmegaOmegaSettings(**self.model_dump())  # the model's own consistency checks (one range per strength, ...)
        return self


class HalqcdPotentialConfig(WorkflowConfig):
    ensemble: ClassVar[str | None] = (
        "kernel networks from their own initialisations (and bootstrap of the configurations when noisy)"
    )
    default_members: ClassVar[int | None] = 8

    case: Literal["separable", "omega-omega"] = "separable"
    separable: SeparableCaseConfig = SeparableCaseConfig()
    omega_omega: OmegaOmegaCaseConfig = OmegaOmegaCaseConfig()
    network: KernelNetworkConfig = KernelNetworkConfig()
    training: KernelTrainingConfig = KernelTrainingConfig()
    data: str | None = Field(
        None, description="a lattice R(t, r) file (HDF5 or CSV, hadrinv.data.correlators) for the omega-omega case"
    )
    out: str = "runs/halqcd-potential"

    @model_validator(mode="before")
    @classmethod
    def _data_means_correlators(cls, values):
        # a user's file holds R(t, r): the time-dependent case, unless the case was chosen explicitly
        if isinstance(values, dict) and values.get("data") is not None and values.get("case") is None:
            values = {**values, "case": "omega-omega"}
        return values

    @model_validator(mode="after")
    def _data_needs_time_dependent_case(self):
        if self.data is not None and self.case != "omega-omega":
            raise ValueError("--data holds lattice R(t, r): use --case omega-omega (the time-dependent case)")
        return self


PRESETS: dict[str, dict] = {
    "quick": {"execution": {"members": 4}, "training": {"adam_steps": 1500, "lbfgs_steps": 400}},
    "paper": {"execution": {"members": 16}, "training": {"adam_steps": 4000, "lbfgs_steps": 1500}},
}
