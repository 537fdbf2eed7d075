"""A normalising-flow event generator fitted by weighted maximum likelihood (the base of DiscFlow).

Usage, for events x (N, F) with optional per-event weights (N,):

    generator = FlowGenerator(F, GeneratorSettings()).fit(x, x_val=x_val)
    events, weight = generator.sample(100_000)          # (n, F) and (n,) float64, on the CPU; weights all one
    generator.save("generator.pt"); FlowGenerator.load("generator.pt")   # a DiscFlowGenerator too

The flow learns standardised features (weighted mean and standard deviation of the training set), so that zuko's
splines, which act on [-5, 5], cover the bulk of the data whatever its units. `hadrinv.inference.discflow` adds
the classifier.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import zuko
from torch import Tensor, nn

from hadrinv.data.io import atomic_torch_save, load_checkpoint

_FORMAT = "hadrinv.generator/1"
_CHUNK = 65536  # events per pass when sampling or evaluating: bounds memory, not results
# seed offsets of the random streams of one fit: batches and flow samples, then the normalisation sample
TRAIN_STREAM, NORMALIZATION_STREAM = 1, 2


@dataclass(frozen=True)
class GeneratorSettings:
    """The flow and its training.

    A zuko neural spline flow (NSF) of ``transforms`` spline coupling layers (``bins`` rational-quadratic bins
    on [-5, 5]; hyper-networks of ``layers`` x ``hidden``). Adam, learning rate falling along a half cosine from
    ``lr`` to zero over ``epochs``; with validation events, training stops after ``patience`` epochs without a
    better validation loss, and the best flow is kept.
    """

    transforms: int = 6
    bins: int = 8
    hidden: int = 64
    layers: int = 2
    epochs: int = 50
    batch: int = 256
    lr: float = 2e-3
    patience: int = 10
    seed: int = 0

    def __post_init__(self):
        for name in ("transforms", "bins", "hidden", "layers", "epochs", "batch", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def _check_events(x, weight, features: int, name: str) -> tuple[Tensor, Tensor]:
    """Events (N, F) and weights (N,) as float64 CPU tensors (weights: ones if None); ValueError otherwise."""

    def refuse(bad: Tensor, what: str, why: str = "") -> None:
        if bool(bad.any()):
            raise ValueError(f"{what} (first in row {int(bad.nonzero()[0])}, {int(bad.sum())} rows in all){why}")

    x = torch.as_tensor(x).detach().cpu().to(torch.float64)
    if x.dim() != 2 or x.shape[1] != features:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (N, {features})")
    if len(x) == 0:
        raise ValueError(f"{name} has no events")
    refuse(~torch.isfinite(x).all(1), f"{name} holds non-finite values")
    label = "weight" if name == "x" else f"weight of {name}"
    if weight is None:
        return x, torch.ones(len(x), dtype=torch.float64)
    weight = torch.as_tensor(weight).detach().cpu().to(torch.float64)
    if weight.dim() != 1 or len(weight) != len(x):
        raise ValueError(f"{label} has shape {tuple(weight.shape)}; expected ({len(x)},) to match {name}")
    refuse(~torch.isfinite(weight), f"{label} holds non-finite values")
    refuse(weight < 0, f"{label} holds negative values", ": a likelihood fit needs weights >= 0")
    if not float(weight.sum()) > 0:
        raise ValueError(f"{label} sums to zero")
    return x, weight


class FlowGenerator(nn.Module):
    """An event generator: a normalising flow on standardised features, fitted by weighted maximum likelihood.

    The flow is zuko's NSF with two passes, i.e. rational-quadratic spline coupling layers (each updates half of
    the features given the other half; the halves alternate) rather than a fully autoregressive MAF. Why: both
    have an exact density, but sampling an autoregressive flow takes one network pass per feature, a coupling
    flow two per layer, and DiscFlow samples the flow at every training step; the paper's generator is also a
    coupling network.

    ``history``: "loss" (training loss per epoch), "val_loss" (the negative log-likelihood per event of the
    validation events, per epoch, in the units of x), "best_epoch", "stopped_early", "epochs", "seconds".
    """

    settings_type: type[GeneratorSettings] = GeneratorSettings
    legacy_settings: dict = {}  # settings of files written before a setting existed, where its default differs

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _GENERATORS[cls.__name__] = cls  # what `load` may rebuild from a file's "kind"

    def __init__(self, features: int, settings: GeneratorSettings | None = None):
        super().__init__()
        if int(features) < 1:
            raise ValueError(f"features must be at least 1, got {features}")
        settings = self.settings_type() if settings is None else settings
        if not isinstance(settings, self.settings_type):
            raise ValueError(
                f"{type(self).__name__} needs {self.settings_type.__name__}, got {type(settings).__name__}"
            )
        self.features = int(features)
        self.settings = settings
        self.register_buffer("x_mean", torch.zeros(self.features, dtype=torch.float64))
        self.register_buffer("x_scale", torch.ones(self.features, dtype=torch.float64))
        self._build()
        self.history: dict = {}
        self.fitted = False

    def _build(self) -> None:
        """Networks with their initial weights: the same seed gives the same networks (and the same fit)."""
        s = self.settings
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            self.flow = zuko.flows.NSF(
                self.features,
                transforms=s.transforms,
                bins=s.bins,
                hidden_features=[s.hidden] * s.layers,
                passes=min(2, self.features),
            )
            # One feature: zuko has nothing to couple on and uses free spline parameters, drawn from randn, a
            # transform far from the identity that Adam takes thousands of steps to undo; zero is the identity.
            for module in self.flow.modules():
                if isinstance(module, zuko.flows.ElementWiseTransform):
                    for parameter in module.parameters():
                        nn.init.zeros_(parameter)

    @property
    def device(self) -> torch.device:
        return self.x_mean.device

    # ---- standardised space ----
    def _standardize(self, x: Tensor) -> Tensor:
        return ((x.to(self.device, torch.float64) - self.x_mean) / self.x_scale).float()

    def _unstandardize(self, u: Tensor) -> Tensor:
        return u.to(torch.float64) * self.x_scale + self.x_mean

    def _log_prob_standardized(self, u: Tensor) -> Tensor:
        return self.flow().log_prob(u)

    def _push(self, z: Tensor) -> Tensor:
        """Flow events (standardised) for base points z."""
        return self.flow().transform.inv(z)

    def _base_points(self, n: int, generator: torch.Generator | None) -> Tensor:
        if generator is not None:  # a seeded generator may live on another device: draw there, then move
            return torch.randn(n, self.features, generator=generator, device=generator.device).to(self.device)
        return torch.randn(n, self.features, device=self.device)

    def _flow_events(self, n: int, generator: torch.Generator | None):
        """n flow events (standardised), in chunks of at most _CHUNK: bounds memory, not results."""
        for start in range(0, n, _CHUNK):
            yield self._push(self._base_points(min(_CHUNK, n - start), generator))

    def _chunked(self, function: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        """function of the standardised events x, applied _CHUNK events at a time; float64 on the CPU."""
        return torch.cat(
            [function(self._standardize(x[i : i + _CHUNK])).double().cpu() for i in range(0, len(x), _CHUNK)]
        )

    # ---- public interface ----
    @torch.no_grad()
    def log_prob(self, x) -> Tensor:
        """log density of the generator's flow at events x (N, F), in the units of x: float64 (N,), on the CPU."""
        self._require_fitted()
        x, _ = _check_events(x, None, self.features, "x")
        self.eval()
        return self._chunked(self._log_prob_standardized, x) - torch.log(self.x_scale).sum().cpu()

    @torch.no_grad()
    def event_weight(self, x) -> Tensor:
        """The weight an event x (N, F) carries when generated: float64 (N,) on the CPU; all one for a plain flow."""
        self._require_fitted()
        x, _ = _check_events(x, None, self.features, "x")
        self.eval()
        return self._chunked(self._weight_standardized, x)

    def _weight_standardized(self, u: Tensor) -> Tensor:
        return torch.ones(len(u), dtype=torch.float64)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """n events (n, F) and their weights (n,), float64 on the CPU. ``generator`` (a seeded torch.Generator, on
        any device) fixes the base points; without it the global random state is used."""
        self._require_fitted()
        if isinstance(n, bool) or int(n) != n or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        self.eval()
        xs, ws = [], []
        for u in self._flow_events(int(n), generator):
            xs.append(self._unstandardize(u).cpu())
            ws.append(self._weight_standardized(u))
        if not xs:
            return torch.zeros(0, self.features, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
        return torch.cat(xs), torch.cat(ws)

    def fit(
        self,
        x,
        weight=None,
        *,
        x_val=None,
        weight_val=None,
        log: Callable[[str], None] | None = None,
        device: str | torch.device = "cpu",
    ) -> FlowGenerator:
        """Fit to events x (N, F) with optional per-event weights (N,) >= 0; returns self.

        Each fit starts from the seed's initial networks, so the same data and settings give the same generator.
        The loss is the weighted mean negative log-likelihood, weights scaled to mean one over the training set so
        that the learning rate means the same with and without them. ``x_val`` (and its ``weight_val``): events
        held out for early stopping. ``device``: where the networks train and stay afterwards.
        """
        x, weight = _check_events(x, weight, self.features, "x")
        if len(x) < self.settings.batch:
            raise ValueError(f"{len(x)} training events are fewer than one batch of {self.settings.batch}")
        if x_val is None and weight_val is not None:
            raise ValueError("weight_val given without x_val")
        val = None if x_val is None else _check_events(x_val, weight_val, self.features, "x_val")
        started = time.perf_counter()
        self.fitted = False  # until this fit has finished: a failed refit leaves no half-trained generator in use
        self._build()
        self.to(torch.device(device))
        total = weight.sum()
        mean = (weight[:, None] * x).sum(0) / total
        std = ((weight[:, None] * (x - mean) ** 2).sum(0) / total).sqrt()
        self.x_mean.copy_(mean)
        self.x_scale.copy_(torch.where(std > 0, std, torch.ones_like(std)))  # a constant feature stays as it is
        data = _Events(self._standardize(x), (weight / weight.mean()).float().to(self.device))
        val_data = None if val is None else _Events(self._standardize(val[0]), (val[1] / val[1].mean()).to(self.device))
        self.history = {"loss": [], "val_loss": [], "best_epoch": 0, "stopped_early": False, "n_train": len(x)}
        generator = torch.Generator(device=self.device).manual_seed(self.settings.seed + TRAIN_STREAM)
        self.train()
        self._train(data, val_data, generator, log)
        self.eval()
        self.fitted = True
        self.history["seconds"] = time.perf_counter() - started
        return self

    # ---- training ----
    def _train(self, data: _Events, val: _Events | None, generator: torch.Generator, log) -> None:
        s = self.settings
        trainer = _FlowTrainer(self, data, val, generator, log)
        trainer.run(0, s.epochs)
        trainer.restore_best()

    def _flow_weights(self, u: Tensor, w: Tensor, coupled: bool, index: Tensor) -> Tensor:
        """Per-event weights of a flow batch (events u, rows ``index`` of the training set) in its likelihood;
        DiscFlow multiplies in w_D^alpha."""
        return w

    @torch.no_grad()
    def _val_loss(self, val: _Events) -> float:
        """Weighted mean negative log-likelihood per event, in the units of x (the standardisation's Jacobian in)."""
        self.eval()
        nll = torch.cat(
            [-self._log_prob_standardized(val.u[i : i + _CHUNK]).double() for i in range(0, len(val), _CHUNK)]
        )
        self.train()
        return float((val.w * nll).sum() / val.w.sum() + torch.log(self.x_scale).sum())

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise ValueError(f"this {type(self).__name__} is not fitted: call fit() or load() first")

    # ---- persistence ----
    def save(self, path: str | Path) -> Path:
        """Plain tensors, settings and history, written atomically (temporary file, then rename)."""
        self._require_fitted()
        payload = {
            "format": _FORMAT,
            "kind": type(self).__name__,
            "features": self.features,
            "settings": dataclasses.asdict(self.settings),
            "state": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "history": self.history,
        }
        return atomic_torch_save(payload, path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> FlowGenerator:
        """A saved generator (tensors and plain values only: nothing is unpickled), on ``map_location``."""
        payload = load_checkpoint(path, map_location="cpu")
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a saved event generator")
        kind = _GENERATORS.get(payload.get("kind"))
        if kind is None or not issubclass(kind, cls):
            raise ValueError(f"{path}: holds a {payload.get('kind')}, not a {cls.__name__}")
        generator = kind(payload["features"], kind.settings_type(**{**kind.legacy_settings, **payload["settings"]}))
        generator.load_state_dict(payload["state"])
        generator.history = payload["history"]
        generator.fitted = True
        return generator.to(torch.device(map_location)).eval()


@dataclass
class _Events:
    """Standardised training or validation events (float32) and their weights, on the training device."""

    u: Tensor
    w: Tensor

    def __len__(self) -> int:
        return len(self.u)


class _FlowTrainer:
    """Mini-batch epochs of the flow: Adam, a half-cosine learning rate over all epochs, early stopping."""

    def __init__(self, model: FlowGenerator, data: _Events, val: _Events | None, generator, log):
        self.model, self.data, self.val, self.generator, self.log = model, data, val, generator, log
        s = model.settings
        self.optimizer = torch.optim.Adam(model.flow.parameters(), lr=s.lr)
        self.batches = len(data) // s.batch  # the incomplete last batch is left out: shuffling visits it next epoch
        self.total_steps = max(1, s.epochs * self.batches)
        self.best, self.best_state, self.since_best = math.inf, None, 0

    def run(self, first: int, last: int, coupled: bool = False, before_step: Callable[[], None] | None = None) -> bool:
        """Epochs first..last-1 (their place in the cosine schedule); False if early stopping ended them. A coupled
        epoch weights the likelihood (`_flow_weights`) and is never stopped early: its validation likelihood is
        recorded, but DiscFlow moves the flow away from the likelihood's optimum on purpose."""
        model, s, history = self.model, self.model.settings, self.model.history
        for epoch in range(first, last):
            order = torch.randperm(len(self.data), generator=self.generator, device=self.data.u.device)
            running = torch.zeros((), device=self.data.u.device)
            for i in range(self.batches):
                if before_step is not None:
                    before_step()
                index = order[i * s.batch : (i + 1) * s.batch]
                u = self.data.u[index]
                w = model._flow_weights(u, self.data.w[index], coupled, index)
                step = epoch * self.batches + i
                for group in self.optimizer.param_groups:
                    group["lr"] = 0.5 * s.lr * (1 + math.cos(math.pi * step / self.total_steps))
                loss = -(w * model._log_prob_standardized(u)).mean()
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # a rare batch of tail events must not throw the splines far off
                nn.utils.clip_grad_norm_(model.flow.parameters(), 10.0)
                self.optimizer.step()
                running += loss.detach()
            history["loss"].append(float(running) / self.batches)
            history["epochs"] = epoch + 1
            stop = False
            if self.val is not None:
                value = model._val_loss(self.val)
                history["val_loss"].append(value)
                if not coupled:
                    stop = self._watch(value, epoch)
            if self.log and ((epoch + 1) % max(1, s.epochs // 10) == 0 or stop):
                val_text = f", validation {history['val_loss'][-1]:.5g}" if history["val_loss"] else ""
                self.log(f"flow epoch {epoch + 1}/{s.epochs}: loss {history['loss'][-1]:.5g}{val_text}")
            if stop:
                history["stopped_early"] = True
                return False
        return True

    def _watch(self, value: float, epoch: int) -> bool:
        """Keep the flow of the best validation loss; True once ``patience`` epochs have not improved on it."""
        if value < self.best:
            self.best, self.since_best = value, 0
            self.best_state = copy.deepcopy(self.model.flow.state_dict())
            self.model.history["best_epoch"] = epoch + 1
            return False
        self.since_best += 1
        return self.since_best >= self.model.settings.patience

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.model.flow.load_state_dict(self.best_state)
        else:  # no validation events: the flow is kept as it ends
            self.model.history["best_epoch"] = self.model.history.get("epochs", 0)


_GENERATORS: dict[str, type[FlowGenerator]] = {"FlowGenerator": FlowGenerator}
