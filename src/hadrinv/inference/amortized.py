"""One interface for every amortized posterior estimator (VAIM, MDN, INN, flows, diffusion, flow matching).

An estimator learns p(theta | x) from simulated pairs once, then gives posterior samples for any new
observation in one network pass:

    estimator = ConditionalFlow(theta_dim=2, x_dim=2)
    history = estimator.fit(theta, x)          # validation split, early stopping, progress bar
    samples = estimator.sample(x_obs, 1000)    # (1000, theta_dim); batch of observations -> (batch, 1000, theta_dim)
    estimator.log_prob(theta, x)               # where the method has a density
    estimator.save("flow.pt"); ConditionalFlow.load("flow.pt")  # or AmortizedEstimator.load(...)

Parameters and observations are standardised with statistics of the training set; parameters with
known bounds (a box prior) are first mapped to the real line by a logit, so samples never leave the
prior's support and densities carry the Jacobian. Subclasses only say how to build their network, their
per-pair training loss and how to sample (and evaluate the density) in the standardised space.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from hadrinv.data.io import atomic_torch_save, load_checkpoint
from hadrinv.inference.embeddings import make_embedding

ESTIMATORS: dict[str, type[AmortizedEstimator]] = {}
_LOGIT_EPS = 1e-6


@dataclass
class TrainingHistory:
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    seconds: float = 0.0
    n_train: int = 0
    n_validation: int = 0
    learning_rate: list[float] = field(default_factory=list)  # at the end of each epoch

    @property
    def best_validation_loss(self) -> float:
        return self.validation_loss[self.best_epoch] if self.validation_loss else math.nan

    def as_dict(self) -> dict:
        return {
            "epochs": len(self.train_loss),
            "best_epoch": self.best_epoch,
            "best_validation_loss": self.best_validation_loss,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
            "n_train": self.n_train,
            "n_validation": self.n_validation,
        }


class AmortizedEstimator(nn.Module):
    """Base class; see the module docstring. ``x_dim`` is the number of features per observation (per
    point for a point-cloud embedding)."""

    has_log_prob: ClassVar[bool] = False
    # False where each density evaluation is itself an expensive computation (an ODE per sample)
    cheap_log_prob: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ESTIMATORS[cls.__name__] = cls

    def __init__(
        self,
        theta_dim: int,
        x_dim: int,
        embedding: str | nn.Module | None = None,
        embedding_options: dict | None = None,
        bounds: tuple[list[float], list[float]] | None = None,
    ):
        super().__init__()
        if theta_dim < 1 or x_dim < 1:
            raise ValueError(f"theta_dim and x_dim must be positive, got {theta_dim} and {x_dim}")
        self.theta_dim, self.x_dim = int(theta_dim), int(x_dim)
        self.hparams: dict = {
            "theta_dim": self.theta_dim,
            "x_dim": self.x_dim,
            "embedding_options": embedding_options or {},
        }
        if isinstance(embedding, nn.Module):
            self.embedding = embedding
            self.hparams["embedding"] = None
            self.custom_embedding = True
            context_dim = getattr(embedding, "features", None)
            if context_dim is None:
                raise ValueError("a custom embedding module needs a 'features' attribute (its output size)")
            self.event_ndim = getattr(embedding, "event_ndim", 1)
        elif embedding is None:
            self.embedding = nn.Identity()
            self.hparams["embedding"] = None
            self.custom_embedding = False
            context_dim = self.x_dim
            self.event_ndim = 1
        else:
            self.embedding = make_embedding(embedding, self.x_dim, **(embedding_options or {}))
            self.hparams["embedding"] = embedding
            self.custom_embedding = False
            context_dim = self.embedding.features
            self.event_ndim = self.embedding.event_ndim
        self.context_dim = context_dim
        if bounds is not None:
            low, high = (torch.as_tensor(b, dtype=torch.float32).reshape(-1) for b in bounds)
            if low.numel() != theta_dim or high.numel() != theta_dim or not bool((high > low).all()):
                raise ValueError(f"bounds must be two lists of {theta_dim} values with high > low")
            self.hparams["bounds"] = (low.tolist(), high.tolist())
            self.register_buffer("theta_low", low)
            self.register_buffer("theta_high", high)
        else:
            self.hparams["bounds"] = None
            self.theta_low = self.theta_high = None
        self.register_buffer("theta_mean", torch.zeros(theta_dim))
        self.register_buffer("theta_std", torch.ones(theta_dim))
        self.register_buffer("x_mean", torch.zeros(x_dim))
        self.register_buffer("x_std", torch.ones(x_dim))
        self.register_buffer("fitted", torch.tensor(False))

    # ---- subclasses implement these three (and _log_prob_standardized where a density exists) ----
    def training_loss(self, u: torch.Tensor, context: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-pair loss (batch,) for standardised parameters u, embedded context and standardised x."""
        raise NotImplementedError

    def _sample_standardized(self, context: torch.Tensor, n: int) -> torch.Tensor:
        """(batch, n, theta_dim) samples in the standardised space."""
        raise NotImplementedError

    def _log_prob_standardized(self, u: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no tractable density; use sample()")

    def _after_optimizer_step(self) -> None:
        """Called by fit after every optimiser step (e.g. to update averaged weights); nothing by default."""

    def _remember(self, **options) -> None:
        self.hparams.update(options)

    # ---- parameter and observation transforms ----
    def _to_unbounded(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """theta -> v on the real line, and log|dv/dtheta| summed over parameters."""
        if self.theta_low is None:
            return theta, torch.zeros(theta.shape[:-1], device=theta.device)
        width = self.theta_high - self.theta_low
        p = ((theta - self.theta_low) / width).clamp(_LOGIT_EPS, 1 - _LOGIT_EPS)
        v = torch.log(p) - torch.log1p(-p)
        return v, (-torch.log(p) - torch.log1p(-p) - torch.log(width)).sum(-1)

    def _from_unbounded(self, v: torch.Tensor) -> torch.Tensor:
        if self.theta_low is None:
            return v
        return self.theta_low + (self.theta_high - self.theta_low) * torch.sigmoid(v)

    def standardize_theta(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v, log_jac = self._to_unbounded(theta)
        return (v - self.theta_mean) / self.theta_std, log_jac - torch.log(self.theta_std).sum()

    def unstandardize_theta(self, u: torch.Tensor) -> torch.Tensor:
        return self._from_unbounded(u * self.theta_std + self.theta_mean)

    def standardize_x(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    def context(self, x_standardized: torch.Tensor) -> torch.Tensor:
        return self.embedding(x_standardized)

    # ---- checks ----
    def _check_x(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.shape[-1] != self.x_dim or x.dim() not in (self.event_ndim, self.event_ndim + 1):
            raise ValueError(
                f"{name} has shape {tuple(x.shape)}; expected (..., {self.x_dim}) with {self.event_ndim} "
                "event dimension(s) and an optional batch dimension"
            )
        bad = torch.isinf(x) if self.event_ndim == 2 else ~torch.isfinite(x)  # NaN rows pad point clouds
        if bool(bad.any()):
            raise ValueError(f"{name} holds non-finite values (first at index {tuple(bad.nonzero()[0].tolist())})")
        return x

    def _check_theta(self, theta: torch.Tensor) -> torch.Tensor:
        theta = torch.as_tensor(theta, dtype=torch.float32)
        if theta.dim() != 2 or theta.shape[1] != self.theta_dim:
            raise ValueError(f"theta has shape {tuple(theta.shape)}; expected (n, {self.theta_dim})")
        if not bool(torch.isfinite(theta).all()):
            raise ValueError("theta holds non-finite values")
        if self.theta_low is not None:
            outside = ((theta < self.theta_low.cpu()) | (theta > self.theta_high.cpu())).any(-1)
            if bool(outside.any()):
                raise ValueError(
                    f"theta row {int(outside.nonzero()[0])} lies outside the bounds given to the estimator"
                )
        return theta

    def _set_standardization(self, theta: torch.Tensor, x: torch.Tensor) -> None:
        v, _ = self._to_unbounded(theta.to(self.theta_mean.device))
        self.theta_mean.copy_(v.mean(0))
        self.theta_std.copy_(v.std(0).clamp(min=1e-6))
        flat = x.reshape(-1, self.x_dim).to(self.x_mean.device)
        self.x_mean.copy_(flat.nanmean(0))
        centred = torch.where(torch.isnan(flat), 0.0, flat - self.x_mean)
        count = (~torch.isnan(flat)).sum(0).clamp(min=2)
        self.x_std.copy_((centred.pow(2).sum(0) / (count - 1)).sqrt().clamp(min=1e-6))

    def _batch_loss(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        u, _ = self.standardize_theta(theta)
        xs = self.standardize_x(x)
        return self.training_loss(u, self.context(xs), xs).mean()

    # ---- training ----
    def fit(
        self,
        theta: torch.Tensor,
        x: torch.Tensor,
        *,
        max_epochs: int = 500,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        validation_fraction: float = 0.1,
        patience: int = 20,
        clip_grad_norm: float = 5.0,
        seed: int = 0,
        progress: bool = False,
        restandardize: bool | None = None,
        lr_decay: float = 0.5,
        lr_schedule: str = "plateau",
    ) -> TrainingHistory:
        """Train on simulated pairs; stop when the validation loss has not improved for ``patience``
        epochs and keep the weights of the best epoch. ``lr_schedule="plateau"``: the learning rate is
        multiplied by ``lr_decay`` after patience // 3 epochs without improvement (1 = constant rate).
        ``"cosine"``: it falls along a half cosine from ``learning_rate`` to zero over ``max_epochs``, batch by
        batch (``lr_decay`` is not used). A second call continues training (active learning)
        and keeps the first call's standardisation unless ``restandardize=True``."""
        if lr_schedule not in ("plateau", "cosine"):
            raise ValueError(f"lr_schedule must be 'plateau' or 'cosine', got {lr_schedule!r}")
        theta, x = self._check_theta(theta), self._check_x(x)
        if x.dim() != self.event_ndim + 1 or x.shape[0] != theta.shape[0]:
            raise ValueError(
                f"theta and x must hold the same number of pairs, got {theta.shape[0]} and {tuple(x.shape)}"
            )
        n = theta.shape[0]
        n_val = max(1, int(round(validation_fraction * n))) if validation_fraction > 0 else 0
        if n - n_val < 2:
            raise ValueError(f"need at least 2 training pairs after the validation split, got {n}")
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=generator)
        train_idx, val_idx = order[n_val:], order[:n_val]
        device = self.theta_mean.device
        if restandardize or (restandardize is None and not bool(self.fitted)):
            self._set_standardization(theta[train_idx], x[train_idx])
        optimizer = torch.optim.AdamW(
            [p for p in self.parameters() if p.requires_grad], lr=learning_rate, weight_decay=weight_decay
        )
        scheduler = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=lr_decay, patience=max(1, patience // 3))
            if lr_schedule == "plateau" and lr_decay < 1
            else None
        )
        batches_per_epoch = sum(1 for start in range(0, len(train_idx), batch_size) if len(train_idx) - start >= 2)
        cosine = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs * batches_per_epoch)
            if lr_schedule == "cosine"
            else None
        )
        history = TrainingHistory(n_train=len(train_idx), n_validation=n_val)
        best_state, best_loss, bad_epochs = None, math.inf, 0
        started = time.perf_counter()
        bar = _progress_bar(max_epochs, f"{type(self).__name__}", progress)
        torch.manual_seed(seed)
        for epoch in range(max_epochs):
            self.train()
            perm = train_idx[torch.randperm(len(train_idx), generator=generator)]
            total, count = 0.0, 0
            for start in range(0, len(perm), batch_size):
                idx = perm[start : start + batch_size]
                if len(idx) < 2:
                    continue
                loss = self._batch_loss(theta[idx].to(device), x[idx].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip_grad_norm:
                    nn.utils.clip_grad_norm_(self.parameters(), clip_grad_norm)
                optimizer.step()
                if cosine is not None:
                    cosine.step()
                self._after_optimizer_step()
                total += loss.item() * len(idx)
                count += len(idx)
            history.train_loss.append(total / max(count, 1))
            monitored = (
                self._validation_loss(theta[val_idx], x[val_idx], batch_size, seed) if n_val else history.train_loss[-1]
            )
            history.validation_loss.append(monitored)
            history.learning_rate.append(optimizer.param_groups[0]["lr"])
            if scheduler is not None:
                scheduler.step(monitored)
            if best_state is None or monitored < best_loss - 1e-6 * abs(best_loss):
                best_loss, bad_epochs, history.best_epoch = monitored, 0, epoch
                best_state = copy.deepcopy(self.state_dict())
            else:
                bad_epochs += 1
            if bar is not None:
                bar.set_postfix(train=f"{history.train_loss[-1]:.4g}", val=f"{monitored:.4g}", best=history.best_epoch)
                bar.update(1)
            if not math.isfinite(history.train_loss[-1]):
                raise FloatingPointError(
                    f"{type(self).__name__}: training loss became {history.train_loss[-1]} at epoch {epoch}"
                )
            if bad_epochs >= patience:
                history.stopped_early = True
                break
        if bar is not None:
            bar.close()
        if best_state is not None:
            self.load_state_dict(best_state)
        self.fitted.fill_(True)
        self.eval()
        history.seconds = time.perf_counter() - started
        self.history = history
        return history

    @torch.no_grad()
    def _validation_loss(self, theta: torch.Tensor, x: torch.Tensor, batch_size: int, seed: int) -> float:
        # stochastic losses (diffusion times, latent draws) use the same random numbers every epoch
        self.eval()
        device = self.theta_mean.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed + 1)
            total = 0.0
            for start in range(0, len(theta), 4 * batch_size):
                t, xb = theta[start : start + 4 * batch_size].to(device), x[start : start + 4 * batch_size].to(device)
                total += self._batch_loss(t, xb).item() * len(t)
        return total / len(theta)

    # ---- inference ----
    def _require_fitted(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError(f"{type(self).__name__} is not trained: call fit(theta, x) or load a saved estimator")

    @torch.no_grad()
    def sample(self, x_obs: torch.Tensor, n: int, chunk: int = 256, rows: int = 8192) -> torch.Tensor:
        """n posterior samples for one observation -> (n, theta_dim); for a batch -> (batch, n, theta_dim).
        Observations go through the network ``chunk`` at a time, and fewer when chunk x n would exceed
        ``rows`` samples per call: inverting a spline flow holds about 20 kB per sample (12 parameters),
        so 300 observations x 1000 samples in one call took 5 GB."""
        self._require_fitted()
        self.eval()
        x_obs = self._check_x(x_obs, "x_obs")
        single = x_obs.dim() == self.event_ndim
        batch = x_obs.unsqueeze(0) if single else x_obs
        device = self.theta_mean.device
        chunk = max(1, min(chunk, rows // max(int(n), 1)))
        out = []
        for start in range(0, batch.shape[0], chunk):
            context = self.context(self.standardize_x(batch[start : start + chunk].to(device)))
            out.append(self.unstandardize_theta(self._sample_standardized(context, int(n))).cpu())
        samples = torch.cat(out)
        return samples[0] if single else samples

    def log_prob(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(theta | x) in the units of theta: theta (m, d) with one x, or theta (m, d) with x (m, ...)."""
        self._require_fitted()
        if not self.has_log_prob:
            raise NotImplementedError(f"{type(self).__name__} has no tractable density; use sample()")
        device = self.theta_mean.device
        theta = torch.as_tensor(theta, dtype=torch.float32).to(device)
        x = self._check_x(x).to(device)
        if x.dim() == self.event_ndim:
            x = x.unsqueeze(0).expand(theta.shape[0], *x.shape)
        u, log_jac = self.standardize_theta(theta)
        return self._log_prob_standardized(u, self.context(self.standardize_x(x))) + log_jac

    @torch.no_grad()
    def log_prob_per_observation(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(theta_ij | x_i) for theta (b, n, d) and x (b, ...) -> (b, n): each x is embedded once, not n times
        (what a coverage check over many samples per observation needs; with a set encoder it is most of the work)."""
        self._require_fitted()
        if not self.has_log_prob:
            raise NotImplementedError(f"{type(self).__name__} has no tractable density; use sample()")
        self.eval()
        device = self.theta_mean.device
        theta = torch.as_tensor(theta, dtype=torch.float32).to(device)
        b, n, d = theta.shape
        context = self.context(self.standardize_x(self._check_x(x).to(device)))  # (b, c)
        u, log_jac = self.standardize_theta(theta.reshape(b * n, d))
        context = context.unsqueeze(1).expand(b, n, context.shape[-1]).reshape(b * n, -1)
        return (self._log_prob_standardized(u, context) + log_jac).reshape(b, n).cpu()

    # ---- persistence ----
    def to_payload(self) -> dict:
        """Tensors and plain containers only: what ``save`` writes (and what a Ray task can return)."""
        self._require_fitted()
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        return {
            "estimator": type(self).__name__,
            "hparams": self.hparams,
            "state": state,
            "custom_embedding": self.custom_embedding,
        }

    def save(self, path: str | Path) -> Path:
        return atomic_torch_save(self.to_payload(), path)

    @classmethod
    def load(
        cls, path: str | Path, embedding: nn.Module | None = None, map_location: str | torch.device = "cpu"
    ) -> AmortizedEstimator:
        return cls.from_payload(load_checkpoint(path, map_location=map_location), embedding, source=str(path))

    @classmethod
    def from_payload(
        cls, payload: dict, embedding: nn.Module | None = None, source: str = "payload"
    ) -> AmortizedEstimator:
        path = source
        name = payload.get("estimator") if isinstance(payload, dict) else None
        if name == "EstimatorMixture" and cls is AmortizedEstimator:  # a deep ensemble (inference.mixture)
            from hadrinv.inference.mixture import EstimatorMixture

            return EstimatorMixture.from_payload(payload, embedding, source)
        if name not in ESTIMATORS:
            raise ValueError(f"{path}: not a saved estimator (found {name!r})")
        target = ESTIMATORS[name]
        if cls is not AmortizedEstimator and not issubclass(target, cls):
            raise ValueError(f"{path}: holds a {name}, not a {cls.__name__}")
        hparams = dict(payload["hparams"])
        if payload.get("custom_embedding"):
            if embedding is None:
                raise ValueError(
                    f"{path}: was trained with a custom embedding module; pass embedding=<the same architecture>"
                )
            hparams["embedding"] = embedding
        theta_dim, x_dim = hparams.pop("theta_dim"), hparams.pop("x_dim")
        estimator = target(theta_dim, x_dim, **hparams)
        estimator.load_state_dict(payload["state"])
        estimator.eval()
        return estimator


def _progress_bar(total: int, description: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="epoch", leave=False)
