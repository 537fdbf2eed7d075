"""Femtoscopic correlation functions from potentials (talk 001, "Inverse Femtoscopy"). Units: MeV and fm.

- Potential family of the talk (the HAL QCD N-Omega 5S2 form):
  V(r) = b1 exp(-b2 r^2) + b3 (1 - exp(-b4 r^2)) (exp(-m_pi r) / r)^n_pi,  b1 MeV, b2 fm^-2, b3 MeV fm^n_pi, b4 fm^-2.
- Gaussian source S(r) = (4 pi r0^2)^(-3/2) exp(-r^2 / (4 r0^2)), normalised: int 4 pi r^2 S dr = 1.
- Koonin-Pratt for a non-identical pair without Coulomb, only the s wave interacting:
  C(k) = 1 + int 4 pi r^2 S(r) [|u(r) / (k r)|^2 - j0(k r)^2] dr,  u -> sin(k r + delta).
  Identical particles, Coulomb and spin-averaged channels are not modelled (the talk's study has none).
- Lednicky-Lyuboshits from (a0, r_eff) and the effective-range expansion
  k cot delta = -1/a0 + r_eff k^2 / 2 (nuclear sign: a0 > 0 with a bound state or a repulsive core).

Everything is batched over potentials (rows) and momenta (columns) and differentiable in the parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.special
import torch

from hadrinv.physics.schrodinger import (
    DEFAULT_GRID,
    HBARC_MEV_FM,
    Potential,
    RadialSolution,
    StretchedGrid,
    shallowest_bound_state,
    solve_s_wave,
    zero_energy_scattering_length,
)

# reduced masses m1 m2 / (m1 + m2) in MeV from p 938.272, Lambda 1115.683, Xi- 1321.7, Omega 1672.45
REDUCED_MASSES_MEV = {
    "p-Omega": 601.065,
    "p-Lambda": 509.658,
    "p-p": 469.136,
    "Lambda-Lambda": 557.842,
    "p-Xi": 548.730,
    "Omega-Omega": 836.225,
}
P_OMEGA_REDUCED_MASS_MEV = REDUCED_MASSES_MEV["p-Omega"]
# HAL QCD N-Omega (5S2) fit at t/a = 11, m_pi = 146 MeV (Iritani et al., PLB 792 (2019) 284)
HAL_N_OMEGA = {"b1": -306.5, "b2": 73.9, "b3": -266.0, "b4": 0.78}
HAL_N_OMEGA_PION_MASS_MEV = 146.0


@dataclass
class GaussianYukawaPotential:
    """V(r) = b1 exp(-b2 r^2) + b3 (1 - exp(-b4 r^2)) (exp(-m_pi r)/r)^n_pi for a batch of parameter sets.

    b1 MeV, b2 fm^-2, b3 MeV fm^n_pi, b4 fm^-2 (tensors (P,) or numbers); m_pi in MeV.
    At r = 0 the second term is finite for n_pi <= 2 (b3 b4 for n_pi = 2)."""

    b1: torch.Tensor | float
    b2: torch.Tensor | float
    b3: torch.Tensor | float
    b4: torch.Tensor | float
    m_pi_mev: float = HAL_N_OMEGA_PION_MASS_MEV
    n_pi: float = 2.0

    @classmethod
    def from_parameters(cls, b: torch.Tensor, **options) -> GaussianYukawaPotential:
        """From a (P, 4) tensor of (b1, b2, b3, b4)."""
        b = torch.as_tensor(b, dtype=torch.float64)
        if b.ndim != 2 or b.shape[1] != 4:
            raise ValueError(f"expected (P, 4) parameters (b1, b2, b3, b4), got {tuple(b.shape)}")
        return cls(b[:, 0], b[:, 1], b[:, 2], b[:, 3], **options)

    def __len__(self) -> int:
        return int(torch.as_tensor(self.b1).reshape(-1).shape[0])

    def __call__(self, r_fm: torch.Tensor) -> torch.Tensor:
        r = torch.as_tensor(r_fm, dtype=torch.float64)
        b1, b2, b3, b4 = (
            torch.as_tensor(b, dtype=r.dtype, device=r.device).reshape(-1, 1)
            for b in (self.b1, self.b2, self.b3, self.b4)
        )
        m_pi = self.m_pi_mev / HBARC_MEV_FM
        # (1 - exp(-b4 r^2)) / r^n via expm1, so that r -> 0 stays accurate for n_pi = 2
        safe_r = torch.where(r > 0, r, torch.ones_like(r))
        yukawa = -torch.expm1(-b4 * r * r) * (torch.exp(-m_pi * r) / safe_r) ** self.n_pi
        at_origin = b4 * (r == 0) if self.n_pi == 2 else torch.zeros_like(yukawa)
        yukawa = torch.where(r > 0, yukawa, at_origin)
        return b1 * torch.exp(-b2 * r * r) + b3 * yukawa


def gaussian_source(r_fm: torch.Tensor, r0_fm: torch.Tensor | float) -> torch.Tensor:
    """S(r) in fm^-3 for source sizes r0 (P,) at radii r (N,): (P, N)."""
    r0 = torch.as_tensor(r0_fm, dtype=r_fm.dtype, device=r_fm.device).reshape(-1, 1)
    return (4.0 * math.pi * r0 * r0) ** -1.5 * torch.exp(-(r_fm * r_fm) / (4.0 * r0 * r0))


def _outer_source_integrals(r_from: float, r0: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int_{r_from}^inf 4 pi S(r) {sin, cos}(2 k r) dr for r0 (P,) and k (1 or P, K), by Gauss-Legendre panels."""
    r_end = max(r_from + 1.0, 13.6 * float(r0.detach().max()))  # S < e^-46 S(0) beyond
    panels = max(1, math.ceil((r_end - r_from) / 0.5))
    t, w = np.polynomial.legendre.leggauss(8)
    edges = np.linspace(r_from, r_end, panels + 1)
    half = 0.5 * (edges[1:] - edges[:-1])
    nodes = (0.5 * (edges[1:] + edges[:-1])[:, None] + half[:, None] * t[None]).reshape(-1)
    weights = (half[:, None] * w[None]).reshape(-1)
    r = torch.as_tensor(nodes, dtype=k.dtype, device=k.device)
    density = (
        4.0 * math.pi * gaussian_source(r, r0) * torch.as_tensor(weights, dtype=k.dtype, device=k.device)
    )  # (P, J)
    phase = 2.0 * k[:, :, None] * r  # (1 or P, K, J)
    return torch.einsum("pj,pkj->pk", density, torch.sin(phase)), torch.einsum("pj,pkj->pk", density, torch.cos(phase))


