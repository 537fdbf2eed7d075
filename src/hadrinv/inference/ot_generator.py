"""An event generator trained by optimal transport, with attention across kinematic quantities.

The BESIII/Wuhan "AI high-precision Monte Carlo" method: a network turns random noise into events, and the
loss is the optimal-transport distance between a generated batch and a batch drawn from the target events.
Each step draws a target batch, feeds fresh noise through the attention model, computes the transport loss
and updates the model. Every kinematic quantity is a token, so self-attention models the relations between
quantities explicitly. Highly peaked quantities (a narrow mass) are hard for a network to produce directly;
they are mapped by a sinh-arcsinh (Johnson-SU family) transform Z = sinh(epsilon + delta * asinh(X_std)) to
a low-kurtosis Z, which the network generates and which is mapped back exactly.

Event generators share one interface (they learn the distribution of events itself, not a posterior):

    gen = OTAttentionGenerator(features=3, settings=OTGeneratorSettings(steps=3000))
    gen.fit(x, weight=None, x_val=x_val)          # -> gen; x (n, F) in the data's units, weight (n,) >= 0
    x_new, w_new = gen.sample(100_000, generator=torch.Generator().manual_seed(1))
    # x_new (n, F) float64 in the data's units, w_new (n,) float64 event weights (ones for this generator)
    gen.save("gen.pt"); gen = OTAttentionGenerator.load("gen.pt", device="cpu")

``fit`` returns the generator itself and records ``history``; ``sample`` with the same torch generator seed
gives the same events, also after ``save``/``load``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn

from hadrinv.data.io import atomic_torch_save, load_checkpoint

_FORMAT = "hadrinv.OTAttentionGenerator"
_ARCHITECTURE = ("d_model", "heads", "layers", "feedforward", "noise_dim")
# bounds on delta: below ~0.05 the inverse sinh((asinh(z) - eps) / delta) overflows float64 for |z| of a
# few tens, and above ~10 the transform only stretches the tails of an already light-tailed quantity
_DELTA_BOUNDS = (0.05, 10.0)


def _as_float64(x, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.as_tensor(x).to(device=device, dtype=torch.float64)


def _check_events(x, name: str, features: int | None, device, min_rows: int = 2) -> torch.Tensor:
    x = _as_float64(x, device)
    if x.dim() != 2 or (features is not None and x.shape[1] != features):
        want = f"(n, {features})" if features is not None else "(n, features)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values in {int((~torch.isfinite(x)).any(1).sum())} rows")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} has {x.shape[0]} rows, need at least {min_rows}")
    return x


def _check_weight(weight, n: int, name: str, device) -> torch.Tensor | None:
    if weight is None:
        return None
    w = _as_float64(weight, device)
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        # a transport loss compares probability measures: negative weights (NLO events) must be
        # unweighted or resampled first
        raise ValueError(f"{name} must be finite and non-negative with a positive sum")
    return w


def _weighted_moments(x: torch.Tensor, weight: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-column weighted mean and variance (population, i.e. divided by the total weight)."""
    w = torch.ones(x.shape[0], dtype=x.dtype, device=x.device) if weight is None else weight
    w = (w / w.sum()).unsqueeze(1)
    mean = (w * x).sum(0)
    var = (w * (x - mean) ** 2).sum(0)
    # a constant column's weighted sum is off by rounding (5000 times 2.0 gave a mean 4e-16 away and a variance
    # of 2e-31), which made its kurtosis -2 instead of NaN and its scale 1e-16 instead of 1: exact values here
    if x.shape[0]:
        constant = (x == x[:1]).all(0)
        mean, var = torch.where(constant, x[0], mean), torch.where(constant, torch.zeros_like(var), var)
    return mean, var


def excess_kurtosis(x, weight=None) -> torch.Tensor:
    """Per-column (weighted) excess kurtosis of x (n, F); 0 for a Gaussian, NaN for a constant column."""
    x = _as_float64(x)
    x = x.unsqueeze(1) if x.dim() == 1 else x
    w = None if weight is None else _as_float64(weight, x.device)
    mean, var = _weighted_moments(x, w)
    wn = torch.ones(x.shape[0], dtype=x.dtype, device=x.device) if w is None else w
    wn = (wn / wn.sum()).unsqueeze(1)
    fourth = (wn * (x - mean) ** 4).sum(0)
    return torch.where(var > 0, fourth / var.clamp(min=1e-300) ** 2 - 3.0, torch.nan)


