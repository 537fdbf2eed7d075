"""Partial-wave expansion of an elastic 2 -> 2 amplitude of spinless particles.

Conventions (talk 000): A(s, z) = sum_l (2l + 1) f_l(s) P_l(z), z = cos(theta), with dimensionless
partial waves f_l. Elastic unitarity reads Im f_l = |f_l|^2, i.e. f_l = exp(i delta_l) sin(delta_l).
All functions are batched over leading dimensions and differentiable.
"""

from __future__ import annotations

import math

import torch

from hadrinv.physics.quadrature import gauss_legendre, periodic_trapezoid, simpson


def legendre_polynomials(z: torch.Tensor, l_max: int) -> torch.Tensor:
    """P_0(z) .. P_{l_max}(z), stacked on a new last dimension (Bonnet's recursion)."""
    polys = [torch.ones_like(z)]
    if l_max >= 1:
        polys.append(z)
    for l in range(1, l_max):
        polys.append(((2 * l + 1) * z * polys[l] - l * polys[l - 1]) / (l + 1))
    return torch.stack(polys, dim=-1)


def amplitude_from_waves(waves: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A(z) = sum_l (2l+1) f_l P_l(z).

    waves: complex, shape (..., l_max + 1); z: real, broadcastable with waves[..., 0].
    """
    l_max = waves.shape[-1] - 1
    degeneracy = torch.arange(l_max + 1, dtype=z.dtype, device=z.device) * 2 + 1
    basis = legendre_polynomials(z, l_max) * degeneracy
    return (waves * basis).sum(-1)


def project_partial_waves(
    amplitude: torch.Tensor, z_nodes: torch.Tensor, z_weights: torch.Tensor, l_max: int
) -> torch.Tensor:
    """f_l = 1/2 int_{-1}^{1} P_l(z) A(z) dz by quadrature; amplitude has shape (..., len(z_nodes))."""
    basis = legendre_polynomials(z_nodes, l_max) * z_weights[:, None]
    return 0.5 * torch.einsum("...k,kl->...l", amplitude, basis.to(amplitude.dtype))


def elastic_wave(delta: torch.Tensor) -> torch.Tensor:
    """f = exp(i delta) sin(delta): exactly unitary for real delta (radians)."""
    return torch.polar(torch.sin(delta), delta)


def phase_shift(wave: torch.Tensor) -> torch.Tensor:
    """delta = arg f modulo pi, in [0, pi) (radians).

    A phase shift is defined modulo pi; for an elastic wave (Im f >= 0) this equals atan2(Im f, Re f),
    and it never jumps at 90 degrees as atan(Im f / Re f) does.
    """
    return torch.remainder(torch.atan2(wave.imag, wave.real), math.pi)


def wrap_half_period(x: torch.Tensor, period: float = math.pi) -> torch.Tensor:
    """Map a phase difference to [-period/2, period/2)."""
    return torch.remainder(x + 0.5 * period, period) - 0.5 * period


def unwrap_phase(delta: torch.Tensor, dim: int = -1, period: float = math.pi) -> torch.Tensor:
    """Remove jumps of a multiple of period along dim, keeping the first value."""
    steps = wrap_half_period(torch.diff(delta, dim=dim), period)
    first = delta.narrow(dim, 0, 1)
    return torch.cat([first, first + torch.cumsum(steps, dim=dim)], dim=dim)


def select_rising_branch(delta: torch.Tensor, falling_penalty: float = 10.0) -> torch.Tensor:
    """Resolve the A -> -A* ambiguity energy by energy, choosing phase shifts that rise with s.

    |A|^2 and unitarity are invariant under delta_l -> -delta_l for all l at once, so each energy has
    two equivalent solutions; `rising_path` picks the sequence of branches. This keeps the physical
    branch also where the branches touch (delta = 0 or 90 degrees) and a per-energy solver may have switched.

    delta: radians, shape (..., n_s, n_waves), energies sorted in s. Returns the unwrapped phase
    shifts of the chosen branch, same shape, with the first energy in [0, pi).
    """
    return rising_path(torch.stack([delta, -delta], dim=-3), falling_penalty=falling_penalty)


def rising_path(
    candidates: torch.Tensor, allowed: torch.Tensor | None = None, falling_penalty: float = 10.0
) -> torch.Tensor:
    """The smoothest rising sequence of phase shifts through per-energy candidates (a Viterbi pass).

    candidates: radians, (..., K, n_s, n_waves), energies sorted in s; allowed: bool (..., K, n_s), the
    candidates that may be chosen (default all; at least one per energy). Minimises
    sum_steps sum_l cost(step), cost = step^2 for a rising step and falling_penalty * step^2 for a falling
    one, steps taken modulo pi. A falling step costs ten times a rising one by default: enough to keep
    the rising branch where the branches touch (a step +x against -x), while a falling step of a few
    degrees (noise where |A| is small) still beats a spurious jump of tens of degrees. Returns the
    chosen phase shifts unwrapped, (..., n_s, n_waves), with the first energy in [0, pi).
    """
    candidates = torch.remainder(candidates, math.pi)
    k, n_s, n_waves = candidates.shape[-3:]
    batch = candidates.shape[:-3]
    barrier = torch.zeros(*batch, k, n_s, dtype=candidates.dtype, device=candidates.device)
    if allowed is not None:
        barrier = barrier.masked_fill(~allowed, math.inf)
    cost = barrier[..., 0]  # (..., K)
    back = []
    for i in range(1, n_s):  # a loop over energies of a post-processing step, not a hot path
        prev = candidates[..., :, i - 1, :].unsqueeze(-2)  # (..., K from, 1, w)
        cur = candidates[..., :, i, :].unsqueeze(-3)  # (..., 1, K to, w)
        step = wrap_half_period(cur - prev)
        step_cost = torch.where(step >= 0, step**2, falling_penalty * step**2).sum(-1)  # (..., from, to)
        total = cost.unsqueeze(-1) + step_cost
        cost, arg = total.min(dim=-2)
        cost = cost + barrier[..., i]
        back.append(arg)
    choice = cost.argmin(dim=-1)
    chosen = [choice]
    for arg in reversed(back):
        choice = torch.gather(arg, -1, choice.unsqueeze(-1)).squeeze(-1)
        chosen.append(choice)
    chosen = torch.stack(chosen[::-1], dim=-1)  # (..., n_s)
    index = chosen[..., None, :, None].expand(*batch, 1, n_s, n_waves)
    picked = torch.gather(candidates, -3, index).squeeze(-3)
    return unwrap_phase(picked, dim=-2)


def monotonic_phase_loss(delta: torch.Tensor) -> torch.Tensor:
    """The talk's d_l loss: mean over steps in s of log(max(0, -Delta delta) + 1).

    delta: radians, shape (..., n_s); differences are taken modulo pi, since a phase shift is.
    """
    step = wrap_half_period(torch.diff(delta, dim=-1))
    return torch.log1p(torch.relu(-step)).mean()


class UnitarityRelation:
    """The integral (Wu-Ohmura) unitarity relation of talk 000 at fixed angles z.

    I(s, z) = 1/(4 pi) int_0^{2pi} dphi int_{-1}^{1} dz' A(s, z') A*(s, z''),
    z'' = z z' + sqrt(1 - z^2) sqrt(1 - z'^2) cos(phi); unitarity means Im A(s, z) = I(s, z).

    For amplitudes given by partial waves the relation is bilinear in f_l, so the quadrature is applied
    once to the Legendre kernel W_ll'(z) = 1/(4 pi) sum w' w_phi P_l(z') P_l'(z'') and
    I = sum_ll' (2l+1)(2l'+1) f_l f_l'* W_ll'(z): the same numbers as the direct double sum at a cost
    independent of the number of nodes. Default rule: Gauss-Legendre in z' and the periodic trapezoid in
    phi, exact for l_max < min(n_z, n_phi / 2); rule="simpson" reproduces the talk's set-up.
    """

    def __init__(self, z: torch.Tensor, l_max: int, n_z: int = 16, n_phi: int = 16, rule: str = "gauss"):
        z = torch.as_tensor(z, dtype=torch.float64)
        if rule == "gauss":
            zp, wz = gauss_legendre(n_z)
            phi, wphi = periodic_trapezoid(n_phi)
        elif rule == "simpson":
            zp, wz = simpson(n_z, -1.0, 1.0)
            phi, wphi = simpson(n_phi, 0.0, 2.0 * math.pi)
        else:
            raise ValueError(f"unknown quadrature rule {rule!r}; use 'gauss' or 'simpson'")
        self.z, self.l_max = z, l_max
        self.z_nodes, self.z_weights, self.phi_nodes, self.phi_weights = zp, wz, phi, wphi
        zpp = second_angle(z[:, None, None], zp[None, :, None], phi[None, None, :])
        p_zp = legendre_polynomials(zp, l_max)  # (n_z', L)
        p_zpp = legendre_polynomials(zpp, l_max)  # (n_eval, n_z', n_phi, L)
        self.kernel = torch.einsum("j,k,jl,ijkm->ilm", wz, wphi, p_zp, p_zpp) / (4.0 * math.pi)

    def integral(self, waves: torch.Tensor) -> torch.Tensor:
        """I(s, z) for waves of shape (..., l_max + 1) -> shape (..., n_z_eval)."""
        degeneracy = torch.arange(self.l_max + 1, dtype=torch.float64, device=waves.device) * 2 + 1
        g = waves * degeneracy.to(waves.dtype)
        kernel = self.kernel.to(device=waves.device, dtype=waves.real.dtype).to(waves.dtype)
        return torch.einsum("...l,...m,ilm->...i", g, g.conj(), kernel)

    def integral_direct(self, amplitude_fn, batch_shape=()) -> torch.Tensor:
        """The double sum on A itself: amplitude_fn(z) -> A(..., *z.shape). For checks and non-wave models."""
        zpp = second_angle(self.z[:, None, None], self.z_nodes[None, :, None], self.phi_nodes[None, None, :])
        a_zp = amplitude_fn(self.z_nodes)  # (..., n_z')
        a_zpp = amplitude_fn(zpp)  # (..., n_eval, n_z', n_phi)
        w = (self.z_weights[:, None] * self.phi_weights[None, :]).to(a_zp.dtype)
        return torch.einsum("...j,...ijk,jk->...i", a_zp, a_zpp.conj(), w) / (4.0 * math.pi)

    def residual(self, waves: torch.Tensor) -> torch.Tensor:
        """Im A - I at the evaluation angles; zero for an exactly unitary amplitude."""
        amplitude = amplitude_from_waves(waves.unsqueeze(-2), self.z.to(waves.device))
        return amplitude.imag - self.integral(waves)

    def loss(self, waves: torch.Tensor) -> torch.Tensor:
        """The talk's L_u = mean(|Im A - Re I| + |Im I|)."""
        amplitude = amplitude_from_waves(waves.unsqueeze(-2), self.z.to(waves.device))
        i = self.integral(waves)
        return ((amplitude.imag - i.real).abs() + i.imag.abs()).mean()


def second_angle(z: torch.Tensor, z_prime: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """z'' = z z' + sqrt(1 - z^2) sqrt(1 - z'^2) cos(phi), clamped to [-1, 1] against rounding."""
    root = torch.sqrt(torch.clamp(1 - z**2, min=0)) * torch.sqrt(torch.clamp(1 - z_prime**2, min=0))
    return torch.clamp(z * z_prime + root * torch.cos(phi), -1.0, 1.0)