def koonin_pratt(solution: RadialSolution, r0_fm: torch.Tensor | float) -> torch.Tensor:
    """C(k) (P, K) from s-wave solutions and Gaussian source sizes r0 (P,) or one number.

    Inside the matching radius the integrand uses the solved u; beyond it u = sin(k r + delta) exactly,
    and sin^2(k r + delta) - sin^2(k r) = sin(delta) sin(2 k r + delta) leaves two source integrals."""
    grid = solution.grid
    nodes = grid.nodes(solution.u.dtype, solution.u.device)
    P = solution.delta.shape[0]
    r0 = torch.as_tensor(r0_fm, dtype=solution.u.dtype, device=solution.u.device).reshape(-1).expand(P)
    k = solution.k_fm
    measure = grid.simpson_weights(solution.u.dtype, solution.u.device) * nodes["dr_dx"]  # Simpson in x, dr = g' dx
    density = 4.0 * math.pi * gaussian_source(nodes["r"], r0) * measure  # (P, N+1)
    free = torch.sin(k[None] * nodes["r"][:, None, None]) ** 2  # (N+1, 1 or P, K)
    inner = torch.einsum("np,npk->pk", density.T, solution.u**2 - free)
    s_int, c_int = _outer_source_integrals(float(nodes["r"][-1]), r0, k)
    delta = solution.delta
    outer = torch.sin(delta) * (torch.cos(delta) * s_int + torch.sin(delta) * c_int)
    return 1.0 + (inner + outer) / (k * k)


