"""Typed configuration of the pipi-amplitude workflow. Defaults are the talk's settings (talk 000,
back-up slides) where the talk gives one; presets `quick` (CI, minutes) and `paper` (the talk's 100 CNN GANs
on its toy with noise 0.05)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from hadrinv.physics.pipi import F0_500, RHO_770
from hadrinv.workflows.execution import Strict, WorkflowConfig


class SimulationConfig(Strict):
    """Built-in default data (used when no --data is given): the talk's toy."""

    n_s: int = Field(64, ge=2, description="energies (talk: 64)")
    n_z: int = Field(64, ge=3, description="angles per energy (talk: 64)")
    s_max_gev2: float = 1.0
    grid: Literal["regular", "irregular", "scattered"] = Field(
        "regular", description="irregular: random energies and angles; scattered: random energies, regular angles"
    )
    f0_mass_gev: float = F0_500.mass_gev
    f0_width_gev: float = F0_500.width_gev
    rho_mass_gev: float = RHO_770.mass_gev
    rho_width_gev: float = RHO_770.width_gev
    noise: float = Field(0.01, gt=0, description="talk: 0.01 and 0.05")
    noise_relative_to: Literal["point", "max"] = Field(
        "max", description="talk: noise on the cross section normalised to its maximum"
    )


class FitConfig(Strict):
    restarts: int = Field(
        2, ge=1, description="starts (best grid-scan minima at each energy), combined energy by energy"
    )


class GANConfig(Strict):
    generator: Literal["spline", "cnn"] = Field(
        "spline", description="spline: partial waves over s (CPU); cnn: the talk's image generator"
    )
    latent_dim: int = Field(100, ge=1, description="talk: input noise dimension 100")
    hidden: int = 128
    depth: int = 2
    n_basis: int = Field(24, ge=4, description="cubic B-splines per curve in s")
    cnn_channels: int = Field(64, description="talk: 64")
    cnn_kernel: int = Field(17, description="talk: 17")
    cnn_l_max: int = Field(
        4, description="partial waves kept when the CNN amplitude is projected for the physics losses"
    )
    discriminator_hidden: int = 64
    epochs: int = Field(200, ge=1, description="talk: 200, with early stopping")
    steps_per_epoch: int = Field(40, ge=1, description="talk: training size 40 x 256 with batch 256")
    batch_size: int = Field(64, ge=2, description="talk: 256 (preset paper); 64 keeps a CPU step cheap")
    lr_generator: float = Field(
        1e-3,
        gt=0,
        description="talk: Adam 1e-4 for its CNN; our small generator needs 1e-3 to converge within 200 epochs",
    )
    lr_discriminator: float = Field(1e-4, gt=0, description="talk: Adam 1e-5 (we keep the talk's ratio 10:1)")
    ema_decay: float | None = Field(
        0.99, description="moving average of the generator weights used for sampling (None: off)"
    )
    weight_mse: float = Field(1.0, description="talk: [MSE, unitarity, d0, d1] = [1, 1, 10, 10]")
    weight_adversarial: float = Field(1.0, description="times the MSE's data scale (the talk gives no weight)")
    adversarial_from_chi2_ndf: float = Field(
        3.0, description="the adversarial term joins once chi2/ndf of the mean prediction is below this"
    )
    weight_unitarity: float = 1.0
    weight_monotonic: float = 10.0
    monotonic_waves: list[int] = Field([0, 1], description="waves whose phase must rise (talk: d0 and d1)")
    unitarity_angles: int = Field(8, ge=1, description="Gauss-Legendre angles where the relation is imposed")
    unitarity_nodes: int = Field(16, ge=2, description="z' and phi nodes of the unitarity integral")
    early_stop_unitarity: float = Field(0.02, description="talk: L_u < 0.02")
    early_stop_change: float = Field(0.01, description="talk: |L_u,n - L_u,n-1| < 0.01")
    early_stop_patience: int = Field(10, description="talk: 10 consecutive epochs")
    converged_chi2_ndf: float = Field(1.5, description="a member also needs chi2/ndf below this to count as converged")
    min_converged_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="the ensemble is valid when at least this fraction of its members converged (and at least one); "
        "the band uses the converged members only",
    )
    start: Literal["fit", "ramp"] = Field(
        "fit",
        description="where the untrained generator begins: the baseline fit's phase shifts (a robust spline "
        "through them), or a rising ramp (initial_phase_deg); from the ramp, training can end in a wrong "
        "basin of the data term when per-point errors weight the minima of |A|^2",
    )
    initial_phase_deg: tuple[float, float] = Field(
        (10.0, 170.0), description="phase shifts of the untrained generator with start: ramp"
    )
    cnn_pretrain_steps: int = Field(300, ge=0, description="supervised steps towards the fit's amplitude (cnn)")
    replicas: bool = Field(
        True, description="each member trains on its own replica of the data drawn within the errors"
    )
    samples_per_member: int = Field(100, ge=2)


