"""Conditional denoising diffusion (DDPM, Ho et al. 2020) for amortized posterior sampling.

The forward process adds Gaussian noise to the standardised parameters u over T steps with a linear
variance schedule beta_1..beta_T (the talk's numbers: T = 1000, beta from 1e-4 to 0.02), so
u_t = sqrt(alpha_bar_t) u + sqrt(1 - alpha_bar_t) eps with alpha_bar_t = prod_{s<=t} (1 - beta_s); with
these numbers alpha_bar_T ~ 4e-5 and u_T is standard normal to good accuracy. A FiLM-conditioned
residual MLP learns to predict eps from (u_t, t/T, embedded observation) by mean-squared error.

Sampling runs the learned reverse process from u_T ~ N(0, I):

- ``sampling_steps=None``: ancestral DDPM sampling through all T steps, with the posterior variance
  beta_tilde_t = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) of q(u_{t-1} | u_t, u_0);
- ``sampling_steps=k``: deterministic DDIM (Song et al. 2021, eta = 0) on k evenly spaced steps, the
  same trained network, roughly T / k times faster.

``sampling_steps`` and ``clip_denoised`` are plain settable attributes (also after ``load``), and
``sample(x, n, sampling_steps=k)`` overrides the former for one call. There is no tractable density.

Weight averaging (``ema_decay``, e.g. 0.999; off by default): as in Ho et al., the network that samples is an
exponential moving average of the trained weights (embedding and denoiser), updated after every optimiser
step with decay min(ema_decay, (1 + n) / (10 + n)) after n updates (a warm-up, so that the average soon
forgets the initial weights). It averages out the optimiser's step noise, which otherwise blurs the
learned noise prediction and widens the posterior. The averaged copy is used whenever the estimator is
in eval mode (validation loss, hence early stopping and the kept epoch, and sampling); training updates
the raw weights. It is saved with the estimator. Off by default so that the figures measured without
it (inverse-toys) stay valid; dis-pdf turns it on (measured there: 68% coverage 0.73 -> 0.68 with 200 epochs).

Whitening (``whiten=True``; off by default): a conditional Gaussian N(m(x), L(x) L(x)^T) (a small head on the
embedded observation) is fitted first, by maximum likelihood, and the diffusion then runs on the whitened
residual z = L^-1 (u - m); samples are u = m + L z. Why: when the data fix some parameter combinations
much better than the prior does (dis-pdf: posterior widths of a few per cent of the prior's along the
best-measured directions), the denoiser must resolve those narrow directions at noise levels where its
errors are comparable to them, and the samples come out too wide across the correlations (dis-pdf: joint
ellipsoid coverage 0.92 / 1.00 at 68 / 95 %) while every marginal looks calibrated. After whitening every
direction has about unit width, and the diffusion learns the rest (the Gaussian's own errors and the
non-Gaussian shape). ``fit`` trains in two stages, each with the given settings and its own early
stopping: embedding and Gaussian head by their likelihood, then the denoiser with both frozen. Trained
jointly (one loss, shared embedding) the Gaussian stayed far from its optimum and the samples stayed too
wide (dis-pdf, 5e4 simulations: joint ellipsoid 0.92 / 1.00 jointly, 0.66 / 0.99 in two stages).
``clip_denoised`` then bounds the whitened residual.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from hadrinv.inference.amortized import AmortizedEstimator, TrainingHistory
from hadrinv.inference.film import FiLMResidualMLP
from hadrinv.inference.gaussian import gaussian_head, split_gaussian, unwhiten, whiten

_DEFAULT = object()


def linear_beta_schedule(steps: int, beta_min: float, beta_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """betas (steps,) and alpha_bar (steps,) for t = 1..steps, computed in float64 because the product
    of 1000 factors loses digits in float32."""
    betas = torch.linspace(beta_min, beta_max, steps, dtype=torch.float64)
    return betas, torch.cumprod(1.0 - betas, dim=0)


class ConditionalDiffusion(AmortizedEstimator):
    has_log_prob = False

    def __init__(
        self,
        theta_dim: int,
        x_dim: int,
        *,
        steps: int = 1000,
        beta_min: float = 1e-4,
        beta_max: float = 0.02,
        hidden: int = 256,
        blocks: int = 6,
        time_features: int = 64,
        sampling_steps: int | None = None,
        clip_denoised: float | None = None,
        ema_decay: float | None = None,
        whiten: bool = False,
        **common,
    ):
        super().__init__(theta_dim, x_dim, **common)
        if steps < 1 or not 0 < beta_min <= beta_max < 1:
            raise ValueError(f"need steps >= 1 and 0 < beta_min <= beta_max < 1, got {steps}, {beta_min}, {beta_max}")
        if ema_decay is not None and not 0 < ema_decay < 1:
            raise ValueError(f"ema_decay must be None or in (0, 1), got {ema_decay}")
        self.steps = int(steps)
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.whiten = bool(whiten)
        self._stage = "denoiser"  # what training_loss trains when whitening: "gaussian" (first stage) or "denoiser"
        self._remember(
            steps=self.steps,
            beta_min=float(beta_min),
            beta_max=float(beta_max),
            hidden=hidden,
            blocks=blocks,
            time_features=time_features,
            ema_decay=self.ema_decay,
            whiten=self.whiten,
        )
        self.sampling_steps = sampling_steps
        self.clip_denoised = clip_denoised
        betas, alpha_bar = linear_beta_schedule(self.steps, beta_min, beta_max)
        # derived from the hyper-parameters, so kept out of the checkpoint
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alpha_bar", alpha_bar.float(), persistent=False)
        self.register_buffer(
            "alpha_bar_prev", torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]]).float(), persistent=False
        )
        self.net = FiLMResidualMLP(
            theta_dim, self.context_dim, hidden=hidden, blocks=blocks, time_features=time_features
        )
        # context -> (mean, Cholesky factor) of the whitening Gaussian
        self.gaussian = gaussian_head(self.context_dim, hidden, theta_dim) if self.whiten else None
        # the moving average of the trained networks, saved in the checkpoint with its number of updates
        self.ema = None
        if self.ema_decay is not None:
            self.ema = nn.ModuleDict({name: copy.deepcopy(module) for name, module in self._averaged_modules()})
            self.ema.requires_grad_(False)
            self.register_buffer("ema_updates", torch.tensor(0, dtype=torch.long))

    # ---- weight averaging ----
    def _averaged_modules(self) -> list[tuple[str, nn.Module]]:
        modules = [("embedding", self.embedding), ("net", self.net)]
        return modules + [("gaussian", self.gaussian)] if self.gaussian is not None else modules

    def _averaging(self) -> bool:
        return self.ema is not None and not self.training

    def _module(self, name: str) -> nn.Module:
        """The averaged copy in eval mode, the trained one in training."""
        return self.ema[name] if self._averaging() else getattr(self, name)

    def context(self, x_standardized: torch.Tensor) -> torch.Tensor:
        return self._module("embedding")(x_standardized)

    def whitening(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (rows, d) and lower-triangular Cholesky factor (rows, d, d) of the whitening Gaussian."""
        return split_gaussian(self._module("gaussian")(context), self.theta_dim)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the averaged weights towards the current ones (called after every optimiser step in fit)."""
        if self.ema is None:
            return
        n = int(self.ema_updates)
        decay = min(self.ema_decay, (1 + n) / (10 + n))
        for name, source in self._averaged_modules():
            averaged = self.ema[name]
            for a, p in zip(averaged.parameters(), source.parameters()):
                a.lerp_(p.detach(), 1 - decay)
            for a, b in zip(averaged.buffers(), source.buffers()):
                a.copy_(b)
        self.ema_updates += 1

    def _after_optimizer_step(self) -> None:
        self.update_ema()

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        # a checkpoint written before weight averaging existed: its weights are the average
        if self.ema is not None and not any(k.startswith("ema.") for k in state_dict):
            state_dict = dict(state_dict)
            state_dict.update(
                {f"ema.{k}": v for k, v in state_dict.items() if k.startswith(("embedding.", "net.", "gaussian."))}
            )
            state_dict.setdefault("ema_updates", torch.tensor(0, dtype=torch.long))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # settable after loading; stored in hparams so that a later save keeps the choice
    @property
    def sampling_steps(self) -> int | None:
        return self._sampling_steps

    @sampling_steps.setter
    def sampling_steps(self, value: int | None) -> None:
        if value is not None:
            if int(value) != value or not 1 <= int(value) <= self.steps:
                raise ValueError(
                    f"sampling_steps must be None (ancestral DDPM) or an integer in [1, {self.steps}], got {value}"
                )
            value = int(value)
        self._sampling_steps = value
        self.hparams["sampling_steps"] = value

    @property
    def clip_denoised(self) -> float | None:
        return self._clip_denoised

    @clip_denoised.setter
    def clip_denoised(self, value: float | None) -> None:
        if value is not None and not float(value) > 0:
            raise ValueError(f"clip_denoised must be None or positive, got {value}")
        self._clip_denoised = None if value is None else float(value)
        self.hparams["clip_denoised"] = self._clip_denoised

    def fit(self, theta: torch.Tensor, x: torch.Tensor, **training) -> TrainingHistory:
        """As ``AmortizedEstimator.fit``; with whitening in two stages, each with these settings and its own
        early stopping: the embedding and the Gaussian by its likelihood, then, with both frozen, the
        denoiser. Returns the second stage's history (its ``seconds`` include the first stage's); the
        first is kept as ``gaussian_history``."""
        if not self.whiten:
            return super().fit(theta, x, **training)
        frozen = [*self.embedding.parameters(), *self.gaussian.parameters()]
        try:
            self._stage = "gaussian"
            self.gaussian_history = super().fit(theta, x, **training)
            self._stage = "denoiser"
            for p in frozen:
                p.requires_grad_(False)
            history = super().fit(theta, x, **{**training, "restandardize": False})
        finally:
            self._stage = "denoiser"
            for p in frozen:
                p.requires_grad_(True)
        history.seconds += self.gaussian_history.seconds
        return history

    def predict_noise(self, u_t: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """eps prediction at integer steps t in 1..T (tensor (rows,) or a scalar)."""
        t = torch.as_tensor(t, device=u_t.device).expand(u_t.shape[0])
        return self._module("net")(u_t, t.float() / self.steps, context)

    def training_loss(self, u, context, x):
        if self.whiten:
            mean, tril = self.whitening(context)
            if self._stage == "gaussian":
                return -torch.distributions.MultivariateNormal(mean, scale_tril=tril).log_prob(u) / self.theta_dim
            u = whiten(u, mean, tril)
        # stratified steps (one per 1/batch of [0, 1], in random order) cover the schedule evenly in every
        # batch: same expected loss as uniform steps, less gradient noise
        rows = u.shape[0]
        strata = (torch.randperm(rows, device=u.device) + torch.rand(rows, device=u.device)) / rows
        t = (strata * self.steps).long().clamp(max=self.steps - 1) + 1
        noise = torch.randn_like(u)
        a = self.alpha_bar[t - 1].unsqueeze(-1)
        u_t = a.sqrt() * u + (1 - a).sqrt() * noise
        return (self.predict_noise(u_t, t, context) - noise).pow(2).mean(-1)

    def _denoised(
        self, u_t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Estimate of u_0 from u_t and the predicted noise, clipped if asked, and the noise consistent with it."""
        u0 = (u_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
        if self.clip_denoised is not None:
            u0 = u0.clamp(-self.clip_denoised, self.clip_denoised)
            eps = (u_t - alpha_bar.sqrt() * u0) / (1 - alpha_bar).sqrt()
        return u0, eps

    def _sample_standardized(self, context, n):
        k = self.sampling_steps
        batch = context.shape[0]
        rows = context.repeat_interleave(n, dim=0)
        u = torch.randn(batch * n, self.theta_dim, device=context.device)
        if k is None:
            u = self._ancestral(u, rows)
        else:
            u = self._ddim(u, rows, int(k))
        if self.whiten:
            mean, tril = self.whitening(context)
            u = u.reshape(batch, n, self.theta_dim)
            return unwhiten(u, mean, tril)
        return u.reshape(batch, n, self.theta_dim)

    def _ancestral(self, u: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        for t in range(self.steps, 0, -1):
            a_bar, a_bar_prev, beta = self.alpha_bar[t - 1], self.alpha_bar_prev[t - 1], self.betas[t - 1]
            u0, _ = self._denoised(u, self.predict_noise(u, t, context), a_bar)
            # mean of q(u_{t-1} | u_t, u_0) with u_0 replaced by its estimate
            # (equal to Ho et al.'s eps form without clipping)
            mean = (a_bar_prev.sqrt() * beta * u0 + (1 - beta).sqrt() * (1 - a_bar_prev) * u) / (1 - a_bar)
            if t > 1:
                variance = beta * (1 - a_bar_prev) / (1 - a_bar)
                u = mean + variance.sqrt() * torch.randn_like(u)
            else:
                u = mean
        return u

    def _ddim(self, u: torch.Tensor, context: torch.Tensor, k: int) -> torch.Tensor:
        if not 1 <= k <= self.steps:
            raise ValueError(f"sampling_steps must lie in [1, {self.steps}], got {k}")
        # k distinct steps from T down to 1, so the last update lands on the data (alpha_bar_0 = 1)
        taus = torch.linspace(self.steps, 1, k, dtype=torch.float64).round().long().tolist()
        for i, t in enumerate(taus):
            a_bar = self.alpha_bar[t - 1]
            u0, eps = self._denoised(u, self.predict_noise(u, t, context), a_bar)
            if i + 1 < len(taus):
                a_next = self.alpha_bar[taus[i + 1] - 1]
                u = a_next.sqrt() * u0 + (1 - a_next).sqrt() * eps
            else:
                u = u0
        return u

    @torch.no_grad()
    def sample(self, x_obs: torch.Tensor, n: int, chunk: int = 256, *, sampling_steps=_DEFAULT) -> torch.Tensor:
        """As ``AmortizedEstimator.sample``; ``sampling_steps`` (None = ancestral DDPM, k = DDIM on k
        steps) overrides the estimator's setting for this call only."""
        if sampling_steps is _DEFAULT:
            return super().sample(x_obs, n, chunk)
        saved = self.sampling_steps
        self.sampling_steps = sampling_steps
        try:
            return super().sample(x_obs, n, chunk)
        finally:
            self._sampling_steps = saved
            self.hparams["sampling_steps"] = saved
