"""DiscFlow: a normalising-flow event generator trained with a classifier, whose events carry its weight.

The method of Butter, Heimel, Hummerich, Krebs, Plehn, Rousselot and Vent, "Generative networks for precision
enthusiasts" (arXiv:2110.13632), section DiscFlow. A flow fitted by maximum likelihood reproduces the bulk of
a distribution well but smears narrow features (a resonance peak, a sharp edge). A classifier D(x) trained by
binary cross-entropy to tell training events (label 1) from flow samples (label 0) learns, at convergence,

    w_D(x) = D(x) / (1 - D(x)) = P_data(x) / P_flow(x),

a per-event weight that corrects the flow. DiscFlow uses it twice:

- in training, the flow's likelihood is weighted per training event by w_D(x)^alpha (held fixed: no gradient
  flows into the classifier), so the flow learns harder where it under-populates the data and the weights it
  needs in the end stay closer to one;
- in generation, every event carries w_D(x) as its weight, so weighted histograms follow the data also where
  the flow alone does not.

Two classifiers: ``classifier="boosted"`` (the default) fits gradient-boosted trees
(`hadrinv.inference.boosted_classifier`) to the training events against fresh flow events, a few times during the
coupled epochs and once at the end; ``classifier="mlp"`` is the paper's network, updated step by step alongside the
flow. On the five Dalitz features of J/psi -> gamma pi pi the trees learn most of the ratio in a small fraction
of the MLP's time (see `boosted_classifier`).

Usage, for events x (N, F) with optional per-event weights (N,):

    generator = DiscFlowGenerator(F, DiscFlowSettings()).fit(x, x_val=x_val)
    events, weight = generator.sample(100_000)          # (n, F) and (n,) float64, on the CPU
    generator.save("generator.pt"); DiscFlowGenerator.load("generator.pt")

`FlowGenerator` (`hadrinv.inference.flow_generator`) is the same flow without the classifier.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.nn.functional import binary_cross_entropy_with_logits

from hadrinv.inference.boosted_classifier import BoostedSettings, BoostedTrees, fit_log_ratio
from hadrinv.inference.embeddings import mlp
from hadrinv.inference.flow_generator import (
    NORMALIZATION_STREAM,
    FlowGenerator,
    GeneratorSettings,
    _Events,
    _FlowTrainer,
)

__all__ = ["DiscFlowGenerator", "DiscFlowSettings", "FlowGenerator", "GeneratorSettings"]


@dataclass(frozen=True)
class DiscFlowSettings(GeneratorSettings):
    """The flow's settings, the classifier and their coupling.

    ``epochs`` counts all flow epochs: the first ``warmup_epochs`` are plain maximum likelihood, so that the
    classifier starts against a flow that already has the bulk right; in the rest each flow step follows
    ``classifier_steps`` classifier steps and the likelihood is weighted by w_D^alpha. Then the classifier alone
    trains ``final_classifier_epochs`` more against the final flow, so that the generated events' weights are
    those of the flow that generates them.

    alpha = 0.5: the weight's feedback is damped. With alpha = 1 the flow would chase the classifier's current
    opinion, noise included, and the two can oscillate; with alpha -> 0 it is plain maximum likelihood.
    (Whether this is the value of arXiv:2110.13632 was not checked here; it is a hyperparameter to tune.)

    Weights are clipped to [weight_min, weight_max] before use (in training and in generation): a classifier
    that is sure of itself in a region the flow barely populates gives weights that are large and noisy, and a
    handful of such events would dominate a batch's loss or a histogram's error (the effective sample size).
    Generated weights are then divided by their mean over ``normalization_samples`` flow events, a constant
    fixed at the end of training (see `DiscFlowGenerator.event_weight`).

    ``classifier="boosted"``: gradient-boosted trees (at most ``boosted_iterations`` trees of ``boosted_leaves``
    leaves, learning rate ``boosted_learning_rate``, early stopping on 10 % of the events) are fitted to the
    training events against ``max(classifier_events, N)`` fresh flow events: ``classifier_refits`` times during
    the coupled epochs (evenly spaced, the first at its start; the weights of the training events are then fixed
    until the next fit) and once against the final flow. The MLP settings below are then unused.

    ``classifier="mlp"``: the paper's network. It needs enough steps: on a 1-D toy of 8000 events (31 batches an
    epoch) the defaults left its loss at the blind guess's 2 log 2 (weights within a few per cent of one), while
    classifier_lr = 1e-2 and 40 final epochs learned the ratio to about 15 %. A
    ``history["final_classifier_val_loss"]`` well below 2 log 2 shows that it has learned.
    """

    classifier: Literal["boosted", "mlp"] = "boosted"
    classifier_events: int = 200_000
    classifier_refits: int = 3
    boosted_iterations: int = 200
    boosted_learning_rate: float = 0.1
    boosted_leaves: int = 31
    alpha: float = 0.5
    warmup_epochs: int = 10
    classifier_hidden: int = 64
    classifier_layers: int = 3
    classifier_lr: float = 1e-3
    classifier_steps: int = 1
    final_classifier_epochs: int = 5
    weight_min: float = 0.1
    weight_max: float = 10.0
    normalization_samples: int = 100_000

    def __post_init__(self):
        super().__post_init__()
        if self.classifier not in ("boosted", "mlp"):
            raise ValueError(f"classifier must be 'boosted' or 'mlp', got {self.classifier!r}")
        BoostedSettings(self.boosted_iterations, self.boosted_learning_rate, self.boosted_leaves)  # checks them
        names = ("classifier_hidden", "classifier_layers", "classifier_steps", "normalization_samples")
        for name in (*names, "classifier_events", "classifier_refits"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.warmup_epochs < 0 or self.final_classifier_epochs < 0:
            raise ValueError("warmup_epochs and final_classifier_epochs must not be negative")
        if not self.alpha >= 0:
            raise ValueError(f"alpha must not be negative, got {self.alpha}")
        if not self.classifier_lr > 0:
            raise ValueError(f"classifier_lr must be positive, got {self.classifier_lr}")
        if not 0 < self.weight_min <= 1 <= self.weight_max < math.inf:
            raise ValueError(
                f"need 0 < weight_min <= 1 <= weight_max < inf, got [{self.weight_min}, {self.weight_max}]"
            )


class DiscFlowGenerator(FlowGenerator):
    """The flow of `FlowGenerator` trained jointly with a classifier; generated events carry w_D as weight.

    Training (see `DiscFlowSettings`): plain maximum likelihood for the warm-up epochs (with validation events,
    early stopping may end the warm-up, and its best flow is kept); one classifier-only epoch, so that the
    coupling starts from a classifier that has seen the flow; then alternating steps: ``classifier_steps``
    updates of the classifier's binary cross-entropy on a data batch (label 1, the data's weights) and as many
    fresh flow events (label 0, no gradient into the flow), then one flow update on the data batch's likelihood
    weighted by clip(w_D)^alpha, w_D detached and scaled to mean one in the batch (the classifier's overall
    level drifts while it trains, and would otherwise change the flow's step size). Finally the classifier
    alone, against fresh events of the final flow; with validation events its best epoch on the validation
    cross-entropy is kept, which guards against a classifier that has learned the training events by heart.

    The classifier's logit is log w_D itself (D = sigmoid(logit)), so weights are computed without forming
    D / (1 - D). ``history`` adds "classifier_loss" (per coupled epoch), "final_classifier_loss" and
    "final_classifier_val_loss" (per final epoch), "weight_norm" and "weight_fraction_clipped".
    """

    settings_type = DiscFlowSettings
    legacy_settings = {"classifier": "mlp"}

    def __init__(self, features: int, settings: DiscFlowSettings | None = None):
        super().__init__(features, settings)
        # mean clipped w_D over a large flow sample, fixed at the end of training
        self.register_buffer("weight_norm", torch.ones((), dtype=torch.float64))

    def _build(self) -> None:
        super()._build()
        s = self.settings
        self._train_log_weight: Tensor | None = None  # boosted: clipped log w_D of the training events
        if s.classifier == "boosted":
            self.classifier = BoostedTrees()
            return
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed + 1)
            self.classifier = mlp([self.features] + [s.classifier_hidden] * s.classifier_layers + [1])

    def _logit(self, u: Tensor) -> Tensor:
        """The classifier's logit log w_D at standardised events u: (N,), float64 for trees, float32 for the MLP."""
        return self.classifier(u) if self.settings.classifier == "boosted" else self.classifier(u)[:, 0]

    def _log_weight(self, u: Tensor) -> Tensor:
        """log w_D clipped to [log weight_min, log weight_max]."""
        s = self.settings
        return self._logit(u).clamp(math.log(s.weight_min), math.log(s.weight_max))

    def _weight_standardized(self, u: Tensor) -> Tensor:
        """clip(w_D) / weight_norm: the normalisation is one constant for all events, so an event's weight depends
        on the event alone, not on how many were generated with it; the weights' mean over a large sample is 1."""
        return (torch.exp(self._log_weight(u).double()) / self.weight_norm).cpu()

    def _flow_weights(self, u: Tensor, w: Tensor, coupled: bool, index: Tensor) -> Tensor:
        if not coupled or self.settings.alpha == 0:
            return w
        with torch.no_grad():
            log_w = self._train_log_weight[index] if self._train_log_weight is not None else self._log_weight(u)
            factor = torch.exp(self.settings.alpha * log_w).to(w.dtype)
        return w * (factor / factor.mean())

    def _train(self, data: _Events, val: _Events | None, generator: torch.Generator, log) -> None:
        if self.settings.classifier == "boosted":
            self._train_boosted(data, val, generator, log)
        else:
            self._train_mlp(data, val, generator, log)

    def _train_boosted(self, data: _Events, val: _Events | None, generator: torch.Generator, log) -> None:
        s = self.settings
        self.history.update(classifier_fits=[])
        trainer = _FlowTrainer(self, data, val, generator, log)
        trainer.run(0, min(s.warmup_epochs, s.epochs))
        trainer.restore_best()
        done = self.history["warmup_epochs"] = self.history.get("epochs", 0)
        coupled = list(range(done, s.epochs))
        refits = set(coupled[:: max(1, math.ceil(len(coupled) / s.classifier_refits))])
        for epoch in coupled:
            if epoch in refits:
                self._fit_trees(data, generator, log, cache=True)
            trainer.run(epoch, epoch + 1, coupled=True)
        if coupled:
            self.history["best_epoch"] = s.epochs  # the coupled flow is kept as it ends, not the best likelihood
        self._train_log_weight = None
        self._fit_trees(data, generator, log, cache=False)
        self._normalize_weights()

    @torch.no_grad()
    def _fit_trees(self, data: _Events, generator: torch.Generator, log, cache: bool) -> None:
        """Trees of log w_D against fresh events of the current flow; with ``cache``, the training events' clipped
        log w_D from them (sklearn's own, compiled evaluation: the same numbers, much faster than the tensors)."""
        s = self.settings
        self.eval()
        fake = torch.cat(list(self._flow_events(max(s.classifier_events, len(data)), generator)))
        options = BoostedSettings(s.boosted_iterations, s.boosted_learning_rate, s.boosted_leaves, seed=s.seed)
        trees, fitted = fit_log_ratio(data.u, fake, data.w, options)
        self.classifier = trees.to(self.device)
        loss = -float(fitted.validation_score_[-1]) if len(fitted.validation_score_) else math.nan
        epoch = self.history.get("epochs", 0)
        self.history["classifier_fits"].append({"epoch": epoch, "trees": trees.trees, "val_loss": loss})
        if log:
            log(f"classifier fit after epoch {epoch}: {trees.trees} trees, validation loss {loss:.5g}")
        if cache:
            logit = torch.from_numpy(fitted.decision_function(data.u.double().cpu().numpy()))
            clipped = logit.clamp(math.log(s.weight_min), math.log(s.weight_max))
            self._train_log_weight = clipped.to(self.device, torch.float32)
        self.train()

    def _train_mlp(self, data: _Events, val: _Events | None, generator: torch.Generator, log) -> None:
        s = self.settings
        self.history.update(classifier_loss=[], final_classifier_loss=[], final_classifier_val_loss=[])
        trainer = _FlowTrainer(self, data, val, generator, log)
        warmup = min(s.warmup_epochs, s.epochs)
        trainer.run(0, warmup)
        trainer.restore_best()
        # an early-stopped warm-up hands its unused epochs to the coupled phase
        done = self.history["warmup_epochs"] = self.history.get("epochs", 0)
        classifier = _ClassifierTrainer(self, data, generator, s.classifier_lr)
        if done < s.epochs:
            classifier.epoch(trainer.batches * s.classifier_steps)
            running: list[float] = []

            def before_step() -> None:
                running.extend(classifier.step() for _ in range(s.classifier_steps))

            for epoch in range(done, s.epochs):
                running.clear()
                trainer.run(epoch, epoch + 1, coupled=True, before_step=before_step)
                self.history["classifier_loss"].append(sum(running) / len(running))
                if log and (epoch + 1) % max(1, s.epochs // 10) == 0:
                    log(f"discflow epoch {epoch + 1}/{s.epochs}: classifier loss {running[-1]:.5g}")
            self.history["best_epoch"] = s.epochs  # the coupled flow is kept as it ends, not the best likelihood
        self._final_classifier(classifier, val, trainer.batches, generator, log)
        self._normalize_weights()

    def _final_classifier(self, classifier: _ClassifierTrainer, val, batches: int, generator, log) -> None:
        s = self.settings
        final = _ClassifierTrainer(
            self, classifier.data, generator, s.classifier_lr, anneal_steps=s.final_classifier_epochs * batches
        )
        val_fake = None
        if val is not None:
            with torch.no_grad():
                val_fake = self._push(self._base_points(len(val), generator))
        best, best_state = math.inf, None
        for epoch in range(s.final_classifier_epochs):
            self.history["final_classifier_loss"].append(final.epoch(batches))
            if val is not None:
                value = final.validation_loss(val, val_fake)
                self.history["final_classifier_val_loss"].append(value)
                if value < best:
                    best, best_state = value, copy.deepcopy(self.classifier.state_dict())
            if log:
                loss = self.history["final_classifier_loss"][-1]
                log(f"final classifier epoch {epoch + 1}/{s.final_classifier_epochs}: loss {loss:.5g}")
        if best_state is not None:
            self.classifier.load_state_dict(best_state)

    @torch.no_grad()
    def _normalize_weights(self) -> None:
        s = self.settings
        self.eval()
        generator = torch.Generator(device=self.device).manual_seed(s.seed + NORMALIZATION_STREAM)
        total, clipped, count = 0.0, 0, 0
        for u in self._flow_events(s.normalization_samples, generator):
            logit = self._logit(u)
            log_w = logit.clamp(math.log(s.weight_min), math.log(s.weight_max))
            total += float(torch.exp(log_w.double()).sum())
            clipped += int((log_w != logit).sum())
            count += len(u)
        self.weight_norm.fill_(total / count)
        self.history["weight_norm"] = total / count
        self.history["weight_fraction_clipped"] = clipped / count


class _ClassifierTrainer:
    """Binary cross-entropy steps of the classifier: a data batch (label 1) against fresh flow events (label 0)."""

    def __init__(self, model: DiscFlowGenerator, data: _Events, generator, lr: float, anneal_steps: int = 0):
        self.model, self.data, self.generator = model, data, generator
        self.lr, self.anneal_steps, self.steps = lr, anneal_steps, 0
        self.optimizer = torch.optim.Adam(model.classifier.parameters(), lr=lr)

    def step(self) -> float:
        model, batch = self.model, self.model.settings.batch
        index = torch.randint(len(self.data), (batch,), generator=self.generator, device=self.data.u.device)
        with torch.no_grad():
            fake = model._push(model._base_points(batch, self.generator))
        if self.anneal_steps:
            for group in self.optimizer.param_groups:
                group["lr"] = (
                    0.5 * self.lr * (1 + math.cos(math.pi * min(self.steps, self.anneal_steps) / self.anneal_steps))
                )
        loss = self._loss(self.data.u[index], self.data.w[index], fake)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return float(loss.detach())

    def _loss(self, real: Tensor, weight: Tensor, fake: Tensor) -> Tensor:
        # equal numbers of real and flow events, so that at the optimum D / (1 - D) is the density ratio itself
        classifier = self.model.classifier
        real_logit, fake_logit = classifier(real)[:, 0], classifier(fake)[:, 0]
        real_term = binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit), weight=weight.float())
        return real_term + binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))

    def epoch(self, steps: int) -> float:
        losses = [self.step() for _ in range(max(1, steps))]
        return sum(losses) / len(losses)

    @torch.no_grad()
    def validation_loss(self, val: _Events, fake: Tensor) -> float:
        return float(self._loss(val.u, val.w / val.w.mean(), fake))
