"""s-wave scattering from a non-local (and optionally local) central potential, on a uniform radial mesh.

Natural units hbar = c = 1 with one length unit throughout (1/mu of the separable test, or fm): r and k
in that unit and its inverse, the reduced mass m and energies E = k^2 / (2 m) in inverse length, U(r, r')
in inverse length^4. The radial equation for u = r phi of

    (E - H0) phi(r) = int d^3r' U(r, r') phi(r') + V(r) phi(r),   H0 = -nabla^2 / (2 m),

is u'' + k^2 u = s(r) with s(r) = 2 m [ r int 4 pi r' U(r, r') u(r') dr' + V(r) u(r) ]. Its regular
solution obeys the Volterra form

    u(r) = sin(k r) / k + int_0^r sin(k (r - r')) / k s(r') dr',

which, s depending on u everywhere, is a dense linear system on the mesh (trapezoid rule; second order
in the step). Beyond the range of U and V, u = sin(k r) [1 + C] / k - cos(k r) S / k with
S = int sin(k r') s dr', C = int cos(k r') s dr', so tan(delta) = -S / (1 + C) needs no matching points.
The branch of delta (not only its value modulo pi) is fixed by Levinson's theorem, delta(0) = n_bound pi,
with the bound states counted from the eigenvalues of the same Hamiltonian on the mesh.

Written here rather than taken from a library: scipy's ODE solvers need a local potential, and the
femtoscopy solver (hadrinv.physics.schrodinger) marches an ODE, which a non-local U does not allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RadialMesh:
    """r_i = i * step for i = 1..n (r = 0 carries u = 0 and is left out); U and V must vanish beyond r_max."""

    step: float
    r_max: float

    def __post_init__(self):
        if not (self.step > 0 and self.r_max > 2 * self.step):
            raise ValueError(f"invalid mesh {self}: need step > 0 and r_max > 2 step")

    @property
    def size(self) -> int:
        return int(round(self.r_max / self.step))

    def nodes(self, dtype=torch.float64, device=None) -> torch.Tensor:
        return torch.arange(1, self.size + 1, dtype=dtype, device=device) * self.step

    def weights(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Trapezoid weights on [0, r_max] (the r = 0 end contributes nothing: u(0) = 0)."""
        w = torch.full((self.size,), self.step, dtype=dtype, device=device)
        w[-1] = 0.5 * self.step
        return w


