"""Typed configuration of the pwa-fit-fractions workflow (talk 002, first half).

Defaults are the talk's study: data generated with its model R0 (Table 1), fitted with -ln L (Table 2),
with the fit-fraction constraint L~ = -ln L + lambda N (SF - SF_target)^2 at SF_target = 1.20, lambda =
1e-2 (Table 3), and the over-complete model R+4 with lambda = 1e2, SF_target = 1.15 (Table 4).
The talk does not give its sample size; the default is 1e5 events, the size at which pwa-pull-study
checks the fit's errors.
Presets: `quick` (minutes on a laptop: 2e4 events, the first two fits), `paper` (1e5 events, 8 restarts).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from hadrinv.workflows.execution import Strict, WorkflowConfig


class FitSpec(Strict):
    name: str
    model: str = Field(description="packaged model name (R0, R_plus4, spin0, spin2_E1) or a YAML path")
    sf_target: float | None = Field(None, description="SF_target of the talk's L~ (None: plain -ln L)")
    lam: float = Field(0.0, ge=0, description="lambda of the talk's L~")


def talk_fits() -> list[FitSpec]:
    return [
        FitSpec(name="R0, -ln L", model="R0"),
        FitSpec(name="R0, L~", model="R0", sf_target=1.20, lam=1e-2),
        FitSpec(name="R+4, L~", model="R_plus4", sf_target=1.15, lam=1e2),
    ]


class SfScanConfig(Strict):
    """The talk's SF_target scan: one L~ fit per target."""

    model: str = "R_plus4"
    targets: list[float] = Field(default_factory=lambda: [1.05, 1.10, 1.15, 1.20, 1.25])
    lam: float = Field(1e2, gt=0, description="lambda of L~ at every point")
    restarts: int = Field(2, ge=1)


class ComponentScanConfig(Strict):
    """Each resonance of `candidates` missing from `base` is added alone to `base` and fitted."""

    base: str = "R0"
    candidates: str = Field(
        "R_plus4", description="model file whose extra resonances (with their float lists) are the candidates"
    )
    restarts: int = Field(2, ge=1)


class PwaFitSettings(WorkflowConfig):
    """Settings every PWA workflow shares: acceptance, the MC's compression and sampling, the minimiser, execution."""

    acceptance: Literal["toy", "none"] = "toy"
    bin_width_mev: float = Field(0.2, gt=0, description="m_pipi bins of the binned MC samples")
    mc_sampling: Literal["importance", "flat"] = Field(
        "importance",
        description="MC with m_pipi following the data's spectrum, with weights (binned MC only), or flat phase space",
    )
    method: Literal["newton", "minuit"] = Field(
        "minuit",
        description="MIGRAD with the autodiff gradient (then the exact Hessian), or Newton steps with the exact "
        "Hessian "
        "(trust-constr; one Hessian costs about 9 gradients on 1e5 events, measured, and it takes many iterations)",
    )
    max_iterations: int = Field(200, ge=1)
    chunk: int = Field(32768, ge=256, description="events per chunk of the likelihood sums")
    devices: ClassVar[tuple[str, ...]] = ("cpu",)  # the unbinned fits and their caches run on the CPU only


class PwaFitFractionsConfig(PwaFitSettings):
    generator_model: str = Field("R0", description="model that generates the data (ignored with --data)")
    events: int = Field(100_000, ge=100)
    mc_events: int = Field(400_000, ge=100, description="accepted phase-space MC for the normalisation of -ln L")
    fraction_mc_events: int = Field(400_000, ge=100, description="generator-level phase-space MC for the fit fractions")
    normalisation: Literal["binned", "events"] = Field(
        "binned",
        description="MC sums compressed in m_pipi bins (AmplitudeModel.binned_cache; 2e-5 relative on <I>) or event "
        "by event",
    )
    fits: list[FitSpec] = Field(default_factory=talk_fits)
    restarts: int = Field(4, ge=1, description="random restarts per fit (the talk's tools use 30-50)")
    sf_scan: SfScanConfig | None = Field(
        None, description="the SF_target scan (off by default; on in the paper preset)"
    )
    component_scan: ComponentScanConfig | None = Field(
        None, description="the component scan (off by default; on in the paper preset)"
    )
    data: str | None = Field(None, description="an event file (CSV, Parquet, ROOT) instead of generated data")
    out: str = "runs/pwa-fit-fractions"

    @model_validator(mode="after")
    def _weighted_mc_needs_bins(self):
        if self.mc_sampling == "importance" and self.normalisation == "events":
            raise ValueError(
                "mc_sampling: importance needs normalisation: binned (the event-by-event sums are unweighted)"
            )
        return self


PRESETS: dict[str, dict] = {
    "quick": {
        "events": 20_000,
        "mc_events": 60_000,
        "fraction_mc_events": 60_000,
        "restarts": 2,
        "fits": [s.model_dump() for s in talk_fits()[:2]],
    },
    "paper": {"restarts": 8, "sf_scan": {}, "component_scan": {}},
}
