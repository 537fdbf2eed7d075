"""The generator building blocks: the spline generator's start at a given solution, the GAN's supervised start."""

from __future__ import annotations

import math

import numpy as np
import torch

from hadrinv.inference.gan import PhysicsConstrainedGAN
from hadrinv.inference.networks import MLPDiscriminator, SplineCurveGenerator, bspline_design_matrix


def _generator(x: np.ndarray, n_basis: int = 16) -> SplineCurveGenerator:
    torch.manual_seed(0)
    return SplineCurveGenerator(bspline_design_matrix(x, n_basis, 0.0, 1.0), n_curves=2, latent_dim=8, hidden=16)


def test_start_at_reproduces_smooth_curves_ignores_an_outlier_and_bridges_a_gap():
    rng = np.random.default_rng(1)
    x = np.sort(np.r_[rng.uniform(0.0, 0.35, 20), rng.uniform(0.65, 1.0, 20)])  # nothing in (0.35, 0.65)
    truth = torch.as_tensor(np.stack([np.sin(2 * x), 0.5 + x**2], axis=-1))
    curves, errors = truth.clone(), torch.full_like(truth, 0.01)
    curves[7, 0] += math.pi / 2  # one point on a wrong solution, 157 errors away
    gen = _generator(x)
    spline = gen.start_at(curves, errors)
    keep = torch.ones(len(x), dtype=torch.bool)
    keep[7] = False
    assert float((spline - truth).abs().max()) < 0.01, "the Huber spline must not follow the outlier"
    with torch.no_grad():
        out = gen(torch.randn(64, 8))  # (64, n_points, 2): the untrained generator starts at the spline
    assert float((out - spline.float()).abs().max()) < 0.02
    # in the gap the spline follows its neighbours (second-difference penalty), not an arbitrary value
    mid = bspline_design_matrix(np.array([0.5]), 16, 0.0, 1.0) @ gen.head.bias.double().view(2, 16).T
    assert torch.allclose(mid[0], torch.tensor([math.sin(1.0), 0.75], dtype=torch.float64), atol=0.05)


def test_pretrain_moves_the_generator_to_the_target_and_restarts_its_average():
    x = np.linspace(0.0, 1.0, 30)
    gen = _generator(x)
    gan = PhysicsConstrainedGAN(gen, MLPDiscriminator(30, hidden=8), observe=lambda c: c[..., 0], ema_decay=0.99)
    target = torch.stack([torch.cos(torch.as_tensor(x)), torch.as_tensor(x)], dim=-1).float()
    with torch.no_grad():
        before = float(((gen(gan.latent(32)) - target) ** 2).mean())
    after = gan.pretrain(target, steps=300, batch_size=16, lr=1e-2)
    assert after < 1e-3 < before
    z = gan.latent(4)
    with torch.no_grad():
        torch.testing.assert_close(gan.averaged.module(z), gen(z))
