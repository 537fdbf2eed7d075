"""Learned contour deformation for integrals over [0, 1]^d whose denominator F vanishes inside the domain.

An integrand I(x) = N(x) / F(x)^k (or log F) continued by the -i delta prescription (F -> F - i delta) has
poles on the real cube once F changes sign. By Cauchy's theorem the integral is unchanged if the real
cube is replaced by a complex contour with the same boundary on which F stays on the -i delta side:

    z_j(x) = x_j - i lambda_j(x) x_j (1 - x_j) (dF/dx_j)(x) / S,    Im F(z(x)) <= 0,

where the factor x_j (1 - x_j) keeps z_j = x_j on the faces x_j in {0, 1} (the other coordinates of a face
point still move: each face is mapped into itself, which is what the boundary of a product of 1-d
contours needs; the corners stay put), and S, the mean |F| on a probe sample, makes lambda dimensionless.
To first order Im F(z) = -sum_j lambda_j x_j (1 - x_j) (dF/dx_j)^2 / S <= 0; the higher orders can flip it
where lambda is large. The integral becomes int det(dz/dx) I(z(x)) dx with det(dz/dx) = det(1 - i dh/dx),
h real; dh/dx is assembled from the gradient and Hessian of F (autograd) and the Jacobian of the network
(propagated through its layers), so F must be a differentiable torch function [n, d] -> [n] of independent
points, real for real ones, whose expression stays valid (holomorphic) for complex ones.

lambda_j(x) = lambda_max sigmoid(a + MLP_j(x)), with the MLP's last layer zero at the start: the untrained
deformation is the constant lambda = `lam` everywhere, the usual hand-tuned contour, already valid
(lam = 0.3 is near the variance optimum for the one-loop triangles and boxes we tried). Training
(`train_deformation`) minimises the variance of det I(z) on uniform samples, divided by that of the
untrained contour on the first batch (loop integrands are 1e-5 to 1e-10; the undeformed one has poles, so
its own variance is no scale). The sign condition is kept in three ways, as pySecDec does with its
deformation parameters: lambda is bounded by lambda_max, violations are penalised during training, and
afterwards lambda_max is halved until a fresh sample shows no point with Im F(z) > 0 (`check_sign`).

Not a sector decomposition: where the zero set of F runs into a corner of the cube (massless internal
lines), the deformation vanishes there and convergence slows down.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

Function = Callable[[torch.Tensor], torch.Tensor]


class ContourDeformation(nn.Module):
    """x [n, dim] in [0, 1]^dim -> (z complex128 [n, dim], det(dz/dx) complex128 [n]) for the denominator F."""

    def __init__(
        self,
        dim: int,
        F: Function,
        hidden: int = 32,
        lam: float = 0.3,
        lam_max: float = 1.0,
        scale: float | None = None,
        seed: int = 0,
    ):
        super().__init__()
        if not 0 < lam < lam_max:
            raise ValueError(f"need 0 < lam < lam_max, got lam = {lam}, lam_max = {lam_max}")
        self.dim, self.F = dim, F
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, dim)
            ).double()
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.offset = nn.Parameter(torch.tensor(math.log(lam / (lam_max - lam)), dtype=torch.float64))
        self.register_buffer("lam_max", torch.tensor(float(lam_max), dtype=torch.float64))
        if scale is None:
            with torch.no_grad():
                scale = float(F(torch.rand(4096, dim, generator=generator, dtype=torch.float64)).abs().mean())
        self.scale = scale if scale > 0 else 1.0

    def derivatives(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(dF/dx [n, dim], d2F/dx2 [n, dim, dim]) at real x; F is fixed, so no graph is kept."""
        with torch.enable_grad():
            xr = x.detach().to(torch.float64).requires_grad_(True)
            g = torch.autograd.grad(self.F(xr).sum(), xr, create_graph=True)[0]
            rows = []
            for k in range(self.dim):
                if g.requires_grad:
                    row = torch.autograd.grad(g[:, k].sum(), xr, retain_graph=True, allow_unused=True)[0]
                else:
                    row = None
                rows.append(torch.zeros_like(xr) if row is None else row)
        return g.detach(), torch.stack(rows, 1).detach()

    def _net_with_jacobian(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MLP(x) [n, dim] and its Jacobian [n, dim, dim], propagated layer by layer (cheaper than torch.func)."""
        y, jac = x, None
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                y = layer(y)
                jac = layer.weight.expand(len(x), -1, -1) if jac is None else layer.weight @ jac
            else:
                y = torch.tanh(y)
                jac = (1 - y * y).unsqueeze(-1) * jac
        return y, jac

    def lam(self, x: torch.Tensor) -> torch.Tensor:
        """lambda_j(x) [..., dim], in (0, lambda_max)."""
        return self.lam_max * torch.sigmoid(self.offset + self.net(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(torch.float64)
        g, hess = self.derivatives(x)
        raw, raw_jac = self._net_with_jacobian(x)
        sig = torch.sigmoid(self.offset + raw)
        lam = self.lam_max * sig
        lam_jac = (self.lam_max * sig * (1 - sig)).unsqueeze(-1) * raw_jac
        s, ds = x * (1 - x), 1 - 2 * x
        h = lam * s * g / self.scale
        # dh_j/dx_k = (dlam_j/dx_k s_j g_j + lam_j ds_j g_j delta_jk + lam_j s_j H_jk) / scale
        dh = lam_jac * (s * g).unsqueeze(-1) + torch.diag_embed(lam * ds * g) + (lam * s).unsqueeze(-1) * hess
        dh = dh / self.scale
        z = torch.complex(x, -h)
        eye = torch.eye(self.dim, dtype=torch.float64).expand_as(dh)
        return z, torch.linalg.det(torch.complex(eye, -dh))


def deformed_integrand(integrand: Function, deformation: ContourDeformation) -> Function:
    """x -> det(dz/dx) integrand(z(x)), complex128 [n], for `hadrinv.integration.integrate` or a product rule."""

    def f(x: torch.Tensor) -> torch.Tensor:
        # dF/dx is taken under enable_grad inside the deformation; nothing else needs a graph
        with torch.no_grad():
            z, det = deformation(x)
            return det * integrand(z).to(torch.complex128)

    return f


def check_sign(F: Function, deformation: ContourDeformation, x: torch.Tensor, tol: float = 1e-10) -> tuple[bool, float]:
    """(no violation, fraction of x with Im F(z(x)) > tol |F(z(x))|): the -i delta side of every pole."""
    with torch.no_grad():
        z, _ = deformation(x)
        value = F(z)
    bad = value.imag > tol * value.abs()
    return not bool(bad.any()), float(bad.double().mean())


def _variance(weights: torch.Tensor) -> torch.Tensor:
    return (weights - weights.mean()).abs().pow(2).sum() / (len(weights) - 1)


def train_deformation(
    F: Function,
    integrand: Function,
    dim: int,
    steps: int = 300,
    batch: int = 2048,
    lr: float = 3e-3,
    seed: int = 0,
    hidden: int = 32,
    lam: float = 0.3,
    lam_max: float = 1.0,
    sign_weight: float = 100.0,
    check_points: int = 16384,
) -> ContourDeformation:
    """A `ContourDeformation` trained to minimise Var[det I(z)] / Var_untrained on uniform samples.

    `integrand` takes complex points z [n, dim] (the holomorphic continuation of I). The returned module
    carries `history`: the normalised losses, the variance scale, the halvings of lambda_max that the final
    sign check needed, and the fraction of violating points it saw before them.
    """
    deformation = ContourDeformation(dim, F, hidden=hidden, lam=lam, lam_max=lam_max, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    optimizer = torch.optim.Adam(deformation.parameters(), lr=lr)
    losses, variance_scale = [], None
    for _ in range(steps):
        x = torch.rand(batch, dim, generator=generator, dtype=torch.float64)
        z, det = deformation(x)
        weights = det * integrand(z).to(torch.complex128)
        variance = _variance(weights)
        if variance_scale is None:
            variance_scale = float(variance.detach()) or 1.0
        # relu(Im F) vanishes on a valid contour; dividing by S keeps it dimensionless like the loss
        violation = torch.relu(F(z).imag / deformation.scale).mean()
        loss = variance / variance_scale + sign_weight * violation
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    check = torch.rand(check_points, dim, generator=generator, dtype=torch.float64)
    ok, violating = check_sign(F, deformation, check)
    initial_violating, halvings = violating, 0
    while not ok:
        if halvings == 30:
            raise RuntimeError(f"contour still violates Im F <= 0 at {violating:.2%} of points after 30 halvings")
        deformation.lam_max.mul_(0.5)
        halvings += 1
        ok, violating = check_sign(F, deformation, check)
    deformation.history = {
        "loss": losses,
        "variance_scale": variance_scale,
        "lam_max_halvings": halvings,
        "violating_before_halving": initial_violating,
    }
    return deformation
