"""Typed configuration of the femto-inverse workflow (talk 001, "Inverse Femtoscopy").

Defaults are the talk's study: potentials V(r) = b1 exp(-b2 r^2) + b3 (1 - exp(-b4 r^2)) (exp(-m_pi r)/r)^2
with m_pi = 146 MeV, a Gaussian source of size r0, p-Omega reduced mass, C(k) at 60 momenta, parameters
uniform over the talk's ranges (multiples of the HAL QCD N-Omega values), N_c = 25000 for the 5-parameter
study and 10000 for the 2-parameter one (b1, b3 free; r0 = 1.3 fm, b2 = 73.9 fm^-2, b4 = 0.78 fm^-2).
Presets: `quick` (a few minutes on a laptop), `paper` (the talk's sizes; equal to the defaults).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from hadrinv.inference import ConditionalFlow
from hadrinv.inference.regression import Regressor
from hadrinv.physics.femtoscopy import P_OMEGA_REDUCED_MASS_MEV
from hadrinv.workflows.amortized_runs import AmortizedRunConfig, embedded, options_of
from hadrinv.workflows.execution import Strict

PARAMETERS = ("r0", "b1", "b2", "b3", "b4")
UNITS = {"r0": "fm", "b1": "MeV", "b2": "fm^-2", "b3": "MeV fm^2", "b4": "fm^-2"}


class ParameterRanges(Strict):
    """The talk's training ranges (uniform priors)."""

    r0: tuple[float, float] = (0.52, 4.16)
    b1: tuple[float, float] = (-2145.5, 1532.5)
    b2: tuple[float, float] = (0.739, 147.761)
    b3: tuple[float, float] = (-1064.0, 532.0)
    b4: tuple[float, float] = (0.078, 154.422)

    @model_validator(mode="after")
    def _ordered(self):
        for name in PARAMETERS:
            low, high = getattr(self, name)
            if not high > low:
                raise ValueError(f"range of {name}: need high > low, got {low}, {high}")
        if self.r0[0] <= 0 or self.b2[0] <= 0 or self.b4[0] <= 0:
            raise ValueError("r0, b2 and b4 must stay positive")
        return self

    def low_high(self, names=PARAMETERS) -> tuple[list[float], list[float]]:
        return [getattr(self, n)[0] for n in names], [getattr(self, n)[1] for n in names]


class PhysicsConfig(Strict):
    reduced_mass_mev: float = Field(P_OMEGA_REDUCED_MASS_MEV, gt=0, description="p-Omega (601.065 MeV)")
    m_pi_mev: float = Field(146.0, gt=0, description="pion mass of the Yukawa tail (the HAL QCD lattice value)")
    n_pi: float = Field(2.0, gt=0, le=2, description="power of the Yukawa factor")
    k_min_mev: float = Field(5.0, gt=0)
    k_max_mev: float = Field(300.0, gt=0)
    k_points: int = Field(60, ge=3, description="the talk's 60 momenta, evenly spaced in [k_min, k_max]")
    ranges: ParameterRanges = ParameterRanges()
    two_parameter_fixed: dict[str, float] = Field(
        {"r0": 1.3, "b2": 73.9, "b4": 0.78}, description="the talk's 2-parameter case: b1, b3 free"
    )


class DatasetConfig(Strict):
    five_parameter: int = Field(25000, ge=20, description="N_c of the talk's 5-parameter study and PCA")
    two_parameter: int = Field(10000, ge=20, description="N_c of the talk's 2-parameter study")
    random_k: int = Field(10000, ge=20, description="curves on random k grids (flexible input length, posterior)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held out from every training set")
    chunk: int = Field(1250, ge=10, description="curves per simulation task")
    random_k_points: tuple[int, int] = Field((15, 60), description="points per random-k curve (uniform in this range)")


class PosteriorConfig(Strict):
    relative_noise: tuple[float, float] = Field(
        (0.005, 0.05), description="per-curve relative error on C, log-uniform in this range"
    )
    samples: int = Field(1000, ge=10)
    test_sets: int = Field(500, ge=10, description="held-out noisy curves for the coverage check")
    fit_sets: int = Field(40, ge=0, description="curves also fitted by least squares (the classical baseline)")
    fit_relative_noise: float = Field(0.02, gt=0)
    fit_starts: int = Field(3, ge=1, description="least-squares starts per curve: the training curves closest in chi^2")
    fit_max_evaluations: int = Field(100, ge=5, description="model + Jacobian evaluations per start")


class FemtoInverseConfig(AmortizedRunConfig):
    physics: PhysicsConfig = PhysicsConfig()
    dataset: DatasetConfig = DatasetConfig()
    posterior: PosteriorConfig = PosteriorConfig()
    # the talk's DNN: standardised log C straight into a residual MLP (a narrow embedding costs R^2 on r0, b3)
    regressor: options_of(Regressor) = Field(default_factory=lambda: {"hidden": 512, "blocks": 4})
    flexible_regressor: options_of(Regressor) = Field(
        default_factory=lambda: embedded("set", 128, 128, hidden=256, blocks=3)
    )
    # a mixture of 3 flows on the prior box: one flow's joint density is too concentrated (HPD 0.53 / 0.88),
    # independent members average its bumps out, and box support keeps the flat directions (b1, b2, b4) flat
    flow: options_of(ConditionalFlow) = Field(
        default_factory=lambda: embedded("set", 128, 128, members=3, box_support=True, transforms=5, hidden=128)
    )
    data: str | None = Field(None, description="a CSV of measurements k_mev, C, error: analysed by the posterior flow")
    out: str = "runs/femto-inverse"


PRESETS: dict[str, dict] = {
    "quick": {
        "dataset": {"five_parameter": 6000, "two_parameter": 3000, "random_k": 6000, "chunk": 1000},
        "training": {"max_epochs": 80, "patience": 10},
        "posterior": {"samples": 500, "test_sets": 300, "fit_sets": 8, "fit_starts": 2, "fit_max_evaluations": 40},
        "regressor": {"hidden": 256, "blocks": 3},
        "flexible_regressor": embedded("set", 64, 96, hidden=128, blocks=2),
        # one flow: the mixture of 3 trains 3 times longer on one worker and took the preset past 5 minutes
        "flow": embedded("set", 64, 96, members=1, box_support=False, transforms=4, hidden=96),
    },
    "paper": {"method_training": {"regressor": {"patience": 30}}},
}
