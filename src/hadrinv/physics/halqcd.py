"""Time-dependent HAL QCD method: the equation for R(t, r), its finite differences, synthetic lattice-like data.

Natural units hbar = c = 1, one length unit (fm for the Omega-Omega case: masses and energies in fm^-1,
i.e. MeV / 197.327). For two hadrons of equal mass m_h (reduced mass m_h / 2), the normalised correlator
R(t, r) = G_4pt(t, r) / G_2pt(t)^2 obeys (Ishii et al., PLB 712 (2012) 437; the talk's form)

    { 1/(4 m_h) d^2/dt^2 - d/dt - H0 } R(t, r) = int 4 pi r'^2 dr' U(r, r') R(t, r'),   H0 = -nabla^2 / m_h,

exactly for every elastic state: with W = 2 sqrt(m_h^2 + k^2) and dW = W - 2 m_h, dW^2/(4 m_h) + dW = k^2/m_h.
On the lattice the derivatives are the talk's differences (unit time step a):
R2 = R(t+1) - 2 R(t) + R(t-1), R1 = (R(t+1) - R(t-1)) / 2, Rr = nabla^2 R(t, r).

Synthetic data. R(t, r) = sum_n A_n phi_n(r) exp(-dW_n t) over the s-wave eigenstates phi_n = u_n / r of
the Hamiltonian in a spherical box (u = 0 at the wall, the same second-order Laplacian as the residual,
see `nonlocal_scattering.box_states`), with A_n = <phi_n | source> for a source function of r (a wall
source is constant). Every state then obeys the lattice equation, so a potential that fits the data
reproduces the one that made it, up to the O(dW^3 a^2) error of the time differences. Lattice-like noise
multiplies R by (1 + sigma(t) eps(t, r)) per gauge configuration, with eps smooth in r (Gaussian
correlation length), correlated in t (AR(1)), and sigma(t) growing exponentially with t (the
signal-to-noise problem of baryon correlators).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from hadrinv.physics.nonlocal_scattering import RadialMesh, box_states

HBARC_MEV_FM = 197.3269804


@dataclass(frozen=True)
class GaussianSumPotential:
    """Local V(r) = sum_j c_j exp(-(r / d_j)^2). Defaults: HAL QCD Omega-Omega (1S0) at m_Omega = 1711.5 MeV
    (Gongyo et al., PRL 120 (2018) 212001): c in MeV, d in fm."""

    strengths_mev: tuple[float, ...] = (914.0, 305.0, -112.0)
    ranges_fm: tuple[float, ...] = (0.143, 0.305, 0.949)

    def __post_init__(self):
        if len(self.strengths_mev) != len(self.ranges_fm) or min(self.ranges_fm) <= 0:
            raise ValueError("need one positive range per strength")

    def __call__(self, r_fm: torch.Tensor) -> torch.Tensor:
        """V in MeV at r in fm (any shape)."""
        return sum(c * torch.exp(-((r_fm / d) ** 2)) for c, d in zip(self.strengths_mev, self.ranges_fm))

    def depth_mev(self) -> float:
        """The well depth |min V| (MeV), from a fine scan of (0, 3 max d_j]."""
        r = torch.linspace(1e-3, 3 * max(self.ranges_fm), 20001, dtype=torch.float64)
        return float(-self(r).min().clamp(max=0.0))


OMEGA_OMEGA = GaussianSumPotential()
OMEGA_MASS_LATTICE_MEV = 1711.5  # m_Omega on the HAL QCD ensemble that made the potential
LATTICE_SPACING_FM = HBARC_MEV_FM / 2333.0  # a^-1 = 2333 MeV (the talk; 0.0846 fm)


def radial_laplacian(R: torch.Tensor, step: float, order: int = 2) -> torch.Tensor:
    """nabla^2 R = (1/r) d^2 (r R)/dr^2 on r_i = i step (i = 1..n) along the last axis, with u = r R odd in r
    (u(0) = 0, u(-r) = -u(r)). order 2 (three points; the lattice's) returns (..., n - 1), order 4 (five
    points) returns (..., n - 2): the outer nodes lack right neighbours."""
    n = R.shape[-1]
    r = torch.arange(1, n + 1, dtype=R.dtype, device=R.device) * step
    u = R * r
    padded = torch.cat([-u[..., :1], torch.zeros_like(u[..., :1]), u], -1)  # r = -step, 0, step, ...
    if order == 2:
        d2 = padded[..., 3:] - 2.0 * padded[..., 2:-1] + padded[..., 1:-2]
        return d2 / (step * step) / r[:-1]
    if order == 4:
        c = padded
        d2 = -c[..., 4:] + 16.0 * c[..., 3:-1] - 30.0 * c[..., 2:-2] + 16.0 * c[..., 1:-3] - c[..., :-4]
        return d2 / (12.0 * step * step) / r[:-2]
    raise ValueError(f"order must be 2 or 4, got {order}")


def stationary_lhs(phi: torch.Tensor, k: torch.Tensor, step: float, mass: float, order: int = 4) -> torch.Tensor:
    """(E_k - H0) phi_k(r) = k^2/(2m) phi + nabla^2 phi / (2m) for wave functions phi (K, n) on r_i = i step:
    the left side of the stationary HAL QCD equation, on the first n - order/2 radii."""
    lap = radial_laplacian(phi, step, order)
    keep = lap.shape[-1]
    return (k[:, None] ** 2 * phi[..., :keep] + lap) / (2.0 * mass)


def time_differences(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The talk's R2 and R1 in lattice time units for slices 1..T-2 of R (T, ...)."""
    return R[2:] - 2.0 * R[1:-1] + R[:-2], 0.5 * (R[2:] - R[:-2])


