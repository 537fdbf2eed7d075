"""A GAN whose generator loss adds a data term and physics penalties (talk 000), for any forward model.

The generator produces physics objects (partial waves, images of an amplitude, ...); `observe` maps them
to noiseless observables, `measure` adds the measurement noise (the forward operator and its noise
model, as in deepinv); `penalties` are functions of the physics objects. The generator loss is

    mse_weight * MSE(observe(G(z)), real) + adversarial_weight * BCE(D(measure(observe(G(z)))), 1)
    + sum_k weight_k * penalty_k(G(z)),

and the discriminator is trained with BCE on real (label 1) and measured generated (label 0) samples.
Without `measure`, the discriminator can tell smooth model predictions from noisy measurements by the
noise alone and pushes the generator away from the data; with it, real and generated samples share the
noise and differ only where the model does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.functional import binary_cross_entropy_with_logits
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


@dataclass
class PlateauRule:
    """True once metric < below and |metric_n - metric_(n-1)| < max_change for `patience` epochs in a row.

    The talk's early stop: unitarity loss < 0.02, changing by less than 0.01, for 10 consecutive epochs.
    """

    metric: str
    below: float
    max_change: float = float("inf")
    patience: int = 10

    def __call__(self, history: list[dict]) -> bool:
        if len(history) < self.patience + 1:
            return False
        recent = [h[self.metric] for h in history[-(self.patience + 1) :]]
        return all(v < self.below for v in recent[1:]) and all(
            abs(b - a) < self.max_change for a, b in zip(recent, recent[1:])
        )


@dataclass
class GANHistory:
    epochs: list[dict] = field(default_factory=list)
    stopped_early: bool = False


class PhysicsConstrainedGAN:
    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        observe: Callable[[torch.Tensor], torch.Tensor],
        measure: Callable[[torch.Tensor], torch.Tensor] | None = None,
        penalties: dict[str, tuple[float, Callable[[torch.Tensor], torch.Tensor]]] | None = None,
        mse_weight: float = 1.0,
        adversarial_weight: float = 1.0,
        lr_generator: float = 1e-4,
        lr_discriminator: float = 1e-5,
        ema_decay: float | None = None,
    ):
        self.generator, self.discriminator, self.observe = generator, discriminator, observe
        self.measure = measure or (lambda observables: observables)
        self.penalties = dict(penalties or {})
        self.mse_weight, self.adversarial_weight = mse_weight, adversarial_weight
        self.opt_g = torch.optim.Adam(generator.parameters(), lr=lr_generator)
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr_discriminator)
        self.history = GANHistory()
        # an exponential moving average of the generator's weights (as in BigGAN / StyleGAN) smooths out
        # the optimiser's step noise; monitoring and sampling use it when ema_decay is given
        self.averaged = None
        if ema_decay is not None:
            # buffers too: a BatchNorm generator (the CNN) would otherwise sample with its initial statistics
            self.averaged = AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(ema_decay), use_buffers=True)

    @property
    def sampler(self) -> nn.Module:
        """The generator used for monitoring and sampling: the averaged one when there is one."""
        return self.averaged.module if self.averaged is not None else self.generator

    @property
    def latent_dim(self) -> int:
        return self.generator.latent_dim

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.generator.parameters()).device
        if generator is not None:  # a seeded torch.Generator lives on the CPU: draw there, then move
            return torch.randn(n, self.latent_dim, generator=generator).to(device)
        return torch.randn(n, self.latent_dim, device=device)

    def pretrain(self, target: torch.Tensor, steps: int, batch_size: int, lr: float = 1e-3) -> float:
        """Supervised start: fit the generator's output to `target` (one physics object) for `steps` steps.

        A generator that starts near a known solution (a classical fit's) trains from the right basin of
        a non-convex data term. Uses its own Adam, so the game starts with fresh moments; the averaged
        generator restarts from the result. Returns the last mean squared difference.
        """
        optimiser = torch.optim.Adam(self.generator.parameters(), lr=lr)
        self.generator.train()
        loss = torch.zeros(())
        for _ in range(steps):
            optimiser.zero_grad(set_to_none=True)
            loss = ((self.generator(self.latent(batch_size)) - target) ** 2).mean()
            loss.backward()
            optimiser.step()
        self.restart_average()
        return loss.item()

    @torch.no_grad()
    def restart_average(self) -> None:
        """Make the averaged generator a copy of the current one (after its start was set by hand)."""
        if self.averaged is not None:
            self.averaged.module.load_state_dict(self.generator.state_dict())
            self.averaged.n_averaged.zero_()

    def step(self, real: torch.Tensor, adversarial: bool = True) -> dict[str, float]:
        """One discriminator update and one generator update on a batch of real observables.

        With adversarial=False neither network sees the other: the generator fits the data and the physics.
        """
        n = real.shape[0]
        ones, zeros = torch.ones(n, device=real.device), torch.zeros(n, device=real.device)

        loss_d = torch.zeros(())
        if adversarial:
            with torch.no_grad():
                fake_measured = self.measure(self.observe(self.generator(self.latent(n))))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d = binary_cross_entropy_with_logits(
                self.discriminator(real), ones
            ) + binary_cross_entropy_with_logits(self.discriminator(fake_measured), zeros)
            loss_d.backward()
            self.opt_d.step()

        self.opt_g.zero_grad(set_to_none=True)
        produced = self.generator(self.latent(n))
        fake_obs = self.observe(produced)
        terms = {
            "mse": ((fake_obs - real) ** 2).mean(),
            "adversarial": binary_cross_entropy_with_logits(self.discriminator(self.measure(fake_obs)), ones),
        }
        weighted = self.mse_weight * terms["mse"] + (
            self.adversarial_weight * terms["adversarial"] if adversarial else 0.0
        )
        for name, (weight, penalty) in self.penalties.items():
            terms[name] = penalty(produced)
            weighted = weighted + weight * terms[name]
        weighted.backward()
        self.opt_g.step()
        if self.averaged is not None:
            self.averaged.update_parameters(self.generator)
        return {"loss_d": loss_d.item(), "loss_g": weighted.item(), **{k: v.item() for k, v in terms.items()}}

    def train(
        self,
        sample_real: Callable[[int], torch.Tensor],
        epochs: int,
        steps_per_epoch: int,
        batch_size: int,
        monitor: Callable[[PhysicsConstrainedGAN], dict] | None = None,
        stop: Callable[[list[dict]], bool] | None = None,
        on_epoch: Callable[[int, dict], None] | None = None,
        adversarial_from: Callable[[list[dict]], bool] | None = None,
    ) -> GANHistory:
        """Train for at most `epochs`; after each, `monitor` adds metrics and `stop` may end training.

        adversarial_from(history) -> bool starts the adversarial game (it stays on): far from the data a
        saturated discriminator's gradient only fights the physics penalties, so until then the generator
        learns from the data and the physics alone and the discriminator waits.
        """
        adversarial = adversarial_from is None
        for epoch in range(len(self.history.epochs), epochs):
            self.generator.train()
            self.discriminator.train()
            sums: dict[str, float] = {}
            for _ in range(steps_per_epoch):
                for k, v in self.step(sample_real(batch_size), adversarial).items():
                    sums[k] = sums.get(k, 0.0) + v
            record = {
                "epoch": epoch + 1,
                "adversarial_on": adversarial,
                **{k: v / steps_per_epoch for k, v in sums.items()},
            }
            if monitor is not None:
                self.generator.eval()
                self.sampler.eval()
                with torch.no_grad():
                    record.update(monitor(self))
            self.history.epochs.append(record)
            if on_epoch is not None:
                on_epoch(epoch + 1, record)
            if not adversarial and adversarial_from(self.history.epochs):
                adversarial = True
                continue  # stopping needs epochs with the adversarial term on
            if stop is not None and stop(self.history.epochs):
                self.history.stopped_early = True
                break
        self.generator.eval()
        return self.history

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n physics objects from the trained (averaged, if any) generator."""
        self.sampler.eval()
        return self.sampler(self.latent(n, generator))
