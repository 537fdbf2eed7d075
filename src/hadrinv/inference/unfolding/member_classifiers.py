"""Log density ratios from an ensemble of MLP classifiers trained side by side: one member per bootstrap replica.

OmniFold's two steps and the iterative cINN's prior update are the same problem: rows x that carry a weight for
class 1 and a weight for class 0, one pair of weights per replica, and the logit log p_1(x) / p_0(x) wanted at
some query points for every replica. The members' parameters are stacked along a leading axis and trained under
one Adam, whose update is per parameter, so the members do not interact: member 0 gives the same answer, up to
rounding, whether replicas train beside it or not, and twenty replicas cost far less than twenty trainings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.functional import binary_cross_entropy_with_logits

from hadrinv.inference.embeddings import mlp

_CHUNK = 65536  # rows per evaluation pass: (members x rows x hidden) activations


@dataclass(frozen=True)
class ClassifierSettings:
    """Each member an MLP of ``layers`` x ``hidden``, Adam at ``lr`` on batches of ``batch`` rows for at most
    ``epochs``, stopped after ``patience`` epochs without a better loss on ``validation_fraction`` of the rows
    (the best epoch is kept, per member); seeds derive from ``seed`` and the caller's step key."""

    hidden: int = 64
    layers: int = 3
    epochs: int = 30
    batch: int = 1024
    lr: float = 1e-3
    patience: int = 5
    validation_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self):
        for name in ("hidden", "layers", "epochs", "batch", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must lie strictly between 0 and 1, got {self.validation_fraction}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")


def seed_from(*key: int) -> int:
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


class MemberMLPs:
    """Independent MLPs, built by `mlp` and evaluated together: their parameters stacked along a member axis."""

    def __init__(self, sizes: list[int], seeds: list[int], device: torch.device):
        nets = []
        for seed in seeds:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                nets.append(mlp(sizes))
        self.layers = nets[0]
        self.params = {
            name: torch.stack([dict(net.named_parameters())[name].detach() for net in nets]).to(device).requires_grad_()
            for name, _ in nets[0].named_parameters()
        }

    def __call__(self, x: Tensor) -> Tensor:
        """x (n, features) shared by all members -> logits (members, n)."""
        h = x
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nn.Linear):
                h = h @ self.params[f"{i}.weight"].transpose(1, 2) + self.params[f"{i}.bias"].unsqueeze(1)
            else:
                h = layer(h)
        return h.squeeze(-1)

    @torch.no_grad()
    def predict(self, x: Tensor, members: slice | None = None) -> Tensor:
        """Logits (members, n) of all members, or of the ``members`` slice only (the others cost nothing)."""
        if members is None:
            return torch.cat([self(chunk) for chunk in x.split(_CHUNK)], 1)
        chosen = MemberMLPs.__new__(MemberMLPs)
        chosen.layers, chosen.params = self.layers, {name: p[members] for name, p in self.params.items()}
        return chosen.predict(x)


def member_log_ratios(
    x: Tensor, label1: Tensor, label0: Tensor, s: ClassifierSettings, step: tuple[int, ...], device
) -> tuple[MemberMLPs, Tensor]:
    """Train one classifier per member on rows x (n, F) that carry weight label1 (members, n) for class 1 and
    label0 for class 0, the classes balanced per member; return the members (``predict(query)``: logits
    (members, m) estimating log p_1 / p_0) and their best validation losses (members,). ``step`` keys the seeds.

    A row with both weights is the same event in both classes: a*BCE(f, 1) + b*BCE(f, 0) = (a+b) BCE(f, a/(a+b)),
    so it enters once with a soft label."""
    label1 = label1 * (label0.sum(1, keepdim=True) / label1.sum(1, keepdim=True))  # balanced classes
    total = label1 + label0
    target = torch.where(total > 0, label1 / total.clamp(min=1e-300), 0.0)
    generator = torch.Generator().manual_seed(seed_from(s.seed, *step, 0))
    order = torch.randperm(len(x), generator=generator).to(device)
    n_val = max(1, round(s.validation_fraction * len(x)))
    val, train = order[:n_val], order[n_val:]
    total, target = total.float().to(device), target.float().to(device)
    w_train, t_train, x_train = total[:, train], target[:, train], x[train]
    w_train = w_train / w_train.mean(1, keepdim=True)  # a loss near BCE's own scale, whatever the weights' units
    w_val, t_val, x_val = total[:, val], target[:, val], x[val]

    members = len(label1)
    net = MemberMLPs(
        [x.shape[1]] + [s.hidden] * s.layers + [1], [seed_from(s.seed, *step, 1, m) for m in range(members)], device
    )
    optimizer = torch.optim.Adam(net.params.values(), lr=s.lr)
    best = {name: p.detach().clone() for name, p in net.params.items()}
    best_loss = torch.full((members,), math.inf, device=device)
    since_best = torch.zeros(members, dtype=torch.long, device=device)
    active = torch.ones(members, dtype=torch.bool, device=device)
    for _ in range(s.epochs):
        for idx in torch.randperm(len(train), generator=generator).to(device).split(s.batch):
            bce = binary_cross_entropy_with_logits(net(x_train[idx]), t_train[:, idx], reduction="none")
            loss = (w_train[:, idx] * bce).mean(1).sum()  # a sum over members: each gets its own gradient
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        bce = binary_cross_entropy_with_logits(net.predict(x_val), t_val, reduction="none")
        val_loss = (w_val * bce).sum(1) / w_val.sum(1)
        # a member that has stopped keeps its best epoch though the others train on
        improved = active & (val_loss < best_loss)
        for name, p in net.params.items():
            best[name] = torch.where(improved.view(-1, *[1] * (p.dim() - 1)), p.detach(), best[name])
        best_loss = torch.where(improved, val_loss, best_loss)
        since_best = torch.where(improved, 0, since_best + 1)
        active &= since_best < s.patience
        if not active.any():
            break
    net.params = best
    return net, best_loss.cpu()
