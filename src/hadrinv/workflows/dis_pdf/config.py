"""Typed configuration of the dis-pdf workflow (talk 003, "QCF parameterization from DIS" and PC-VAIM).

The model (physics/dis.py): sigma_p = 4u + d, sigma_n = 4d + u, q = N x^a (1-x)^b (1 + g sqrt(x) + d x),
every shape parameter p(Q2) = p0 + p1 s(Q2), Q0^2 = 1 GeV^2, Lambda^2 = 0.4 GeV^2. Free: N, alpha, beta
of u and d with their slopes (12), gamma = delta = 0 (DEFAULT_SPACE). Presets: `quick` (minutes on a
laptop), `paper` (more simulations and larger networks)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hadrinv.workflows.amortized_runs import (
    TALK_DIFFUSION,
    AmortizedRunConfig,
    EstimatorOptions,
    MethodName,
    MethodTraining,
    embedded,
)
from hadrinv.workflows.execution import Strict


def default_grid_options() -> dict[str, dict]:
    return {
        "vaim": embedded("mlp", 64, 256, latent_dim=16, hidden=256, blocks=3),
        "flow": embedded("mlp", 64, 256, hidden=128),
        "mdn": embedded("mlp", 64, 256),
        # whitened: unwhitened samples were too wide across the correlations (docs/inverse-mappers.md)
        "diffusion": embedded("mlp", 64, 256, **TALK_DIFFUSION, ema_decay=0.999, whiten=True),
        "flow_matching": embedded("mlp", 64, 256, hidden=256, blocks=6),
        "inn": {},
    }


def default_cloud_options() -> dict[str, dict]:
    return {
        # PC-VAIM: PointNet backward mapper over (log x, log Q2, log sigma_p, log sigma_n); the forward
        # mapper predicts log sigma at each point's kinematics (the first 2 columns)
        "vaim": embedded("set", 64, 64, latent_dim=16, hidden=256, blocks=3, kinematic_columns=2),
        # count_feature: the held-out clouds (135 bins) are at the top of the training range (40-135), and a
        # count-blind encoder gives every cloud the width of a mid-sized one; it goes with the "regions" layout,
        # without which the count alone made the experiments' clouds too narrow (docs/inverse-mappers.md).
        # count_output: the flow's own network sees the count too; with the count in the encoder's head only,
        # the joint width followed the cloud's size too little (HPD 0.46 at 40 bins, 0.73 at 135; docs/results.md)
        "flow": embedded("set", 64, 64, count=True, hidden=128),
    }


class KinematicsConfig(Strict):
    n_x: int = Field(10, ge=2, description="regular grid: x log-spaced in [0.01, 0.8]")
    n_q2: int = Field(8, ge=1, description="regular grid: Q2 log-spaced in [1.5, 100] GeV^2")
    cloud_points: tuple[int, int] = Field((40, 135), description="points per training cloud (uniform in this range)")
    cloud_x: tuple[float, float] = (0.01, 0.8)
    cloud_q2_gev2: tuple[float, float] = (1.5, 200.0)
    cloud_layout: Literal["uniform", "regions"] = Field(
        "regions",
        description="training bins in 1-4 random rectangles per cloud, like a few "
        "experiments' data, or log-uniform over the whole range",
    )
    test_experiments: list[str] = Field(
        ["SLAC", "NMC", "BCDMS", "HERA"],
        description="held-out clouds: bins of these experiments, never seen in training",
    )


class DISPdfConfig(AmortizedRunConfig):
    grid_methods: list[MethodName] = Field(
        ["vaim", "flow", "diffusion"], description="estimators on the regular (x, Q2) grid"
    )
    cloud_methods: list[Literal["vaim", "flow"]] = Field(
        ["vaim", "flow"], description="estimators on point clouds of irregular bins"
    )
    baseline_fit: bool = Field(True, description="least-squares fit with Hessian errors on every held-out grid set")
    simulations: int = Field(
        30000, ge=100, description="training pairs per estimator (a laptop-sized default; paper: 200000)"
    )
    relative_noise: float = Field(
        0.03, gt=0, description="Gaussian noise on every cross section, relative to its value"
    )
    kinematics: KinematicsConfig = KinematicsConfig()
    test_sets: int = Field(100, ge=1, description="held-out pseudo-data sets (coverage, 2-sigma check)")
    posterior_samples: int = Field(1000, ge=10)
    method_training: MethodTraining = Field(
        default_factory=lambda: {"diffusion": {"patience": 30, "max_epochs": 400}},
        description="per-method changes to training; a key such as cloud/flow changes one kind only",
    )
    grid_options: EstimatorOptions = Field(default_factory=default_grid_options)
    cloud_options: EstimatorOptions = Field(default_factory=default_cloud_options)
    data: str | None = Field(
        None, description="a CSV of measurements (x, Q2, sigma_p, sigma_n): analysed by the point-cloud models"
    )
    out: str = "runs/dis-pdf"


PRESETS: dict[str, dict] = {
    "quick": {
        "simulations": 10000,
        "posterior_samples": 500,
        "kinematics": {"cloud_points": (30, 80), "cloud_layout": "uniform"},
        "training": {"max_epochs": 60, "patience": 8},
        # diffusion's validation loss still falls at epoch 100 and 200; after 100 epochs its posteriors were
        # too wide (68% coverage 0.73), after 200 (with weight averaging) 0.67-0.68 over two seeds
        "method_training": {"diffusion": {"patience": 20, "max_epochs": 200}},
        # longest tasks first, so that the two workers of a laptop finish together
        "grid_methods": ["flow", "diffusion", "vaim"],
        "cloud_methods": ["flow", "vaim"],
        "grid_options": {
            **default_grid_options(),
            "flow": embedded("mlp", 48, 128, hidden=96),
            "vaim": embedded("mlp", 48, 128, latent_dim=12, hidden=128, blocks=2),
            # DDIM on 25 steps: half the sampling time of 50, and coverage as close to nominal (measured 68/95%
            # 0.68/0.97 on 25 steps, 0.70/0.97 on 50), with weight averaging (ema_decay)
            "diffusion": embedded(
                "mlp", 48, 128, **{**TALK_DIFFUSION, "hidden": 128, "blocks": 3, "sampling_steps": 25}, ema_decay=0.999
            ),
        },
        # count-blind, log-uniform bins (as measured for the quick figures in docs/results.md): the quick clouds
        # (30-80 bins) stop short of the held-out 135, and a count feature would be extrapolated; covering 135
        # costs 1.7x per epoch, which the 5-minute budget has not got
        "cloud_options": {
            "vaim": embedded("set", 48, 64, latent_dim=12, hidden=128, blocks=2, kinematic_columns=2),
            "flow": embedded("set", 48, 64, hidden=96),
        },
    },
    "paper": {"simulations": 200000, "posterior_samples": 2000},
}
