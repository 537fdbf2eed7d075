"""MadNIS (Heimel, Huetsch, Maltoni, Mattelaer, Plehn, Winterhalder) as a peer of `hadrinv.integration.integrate`.

The peer runs MadNIS as its authors ship it: `madnis.integrator.Integrator` with every default, trained by its
own `train_step`, so that a comparison measures MadNIS and not a re-tuned copy of it. Only the number of
training steps is ours: it follows from the call budget. The estimate then draws fresh points from the frozen
flow through `Integrator.sample`, as `integrate` does for its own flows, and reports them in an
`IntegrationResult`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from hadrinv.inference.integration import CountedIntegrand, IntegrationResult, weight_statistics

METHOD = "madnis"


def madnis_available() -> str | None:
    """None when MadNIS can be imported, else why not, in one line."""
    try:
        import madnis.integrator  # noqa: F401
    except Exception as exc:  # a broken install fails with more than ImportError; all mean "not usable"
        return f"madnis cannot be imported: {type(exc).__name__}: {exc}".splitlines()[0]
    return None


class _BudgetSpent(Exception):
    """Raised before an integrand call that would overrun the training budget."""


class _Budgeted:
    """The integrand as MadNIS sees it: float64 calls under a cap, values back in the flow's dtype.

    MadNIS redraws a training batch while fewer than half of its points have f != 0, so one `train_step` may
    call f more than once: the cap, not a step count, is what keeps the training within its calls.
    """

    def __init__(self, counted: CountedIntegrand, limit: int):
        self.counted, self.limit = counted, limit
        self.recorded: list[torch.Tensor] | None = None  # float64 values of the estimate, kept at full precision

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.counted.calls + len(x) > self.limit:
            raise _BudgetSpent
        y = self.counted(x.detach().to(torch.float64))
        if y.is_complex():
            raise ValueError("the MadNIS peer integrates real functions only; the integrand returned complex values")
        if self.recorded is not None:
            self.recorded.append(y)
        return y.to(x.dtype)


def _invalid(message: str, calls: int = 0, train_calls: int = 0) -> IntegrationResult:
    return IntegrationResult(
        math.nan, math.nan, calls, train_calls, METHOD, math.nan, math.nan, is_valid=False, message=message
    )


def madnis_integrate(
    f: Callable[[torch.Tensor], torch.Tensor],
    dim: int,
    calls: int,
    train_fraction: float = 0.5,
    seed: int = 0,
    batch: int = 100_000,
) -> IntegrationResult:
    """The integral of the real function f over [0, 1]^dim by MadNIS, with `calls` integrand evaluations in all.

    f takes float64 points [n, dim] and returns [n] real values. The flow and its training are MadNIS 1.0's
    defaults: `madnis.nn.Flow` (rational-quadratic spline coupling blocks, 10 bins, subnets of 3 layers of 32
    ReLU units, logarithmic permutations, uniform latent space on [0, 1]^dim) in torch's default dtype,
    trained with Adam at learning rate 1e-3 on batches of 1024 fresh points per step, no buffered steps, no
    scheduler, loss `madnis.integrator.kl_divergence` (its single-channel default). No VEGAS pre-training:
    MadNIS offers it (`VegasPreTraining(...).initialize_integrator()` writes a VEGAS grid into the flow), but
    it is not the default.

    Training takes as many steps as whole batches fit in int(train_fraction * calls) evaluations, counted
    around f; a step whose redraws would overrun that budget is abandoned before f is called. Every remaining
    call goes to fresh points from the frozen flow (`batch` points per `Integrator.sample` draw), so
    `result.calls == calls` and `result.train_calls <= int(train_fraction * calls)`. The weights f/q are
    formed in float64; value and error are their mean and std / sqrt(n). Torch's global random state is
    seeded with `seed` for the run and restored afterwards.
    """
    if dim < 1 or calls < 2:
        raise ValueError(f"need dim >= 1 and calls >= 2, got dim = {dim}, calls = {calls}")
    if not 0.0 <= train_fraction < 1.0:
        raise ValueError(f"train_fraction must lie in [0, 1), got {train_fraction}")
    reason = madnis_available()
    if reason is not None:
        return _invalid(reason)
    from madnis.integrator import Integrator

    counted = CountedIntegrand(f, dim)
    train_budget = int(train_fraction * calls)
    integrand = _Budgeted(counted, train_budget)
    notes = []
    # MadNIS draws from torch's global generator; forking keeps the caller's stream untouched
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        integrator = Integrator(integrand, dims=dim)
        try:
            while counted.calls + integrator.batch_size <= train_budget:
                integrator.train_step()
        except _BudgetSpent:
            notes.append("training stopped early: f vanishes on most flow points, each step redrew its batch")
        if integrator.step == 0:
            notes.append(f"no training step: a MadNIS step needs {integrator.batch_size} calls")
        trained = counted.calls
        n = calls - trained
        if n < 2:
            return _invalid(f"{n} call(s) left for the estimate after training", counted.calls, trained)
        integrand.limit, integrand.recorded = calls, []
        samples = integrator.sample(n, batch_size=batch)
    q = samples.q_sample.detach().to(torch.float64)
    weights = torch.cat(integrand.recorded) / q
    mean = float(weights.mean())
    error = float(weights.std() / math.sqrt(n))
    relative_std, efficiency = weight_statistics(weights)
    result = IntegrationResult(mean, error, counted.calls, trained, METHOD, relative_std, efficiency)
    result.sample_weights = weights.numpy()
    if not bool(torch.isfinite(weights).all()):
        result.is_valid = False
        notes.insert(0, f"{int((~torch.isfinite(weights)).sum())} non-finite weight(s): the flow density is zero")
    elif not math.isfinite(relative_std) or relative_std > 0.5 * math.sqrt(n):
        # one weight carries the whole sum: the flow misses regions and its error cannot be trusted
        result.is_valid = False
        notes.insert(0, f"weights dominated by few points (relative std {relative_std:.3g})")
    result.message = "; ".join(notes)
    return result
