"""Toy deep-inelastic scattering (DIS) of talk 003: proton and neutron cross sections from u and d quarks.

sigma_p(x, Q2) = 4 u(x, Q2) + d(x, Q2),   sigma_n(x, Q2) = 4 d(x, Q2) + u(x, Q2)   (arbitrary units),
q(x, Q2) = N_q x^alpha_q (1 - x)^beta_q (1 + gamma_q sqrt(x) + delta_q x)        for q = u, d,
every shape parameter p(Q2) = p0 + p1 s(Q2) with the DGLAP-like evolution variable
s(Q2) = log( log(Q2 / Lambda^2) / log(Q0^2 / Lambda^2) ),  so s(Q0^2) = 0 and p(Q0^2) = p0.

x is Bjorken x (dimensionless, in (0, 1)), Q2 the photon virtuality in GeV^2. The model is defined
for Q2 > Lambda^2; data and priors here use Q2 >= Q0^2 = 1 GeV^2, where s >= 0.

Parameter vector: 20 numbers in the order of PARAMETER_NAMES,
(for q in u, d: for p in N, alpha, beta, gamma, delta: p0 then p1), e.g. N_u0, N_u1, alpha_u0, ...
All functions are batched, differentiable and follow the dtype and device of `params`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

Q0_2_GEV2 = 1.0  # Q0^2, the scale where s(Q2) = 0 and p = p0 (Duke-Owens-style toy, public code)
LAMBDA2_GEV2 = 0.4  # Lambda_QCD^2 of the same toy
PROTON_MASS_GEV = 0.938

FLAVOURS = ("u", "d")
SHAPES = ("N", "alpha", "beta", "gamma", "delta")
# p(Q2) of the 10 shape parameters, in the order of the last axis of shape_parameters()
SHAPE_NAMES = tuple(f"{p}_{q}" for q in FLAVOURS for p in SHAPES)
PARAMETER_NAMES = tuple(f"{p}_{q}{k}" for q in FLAVOURS for p in SHAPES for k in (0, 1))
N_PARAMETERS = len(PARAMETER_NAMES)  # 20


def evolution_variable(q2_gev2: torch.Tensor | float) -> torch.Tensor:
    """s(Q2) = log( log(Q2/Lambda^2) / log(Q0^2/Lambda^2) ), dimensionless; Q2 in GeV^2 (> Lambda^2).

    s = 0 at Q0^2 = 1 GeV^2, increasing: s(200 GeV^2) = 1.914. NaN for Q2 <= Lambda^2.
    """
    q2 = torch.as_tensor(q2_gev2)
    if not q2.is_floating_point():
        q2 = q2.to(torch.get_default_dtype())
    return torch.log(torch.log(q2 / LAMBDA2_GEV2) / math.log(Q0_2_GEV2 / LAMBDA2_GEV2))


def _kinematics(params: torch.Tensor, *values) -> list[torch.Tensor]:
    return [torch.as_tensor(v, dtype=params.dtype, device=params.device) for v in values]


def shape_parameters(params: torch.Tensor, q2_gev2: torch.Tensor) -> torch.Tensor:
    """p(Q2) = p0 + p1 s(Q2) for the 10 shape parameters (order SHAPE_NAMES).

    params (..., 20) in PARAMETER_NAMES order; q2 (n_points,) shared by the batch or (..., n_points), GeV^2.
    Returns (..., n_points, 10).
    """
    (q2,) = _kinematics(params, q2_gev2)
    s = evolution_variable(q2)
    p0, p1 = params[..., 0::2], params[..., 1::2]  # (..., 10) each
    return p0.unsqueeze(-2) + p1.unsqueeze(-2) * s.unsqueeze(-1)


def _shape(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """N x^alpha (1-x)^beta (1 + gamma sqrt(x) + delta x) from p (..., 5) in SHAPES order."""
    n, alpha, beta, gamma, delta = p.unbind(-1)
    return n * torch.exp(alpha * torch.log(x) + beta * torch.log1p(-x)) * (1.0 + gamma * torch.sqrt(x) + delta * x)


def parton_distribution(params: torch.Tensor, x: torch.Tensor, q2_gev2: torch.Tensor, flavour: str) -> torch.Tensor:
    """u(x, Q2) or d(x, Q2) (flavour "u" or "d"), arbitrary units.

    params (..., 20); x in (0, 1) and q2 in GeV^2, each (n_points,) shared or (..., n_points).
    Returns (..., n_points).
    """
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, not {flavour!r}")
    x_t, q2 = _kinematics(params, x, q2_gev2)
    x_t, q2 = torch.broadcast_tensors(x_t, q2)
    k = FLAVOURS.index(flavour) * len(SHAPES)
    p = shape_parameters(params, q2)[..., k : k + len(SHAPES)]
    return _shape(x_t, p)


def parton_distributions(params: torch.Tensor, x: torch.Tensor, q2_gev2: torch.Tensor) -> torch.Tensor:
    """(u, d) stacked on the last axis: (..., n_points, 2)."""
    x_t, q2 = _kinematics(params, x, q2_gev2)
    x_t, q2 = torch.broadcast_tensors(x_t, q2)
    p = shape_parameters(params, q2)
    n = len(SHAPES)
    return torch.stack([_shape(x_t, p[..., :n]), _shape(x_t, p[..., n:])], dim=-1)


def cross_sections(params: torch.Tensor, x: torch.Tensor, q2_gev2: torch.Tensor) -> torch.Tensor:
    """(sigma_p, sigma_n) = (4u + d, 4d + u), arbitrary units, shape (..., n_points, 2).

    params (..., 20); x and q2 (GeV^2) each (n_points,) shared by the batch or (..., n_points).
    """
    ud = parton_distributions(params, x, q2_gev2)
    u, d = ud[..., 0], ud[..., 1]
    return torch.stack([4.0 * u + d, 4.0 * d + u], dim=-1)


def quark_distributions_from_cross_sections(sigma: torch.Tensor) -> torch.Tensor:
    """The exact linear inversion: u = (4 sigma_p - sigma_n)/15, d = (4 sigma_n - sigma_p)/15; (..., 2) -> (..., 2)."""
    sp, sn = sigma[..., 0], sigma[..., 1]
    return torch.stack([(4.0 * sp - sn) / 15.0, (4.0 * sn - sp) / 15.0], dim=-1)


def invariant_mass_squared(x: torch.Tensor, q2_gev2: torch.Tensor) -> torch.Tensor:
    """W^2 = Q2 (1 - x)/x + M_p^2 in GeV^2, the squared mass of the hadronic final state."""
    x_t = torch.as_tensor(x)
    return torch.as_tensor(q2_gev2) * (1.0 - x_t) / x_t + PROTON_MASS_GEV**2


# ----------------------------------------------------------------------------------------------
# Parameter space: which parameters are free, their box prior, the fixed values of the others
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DISParameterSpace:
    """A box prior on some of the 20 parameters; the others are fixed at `central`.

    central: 20 values in PARAMETER_NAMES order (the fixed parameters keep these values).
    bounds: (name, low, high) of each free parameter, in the order of the free vector.
    """

    central: tuple[float, ...]
    bounds: tuple[tuple[str, float, float], ...]

    def __post_init__(self):
        if len(self.central) != N_PARAMETERS:
            raise ValueError(f"central needs {N_PARAMETERS} values, got {len(self.central)}")
        names = [b[0] for b in self.bounds]
        unknown = [n for n in names if n not in PARAMETER_NAMES]
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; names are {PARAMETER_NAMES}")
        if len(set(names)) != len(names):
            raise ValueError(f"a free parameter is listed twice: {names}")
        for name, low, high in self.bounds:
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{name}: need finite low < high, got [{low}, {high}]")

    @property
    def free_names(self) -> tuple[str, ...]:
        return tuple(b[0] for b in self.bounds)

    @property
    def free_index(self) -> tuple[int, ...]:
        """Positions of the free parameters in the 20-vector."""
        return tuple(PARAMETER_NAMES.index(n) for n in self.free_names)

    @property
    def fixed_names(self) -> tuple[str, ...]:
        return tuple(n for n in PARAMETER_NAMES if n not in self.free_names)

    @property
    def n_free(self) -> int:
        return len(self.bounds)

    @property
    def low(self) -> torch.Tensor:
        """Lower prior bounds, (n_free,) float64."""
        return torch.tensor([b[1] for b in self.bounds], dtype=torch.float64)

    @property
    def high(self) -> torch.Tensor:
        """Upper prior bounds, (n_free,) float64."""
        return torch.tensor([b[2] for b in self.bounds], dtype=torch.float64)

    def sample_prior(
        self, n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
    ) -> torch.Tensor:
        """n draws from the uniform box prior, (n, n_free)."""
        u = torch.rand(n, self.n_free, generator=generator, dtype=dtype)
        low, high = self.low.to(dtype), self.high.to(dtype)
        return low + (high - low) * u

    def contains(self, free: torch.Tensor) -> torch.Tensor:
        """Whether each free vector (..., n_free) lies inside the box (bounds included), (...,) bool."""
        low, high = self.low.to(free), self.high.to(free)
        return ((free >= low) & (free <= high)).all(-1)

    def full_parameters(self, free: torch.Tensor) -> torch.Tensor:
        """(..., n_free) -> (..., 20): free values in their slots, the fixed ones at `central`. Differentiable."""
        free = torch.as_tensor(free)
        if free.shape[-1] != self.n_free:
            raise ValueError(
                f"expected {self.n_free} free parameters {self.free_names}, got last dimension {free.shape[-1]}"
            )
        central = torch.tensor(self.central, dtype=free.dtype, device=free.device)
        full = central.expand(*free.shape[:-1], N_PARAMETERS).clone()
        full[..., list(self.free_index)] = free
        return full

    def free_parameters(self, full: torch.Tensor) -> torch.Tensor:
        """(..., 20) -> (..., n_free), the inverse of full_parameters on the free slots."""
        return torch.as_tensor(full)[..., list(self.free_index)]


def _central(values: dict[str, float]) -> tuple[float, ...]:
    return tuple(float(values.get(name, 0.0)) for name in PARAMETER_NAMES)


# Valence-like shapes at Q0^2: u ~ 2.0 x^0.5 (1-x)^3, d ~ 1.0 x^0.5 (1-x)^4, gamma = delta = 0 (fixed).
# Free: N, alpha, beta of u and d, p0 within +-20% of the central value and slopes p1 with
# N_u1 in [-0.5, 0.5], N_d1 in [-0.25, 0.25], alpha1 in [-0.2, 0.2], beta1 in [0, 1.5] (valence
# quarks soften, beta grows with Q2). Since s <= 1.92 for Q2 <= 200 GeV^2, N(Q2) >= 0.64 (u) and
# >= 0.32 (d) everywhere in the box, so u, d and both cross sections are positive and finite.
_DEFAULT_BOUNDS = (
    ("N_u0", 1.6, 2.4),
    ("N_u1", -0.5, 0.5),
    ("alpha_u0", 0.4, 0.6),
    ("alpha_u1", -0.2, 0.2),
    ("beta_u0", 2.4, 3.6),
    ("beta_u1", 0.0, 1.5),
    ("N_d0", 0.8, 1.2),
    ("N_d1", -0.25, 0.25),
    ("alpha_d0", 0.4, 0.6),
    ("alpha_d1", -0.2, 0.2),
    ("beta_d0", 3.2, 4.8),
    ("beta_d1", 0.0, 1.5),
)
DEFAULT_SPACE = DISParameterSpace(
    central=_central({name: 0.5 * (low + high) for name, low, high in _DEFAULT_BOUNDS}),  # gamma, delta: 0
    bounds=_DEFAULT_BOUNDS,
)
