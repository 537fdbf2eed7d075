"""Inverse-problem toys with simulators and EXACT posterior samplers.

Each toy has a box (or disk) prior, a batched simulator and a sampler of the exact posterior, so
amortized estimators can be benchmarked against independent truth (c2st, MMD, coverage):

* two moons (the sbi benchmark task, sbibm ``two_moons``): ``two_moons_simulate``,
  ``two_moons_reference_posterior``, ``two_moons_log_likelihood``, ``TWO_MOONS_OBSERVATIONS``;
* sum of squares, y = sum_i theta_i^2 + noise on [-1, 1]^d (the talk's f(x) = x0^2 + x1^2 with a
  small noise so that the posterior is a proper density): ``sum_of_squares_simulate``,
  ``sum_of_squares_posterior``;
* ring, z = x^2 + y^2 + noise with (x, y) uniform in a disk (the talk's diffusion toy):
  ``ring_simulate``, ``ring_posterior``.

Conventions: parameters are (..., d) float32 tensors, observations (..., x_dim) with x_dim = 2 for the
moons and 1 for the two others. Posterior samplers take one observation (shape (x_dim,), or a scalar
where x_dim = 1) and return (n, d), or a batch (batch, x_dim) and return (batch, n, d), like
``AmortizedEstimator.sample``. Every random draw goes through the optional ``torch.Generator``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

__all__ = [
    "TWO_MOONS_OBSERVATIONS",
    "TWO_MOONS_TRUE_PARAMETERS",
    "box_prior",
    "disk_prior",
    "ring_posterior",
    "ring_prior",
    "ring_simulate",
    "sum_of_squares_posterior",
    "sum_of_squares_prior",
    "sum_of_squares_simulate",
    "two_moons_log_likelihood",
    "two_moons_prior",
    "two_moons_reference_posterior",
    "two_moons_simulate",
]

# ------------------------------------------------------------------------------------------------
# shared helpers
# ------------------------------------------------------------------------------------------------

_MAX_PROPOSALS_PER_ROUND = 2_000_000  # proposed values (rows x proposals) per round, bounds memory


def box_prior(
    n: int, d: int, generator: torch.Generator | None = None, low: float = -1.0, high: float = 1.0
) -> torch.Tensor:
    """n draws from U(low, high)^d -> (n, d)."""
    return low + (high - low) * torch.rand(int(n), int(d), generator=generator)


def disk_prior(n: int, radius: float = 2.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """n points uniform in the disk of the given radius -> (n, 2) (r = radius * sqrt(U))."""
    r = radius * torch.rand(int(n), generator=generator).sqrt()
    phi = 2 * math.pi * torch.rand(int(n), generator=generator)
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi)], -1)


def _as_observations(x_obs, x_dim: int, name: str) -> tuple[torch.Tensor, bool]:
    """-> (batch, x_dim) float64 tensor and whether a single observation was given."""
    x = torch.as_tensor(x_obs, dtype=torch.float64)
    if x_dim == 1 and x.dim() == 0:
        x = x.reshape(1)
    if x.dim() == 1 and x.shape[0] == x_dim:
        single = True
        x = x.unsqueeze(0)
    elif x.dim() == 2 and x.shape[1] == x_dim:
        single = False
    else:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; expected ({x_dim},) for one observation or (batch, {x_dim})"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds non-finite values")
    return x, single


def _rejection_collect(
    propose: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]],
    batch: int,
    n: int,
    d: int,
    what: str,
    min_acceptance: float = 1e-6,
) -> torch.Tensor:
    """Run ``propose(rows, k) -> (candidates (len(rows), k, d), accepted (len(rows), k))`` in chunks until
    every row holds n accepted candidates; -> (batch, n, d) float32. The chunk size adapts to the
    observed acceptance rate; rows whose acceptance falls below ``min_acceptance`` raise."""
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    kept: list[list[torch.Tensor]] = [[] for _ in range(batch)]
    count = torch.zeros(batch, dtype=torch.long)
    proposed = torch.zeros(batch, dtype=torch.float64)
    accepted = torch.zeros(batch, dtype=torch.float64)
    while True:
        rows = (count < n).nonzero().flatten()
        if rows.numel() == 0:
            break
        rate = ((accepted[rows] + 1) / (proposed[rows] + 1)).clamp(min=min_acceptance)  # optimistic at first
        need = ((n - count[rows]).double() / rate).max().item()
        k = int(min(max(1.3 * need, 1024), max(_MAX_PROPOSALS_PER_ROUND // rows.numel(), 64)))
        candidates, ok = propose(rows, k)
        proposed[rows] += k
        accepted[rows] += ok.sum(1).double()
        for j, row in enumerate(rows.tolist()):
            good = candidates[j][ok[j]]
            if good.shape[0]:
                kept[row].append(good[: n - int(count[row])].to(torch.float32))
                count[row] += min(good.shape[0], n - int(count[row]))
        low = (accepted[rows] / proposed[rows] < min_acceptance) & (proposed[rows] > 10 / min_acceptance)
        if bool(low.any()):
            row = int(rows[low.nonzero()[0]])
            raise RuntimeError(
                f"{what}: acceptance rate below {min_acceptance:g} for observation {row}; "
                "the observation lies far outside the simulator's range"
            )
    return torch.stack([torch.cat(parts)[:n] for parts in kept]).reshape(batch, n, d)


# ------------------------------------------------------------------------------------------------
# two moons (sbibm task "two_moons")
# ------------------------------------------------------------------------------------------------

TWO_MOONS_A_RANGE = (-math.pi / 2, math.pi / 2)
TWO_MOONS_R_LOC, TWO_MOONS_R_SCALE, TWO_MOONS_OFFSET = 0.1, 0.01, 0.25
_SQRT2 = math.sqrt(2.0)

# sbibm's published observations num_observation = 1..10 (sbibm/tasks/two_moons/files/
# num_observation_k/observation.csv) and the parameters that generated them (true_parameters.csv).
TWO_MOONS_OBSERVATIONS = torch.tensor(
    [
        [-0.6396706, 0.16234657],
        [-0.5676688, -0.33194834],
        [0.0030109584, -0.6457662],
        [-0.25049388, 0.633055],
        [-0.66463584, -0.42604533],
        [-0.12940255, 0.3873573],
        [0.19458583, 1.0400153],
        [0.13603824, 0.9160449],
        [-0.17962828, -0.5452459],
        [0.14563406, -1.170141],
    ]
)
TWO_MOONS_TRUE_PARAMETERS = torch.tensor(
    [
        [-0.8176656, -0.5756806],
        [-0.28899693, -0.8759459],
        [0.73016036, -0.3217839],
        [-0.8023417, 0.011640668],
        [-0.43228424, -0.9955981],
        [-0.6377127, 0.0018655062],
        [-0.61911654, 0.829502],
        [-0.7995198, 0.49675143],
        [0.6775234, 0.013154268],
        [0.72652316, -0.9946897],
    ]
)


def two_moons_prior(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """theta ~ U(-1, 1)^2 -> (n, 2)."""
    return box_prior(n, 2, generator)


def _two_moons_noise(shape: tuple[int, ...], generator: torch.Generator | None, dtype=torch.float32) -> torch.Tensor:
    """p = (r cos a + 0.25, r sin a) with a ~ U(-pi/2, pi/2), r ~ N(0.1, 0.01^2) -> shape + (2,)."""
    a = TWO_MOONS_A_RANGE[0] + (TWO_MOONS_A_RANGE[1] - TWO_MOONS_A_RANGE[0]) * torch.rand(
        shape, generator=generator, dtype=dtype
    )
    r = TWO_MOONS_R_LOC + TWO_MOONS_R_SCALE * torch.randn(shape, generator=generator, dtype=dtype)
    return torch.stack([r * torch.cos(a) + TWO_MOONS_OFFSET, r * torch.sin(a)], -1)


def _two_moons_shift(theta: torch.Tensor) -> torch.Tensor:
    """g(theta) = (-|theta0 + theta1| / sqrt2, (-theta0 + theta1) / sqrt2)."""
    return torch.stack([-(theta[..., 0] + theta[..., 1]).abs() / _SQRT2, (theta[..., 1] - theta[..., 0]) / _SQRT2], -1)


def two_moons_simulate(theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x = p + g(theta) for theta (..., 2) -> x (..., 2); one independent noise draw per row."""
    theta = torch.as_tensor(theta, dtype=torch.float32)
    if theta.shape[-1] != 2:
        raise ValueError(f"theta has shape {tuple(theta.shape)}; expected (..., 2)")
    return _two_moons_noise(tuple(theta.shape[:-1]), generator) + _two_moons_shift(theta)