def correlation_function(
    potential: Potential,
    k_mev: torch.Tensor,
    r0_fm: torch.Tensor | float,
    reduced_mass_mev: float = P_OMEGA_REDUCED_MASS_MEV,
    grid: StretchedGrid = DEFAULT_GRID,
    chunk: int = 128,
) -> tuple[torch.Tensor, torch.Tensor]:
    """C(k) and the s-wave phase shift delta(k) in radians, each (P, K), for P potentials and source sizes.

    ``potential``: a function r_fm (N,) -> V_MeV (P, N), e.g. GaussianYukawaPotential. Potentials are solved
    ``chunk`` at a time, which bounds the memory to ~ 8 chunk K N bytes per array (N ~ 1250 radial nodes)."""
    r = grid.nodes(torch.float64)["r"]
    V = potential(r) if callable(potential) else torch.as_tensor(potential, dtype=torch.float64)
    V = V[None] if V.ndim == 1 else V
    k_mev = torch.as_tensor(k_mev, dtype=torch.float64)
    P = V.shape[0]
    r0 = torch.as_tensor(r0_fm, dtype=torch.float64).reshape(-1).expand(P)
    C, delta = [], []
    for start in range(0, P, chunk):
        rows = slice(start, start + chunk)
        k_rows = k_mev if k_mev.ndim == 1 else k_mev[rows]
        mu = (
            reduced_mass_mev
            if not torch.is_tensor(reduced_mass_mev) or reduced_mass_mev.ndim == 0
            else reduced_mass_mev[rows]
        )
        solution = solve_s_wave(V[rows], k_rows, mu, grid)
        C.append(koonin_pratt(solution, r0[rows]))
        delta.append(solution.delta)
    return torch.cat(C), torch.cat(delta)


class _Dawson(torch.autograd.Function):
    """Dawson's integral F(x) = exp(-x^2) int_0^x exp(t^2) dt; torch has none (scipy does), F' = 1 - 2 x F."""

    @staticmethod
    def forward(ctx, x):
        value = torch.as_tensor(scipy.special.dawsn(x.detach().cpu().numpy()), dtype=x.dtype, device=x.device)
        ctx.save_for_backward(x, value)
        return value

    @staticmethod
    def backward(ctx, grad):
        x, value = ctx.saved_tensors
        return grad * (1.0 - 2.0 * x * value)


def dawson(x: torch.Tensor) -> torch.Tensor:
    return _Dawson.apply(x)


def lednicky_lyuboshits_from_amplitude(k_mev: torch.Tensor, r0_fm, f_fm: torch.Tensor, r_eff_fm=None) -> torch.Tensor:
    """LL correlation from the s-wave amplitude f(k) in fm (complex, broadcast with k and r0 as (P, K)).

    Without r_eff this is Koonin-Pratt on the asymptotic wave function sin(k r + delta) / (k r) exactly;
    with it, the Lednicky-Lyuboshits correction factor (1 - r_eff / (2 sqrt(pi) R)) multiplies |f|^2."""
    k = torch.as_tensor(k_mev, dtype=torch.float64) / HBARC_MEV_FM
    R = torch.as_tensor(r0_fm, dtype=torch.float64)
    R = R.reshape(-1, 1) if R.ndim == 1 else R
    x = 2.0 * k * R
    F1 = dawson(x) / x
    F2 = -torch.expm1(-x * x) / x
    modulus2 = f_fm.real**2 + f_fm.imag**2
    correction = (
        1.0
        if r_eff_fm is None
        else 1.0 - torch.as_tensor(r_eff_fm, dtype=torch.float64).reshape(-1, 1) / (2.0 * math.sqrt(math.pi) * R)
    )
    return (
        1.0
        + modulus2 / (2.0 * R * R) * correction
        + 2.0 * f_fm.real * F1 / (math.sqrt(math.pi) * R)
        - f_fm.imag * F2 / R
    )