def peaked_features(x, kurtosis_threshold: float = 3.0, weight=None) -> list[int]:
    """Indices of the columns of x (n, F) whose excess kurtosis exceeds the threshold.

    The default 3 is the Laplace distribution's: a column with heavier tails around a sharper peak than a
    Laplace (a narrow resonance with little background has tens to thousands) is worth the Johnson-SU
    transform, while Gaussian (0), flat (-1.2) or mildly skewed columns are left alone. Constant columns are
    never picked. A flat background in a bounded window lowers the kurtosis: a spike holding a fraction f of
    the events on a uniform has 1.8 / (1 - f) - 3, below 3 for f < 0.7 (a Breit-Wigner of width 0.01 with 30 %
    flat background in a 0.4 window measured 2.2), so such a column needs a lower threshold.
    """
    kurt = excess_kurtosis(x, weight)
    return [i for i, k in enumerate(kurt.tolist()) if math.isfinite(k) and k > kurtosis_threshold]


class JohnsonSU:
    """Per-feature sinh-arcsinh transform z = sinh(epsilon + delta * asinh((x - xi) / lambda)).

    With Z standard normal, X = xi + lambda * sinh((asinh(Z) - epsilon) / delta) is the talk's Johnson-SU-type
    family (Jones and Pewsey's sinh-arcsinh distribution): epsilon sets the skewness, delta < 1 heavy tails
    around a sharp peak. ``fit`` chooses (xi, lambda, epsilon, delta) per selected feature by maximum
    likelihood of that family, so the transformed values are as close to normal as the family allows; the
    other columns pass through unchanged. With lambda > 0 and delta > 0 the map is strictly increasing and
    its inverse is closed-form, so ``inverse(forward(x))`` returns x to rounding.

    Maximum likelihood rather than matching skewness and kurtosis: the sample kurtosis of a resonance on a
    background is dominated by its few most extreme events (a Breit-Wigner has no finite moments), while the
    likelihood uses every event with bounded influence. scipy.stats.johnsonsu.fit fits the other member of
    the family (asinh of X normal, not sinh of it), so the likelihood here is written out and minimised by
    L-BFGS-B with torch gradients, from a few starting widths so that a narrow peak on a wide background is
    found whichever scale dominates.
    """

    def __init__(self, features: Sequence[int]):
        self.features = [int(i) for i in features]
        k = len(self.features)
        self.xi = torch.zeros(k, dtype=torch.float64)
        self.lam = torch.ones(k, dtype=torch.float64)
        self.epsilon = torch.zeros(k, dtype=torch.float64)
        self.delta = torch.ones(k, dtype=torch.float64)

    def to(self, device: torch.device | str) -> JohnsonSU:
        self.xi, self.lam = self.xi.to(device), self.lam.to(device)
        self.epsilon, self.delta = self.epsilon.to(device), self.delta.to(device)
        return self

    @staticmethod
    def _nll(params: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        xi, log_lam, eps, log_delta = params
        lam, delta = log_lam.exp(), log_delta.exp()
        u = (x - xi) / lam
        # clamped only inside the likelihood: sinh(s)^2 overflows float64 beyond |s| ~ 355
        s = (eps + delta * torch.asinh(u)).clamp(-300.0, 300.0)
        z = torch.sinh(s)
        log_cosh = s.abs() + torch.log1p(torch.exp(-2.0 * s.abs())) - math.log(2.0)
        log_p = -0.5 * z**2 + log_cosh + log_delta - 0.5 * torch.log1p(u**2) - log_lam
        # the constant -log(2 pi) / 2 is left out: it does not move the minimum
        return -(w * log_p).sum()

    def _fit_one(self, x: torch.Tensor, w: torch.Tensor) -> tuple[float, float, float, float]:
        median = float(x.median())
        mad = float((x - median).abs().median()) * 1.4826
        spread = float(x.std())
        base = mad if mad > 0 else (spread if spread > 0 else 1.0)
        best, best_value = None, math.inf
        bounds = [(None, None), (None, None), (None, None), tuple(math.log(b) for b in _DELTA_BOUNDS)]
        # two starts, at the bulk's scale and a tenth of it: a guard against a local optimum at the wrong scale
        for width, delta0 in ((base, 1.0), (base / 10, 0.5)):
            start = np.array([median, math.log(width), 0.0, math.log(delta0)])

            def value_and_grad(p: np.ndarray) -> tuple[float, np.ndarray]:
                params = torch.tensor(p, dtype=torch.float64, requires_grad=True)
                value = self._nll(params, x, w)
                (grad,) = torch.autograd.grad(value, params)
                value, grad = float(value.detach()), grad.numpy()
                if not math.isfinite(value) or not np.isfinite(grad).all():
                    return 1e300, np.zeros(4)
                return value, grad

            result = minimize(value_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds)
            if math.isfinite(result.fun) and result.fun < best_value:
                best, best_value = result.x, float(result.fun)
        if best is None:
            raise ValueError("the Johnson-SU likelihood is not finite at any start; is the column constant?")
        return float(best[0]), math.exp(best[1]), float(best[2]), math.exp(best[3])

    def fit(self, x, weight=None, max_rows: int = 20_000, seed: int = 0) -> JohnsonSU:
        """Fit each selected column of x (n, F) on at most ``max_rows`` randomly chosen rows (the four
        parameters are fixed to well below a percent by that many events; more only costs time)."""
        x = _check_events(x, "x", None, "cpu")
        w = _check_weight(weight, x.shape[0], "weight", "cpu")
        if x.shape[0] > max_rows:
            rows = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:max_rows]
            x, w = x[rows], (None if w is None else w[rows])
        w = torch.full((x.shape[0],), 1.0 / x.shape[0], dtype=torch.float64) if w is None else w / w.sum()
        device = self.xi.device
        fitted = [self._fit_one(x[:, i], w) for i in self.features]
        for j, name in enumerate(("xi", "lam", "epsilon", "delta")):
            setattr(self, name, torch.tensor([f[j] for f in fitted], dtype=torch.float64, device=device))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Data space -> network space: the selected columns become low-kurtosis z, the others are copied."""
        if not self.features:
            return x
        z = x.clone()
        u = (x[:, self.features] - self.xi.to(x.dtype)) / self.lam.to(x.dtype)
        z[:, self.features] = torch.sinh(self.epsilon.to(x.dtype) + self.delta.to(x.dtype) * torch.asinh(u))
        return z

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """Network space -> data space, the exact inverse of ``forward``."""
        if not self.features:
            return z
        x = z.clone()
        u = torch.sinh((torch.asinh(z[:, self.features]) - self.epsilon.to(z.dtype)) / self.delta.to(z.dtype))
        x[:, self.features] = self.xi.to(z.dtype) + self.lam.to(z.dtype) * u
        return x

    __call__ = forward

    def state(self) -> dict:
        return {
            "features": torch.tensor(self.features, dtype=torch.int64),
            "xi": self.xi.cpu(),
            "lam": self.lam.cpu(),
            "epsilon": self.epsilon.cpu(),
            "delta": self.delta.cpu(),
        }

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str = "cpu") -> JohnsonSU:
        transform = cls(state["features"].tolist())
        transform.xi, transform.lam = state["xi"], state["lam"]
        transform.epsilon, transform.delta = state["epsilon"], state["delta"]
        return transform.to(device)


@dataclass
class OTGeneratorSettings:
    # architecture (fixed when the generator is built)
    d_model: int = 64  # size of each quantity's token
    heads: int = 4
    layers: int = 3  # transformer encoder blocks
    feedforward: int | None = None  # hidden size of each block's MLP; None: 2 * d_model
    noise_dim: int | None = None  # None: one noise dimension per feature
    # training
    steps: int = 2000
    batch: int = 1024  # generated and target events per step
    lr: float = 1e-3
    final_lr_fraction: float = 0.1  # cosine decay of the step size to lr * this over the steps
    blur: float = 0.02  # Sinkhorn blur (epsilon^(1/p)) in standardised units: the smallest resolved scale
    # epsilon-scaling ratio (geomloss's default): 0.9 is more accurate and 5x slower (1.4 s against 0.26 s per
    # step of 1024 events in 5 dimensions on 2 CPU threads), which made the attention network's share negligible
    scaling: float = 0.5
    backend: str = "tensorized"  # geomloss backend; "online" (pykeops) for batches above ~10^4
    seed: int = 0
    johnson_su: bool = True
    kurtosis_threshold: float = 3.0
    # the columns to transform; None: those whose excess kurtosis exceeds kurtosis_threshold. A narrow peak on
    # a broad background (a resonance in a mass spectrum) has a low kurtosis and is named here instead
    johnson_su_features: tuple[int, ...] | None = None
    johnson_su_rows: int = 20_000
    validate_every: int = 100  # steps between validation losses and log lines
    validation_rows: int = 2048


@dataclass
class OTHistory:
    loss: list[float] = field(default_factory=list)  # training Sinkhorn divergence per step
    seconds: list[float] = field(default_factory=list)  # wall time since the start of fit, per step
    validation_step: list[int] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    johnson_su_features: list[int] = field(default_factory=list)


class _AttentionNetwork(nn.Module):
    """noise (B, noise_dim) -> one token per quantity (B, F, d_model) -> encoder blocks -> (B, F) values."""

    def __init__(self, features: int, noise_dim: int, d_model: int, heads: int, layers: int, feedforward: int):
        super().__init__()
        self.features, self.d_model = features, d_model
        self.embed = nn.Linear(noise_dim, features * d_model)
        # the embedding's columns already differ per quantity; the position term gives each token a learned
        # identity that does not depend on the noise, so attention can tell the quantities apart
        self.position = nn.Parameter(0.02 * torch.randn(features, d_model))
        block = nn.TransformerEncoderLayer(
            d_model, heads, feedforward, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        # no dropout: it would make the generated distribution differ between training and sampling
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        # the network starts as (nearly) the identity map of the noise, a standard normal in network space,
        # which already has the target's means and variances there (standardised, Johnson-SU transformed);
        # the attention blocks only have to learn the correlations and the shapes
        self.skip = nn.Linear(noise_dim, features, bias=False)
        nn.init.eye_(self.skip.weight)
        self.head_weight = nn.Parameter(0.01 * torch.randn(features, d_model) / math.sqrt(d_model))
        self.head_bias = nn.Parameter(torch.zeros(features))

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(noise).view(-1, self.features, self.d_model) + self.position
        hidden = self.norm(self.encoder(tokens))
        return self.skip(noise) + (hidden * self.head_weight).sum(-1) + self.head_bias


class OTAttentionGenerator:
    """Generator of events with ``features`` kinematic quantities; see the module docstring for the interface.

    Network space: every feature standardised with the (weighted) mean and standard deviation of the training
    events, then the peaked ones (excess kurtosis above ``settings.kurtosis_threshold``, or the columns
    ``settings.johnson_su_features``) Johnson-SU transformed when ``settings.johnson_su``. The network
    generates in that space; ``sample`` maps back in float64.
    """

    def __init__(self, features: int, settings: OTGeneratorSettings | None = None, device: str = "cpu"):
        settings = settings or OTGeneratorSettings()
        _check_settings(settings)
        if features < 1:
            raise ValueError(f"features must be at least 1, got {features}")
        if settings.johnson_su_features and max(settings.johnson_su_features) >= features:
            raise ValueError(f"johnson_su_features {settings.johnson_su_features} name columns beyond {features}")
        self.features, self.settings, self.device = int(features), settings, torch.device(device)
        with torch.random.fork_rng(devices=[]):
            # initialised on the CPU from the seed alone, so the same settings give the same network anywhere
            torch.manual_seed(settings.seed)
            self.network = _AttentionNetwork(
                self.features,
                self.noise_dim,
                settings.d_model,
                settings.heads,
                settings.layers,
                settings.feedforward or 2 * settings.d_model,
            )
        self.network.to(self.device)
        self.mean = torch.zeros(self.features, dtype=torch.float64, device=self.device)
        self.scale = torch.ones(self.features, dtype=torch.float64, device=self.device)
        self.johnson_su = JohnsonSU([]).to(self.device)
        self.history = OTHistory()
        self.fitted = False

    @property
    def noise_dim(self) -> int:
        return self.settings.noise_dim or self.features

    # ---- the map between data space and network space ----
    def to_network(self, x: torch.Tensor) -> torch.Tensor:
        return self.johnson_su.forward((x.to(self.device, torch.float64) - self.mean) / self.scale)

    def from_network(self, z: torch.Tensor) -> torch.Tensor:
        return self.johnson_su.inverse(z.to(self.device, torch.float64)) * self.scale + self.mean

    def _set_preprocessing(self, x: torch.Tensor, weight: torch.Tensor | None) -> None:
        mean, var = _weighted_moments(x, weight)
        self.mean = mean
        # a constant column keeps scale 1: the network then learns the constant instead of dividing by zero
        self.scale = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
        standardised = (x - self.mean) / self.scale
        chosen = []
        if self.settings.johnson_su and self.settings.johnson_su_features is not None:
            chosen = sorted(set(self.settings.johnson_su_features))
        elif self.settings.johnson_su:
            chosen = peaked_features(standardised, self.settings.kurtosis_threshold, weight)
        self.johnson_su = JohnsonSU(chosen).fit(
            standardised.cpu(),
            None if weight is None else weight.cpu(),
            max_rows=self.settings.johnson_su_rows,
            seed=self.settings.seed,
        )
        self.johnson_su.to(self.device)

    # ---- training ----
    def fit(
        self,
        x,
        weight=None,
        settings: OTGeneratorSettings | None = None,
        log: Callable[[str], None] | None = None,
        x_val=None,
        weight_val=None,
    ) -> OTAttentionGenerator:
        """Learn the distribution of the events x (n, F) with non-negative weights (None: equal).

        ``settings`` may replace the training settings (steps, lr, blur, ...) but not the architecture.
        The standardisation and the Johnson-SU transform are refitted on x at every call; the network's
        weights continue from where they are. ``x_val`` (with ``weight_val``) gives a validation Sinkhorn
        divergence every ``validate_every`` steps, in network space like the training loss.
        """
        if settings is not None:
            _check_settings(settings)
            changed = [k for k in _ARCHITECTURE if getattr(settings, k) != getattr(self.settings, k)]
            if changed:
                raise ValueError(f"fit cannot change the architecture ({', '.join(changed)}); build a new generator")
            self.settings = settings
        s = self.settings
        x = _check_events(x, "x", self.features, self.device)
        if x.shape[0] < s.batch:
            raise ValueError(f"x has {x.shape[0]} rows, fewer than one batch ({s.batch}); lower settings.batch")
        weight = _check_weight(weight, x.shape[0], "weight", self.device)
        if x_val is not None:
            x_val = _check_events(x_val, "x_val", self.features, self.device)
            weight_val = _check_weight(weight_val, x_val.shape[0], "weight_val", self.device)

        self._set_preprocessing(x, weight)
        target = self.to_network(x).float()
        history = OTHistory(johnson_su_features=list(self.johnson_su.features))
        self.history = history
        generator = torch.Generator(device=self.device).manual_seed(s.seed)
        # weighted events: each target batch is drawn with probability proportional to weight (with
        # replacement), so both measures in the loss are uniform over their batch and the blur means the
        # same as for unweighted events; passing weights to SamplesLoss instead would spend most of a batch
        # on events of negligible weight when weights vary a lot
        cdf = None if weight is None else torch.cumsum(weight / weight.sum(), 0)

        def draw_target(rows: int, gen: torch.Generator) -> torch.Tensor:
            if cdf is None:
                return target[torch.randint(target.shape[0], (rows,), generator=gen, device=self.device)]
            u = torch.rand(rows, generator=gen, device=self.device, dtype=torch.float64)
            return target[torch.searchsorted(cdf, u).clamp(max=target.shape[0] - 1)]

        validation = None
        if x_val is not None:
            val_gen = torch.Generator(device=self.device).manual_seed(s.seed + 1)
            rows = min(s.validation_rows, x_val.shape[0])
            val_target = self.to_network(x_val).float()
            if weight_val is None:
                pick = torch.randperm(x_val.shape[0], generator=val_gen, device=self.device)[:rows]
            else:
                pick = torch.multinomial(weight_val, rows, replacement=True, generator=val_gen)
            val_noise = torch.randn(rows, self.noise_dim, generator=val_gen, device=self.device)
            validation = (val_target[pick], val_noise)

        loss_fn = _sinkhorn(s)
        optimizer = torch.optim.Adam(self.network.parameters(), lr=s.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(s.steps, 1), eta_min=s.lr * s.final_lr_fraction
        )
        started = time.perf_counter()
        for step in range(1, s.steps + 1):
            self.network.train()
            real = draw_target(s.batch, generator)
            noise = torch.randn(s.batch, self.noise_dim, generator=generator, device=self.device)
            loss = loss_fn(self.network(noise), real)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            history.loss.append(float(loss.detach()))
            history.seconds.append(time.perf_counter() - started)
            if step % s.validate_every == 0 or step == s.steps:
                line = f"step {step}/{s.steps}: loss {history.loss[-1]:.4g}"
                if validation is not None:
                    self.network.eval()
                    with torch.no_grad():
                        value = float(loss_fn(self.network(validation[1]), validation[0]))
                    history.validation_step.append(step)
                    history.validation_loss.append(value)
                    line += f", validation {value:.4g}"
                if log is not None:
                    log(line + f" ({history.seconds[-1]:.1f} s)")
        self.network.eval()
        self.fitted = True
        return self

    # ---- sampling ----
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n events (n, F) float64 in the data's units and their weights (n,) (all one)."""
        if not self.fitted:
            raise RuntimeError("fit or load the generator before sampling")
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        self.network.eval()
        chunks = []
        for start in range(0, n, 65_536):
            rows = min(65_536, n - start)
            noise = torch.randn(rows, self.noise_dim, generator=generator, device=self.device)
            chunks.append(self.from_network(self.network(noise)))
        x = torch.cat(chunks) if chunks else torch.empty(0, self.features, dtype=torch.float64, device=self.device)
        return x, torch.ones(n, dtype=torch.float64, device=self.device)

    # ---- persistence ----
    def save(self, path: str | Path) -> Path:
        """Write tensors and plain values only, atomically (a reader never sees a half-written file)."""
        state = {
            "format": _FORMAT,
            "version": 1,
            "features": self.features,
            "fitted": self.fitted,
            "settings": dataclasses.asdict(self.settings),
            "network": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
            "mean": self.mean.cpu(),
            "scale": self.scale.cpu(),
            "johnson_su": self.johnson_su.state(),
            "history": dataclasses.asdict(self.history),
        }
        return atomic_torch_save(state, path)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> OTAttentionGenerator:
        state = load_checkpoint(path, map_location="cpu")
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a saved OTAttentionGenerator")
        generator = cls(state["features"], OTGeneratorSettings(**state["settings"]), device=device)
        generator.network.load_state_dict(state["network"])
        generator.network.eval()
        generator.mean = state["mean"].to(generator.device)
        generator.scale = state["scale"].to(generator.device)
        generator.johnson_su = JohnsonSU.from_state(state["johnson_su"], generator.device)
        generator.history = OTHistory(**state["history"])
        generator.fitted = bool(state["fitted"])
        return generator


