"""Typed configuration of the amplitude-surrogate workflow: precision regression of squared matrix elements.

Defaults are the talk's set-up (Badger, Butter, Luchmann, Pitz, Plehn, arXiv:2206.14831): 90 000 training
and 870 000 test points; here of g g -> g g g at sqrt(s) = 1 TeV with the standard cuts (the talk's
gg -> gamma gamma g needs a loop library; the tree-level five-gluon amplitude has the same collinear and
soft structure). With `data` the tables are the user's (`hadrinv.data.amplitude_tables`): any process, any
number of particles; `test` defaults to a held-out share of `data`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hadrinv.workflows.execution import Strict, WorkflowConfig

METHODS = ("bnn", "ensemble", "mlp")
BOOSTS = ("none", "loss", "performance")


class CutsConfig(Strict):
    """The standard cuts on the final-state partons of the simulated sample (None: no cut)."""

    pt_min_gev: float | None = Field(20.0, ge=0)
    abs_rapidity_max: float | None = Field(2.5, gt=0)
    delta_r_min: float | None = Field(0.4, ge=0)


class NetworkConfig(Strict):
    """`hadrinv.inference.surrogates.SurrogateSettings` shared by every method (method and boost apart)."""

    hidden: int = Field(128, ge=1)
    layers: int = Field(4, ge=1)
    epochs: int = Field(200, ge=1, description="epochs before any boosting")
    batch: int = Field(1024, ge=8)
    lr: float = Field(1e-3, gt=0)
    members: int = Field(5, ge=2, description="deep-ensemble members")
    prior_sigma: float = Field(1.0, gt=0, description="Bayesian network: width of the Gaussian prior on weights")
    samples: int = Field(50, ge=2, description="Bayesian network: weight draws per prediction")
    boost_epochs: int = Field(
        100,
        ge=0,
        description="epochs of boosted training in all, shared among the rounds; the unboosted fit trains as "
        "many more epochs, so that every variant trains equally long",
    )


class AmplitudeSurrogateConfig(WorkflowConfig):
    data: str | None = Field(None, description="training table (CSV or Parquet); None: simulate `process`")
    test: str | None = Field(None, description="test table; None: simulated, or a held-out share of `data`")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="held-out share of `data` when `test` is not given")
    process: Literal["gg-ggg", "ee-qqg"] = "gg-ggg"
    sqrt_s_gev: float = Field(1000.0, gt=0)
    cuts: CutsConfig = CutsConfig()
    train_points: int = Field(90_000, ge=100)
    test_points: int = Field(870_000, ge=100)
    method: Literal["bnn", "ensemble", "mlp", "all"] = "all"
    boost: Literal["none", "loss", "performance", "all"] = "all"
    network: NetworkConfig = NetworkConfig()
    calibration_fraction: float = Field(
        0.1,
        ge=0,
        lt=0.5,
        description="share of the training points held out to calibrate the uncertainties (one factor on "
        "sigma_stat and sigma_syst; 0: as trained); the plain MLP trains on all of them",
    )
    out: str = "runs/amplitude-surrogate"

    @model_validator(mode="after")
    def _test_needs_data(self):
        if self.test is not None and self.data is None:
            raise ValueError("test: a test table needs its training table (data)")
        return self

    def variants(self) -> list[tuple[str, str]]:
        """(method, boost) pairs to train, in table order."""
        methods = METHODS if self.method == "all" else (self.method,)
        boosts = BOOSTS if self.boost == "all" else (self.boost,)
        return [(m, b) for m in methods for b in boosts]


PRESETS: dict[str, dict] = {
    "quick": {
        "train_points": 12_000,
        "test_points": 40_000,
        "method": "all",
        "boost": "all",
        "network": {"hidden": 64, "layers": 3, "epochs": 30, "boost_epochs": 20, "members": 3},
    },
    "paper": {
        "train_points": 90_000,
        "test_points": 870_000,
        "network": {"hidden": 128, "layers": 4, "epochs": 500, "boost_epochs": 200},
    },
}