def time_dependent_lhs(R: torch.Tensor, step: float, hadron_mass: float, time_step: float = 1.0) -> torch.Tensor:
    """{1/(4 m_h) d_t^2 - d_t + nabla^2 / m_h} R for slices 1..T-2 and radii 1..n-1 (R: (T, n), times time_step
    apart, radii on the mesh r_i = i step). This is int 4 pi r'^2 U(r, r') R(t, r') dr' when U made R."""
    R2, R1 = time_differences(R)
    lap = radial_laplacian(R[1:-1], step)
    return R2[..., :-1] / time_step**2 / (4.0 * hadron_mass) - R1[..., :-1] / time_step + lap / hadron_mass


def potential_action(U: torch.Tensor, R: torch.Tensor, r: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """int 4 pi r'^2 U(r, r') R(t, r') dr' on the mesh: U (n, n), R (..., n) -> (..., n)."""
    return (R * (4.0 * math.pi * r * r * weights)) @ U.T


def effective_local_potential(U: torch.Tensor, R: torch.Tensor, r: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The talk's V_theta(r) = sum_r' dr' 4 pi r'^2 U(r, r') R(t, r') / R(t, r) (same units as E)."""
    return potential_action(U, R, r, weights) / R


def leading_order_potential(R: torch.Tensor, step: float, hadron_mass: float, time_step: float = 1.0) -> torch.Tensor:
    """The local potential of the leading-order time-dependent HAL QCD method: lhs / R (slices 1..T-2, radii
    1..n-1). The classical baseline beside a learned non-local U."""
    return time_dependent_lhs(R, step, hadron_mass, time_step) / R[1:-1, :-1]


def wall_source(r: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(r)


def synthetic_correlator(
    mesh: RadialMesh,
    reduced_mass: float,
    times: torch.Tensor,
    source: torch.Tensor,
    U: torch.Tensor | None = None,
    V: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """Noise-free R(t, r) (len(times), n) in a spherical box of radius mesh.r_max + mesh.step.

    times in lattice units of the same length (t * a); hadron mass = 2 reduced_mass. Returns R and the
    spectrum {energies, dW, overlaps} used, for checks."""
    r = mesh.nodes()
    energies, u = box_states(mesh, reduced_mass, U=U, V=V)
    hadron_mass = 2.0 * reduced_mass
    # k_n^2 = 2 m E_n; a deeply bound state (k^2 < -m_h^2) cannot be an energy of two hadrons
    k2 = 2.0 * reduced_mass * energies
    if (k2 <= -(hadron_mass**2)).any():
        raise ValueError("a box state lies below zero total energy: unphysical potential for these masses")
    dW = 2.0 * torch.sqrt(hadron_mass**2 + k2) - 2.0 * hadron_mass
    phi = u / r[:, None]  # phi_n(r_i) as columns
    overlaps = (4.0 * math.pi * r * r * mesh.step * source.to(r.dtype)) @ phi
    R = (phi[None] * (overlaps * torch.exp(-dW[None, :] * times.to(r.dtype)[:, None]))[:, None, :]).sum(-1)
    return R, {"energies": energies, "dW": dW, "overlaps": overlaps}


def lattice_noise(
    R: torch.Tensor,
    configurations: int,
    relative_error: float,
    growth_per_slice: float,
    correlation_length: float,
    step: float,
    time_correlation: float = 0.9,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Configurations (C, T, n) of R (T, n) with multiplicative noise: relative_error on the first slice,
    times exp(growth_per_slice * slice); smooth in r (Gaussian kernel of correlation_length) and AR(1)
    correlated between slices with coefficient time_correlation. The mean over configurations estimates R
    with errors ~ relative_error / sqrt(C)."""
    T, n = R.shape
    white = torch.randn(configurations, T, n, generator=generator, dtype=R.dtype)
    offsets = torch.arange(-n + 1, n, dtype=R.dtype) * step
    kernel = torch.exp(-0.5 * (offsets / correlation_length) ** 2)
    idx = torch.arange(n)
    smoother = kernel[(idx[:, None] - idx[None, :]) + n - 1]
    smooth = white @ smoother.T
    smooth = smooth / smooth.std(dim=(0, 2), keepdim=True).clamp_min(1e-30)
    eps = torch.empty_like(smooth)
    eps[:, 0] = smooth[:, 0]
    innovation = math.sqrt(1.0 - time_correlation**2)
    for t in range(1, T):  # T is a handful of slices: the recursion over t is not a hot path
        eps[:, t] = time_correlation * eps[:, t - 1] + innovation * smooth[:, t]
    sigma = relative_error * torch.exp(growth_per_slice * torch.arange(T, dtype=R.dtype))
    return R[None] * (1.0 + sigma[None, :, None] * eps)