def _sinkhorn(settings: OTGeneratorSettings):
    # geomloss rather than a hand-written Sinkhorn: its SamplesLoss is the debiased Sinkhorn divergence
    # (positive, zero only for equal measures, no entropic shrinking bias), uses epsilon-scaling (annealing
    # from the data's diameter down to the blur, so few iterations reach a small blur stably in log domain),
    # differentiates through the converged potentials without unrolling the iterations, and is maintained
    from geomloss import SamplesLoss

    return SamplesLoss(
        "sinkhorn", p=2, blur=settings.blur, scaling=settings.scaling, debias=True, backend=settings.backend
    )


def _check_settings(s: OTGeneratorSettings) -> None:
    if min(s.d_model, s.heads, s.layers, s.steps, s.validate_every, s.validation_rows) < 1 or s.batch < 2:
        raise ValueError("d_model, heads, layers, steps, validate_every, validation_rows must be >= 1, batch >= 2")
    if s.d_model % s.heads:
        raise ValueError(f"d_model ({s.d_model}) must be divisible by heads ({s.heads})")
    if not (s.blur > 0 and 0 < s.scaling < 1 and s.lr > 0):
        raise ValueError(f"need blur > 0, 0 < scaling < 1, lr > 0; got {s.blur}, {s.scaling}, {s.lr}")
    # checked here, not left to torch: 0 would silently mean the default (``or``), a negative size fails deep in
    # nn.Linear, a negative final_lr_fraction turns the end of the cosine schedule into gradient ascent, and
    # johnson_su_rows = 0 fails inside the Johnson-SU fit only when a peaked column is found
    for name in ("noise_dim", "feedforward"):
        if getattr(s, name) is not None and getattr(s, name) < 1:
            raise ValueError(f"{name} must be None (the default) or >= 1, got {getattr(s, name)}")
    if not 0 <= s.final_lr_fraction <= 1:
        raise ValueError(f"final_lr_fraction must be in [0, 1], got {s.final_lr_fraction}")
    if s.johnson_su_features is not None and not all(isinstance(j, int) and j >= 0 for j in s.johnson_su_features):
        raise ValueError(f"johnson_su_features must be column indices >= 0, got {s.johnson_su_features}")
    if s.johnson_su_rows < 2:
        raise ValueError(f"johnson_su_rows must be >= 2, got {s.johnson_su_rows}")
