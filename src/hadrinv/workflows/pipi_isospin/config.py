"""Typed configuration of the pipi-isospin workflow: the S0, P and S2 waves of definite isospin from several
charge channels. Talk 000 fits one toy channel and names "more complex data" as its outlook; it gives no
setting for this, so the defaults are the ones measured in `benchmarks/pipi_isospin.py`. Presets: `quick`
(CI, a minute or two) and `paper` (the defaults)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from hadrinv.physics.pipi_isospin import ALL_CHANNELS
from hadrinv.workflows.execution import Strict, WorkflowConfig
from hadrinv.workflows.pipi_amplitude.config import DiffusionConfig


class CFDSimulationConfig(Strict):
    """Built-in data (used when no --data is given): CFD pseudo-data (GKPY 2011) in several charge channels."""

    n_s: int = Field(40, ge=2, description="energies")
    n_z: int = Field(12, ge=2, description="angles per energy and channel")
    sqrt_s_max_gev: float = Field(1.4, gt=0.3, le=1.42, description="highest energy (CFD is given to 1.42 GeV)")
    channels: list[str] = Field(
        ["pi+pi-", "pi0pi0", "pi+pi+", "pi+pi0", "S0-inelastic"],
        min_length=1,
        description="S0-inelastic: 1 - eta^2 of the S0 wave (pi pi -> K Kbar) above 2 m_K; without it the waves "
        "above the threshold rest on the nearly-elastic assumption",
    )
    noise: float = Field(0.02, gt=0, description="error of every point, relative to its cross section")
    grid: Literal["regular", "irregular"] = "irregular"
    flux_error: float = Field(0.03, gt=0, description="absolute error of the S0-inelastic points")

    @field_validator("channels")
    @classmethod
    def _known(cls, channels: list[str]) -> list[str]:
        unknown = [c for c in channels if c not in ALL_CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel(s) {unknown}; known: {', '.join(ALL_CHANNELS)}")
        return channels


class IsospinFitConfig(Strict):
    starts: int = Field(8, ge=1, description="fits of all elastic energies (grid-scan minima, then random starts)")


class InelasticConfig(Strict):
    """Above the K Kbar threshold, where the channels fix the waves only up to a common phase."""

    nearly_elastic: list[int] = Field(
        [1, 2], description="waves assumed nearly elastic (0: S0, 1: P, 2: S2); CFD's P and S2 stay within 0.1"
    )
    elastic_width: float = Field(0.05, gt=0, description="diffusion: the assumption 1 - eta = 0 +- this")
    elastic_tolerance: float = Field(0.1, gt=0, description="fit: its band holds the members with 1 - eta <= this")
    starts: int = Field(128, ge=1, description="fit: random starts per energy, all in one batched fit")
    replicas: int = Field(20, ge=0, description="fit: replicas of the data for the chosen member's errors")
    diffusion: DiffusionConfig = DiffusionConfig(n_basis=8, hidden=128)


class PipiIsospinConfig(WorkflowConfig):
    method: Literal["fit", "diffusion", "both"] = Field("both", description="both: the fit and the diffusion posterior")
    data: str | None = Field(None, description="CSV with columns channel, s, cos_theta, dsigma_domega, error")
    out: str = "runs/pipi-isospin"
    simulation: CFDSimulationConfig = CFDSimulationConfig()
    fit: IsospinFitConfig = IsospinFitConfig()
    diffusion: DiffusionConfig = Field(
        DiffusionConfig(hidden=192), description="below the threshold: 3 x 24 spline coefficients, width 192"
    )
    inelastic: InelasticConfig = InelasticConfig()

    def methods(self) -> tuple[str, ...]:
        return ("fit", "diffusion") if self.method == "both" else (self.method,)


PRESETS: dict[str, dict] = {
    "quick": {
        "simulation": {"n_s": 30, "n_z": 10},
        "diffusion": {"n_basis": 16, "simulations": 6000, "hidden": 64, "epochs": 150, "samples": 500},
        "inelastic": {
            "starts": 64,
            "replicas": 8,
            "diffusion": {"n_basis": 8, "simulations": 6000, "hidden": 64, "epochs": 150, "samples": 500},
        },
    },
    "paper": {},
}
