"""The physics-constrained GAN of talk 000 for pi pi partial waves, one ensemble member at a time.

Generator (default): latent z -> MLP -> cubic B-spline coefficients -> (delta_l(s), ln eta_l(s)) at the
measured energies -> f_l = (eta exp(2 i delta) - 1) / (2 i). Every complex f is reachable this way (the
generator is not unitary by construction); the parametrisation only makes the unitarity loss act on eta
and the data on delta, which is what lets it train on a CPU in a minute. The talk's CNN generator
(`generator: cnn`) makes A on the (s, cos theta) grid instead.

Losses (talk): MSE + adversarial + unitarity + d_l monotonicity, weights [1, 1, 10, 10] for
[MSE, unitarity, d0, d1]. The MSE compares the generated cross sections with replicas of the data in
units of their errors, times the squared median relative error: a dimensionless MSE of relative size
(for equal relative errors, exactly the MSE of (sigma_gen - sigma_data) / sigma_data), so the physics
penalties keep the weight they have in the talk, where the MSE is taken on normalised cross sections.
The discriminator sees pulls of measured cross sections: real replicas and generated predictions with
the same Gaussian measurement noise added. The adversarial term is a data term too and carries the same
scale as the MSE (the talk gives no weight for it); it joins once the generator describes the data
(chi2/ndf < adversarial_from_chi2_ndf), since far from the data a saturated discriminator only fights
the physics penalties.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from hadrinv.inference.gan import PhysicsConstrainedGAN, PlateauRule
from hadrinv.inference.networks import (
    ConvDiscriminator,
    ConvImageGenerator,
    MLPDiscriminator,
    SplineCurveGenerator,
    padded_bspline_design,
)
from hadrinv.models.pipi import PipiProblem
from hadrinv.physics.partial_waves import (
    UnitarityRelation,
    amplitude_from_waves,
    elastic_wave,
    monotonic_phase_loss,
    phase_shift,
    project_partial_waves,
    select_rising_branch,
    wrap_half_period,
)
from hadrinv.physics.quadrature import gauss_legendre, trapezoid_weights
from hadrinv.workflows.pipi_amplitude.config import GANConfig


class _Clamp(nn.Module):
    """Bounds the discriminator's input: pulls of an untrained generator can be 1e4."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, -10.0, 10.0)