class DiffusionConfig(Strict):
    n_basis: int = Field(24, ge=4, description="cubic B-splines per phase shift in s (the GAN generator's basis)")
    prior_width: float = Field(
        4.0, gt=0, description="the prior's width over the coefficients, in units of the Laplace approximation's"
    )
    simulations: int = Field(10000, ge=100, description="simulated (coefficients, data) pairs for training")
    hidden: int = Field(64, ge=8, description="width of the FiLM residual denoiser")
    blocks: int = Field(3, ge=1, description="residual blocks of the denoiser (talk: 6 x 256)")
    steps: int = Field(1000, ge=10, description="diffusion steps T (talk: 1000, beta 1e-4 .. 0.02)")
    sampling_steps: int | None = Field(100, ge=1, description="DDIM steps when sampling; None: ancestral DDPM")
    epochs: int = Field(300, ge=1, description="at most; early stopping on a validation split")
    patience: int = Field(20, ge=1)
    batch_size: int = Field(512, ge=2)
    learning_rate: float = Field(1e-3, gt=0)
    samples: int = Field(2000, ge=10, description="posterior samples at the data")
    calibration_sets: int = Field(200, ge=10, description="held-out simulations for the coverage check")
    calibration_samples: int = Field(200, ge=10, description="posterior samples per held-out simulation")
    recalibrate: bool = Field(
        True, description="widen or narrow the band by one factor so that held-out 68 % coverage is 0.68"
    )
    calibration_tolerance: float = Field(
        0.1, gt=0, description="valid when the held-out 68 % coverage is within this of 0.68"
    )


class PipiAmplitudeConfig(WorkflowConfig):
    ensemble: ClassVar[str | None] = "GAN members, each trained on its own replica of the data"
    default_members: ClassVar[int | None] = 10  # talk: 100 (preset paper)

    method: Literal["fit", "gan", "diffusion", "both", "all"] = Field(
        "both", description="both: fit and gan; all: fit, gan and diffusion"
    )
    l_max: int = Field(1, ge=0, le=6)
    data: str | None = None
    out: str = "runs/pipi-amplitude"
    assumed_relative_error: float = Field(0.01, gt=0, description="used only when the data have no error column")
    simulation: SimulationConfig = SimulationConfig()
    fit: FitConfig = FitConfig()
    gan: GANConfig = GANConfig()
    diffusion: DiffusionConfig = DiffusionConfig()

    def methods(self) -> tuple[str, ...]:
        """The extraction methods this run reports, in order."""
        return {"both": ("fit", "gan"), "all": ("fit", "gan", "diffusion")}.get(self.method, (self.method,))


PRESETS: dict[str, dict] = {
    "quick": {"gan": {"epochs": 100}, "execution": {"members": 4}},
    # the talk's set-up: CNN image generator (64 x 64, kernel 17, 64 channels), Adam 1e-4, batch 256, 100 GANs,
    # noise 0.05; its CNN needs a GPU (--device cuda) to run in hours rather than weeks
    "paper": {
        "gan": {"generator": "cnn", "batch_size": 256, "lr_generator": 1e-4},
        "simulation": {"noise": 0.05},
        "execution": {"members": 100},
    },
}
