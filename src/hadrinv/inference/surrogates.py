"""Precision regression surrogates whose every prediction carries an uncertainty.

The method of Badger, Butter, Luchmann, Pitz and Plehn, "Loop amplitudes from precision networks"
(arXiv:2206.14831): a network regresses a scalar target y (for amplitudes, a standardised log|M|^2) from
features x (N, F) and states, point by point, a statistical uncertainty (what more training data would
remove) and a systematic one (what the network cannot resolve: noise in y, or limited expressivity):

    surrogate = fit_surrogate(x, y, SurrogateSettings(method="bnn"))
    prediction = surrogate.predict(x_new)      # mean, sigma_stat, sigma_syst, sigma_tot: (N,) float64
    surrogate.save("amplitude.pt"); Surrogate.load("amplitude.pt")

Methods: ``bnn``, a Bayesian network of mean-field Gaussian weights with a heteroscedastic head;
``ensemble``, a deep ensemble of heteroscedastic networks; ``mlp``, a plain regressor on the squared error
that states no uncertainty. Two training options of the talk continue the normal training on a training
set in which some points occur more often: loss boosting (points whose residual exceeds a few sigma_tot)
and performance boosting (the points of largest sigma_tot). Nothing here knows a particular physics.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional

from hadrinv.data.io import atomic_torch_save

# a floor on the predicted log width in standardised units, only to keep exp() finite early in training
_LOG_SIGMA_MIN = -12.0
# weight draws (bnn) behind each boosting selection: enough for a stable sigma_tot ranking, cheap on a large set
_SELECTION_SAMPLES = 20


@dataclass(frozen=True)
class SurrogateSettings:
    """Network, training and boosting settings. ``layers`` hidden layers of ``hidden`` units (4 x 128:
    the paper's size); the learning rate falls along a half cosine from ``lr`` to zero over ``epochs``
    and, for each boosting round, from ``lr / 10`` to zero over ``boost_epochs``."""

    method: Literal["bnn", "ensemble", "mlp"] = "bnn"
    hidden: int = 128
    layers: int = 4
    epochs: int = 200
    batch: int = 256
    lr: float = 1e-3
    members: int = 5
    prior_sigma: float = 1.0
    boost: Literal["none", "loss", "performance"] = "none"
    loss_boost_factor: int = 5
    loss_boost_rounds: int = 4
    loss_boost_threshold: float = 2.0
    performance_boost_points: int = 200
    performance_boost_factor: int = 3
    performance_boost_rounds: int = 20
    boost_epochs: int = 20
    seed: int = 0

    def __post_init__(self):
        if self.method not in ("bnn", "ensemble", "mlp"):
            raise ValueError(f"method must be 'bnn', 'ensemble' or 'mlp', got {self.method!r}")
        if self.boost not in ("none", "loss", "performance"):
            raise ValueError(f"boost must be 'none', 'loss' or 'performance', got {self.boost!r}")
        positive = ("hidden", "layers", "epochs", "batch", "members", "boost_epochs", "performance_boost_points")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.method == "ensemble" and self.members < 2:
            raise ValueError(f"an ensemble needs at least 2 members for a spread, got {self.members}")
        if not (self.lr > 0 and self.prior_sigma > 0 and self.loss_boost_threshold > 0):
            raise ValueError("lr, prior_sigma and loss_boost_threshold must be positive")


@dataclass
class Prediction:
    """Per-point mean and uncertainties, (N,) float64 in the units of y."""

    mean: Tensor
    sigma_stat: Tensor
    sigma_syst: Tensor

    @property
    def sigma_tot(self) -> Tensor:
        return torch.sqrt(self.sigma_stat**2 + self.sigma_syst**2)


# SiLU rather than ReLU: a smooth (C-infinity) network fits a smooth target without the kinks of a
# piecewise-linear one, whose error floor otherwise limits the precision reached at long training.
_activation = functional.silu


def _stacked_forward(x: Tensor, weights: list[tuple[Tensor, Tensor]]) -> Tensor:
    """M networks at once: x (B, F) or (M, B, F), weights [(W (M, in, out), b (M, 1, out))] -> (M, B, out)."""
    for i, (w, b) in enumerate(weights):
        x = torch.baddbmm(b, x.expand(w.shape[0], *x.shape[-2:]), w)
        if i < len(weights) - 1:
            x = _activation(x)
    return x


def _sizes(features: int, hidden: int, layers: int, outputs: int) -> list[tuple[int, int]]:
    sizes = [features] + [hidden] * layers + [outputs]
    return list(zip(sizes[:-1], sizes[1:]))


class _StackedMLP(nn.Module):
    """``members`` independent MLPs evaluated as one batched product per layer: an ensemble costs one pass."""

    def __init__(self, members: int, features: int, hidden: int, layers: int, outputs: int):
        super().__init__()
        self.w, self.b = nn.ParameterList(), nn.ParameterList()
        for fan_in, fan_out in _sizes(features, hidden, layers, outputs):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default, member by member
            self.w.append(nn.Parameter(torch.empty(members, fan_in, fan_out).uniform_(-bound, bound)))
            self.b.append(nn.Parameter(torch.empty(members, 1, fan_out).uniform_(-bound, bound)))

    def weights(self) -> list[tuple[Tensor, Tensor]]:
        return list(zip(self.w, self.b))

    def forward(self, x: Tensor) -> Tensor:
        return _stacked_forward(x, self.weights())


class _BayesMLP(nn.Module):
    """MLP of mean-field Gaussian weights q(w) = N(mu, sigma^2), each weight and bias its own (mu, sigma)."""

    def __init__(self, features: int, hidden: int, layers: int, outputs: int):
        super().__init__()
        self.mu_w, self.log_sigma_w = nn.ParameterList(), nn.ParameterList()
        self.mu_b, self.log_sigma_b = nn.ParameterList(), nn.ParameterList()
        # small initial widths (log sigma^2 = -9): training starts from an almost deterministic network and
        # the KL term widens the weights the data leave free
        start = -4.5
        for fan_in, fan_out in _sizes(features, hidden, layers, outputs):
            bound = 1.0 / math.sqrt(fan_in)
            self.mu_w.append(nn.Parameter(torch.empty(fan_in, fan_out).uniform_(-bound, bound)))
            self.mu_b.append(nn.Parameter(torch.empty(fan_out).uniform_(-bound, bound)))
            self.log_sigma_w.append(nn.Parameter(torch.full((fan_in, fan_out), start)))
            self.log_sigma_b.append(nn.Parameter(torch.full((fan_out,), start)))

    def forward(self, x: Tensor) -> Tensor:
        """One weight draw per point by local reparametrisation: the pre-activations' Gaussian is sampled
        instead of the weights, which gives independent draws across a batch and gradients of lower variance."""
        n = len(self.mu_w)
        for i in range(n):
            mean = x @ self.mu_w[i] + self.mu_b[i]
            var = (x * x) @ torch.exp(2 * self.log_sigma_w[i]) + torch.exp(2 * self.log_sigma_b[i])
            x = mean + torch.sqrt(var) * torch.randn_like(mean)
            if i < n - 1:
                x = _activation(x)
        return x.unsqueeze(0)

    def draw(self, samples: int, generator: torch.Generator | None) -> list[tuple[Tensor, Tensor]]:
        """``samples`` whole networks w ~ q(w), stacked like an ensemble's members: one draw serves every point,
        so the spread over draws is the spread of functions."""
        out = []
        for mu_w, ls_w, mu_b, ls_b in zip(self.mu_w, self.log_sigma_w, self.mu_b, self.log_sigma_b):
            eps_w = torch.randn((samples, *mu_w.shape), generator=generator, device=mu_w.device)
            eps_b = torch.randn((samples, 1, mu_b.shape[0]), generator=generator, device=mu_b.device)
            out.append((mu_w + torch.exp(ls_w) * eps_w, mu_b + torch.exp(ls_b) * eps_b))
        return out

    def kl(self, prior_sigma: float) -> Tensor:
        """KL[q(w) || N(0, prior_sigma^2)] summed over all weights, in closed form."""
        total = torch.zeros((), device=self.mu_w[0].device)
        for mu, log_sigma in zip([*self.mu_w, *self.mu_b], [*self.log_sigma_w, *self.log_sigma_b]):
            var_ratio = torch.exp(2 * log_sigma) / prior_sigma**2
            total = total + 0.5 * (var_ratio - 1 + mu.pow(2) / prior_sigma**2).sum()
            total = total + (math.log(prior_sigma) - log_sigma).sum()
        return total


def _gaussian_nll(output: Tensor, y: Tensor) -> Tensor:
    """|mean - y|^2 / (2 sigma^2) + log sigma per point (the constant log sqrt(2 pi) left out)."""
    log_sigma = output[..., 1].clamp(min=_LOG_SIGMA_MIN)
    return 0.5 * ((output[..., 0] - y) * torch.exp(-log_sigma)).pow(2) + log_sigma


def loss_boost_selection(residual: Tensor, sigma_tot: Tensor, threshold: float) -> Tensor:
    """Indices of the points with |residual| > threshold * sigma_tot: those the network misses by more than
    it admits to."""
    return torch.nonzero(residual.abs() > threshold * sigma_tot).squeeze(-1)


def performance_boost_selection(score: Tensor, points: int) -> Tensor:
    """Indices of the ``points`` largest scores (sigma_tot: where the network is least sure of itself)."""
    return torch.topk(score, min(points, score.numel())).indices


class Surrogate(nn.Module):
    """A trained surrogate: standardisation of x and y, the network, the settings and the training history."""

    def __init__(self, features: int, settings: SurrogateSettings):
        super().__init__()
        self.features, self.settings = int(features), settings
        s = settings
        if s.method == "bnn":
            self.net: nn.Module = _BayesMLP(features, s.hidden, s.layers, 2)
        else:
            members, outputs = (s.members, 2) if s.method == "ensemble" else (1, 1)
            self.net = _StackedMLP(members, features, s.hidden, s.layers, outputs)
        self.register_buffer("x_mean", torch.zeros(features, dtype=torch.float64))
        self.register_buffer("x_scale", torch.ones(features, dtype=torch.float64))
        self.register_buffer("y_mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("y_scale", torch.ones((), dtype=torch.float64))
        # one factor on both uncertainties, measured on held-out points by `calibrate` (1: as trained)
        self.register_buffer("sigma_scale", torch.ones((), dtype=torch.float64))
        self.history: dict = {}

    @property
    def method(self) -> str:
        return self.settings.method

    def standardize(self, x: Tensor) -> Tensor:
        """Features as the network sees them: standardised, float32, on the surrogate's device."""
        x = torch.as_tensor(x).to(self.x_mean.device, torch.float64)
        return ((x - self.x_mean) / self.x_scale).float()

    def _loss(self, x: Tensor, y: Tensor, rows: int, mse: bool) -> Tensor:
        """Training loss of one batch; x (B, F) for the bnn, (M, B, F) per member otherwise."""
        output = self.net(x)
        if self.method == "mlp" or mse:
            return (output[..., 0] - y).pow(2).mean(-1).sum()
        if self.method == "ensemble":
            return _gaussian_nll(output, y).mean(-1).sum()  # members are independent: their losses add
        # the ELBO per training row: the KL is shared by every row an epoch visits (boosted ones included)
        return _gaussian_nll(output, y).mean() + self.net.kl(self.settings.prior_sigma) / rows

    @torch.no_grad()
    def _moments(
        self, xs: Tensor, samples: int, chunk: int, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(mean, sigma_stat, sigma_syst) in standardised units, float64, for standardised features xs."""
        if self.method == "bnn":
            if samples < 2:
                raise ValueError(f"a spread over weight draws needs samples >= 2, got {samples}")
            weights = self.net.draw(samples, generator)
        else:
            weights = self.net.weights()
        stack = weights[0][0].shape[0]
        step = max(1, chunk // stack)  # chunk bounds points x draws (members) in memory at once
        parts = [_stacked_forward(xs[i : i + step], weights).double() for i in range(0, len(xs), step)]
        output = torch.cat(parts, dim=1) if parts else xs.new_zeros((stack, 0, 2), dtype=torch.float64)
        mean = output[..., 0].mean(0)
        if self.method == "mlp":
            zero = torch.zeros_like(mean)
            return mean, zero, zero
        variance = torch.exp(2 * output[..., 1].clamp(min=_LOG_SIGMA_MIN)).mean(0)
        return mean, output[..., 0].std(0), variance.sqrt()

    @torch.no_grad()
    def predict(
        self,
        x: Tensor,
        samples: int = 50,
        chunk: int = 65536,
        generator: torch.Generator | None = None,
        seed: int | None = None,
    ) -> Prediction:
        """Mean and uncertainties at x (N, F), in the units of y, on x's device. ``samples``: weight draws of
        the bnn (ignored otherwise); ``seed`` or ``generator`` (on the surrogate's device) fixes them.
        ``chunk`` bounds the points times draws (or members) evaluated at once. An mlp states no uncertainty:
        its sigmas are zero rather than an invented spread."""
        x = torch.as_tensor(x)
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"x has shape {tuple(x.shape)}; expected (N, {self.features})")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x holds non-finite values")
        if generator is None and seed is not None:
            generator = torch.Generator(device=self.x_mean.device).manual_seed(seed)
        mean, stat, syst = self._moments(self.standardize(x), samples, chunk, generator)
        scale = self.y_scale
        stat, syst = stat * self.sigma_scale, syst * self.sigma_scale
        return Prediction(
            (mean * scale + self.y_mean).to(x.device), (stat * scale).to(x.device), (syst * scale).to(x.device)
        )

    @torch.no_grad()
    def calibrate(self, x: Tensor, y: Tensor, samples: int = 50, seed: int | None = 0) -> float:
        """Scale both uncertainties so that 68.27 % of held-out points (x, y) lie within one sigma_tot.

        Why: a network fitted to a deterministic target learns its widths from training residuals, and a
        Bayesian network's widths also absorb the scatter of its weight draws, so that its stated sigma_tot
        comes out too wide (or, after overfitting, too narrow) by a roughly constant factor; a pull
        distribution that is Gaussian but of the wrong width is mended by one factor, measured on points
        the fit has not seen. Returns the factor, also kept (and saved) in ``sigma_scale``.
        """
        if self.method == "mlp":
            raise ValueError("an mlp states no uncertainty to calibrate")
        x, y = _check_data(x, y, "")
        if len(x) < 20:
            raise ValueError(f"{len(x)} held-out points; calibration needs at least 20")
        self.sigma_scale.fill_(1.0)
        p = self.predict(x, samples=samples, seed=seed)
        pulls = ((y.to(p.mean.device) - p.mean) / p.sigma_tot).abs()
        factor = float(torch.quantile(pulls, 0.6827))
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"calibration failed: the 68 % quantile of |pull| is {factor}")
        self.sigma_scale.fill_(factor)
        self.history["sigma_scale"] = factor
        return factor

    def save(self, path: str | Path) -> Path:
        """Plain tensors and settings, written atomically (temporary file, then rename)."""
        state = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        payload = {
            "format": "hadrinv.surrogate/1",
            "features": self.features,
            "settings": dataclasses.asdict(self.settings),
            "state": state,
            "history": self.history,
        }
        return atomic_torch_save(payload, path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Surrogate:
        payload = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != "hadrinv.surrogate/1":
            raise ValueError(f"{path} is not a surrogate checkpoint")
        surrogate = cls(payload["features"], SurrogateSettings(**payload["settings"]))
        surrogate.load_state_dict(payload["state"])
        surrogate.history = payload["history"]
        return surrogate.to(map_location)


def _check_data(x: Tensor, y: Tensor, name: str) -> tuple[Tensor, Tensor]:
    x, y = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    if x.dim() != 2:
        raise ValueError(f"x{name} has shape {tuple(x.shape)}; expected (N, F)")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y{name} has shape {tuple(y.shape)}; expected ({len(x)},) to match x{name}")
    for label, t in (("x", x), ("y", y)):
        if not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).reshape(len(t), -1).any(-1).nonzero()[0])
            raise ValueError(f"{label}{name} holds non-finite values (first in row {bad})")
    return x, y


def fit_surrogate(
    x: Tensor,
    y: Tensor,
    settings: SurrogateSettings,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    x_val: Tensor | None = None,
    y_val: Tensor | None = None,
) -> Surrogate:
    """Train a surrogate of y (N,) on features x (N, F), then boost if the settings ask for it.

    ``history``: "loss" (mean training loss per epoch), "val_loss" (the data term on x_val, y_val per epoch:
    squared error for an mlp, the Gaussian negative log-likelihood otherwise), "boost" (one record per
    round: how many points it selected, the extra rows, the selection's bounds, its seconds) and "seconds".
    """
    x, y = _check_data(x, y, "")
    if len(x) < settings.batch:
        raise ValueError(f"{len(x)} training rows are fewer than one batch of {settings.batch}")
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    if x_val is not None:
        x_val, y_val = _check_data(x_val, y_val, "_val")
        if x_val.shape[1] != x.shape[1]:
            raise ValueError(f"x_val has {x_val.shape[1]} features; x has {x.shape[1]}")
    started = time.perf_counter()
    device_ = torch.device(device)
    with torch.random.fork_rng(devices=[device_] if device_.type == "cuda" else []):
        torch.manual_seed(settings.seed)
        if device_.type == "cuda":
            torch.cuda.manual_seed(settings.seed)
        surrogate = Surrogate(x.shape[1], settings).to(device_)
        surrogate.x_mean.copy_(x.mean(0))
        surrogate.x_scale.copy_(torch.where(x.std(0) > 0, x.std(0), 1.0))  # a constant feature stays as it is
        surrogate.y_mean.copy_(y.mean())
        surrogate.y_scale.copy_(y.std() if float(y.std()) > 0 else torch.ones(()))
        trainer = _Trainer(surrogate, x, y, x_val, y_val, log)
        base = torch.arange(len(x), device=device_)
        # a deep ensemble learns its means on the squared error first: under the likelihood from the start,
        # a member can explain a poor early mean by a wide sigma and learns the mean more slowly
        warmup = max(1, settings.epochs // 10) if settings.method == "ensemble" else 0
        trainer.train(base, warmup, settings.lr, mse=True, anneal=False)
        trainer.train(base, settings.epochs - warmup, settings.lr)
        if settings.boost != "none":
            trainer.boost()
    surrogate.history = trainer.history
    surrogate.history["seconds"] = time.perf_counter() - started
    return surrogate


class _Trainer:
    """The training loop shared by all methods, and the two boosting schemes."""

    def __init__(self, surrogate: Surrogate, x, y, x_val, y_val, log):
        self.s, self.log = surrogate, log
        self.settings = surrogate.settings
        device = surrogate.x_mean.device
        self.xs = surrogate.standardize(x)
        self.ys = ((y.to(device) - surrogate.y_mean) / surrogate.y_scale).float()
        self.val = None
        if x_val is not None:
            self.val = (surrogate.standardize(x_val), ((y_val.to(device) - surrogate.y_mean) / surrogate.y_scale))
        self.optimizer = torch.optim.Adam(surrogate.parameters(), lr=self.settings.lr)
        self.history: dict = {"loss": [], "val_loss": [], "boost": [], "epochs": 0, "n_train": len(x)}
        self.generator = torch.Generator(device=device).manual_seed(self.settings.seed + 1)

    def train(self, pool: Tensor, epochs: int, lr: float, mse: bool = False, anneal: bool = True) -> None:
        """``epochs`` passes over the index tensor ``pool`` (training rows, boosted ones repeated), each member
        of an ensemble in its own order; the rate falls along a half cosine from lr to zero (or stays at lr)."""
        s, batch = self.settings, self.settings.batch
        stack = s.members if s.method == "ensemble" else 1
        batches = len(pool) // batch  # the incomplete last batch is left out: shuffling visits it next epoch
        total_steps, step = max(1, epochs * batches), 0
        for _ in range(epochs):
            order = pool[torch.argsort(torch.rand(stack, len(pool), device=pool.device), dim=1)]
            running = torch.zeros((), device=pool.device)
            for i in range(batches):
                index = order[:, i * batch : (i + 1) * batch]
                if s.method == "bnn":
                    xb, yb = self.xs[index[0]], self.ys[index[0]]
                else:
                    xb, yb = self.xs[index], self.ys[index]
                for group in self.optimizer.param_groups:
                    group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total_steps)) if anneal else lr
                loss = self.s._loss(xb, yb, len(pool), mse)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                running += loss.detach()
                step += 1
            self.history["loss"].append(float(running) / max(batches, 1))
            if self.val is not None:
                self.history["val_loss"].append(self._validation_loss())
            self.history["epochs"] += 1
            done = self.history["epochs"]
            if self.log and (done % max(1, s.epochs // 10) == 0):
                self.log(f"{s.method} epoch {done}: loss {self.history['loss'][-1]:.5g}")

    @torch.no_grad()
    def _validation_loss(self) -> float:
        xs, ys = self.val
        mean, stat, syst = self.s._moments(xs, _SELECTION_SAMPLES, 65536, self.generator)
        if self.settings.method == "mlp":
            return float((mean - ys).pow(2).mean())
        sigma = torch.sqrt(stat**2 + syst**2)
        return float((0.5 * ((mean - ys) / sigma).pow(2) + torch.log(sigma)).mean())

    def _standing(self) -> tuple[Tensor, Tensor]:
        """|residual| and sigma_tot on the training set, standardised units."""
        mean, stat, syst = self.s._moments(self.xs, _SELECTION_SAMPLES, 65536, self.generator)
        return (mean - self.ys.double()).abs(), torch.sqrt(stat**2 + syst**2)

    def boost(self) -> None:
        s = self.settings
        base = torch.arange(len(self.xs), device=self.xs.device)
        rounds = s.loss_boost_rounds if s.boost == "loss" else s.performance_boost_rounds
        for r in range(rounds):
            started = time.perf_counter()
            residual, sigma = self._standing()
            if s.boost == "loss":
                # a plain regressor states no sigma per point: its threshold is in units of its RMS residual
                scale = residual.pow(2).mean().sqrt().expand_as(residual) if s.method == "mlp" else sigma
                chosen = loss_boost_selection(residual, scale, s.loss_boost_threshold)
                score, factor = residual / scale, s.loss_boost_factor
            else:
                # a plain regressor states no sigma: its least certain points are taken to be its worst-fitted ones
                score = residual if s.method == "mlp" else sigma
                chosen = performance_boost_selection(score, s.performance_boost_points)
                factor = s.performance_boost_factor
            mask = torch.zeros(len(score), dtype=torch.bool, device=score.device)
            mask[chosen] = True
            pool = torch.cat([base, chosen.repeat(factor)])
            self.train(pool, s.boost_epochs, s.lr / 10)
            record = {
                "kind": s.boost,
                "round": r,
                "selected": int(chosen.numel()),
                "rows": int(len(pool)),
                # the selection's edge: every chosen score is above every other one (loss: in units of sigma_tot)
                "min_selected_score": float(score[mask].min()) if bool(mask.any()) else math.nan,
                "max_other_score": float(score[~mask].max()) if bool((~mask).any()) else math.nan,
                "seconds": time.perf_counter() - started,
            }
            self.history["boost"].append(record)
            if self.log:
                self.log(f"{s.boost} boosting round {r + 1}/{rounds}: {record['selected']} points selected")