def waves_from_output(out: torch.Tensor, n_waves: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Re f, Im f) from generator curves (delta, ln eta): f = (eta e^{2 i delta} - 1) / (2 i)."""
    delta, eta = out[..., :n_waves], torch.exp(out[..., n_waves:])
    return 0.5 * eta * torch.sin(2 * delta), 0.5 * (1 - eta * torch.cos(2 * delta))


def spline_design(problem: PipiProblem, n_basis: int) -> torch.Tensor:
    """Cubic B-splines in s at the measured energies, (n_s, n_basis) float64, padded one knot spacing past
    them (at the ends the data, small cross sections, barely constrain a clamped coefficient)."""
    return padded_bspline_design(problem.energies.cpu().numpy(), n_basis)


class PipiGANModel:
    """Generator, discriminator and losses of one member, for a given problem (float32)."""

    def __init__(
        self,
        problem: PipiProblem,
        cfg: GANConfig,
        replica: torch.Tensor,
        start: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        """start: (delta, delta_err), each (n_s, n_waves) in radians, rising branch: the curves the
        untrained generator begins at (a fit's phase shifts); None: a rising ramp (initial_phase_deg)."""
        self.problem, self.cfg = problem, cfg
        self.replica = replica
        self.basis = problem.angular_basis()
        self.n_waves = problem.n_waves
        n_points = len(problem)
        if cfg.generator == "spline":
            design = spline_design(problem, cfg.n_basis)
            self.generator = SplineCurveGenerator(design, 2 * self.n_waves, cfg.latent_dim, cfg.hidden, cfg.depth)
            if start is not None:  # eta = 1 (ln eta = 0): the fit's waves are elastic
                delta, delta_err = (t.to(torch.float64).cpu() for t in start)
                self.generator.start_at(
                    torch.cat([delta, torch.zeros_like(delta)], -1),
                    torch.cat([delta_err.clamp(min=math.radians(0.1)), torch.ones_like(delta)], -1),
                )
            else:
                with torch.no_grad():  # a rising ramp breaks the delta -> -delta symmetry of |A|^2 at delta = 0
                    lo, hi = (math.radians(v) for v in cfg.initial_phase_deg)
                    bias = self.generator.head.bias.view(2 * self.n_waves, cfg.n_basis)
                    bias[: self.n_waves] = torch.linspace(lo, hi, cfg.n_basis)
            self.discriminator = nn.Sequential(_Clamp(), MLPDiscriminator(n_points, cfg.discriminator_hidden))
        else:
            self.grid = problem.regular_grid()
            n_s, n_z = self.grid.shape
            self.generator = ConvImageGenerator(n_s, n_z, 2, cfg.latent_dim, cfg.cnn_channels, cfg.cnn_kernel)
            self.discriminator = nn.Sequential(_Clamp(), ConvDiscriminator(n_s, n_z))
            z_grid = problem.cos_theta[self.grid[0]].to(torch.float64)
            self.grid_weights = trapezoid_weights(z_grid)
            self.grid_z = z_grid
        z_eval, _ = gauss_legendre(cfg.unitarity_angles)
        l_unit = self.n_waves - 1 if cfg.generator == "spline" else max(cfg.cnn_l_max, self.n_waves - 1)
        self.unitarity = UnitarityRelation(z_eval, l_unit, cfg.unitarity_nodes, cfg.unitarity_nodes)
        relative = (problem.error / problem.dsigma.abs().clamp(min=1e-300)).median()
        self.mse_scale = float(relative**2)

    # --- physics objects from generator output ---
    def waves(self, out: torch.Tensor, l_max: int | None = None) -> torch.Tensor:
        """Complex f_l at the energies, (batch, n_s, l_max + 1)."""
        if self.cfg.generator == "spline":
            re, im = waves_from_output(out, self.n_waves)
            return torch.complex(re, im)
        amplitude = torch.complex(out[..., 0], out[..., 1]).to(torch.complex128)  # (batch, n_s, n_z)
        l_max = self.n_waves - 1 if l_max is None else l_max
        return project_partial_waves(amplitude, self.grid_z, self.grid_weights, l_max).to(
            torch.complex128 if out.dtype == torch.float64 else torch.complex64
        )

    def cross_section(self, out: torch.Tensor) -> torch.Tensor:
        if self.cfg.generator == "spline":
            return self.problem.cross_section(*waves_from_output(out, self.n_waves), self.basis)
        flat = out.reshape(out.shape[0], -1, 2)
        sigma = torch.zeros(out.shape[0], len(self.problem), dtype=out.dtype, device=out.device)
        sigma[:, self.grid.reshape(-1)] = (flat[..., 0] ** 2 + flat[..., 1] ** 2) / (
            64.0 * math.pi**2 * self.problem.s[self.grid.reshape(-1)]
        )
        return sigma

    def pulls(self, out: torch.Tensor) -> torch.Tensor:
        return (self.cross_section(out) - self.replica) / self.problem.error

    def unitarity_loss(self, out: torch.Tensor) -> torch.Tensor:
        l_unit = self.unitarity.l_max
        return self.unitarity.loss(self.waves(out, l_unit))

    def monotonic_loss(self, out: torch.Tensor, l: int) -> torch.Tensor:
        return monotonic_phase_loss(phase_shift(self.waves(out)[..., l]))

    def gan(self) -> PhysicsConstrainedGAN:
        cfg = self.cfg
        penalties = {"unitarity": (cfg.weight_unitarity, self.unitarity_loss)}
        for l in cfg.monotonic_waves:
            if l < self.n_waves:
                penalties[f"d{l}"] = (cfg.weight_monotonic, lambda out, l=l: self.monotonic_loss(out, l))
        return PhysicsConstrainedGAN(
            self.generator,
            self.discriminator,
            observe=self.pulls,
            measure=lambda u: u + torch.randn_like(u),
            penalties=penalties,
            mse_weight=cfg.weight_mse * self.mse_scale,
            adversarial_weight=cfg.weight_adversarial * self.mse_scale,
            lr_generator=cfg.lr_generator,
            lr_discriminator=cfg.lr_discriminator,
            ema_decay=cfg.ema_decay,
        )

    def n_shape_parameters(self) -> int:
        """Degrees of freedom of the phase-shift curves, for chi2/ndf."""
        return self.n_waves * (self.cfg.n_basis if self.cfg.generator == "spline" else self.problem.n_energies)


def train_member(
    problem: PipiProblem,
    cfg: GANConfig,
    seed: int,
    device: str = "cpu",
    threads: int = 1,
    start: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict:
    """Train one GAN; return plain CPU tensors and numbers (checkpoint-safe): samples, history, convergence.

    start: (delta, delta_err) of a fit, radians, (n_s, n_waves): where the generator begins (see
    PipiGANModel); None: the rising ramp. One thread per member: members run in parallel, and a fixed
    thread count keeps CPU results bit-identical for the same seed.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    problem32 = problem.to(dtype=torch.float32, device=device)
    noise = torch.randn(len(problem32)).to(device)
    replica = problem32.dsigma + (problem32.error * noise if cfg.replicas else 0.0)
    model = PipiGANModel(problem32, cfg, replica, start)
    model.generator.to(device)
    model.discriminator.to(device)
    gan = model.gan()
    if start is not None and cfg.generator == "cnn":  # the image generator has no bias to set: pre-train it
        amplitude = amplitude_from_waves(elastic_wave(start[0].to(torch.float64))[:, None, :], model.grid_z[None, :])
        target = torch.stack([amplitude.real, amplitude.imag], -1).to(torch.float32).to(device)
        gan.pretrain(target, cfg.cnn_pretrain_steps, cfg.batch_size, cfg.lr_generator)
    z_monitor = gan.latent(64)
    ndf = max(len(problem) - model.n_shape_parameters(), 1)

    def monitor(g: PhysicsConstrainedGAN) -> dict:
        out = g.sampler(z_monitor)
        sigma = model.cross_section(out).mean(0)
        chi2 = (((sigma - problem32.dsigma) / problem32.error) ** 2).sum()
        return {"unitarity_loss": model.unitarity_loss(out).item(), "chi2_ndf": chi2.item() / ndf}

    rules = [
        PlateauRule("unitarity_loss", cfg.early_stop_unitarity, cfg.early_stop_change, cfg.early_stop_patience),
        PlateauRule("chi2_ndf", cfg.converged_chi2_ndf, float("inf"), cfg.early_stop_patience),
    ]
    history = gan.train(
        lambda n: torch.randn(n, len(problem32), device=device),
        cfg.epochs,
        cfg.steps_per_epoch,
        cfg.batch_size,
        monitor=monitor,
        stop=lambda h: all(rule(h) for rule in rules),
        adversarial_from=lambda h: h[-1]["chi2_ndf"] < cfg.adversarial_from_chi2_ndf,
    )
    sample_generator = torch.Generator().manual_seed(seed + 1)
    out = gan.sample(cfg.samples_per_member, sample_generator).to(torch.float64)
    waves = model.waves(out).to(torch.complex128).cpu()
    delta, waves = physical_branch(waves)
    last = history.epochs[-1]
    return {
        "seed": seed,
        "converged": bool(history.stopped_early),
        "epochs": len(history.epochs),
        "final_unitarity_loss": float(last["unitarity_loss"]),
        "final_chi2_ndf": float(last["chi2_ndf"]),
        "n_shape_parameters": model.n_shape_parameters(),
        "delta": delta,  # (samples, n_s, n_waves) radians
        "waves_re": waves.real.contiguous(),
        "waves_im": waves.imag.contiguous(),
        "history": history.epochs,
        "generator_state": {k: v.detach().cpu().clone() for k, v in gan.sampler.state_dict().items()},
        "seconds": time.perf_counter() - started,
    }


def physical_branch(waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase shifts on the rising branch and the waves moved to it (f -> -f* where a branch flip was needed)."""
    raw = phase_shift(waves)
    delta = select_rising_branch(raw)
    flipped = wrap_half_period(delta - raw).abs() > 1e-6
    return delta, torch.where(flipped, -waves.conj(), waves)
