"""The one interface the forward models share: parameters -> observables, with a prior to draw from.

Kept apart from the estimators (as in sbi or deepinv: a simulator is one object, a reconstructor
another), so that a model can be reused by any inference method and tested on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch

__all__ = ["ForwardModel"]


@runtime_checkable
class ForwardModel(Protocol):
    """A batched simulator over a box prior.

    names: one label per parameter, in the order of theta's last dimension.
    theta_dim: len(names).
    bounds: (low, high) lists of the prior box, each of length theta_dim. A property rather than a method,
        like theta_dim: it describes the model and costs nothing to read.
    sample_prior(n, generator): (n, theta_dim) draws from the prior.
    simulate(theta, generator=None): (n, ...) observations of every row of theta; noise, where the model
        has any, is drawn from generator (None: torch's global stream).
    """

    @property
    def names(self) -> tuple[str, ...]: ...

    @property
    def theta_dim(self) -> int: ...

    @property
    def bounds(self) -> tuple[Sequence[float], Sequence[float]]: ...

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor: ...

    def simulate(self, theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...