def two_moons_log_likelihood(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Exact log p(x | theta) of the simulator, broadcasting theta (..., 2) against x (..., 2).

    With p = x - g(theta), u = p0 - 0.25, v = p1 and r = |(u, v)|, the polar change of variables gives
    p(x | theta) = N(r; 0.1, 0.01^2) / (pi r) for u > 0 and 0 otherwise (the mass of r < 0, Phi(-10) ~
    1e-23, is ignored). sbibm's ``_likelihood`` omits the 1 / (pi r) Jacobian; this one includes it.
    """
    theta = torch.as_tensor(theta, dtype=torch.float64)
    x = torch.as_tensor(x, dtype=torch.float64)
    p = x - _two_moons_shift(theta)
    u, v = p[..., 0] - TWO_MOONS_OFFSET, p[..., 1]
    r = torch.sqrt(u**2 + v**2)
    log_l = (
        -0.5 * ((r - TWO_MOONS_R_LOC) / TWO_MOONS_R_SCALE) ** 2
        - math.log(TWO_MOONS_R_SCALE * math.sqrt(2 * math.pi))
        - math.log(math.pi)
        - torch.log(r)
    )
    return torch.where(u > 0, log_l, torch.full_like(log_l, -math.inf))


def two_moons_reference_posterior(
    x_obs: torch.Tensor, n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """n exact samples of p(theta | x_obs) under the U(-1, 1)^2 prior: (2,) -> (n, 2), (batch, 2) -> (batch, n, 2).

    Why this is exact. Rotate theta by 45 degrees: z0 = (theta0 + theta1) / sqrt2, z1 = (-theta0 +
    theta1) / sqrt2 (a rotation, unit Jacobian, so a uniform density in theta is uniform in z). The
    simulator is x = p + (-|z0|, z1) with p drawn from the noise distribution f_p, so the likelihood is
    p(x | theta) = f_p(x0 + |z0|, x1 - z1): it depends on theta only through |z0| and z1. The
    posterior in z is therefore proportional to 1_box(theta) * f_p(x0 + |z0|, x1 - z1), and
    * on each branch (sign of z0) the map from p to z, |z0| = p0 - x0, z1 = x1 - p1, is affine with a
      constant, unit Jacobian, so drawing p ~ f_p and inverting gives (|z0|, z1) with density exactly
      f_p(x0 + |z0|, x1 - z1), provided p0 - x0 >= 0 (otherwise no theta can produce x_obs with this
      p: the draw is rejected, as its likelihood is zero);
    * the likelihood is even in z0, so the sign of z0 is + or - with probability 1/2 each;
    * the prior is uniform on the box, so multiplying by it is rejecting samples outside the box.
    Drawing p from the simulator's own noise, inverting, flipping the sign and rejecting outside the
    box until n samples remain is the procedure of sbibm's reference posterior, with the p0 < x0 draws
    rejected (they never occur for the ten sbibm observations, whose x0 < 0.25 <= p0).
    """
    x, single = _as_observations(x_obs, 2, "x_obs")

    def propose(rows: torch.Tensor, k: int):
        p = _two_moons_noise((rows.numel(), k), generator, dtype=torch.float64)
        xr = x[rows].unsqueeze(1)
        abs_z0 = p[..., 0] - xr[..., 0]
        z1 = xr[..., 1] - p[..., 1]
        sign = torch.where(torch.rand(rows.numel(), k, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
        z0 = sign * abs_z0
        theta = torch.stack([(z0 - z1) / _SQRT2, (z0 + z1) / _SQRT2], -1)
        ok = (abs_z0 >= 0) & (theta.abs() <= 1).all(-1)
        return theta, ok

    samples = _rejection_collect(propose, x.shape[0], n, 2, "two_moons_reference_posterior")
    return samples[0] if single else samples


# ------------------------------------------------------------------------------------------------
# sum of squares: y = sum_i theta_i^2 + N(0, sigma^2), theta ~ U(-1, 1)^d
# ------------------------------------------------------------------------------------------------


def sum_of_squares_prior(n: int, d: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """theta ~ U(-1, 1)^d -> (n, d)."""
    return box_prior(n, d, generator)


def sum_of_squares_simulate(
    theta: torch.Tensor, sigma: float = 0.05, generator: torch.Generator | None = None
) -> torch.Tensor:
    """y = sum_i theta_i^2 + N(0, sigma^2) for theta (..., d) -> y (..., 1)."""
    theta = torch.as_tensor(theta, dtype=torch.float32)
    f = theta.pow(2).sum(-1, keepdim=True)
    return f + sigma * torch.randn(f.shape, generator=generator) if sigma > 0 else f


def _radial_rejection_proposal(y: torch.Tensor, d: int, sigma: float, k: int, generator):
    """Exact proposal for posteriors p(theta | y) ∝ 1_A(theta) N(y; |theta|^2, sigma^2) with A inside a
    ball around 0 (box or disk); y (rows,) float64 -> (s (rows, k), direction (rows, k, d), log_accept (rows, k)).

    In polar form d theta ∝ s^(d/2 - 1) ds dOmega with s = |theta|^2, so the target is
    q(s) * uniform(direction) * 1_A(sqrt(s) direction) with q(s) ∝ s^c N(y; s, sigma^2), c = d/2 - 1 >= 0.
    q is sampled by rejection from N(m, sigma^2), m = (y + sqrt(y^2 + 4 c sigma^2)) / 2 the mode of q;
    q / N(m, sigma^2) ∝ s^c exp(-s (m - y) / sigma^2) is largest at s = m, so the acceptance
    probability exp(c log(s/m) - (s - m)(m - y) / sigma^2) is <= 1 (= 1 when c = 0 and y >= 0). The caller
    accepts a pair (s, direction) only if both the s-test and 1_A pass; rejecting the pair jointly
    (never redrawing the direction for a kept s) keeps the result exact."""
    c = d / 2 - 1
    rows = y.shape[0]
    m = (y + torch.sqrt(y**2 + 4 * c * sigma**2)) / 2  # the mode of q; = max(y, 0) when c = 0
    m = m.unsqueeze(1)
    s = m + sigma * torch.randn(rows, k, generator=generator, dtype=torch.float64)
    yy = y.unsqueeze(1)
    log_accept = -(s - m) * (m - yy) / sigma**2
    if c > 0:
        log_accept = log_accept + c * torch.log(s.clamp(min=1e-300) / m)
    log_accept = torch.where(s > 0, log_accept, torch.full_like(log_accept, -math.inf))
    direction = torch.randn(rows, k, d, generator=generator, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    return s, direction, log_accept


def sum_of_squares_posterior(
    y_obs: torch.Tensor | float,
    d: int = 2,
    n: int = 1000,
    sigma: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """n exact samples of p(theta | y) ∝ 1_[-1,1]^d(theta) N(y; |theta|^2, sigma^2).

    y scalar or (1,) -> (n, d); (batch, 1) -> (batch, n, d). Exact polar rejection sampling (see
    ``_radial_rejection_proposal``): draw s = |theta|^2 from s^(d/2-1) N(y; s, sigma^2) and a uniform
    direction, keep the pair if theta = sqrt(s) * direction lies in the box. For d = 10 and y = 1 the
    acceptance is ~0.9, where plain rejection from the prior would accept ~1e-3.
    """
    if sigma <= 0:
        raise ValueError("sigma must be positive: without noise the posterior is singular")
    d = int(d)
    y, single = _as_observations(y_obs, 1, "y_obs")

    def propose(rows: torch.Tensor, k: int):
        s, direction, log_accept = _radial_rejection_proposal(y[rows, 0], d, sigma, k, generator)
        theta = s.clamp(min=0).sqrt().unsqueeze(-1) * direction
        u = torch.rand(s.shape, generator=generator, dtype=torch.float64)
        ok = (torch.log(u) < log_accept) & (theta.abs() <= 1).all(-1)
        return theta, ok

    samples = _rejection_collect(propose, y.shape[0], n, d, "sum_of_squares_posterior")
    return samples[0] if single else samples


# ------------------------------------------------------------------------------------------------
# ring: z = x^2 + y^2 + N(0, sigma^2), (x, y) uniform in a disk
# ------------------------------------------------------------------------------------------------


def ring_prior(n: int, radius: float = 2.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """theta = (x, y) uniform in the disk of the given radius -> (n, 2)."""
    return disk_prior(n, radius, generator)


def ring_simulate(theta: torch.Tensor, sigma: float = 0.05, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = x^2 + y^2 + N(0, sigma^2) for theta (..., 2) -> z (..., 1)."""
    theta = torch.as_tensor(theta, dtype=torch.float32)
    if theta.shape[-1] != 2:
        raise ValueError(f"theta has shape {tuple(theta.shape)}; expected (..., 2)")
    return sum_of_squares_simulate(theta, sigma, generator)


def _truncated_normal(loc: torch.Tensor, scale: float, low: float, high: float, k: int, generator) -> torch.Tensor:
    """k draws per row of N(loc, scale^2) truncated to [low, high] by the inverse CDF in float64,
    working in the tail nearer to loc so that the CDF differences keep their precision -> (rows, k)."""
    loc = loc.unsqueeze(1)
    a, b = (low - loc) / scale, (high - loc) / scale
    flip = (a + b) > 0  # the interval lies mostly above loc: use the mirrored (lower) tail
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    c_lo, c_hi = torch.special.log_ndtr(lo).exp(), torch.special.log_ndtr(hi).exp()  # ndtr itself underflows below -8
    u = torch.rand(loc.shape[0], k, generator=generator, dtype=torch.float64)
    t = torch.special.ndtri((c_lo + u * (c_hi - c_lo)).clamp(min=1e-300)).clamp(min=lo, max=hi)
    t = torch.where(flip, -t, t)
    return loc + scale * t


def ring_posterior(
    z_obs: torch.Tensor | float,
    n: int = 1000,
    radius: float = 2.0,
    sigma: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """n exact samples of p((x, y) | z) ∝ 1_disk N(z; x^2 + y^2, sigma^2).

    Shapes: z_obs scalar or (1,) -> (n, 2), (batch, 1) -> (batch, n, 2).

    Exact polar sampling: a uniform disk has s = x^2 + y^2 uniform on [0, radius^2] and an independent
    uniform angle, so the posterior of s is N(z, sigma^2) truncated to [0, radius^2] (drawn by the
    inverse CDF) and the angle stays uniform. Accurate to floating point for |z| within ~35 sigma of
    [0, radius^2]; farther away the samples pile up at the nearest edge, as the posterior does.
    """
    if sigma <= 0:
        raise ValueError("sigma must be positive: without noise the posterior is singular")
    z, single = _as_observations(z_obs, 1, "z_obs")
    s = _truncated_normal(z[:, 0], sigma, 0.0, radius**2, int(n), generator)
    phi = 2 * math.pi * torch.rand(s.shape, generator=generator, dtype=torch.float64)
    r = s.clamp(min=0).sqrt()
    samples = torch.stack([r * torch.cos(phi), r * torch.sin(phi)], -1).to(torch.float32)
    return samples[0] if single else samples