def s_wave_kernel(U: torch.Tensor, r: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """K with (K u)_i = r_i int 4 pi r' U(r_i, r') u(r') dr' on the mesh: K_ij = 4 pi r_i r_j U_ij w_j.
    U: (..., n, n) sampled at the mesh nodes."""
    return 4.0 * math.pi * U * (r[:, None] * (r * weights)[None, :])


def _source_operator(
    U: torch.Tensor | None, V: torch.Tensor | None, r: torch.Tensor, weights: torch.Tensor, mass: float
) -> torch.Tensor:
    """2 m (K + diag V): the map u -> s on the mesh."""
    n = len(r)
    op = torch.zeros(n, n, dtype=r.dtype, device=r.device)
    if U is not None:
        if U.shape != (n, n):
            raise ValueError(f"U must be sampled on the mesh: expected shape ({n}, {n}), got {tuple(U.shape)}")
        op = op + s_wave_kernel(U.to(r.dtype), r, weights)
    if V is not None:
        if V.shape != (n,):
            raise ValueError(f"V must be sampled on the mesh: expected shape ({n},), got {tuple(V.shape)}")
        op = op + torch.diag(V.to(r.dtype))
    if not torch.isfinite(op).all():
        raise ValueError("the potential has non-finite values on the mesh")
    return 2.0 * mass * op


def _regular_solutions(
    source: torch.Tensor, r: torch.Tensor, weights: torch.Tensor, k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve u = u0 + A s(u) for each k; returns u (K, n) and s (K, n). k = 0 is the zero-energy solution."""
    diff = r[:, None] - r[None, :]
    lower = (diff > 0).to(r.dtype)
    kk = k[:, None, None]
    safe_k = torch.where(kk == 0, torch.ones_like(kk), kk)
    # sin(k d)/k -> d as k -> 0
    green = torch.where(kk == 0, diff.expand(len(k), -1, -1), torch.sin(kk * diff) / safe_k) * lower * weights
    u0 = torch.where(
        k[:, None] == 0,
        r.expand(len(k), -1),
        torch.sin(k[:, None] * r) / torch.where(k == 0, torch.ones_like(k), k)[:, None],
    )
    system = torch.eye(len(r), dtype=r.dtype, device=r.device) - green @ source
    u = torch.linalg.solve(system, u0)
    return u, u @ source.T


def bound_state_energies(
    mesh: RadialMesh, mass: float, U: torch.Tensor | None = None, V: torch.Tensor | None = None
) -> torch.Tensor:
    """Negative eigenvalues (ascending) of H = -d^2/dr^2 / (2 m) + U + V on the mesh, with u = 0 at r = 0 and
    at r_max + step (a spherical box of radius r_max + step: a state bound by less than ~1/(2 m r_max^2)
    may be missed or shifted). Second-order differences; U's term is symmetrised with uniform weights."""
    energies = box_states(mesh, mass, U, V)[0]
    return energies[energies < 0]


def box_states(
    mesh: RadialMesh, mass: float, U: torch.Tensor | None = None, V: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """All eigenstates of the radial Hamiltonian in the box r < r_max + step (u = 0 at both ends).

    Returns energies (n,) ascending and u_n(r_i) as columns (n, n), normalised to sum_i step u_n(r_i)^2 = 1
    (so phi_n = u_n / r has int d^3r |phi_n|^2 = 4 pi). The kinetic term is the second-order difference
    that `radial_laplacian` uses, so these states obey the lattice equation exactly."""
    r = mesh.nodes()
    n, h = len(r), mesh.step
    kinetic = (
        torch.diag(torch.full((n,), 2.0, dtype=r.dtype))
        - torch.diag(torch.ones(n - 1, dtype=r.dtype), 1)
        - torch.diag(torch.ones(n - 1, dtype=r.dtype), -1)
    ) / (2.0 * mass * h * h)
    H = kinetic
    if U is not None:
        H = H + s_wave_kernel(U.to(r.dtype), r, torch.full_like(r, h))
    if V is not None:
        H = H + torch.diag(V.to(r.dtype))
    if not torch.isfinite(H).all():
        raise ValueError("the potential has non-finite values on the mesh")
    energies, vectors = torch.linalg.eigh(0.5 * (H + H.T))
    return energies, vectors / math.sqrt(h)


def phase_shifts(
    k: torch.Tensor,
    mesh: RadialMesh,
    mass: float,
    U: torch.Tensor | None = None,
    V: torch.Tensor | None = None,
    chunk: int = 64,
) -> torch.Tensor:
    """delta_0(k) in radians for momenta k > 0 (ascending), continuous in k with delta(0+) = n_bound pi.

    U: (n, n) = U(r_i, r_j) on the mesh nodes; V: (n,) a local potential (either may be None).
    The branch assumes the lowest k is below the first point where delta crosses a multiple of pi/2 from
    the threshold value by more than pi/2, i.e. that the k grid starts near threshold and is fine enough
    for delta to change by less than pi/2 between neighbours."""
    k = torch.as_tensor(k, dtype=torch.float64)
    if k.ndim != 1 or (k <= 0).any() or (k.diff() <= 0).any():
        raise ValueError("k must be a 1-D ascending tensor of positive momenta")
    r, w = mesh.nodes(), mesh.weights()
    source = _source_operator(U, V, r, w, mass)
    parts = []
    for start in range(0, len(k), chunk):
        kc = k[start : start + chunk]
        _, s = _regular_solutions(source, r, w, kc)
        S = (torch.sin(kc[:, None] * r) * s * w).sum(-1)
        C = (torch.cos(kc[:, None] * r) * s * w).sum(-1)
        parts.append(torch.atan(-S / (1.0 + C)))
    delta_mod = torch.cat(parts)
    # unwrap: neighbours differ by less than pi/2
    jumps = torch.round(torch.diff(delta_mod) / math.pi)
    delta = delta_mod - math.pi * torch.cat([jumps.new_zeros(1), torch.cumsum(jumps, 0)])
    n_bound = len(bound_state_energies(mesh, mass, U, V))
    return delta + math.pi * (n_bound - torch.round(delta[0] / math.pi))


def scattering_length(
    mesh: RadialMesh, mass: float, U: torch.Tensor | None = None, V: torch.Tensor | None = None
) -> torch.Tensor:
    """a0 from the E = 0 solution (nuclear sign: k cot delta -> -1/a0; u ~ r - a0 outside the potential)."""
    r, w = mesh.nodes(), mesh.weights()
    source = _source_operator(U, V, r, w, mass)
    _, s = _regular_solutions(source, r, w, torch.zeros(1, dtype=r.dtype))
    return ((r * s * w).sum(-1) / (1.0 + (s * w).sum(-1)))[0]


# --- the separable mock test of the talk (Aoki-Yazaki): U = w exp(-mu r) exp(-mu r') ----------------


@dataclass(frozen=True)
class SeparablePotential:
    """U(r, r') = strength nu(r) nu(r'), nu = exp(-mu r). The talk's numbers: mu = 1, strength = -0.017 mu^4,
    m = 3.30 mu (the mass in H0 = -nabla^2/(2m)), which bind one shallow state (a0 = +7.40/mu)."""

    strength: float = -0.017
    mu: float = 1.0
    mass: float = 3.30

    def __call__(self, r: torch.Tensor, r_prime: torch.Tensor) -> torch.Tensor:
        return self.strength * torch.exp(-self.mu * r) * torch.exp(-self.mu * r_prime)

    def matrix(self, r: torch.Tensor) -> torch.Tensor:
        return self(r[:, None], r[None, :])

    def k_cot_delta(self, k: torch.Tensor) -> torch.Tensor:
        """The talk's closed form (equal to the physics notes' polynomial form)."""
        mu, m, w = self.mu, self.mass, self.strength
        q = mu**2 + k**2
        return -(2 * mu * (mu**2 - k**2) - (3 * mu**2 + k**2) / (4 * mu**3) * q**2 + q**4 / (8 * math.pi * m * w)) / (
            4 * mu**2
        )

    def scattering_length(self) -> float:
        return float(-1.0 / self.k_cot_delta(torch.zeros((), dtype=torch.float64)))

    def phase_shift(self, k: torch.Tensor, n_bound: int = 1) -> torch.Tensor:
        """delta_0(k) in radians on Levinson's branch, delta(0) = n_bound pi (the talk's numbers bind one state;
        a separable potential binds at most one). Continuous in k as long as k cot delta has no pole."""
        k = torch.as_tensor(k, dtype=torch.float64)
        delta = torch.atan2(
            k, self.k_cot_delta(k)
        )  # in (0, pi): the branch with delta(0+) = pi when k cot delta(0) < 0
        if n_bound == 1:
            return delta
        return (
            torch.where(delta > math.pi / 2, delta - math.pi, delta)
            if n_bound == 0
            else delta + math.pi * (n_bound - 1)
        )

    def wave_function(self, k: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """The NBS wave function of the talk without its overall phase exp(i delta): real, -> sin(kr+delta)/(kr).
        k: (K,), r: (N,) -> (K, N)."""
        k = torch.as_tensor(k, dtype=torch.float64)[:, None]
        delta = torch.atan2(k, self.k_cot_delta(k))
        mu = self.mu
        return (
            torch.sin(k * r + delta) - torch.sin(delta) * torch.exp(-mu * r) * (1 + r * (mu**2 + k**2) / (2 * mu))
        ) / (k * r)