def scattering_amplitude(k_mev: torch.Tensor, a0_fm, r_eff_fm) -> torch.Tensor:
    """f(k) = 1 / (-1/a0 + r_eff k^2 / 2 - i k) in fm (nuclear sign), broadcast to (P, K)."""
    k = torch.as_tensor(k_mev, dtype=torch.float64) / HBARC_MEV_FM
    a0 = torch.as_tensor(a0_fm, dtype=torch.float64).reshape(-1, 1)
    r_eff = torch.as_tensor(r_eff_fm, dtype=torch.float64).reshape(-1, 1)
    return 1.0 / torch.complex(-1.0 / a0 + 0.5 * r_eff * k * k, -k.expand_as(a0 * k))


def lednicky_lyuboshits(
    k_mev: torch.Tensor, r0_fm, a0_fm, r_eff_fm, effective_range_correction: bool = True
) -> torch.Tensor:
    """Lednicky-Lyuboshits C(k) for a Gaussian source r0 from (a0, r_eff), nuclear sign; (P, K).

    The femto convention (CATS) k cot delta = 1/f0 + d0 k^2/2 is f0 = -a0, d0 = r_eff.
    The correction factor is large at r0 ~ 1 fm: LL is an approximation for small sources."""
    f = scattering_amplitude(k_mev, a0_fm, r_eff_fm)
    return lednicky_lyuboshits_from_amplitude(k_mev, r0_fm, f, r_eff_fm if effective_range_correction else None)


def amplitude_from_phase_shift(k_mev: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """f = e^{i delta} sin(delta) / k in fm."""
    k = torch.as_tensor(k_mev, dtype=torch.float64) / HBARC_MEV_FM
    return torch.polar(torch.sin(delta) / k, delta)


@dataclass
class EffectiveRange:
    """k cot delta = -1/a0 + r_eff k^2 / 2 + shape k^4 (nuclear sign), fitted on k in [k_min, k_max] MeV."""

    a0_fm: torch.Tensor
    r_eff_fm: torch.Tensor
    shape_fm3: torch.Tensor
    max_residual_fm_inv: torch.Tensor  # largest |k cot delta - fit| over the fitted momenta


def effective_range_fit(
    potential: Potential,
    reduced_mass_mev: float = P_OMEGA_REDUCED_MASS_MEV,
    k_range_mev: tuple[float, float] = (1.0, 30.0),
    points: int = 30,
    grid: StretchedGrid = DEFAULT_GRID,
) -> EffectiveRange:
    """Scattering length and effective range of every potential from a least-squares fit of k cot delta in
    (1, k^2, k^4) at low momenta; (P,) each."""
    k_mev = torch.linspace(*k_range_mev, points, dtype=torch.float64)
    delta = solve_s_wave(potential, k_mev, reduced_mass_mev, grid).delta
    k = k_mev / HBARC_MEV_FM
    kcot = k / torch.tan(delta)  # (P, K)
    design = torch.stack([torch.ones_like(k), k * k, k**4], dim=1)  # (K, 3)
    coef = torch.linalg.lstsq(design.expand(kcot.shape[0], -1, -1), kcot[:, :, None]).solution[..., 0]
    residual = (kcot - coef @ design.T).abs().max(dim=1).values
    return EffectiveRange(
        a0_fm=-1.0 / coef[:, 0], r_eff_fm=2.0 * coef[:, 1], shape_fm3=coef[:, 2], max_residual_fm_inv=residual
    )


def scattering_length(
    potential: Potential, reduced_mass_mev: float = P_OMEGA_REDUCED_MASS_MEV, grid: StretchedGrid = DEFAULT_GRID
):
    """a0 (fm, nuclear sign) from the zero-energy solution and the number of bound states; (P,) each."""
    return zero_energy_scattering_length(potential, reduced_mass_mev, grid)


def binding_energy(
    potential: Potential, reduced_mass_mev: float = P_OMEGA_REDUCED_MASS_MEV, grid: StretchedGrid = DEFAULT_GRID
):
    """Binding energy (MeV, > 0; NaN if unbound) of the least bound s-wave state, and the number of bound states."""
    return shallowest_bound_state(potential, reduced_mass_mev, grid)
