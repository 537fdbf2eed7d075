"""Round trip of the multi-channel fit: CFD pseudo-data in four charge channels -> S0, P and S2 phases."""

from __future__ import annotations

import math

import torch

from hadrinv.models.pipi_isospin import IsospinProblem, cfd_truth, simulate_cfd
from hadrinv.physics.pipi_isospin import cfd_waves, channel_cross_section
from hadrinv.workflows.pipi_amplitude.isospin_fit import fit_isospin


def test_the_model_reproduces_each_channel_of_the_physics_module():
    problem = simulate_cfd(n_s=6, n_z=5, sqrt_s_max_gev=1.4, noise=0.02, seed=2)
    delta, eta = cfd_truth(problem.energies)
    inelastic = problem.inelastic
    u = torch.arccos(torch.sqrt(eta[inelastic]))  # eta = cos^2 u
    params = torch.cat([torch.deg2rad(delta).reshape(-1), u.reshape(-1)])
    waves = cfd_waves(problem.s)
    for k, channel in enumerate(problem.channels):
        mask = problem.channel_index == k
        expected = channel_cross_section(waves, problem.cos_theta, problem.s, channel)[mask]
        torch.testing.assert_close(problem.cross_section(params)[mask], expected, rtol=1e-10, atol=0)
    assert 0 < int(inelastic.sum()) < problem.n_energies
    sub = problem.at_energies(inelastic)
    assert isinstance(sub, IsospinProblem) and sub.n_energies == int(inelastic.sum()) and bool(sub.inelastic.all())


def test_fit_recovers_the_three_phases_below_the_kkbar_threshold_from_four_channels():
    problem = simulate_cfd(n_s=30, n_z=10, sqrt_s_max_gev=0.98, noise=0.02, seed=5)
    assert not bool(problem.inelastic.any())
    fit = fit_isospin(problem, starts=4, seed=0)
    assert fit.fit.is_valid and fit.chi2_p_value > 1e-3
    truth, _ = cfd_truth(problem.energies)
    delta = torch.rad2deg(fit.delta)
    delta = delta + torch.round((truth - delta).mean(0) / 180) * 180  # phases are defined modulo 180 degrees
    rms = (delta - truth).pow(2).mean(0).sqrt()
    assert (rms < 1.0).all(), rms  # the talk's elastic waves, delta_0^0 rising through the f0(500)
    coverage = ((delta - truth).abs() <= torch.rad2deg(fit.delta_err)).double().mean(0)
    assert ((coverage > 0.4) & (coverage < 0.95)).all(), coverage
    assert float(truth[:, 0].max() - truth[:, 0].min()) > 60 and float(truth[:, 2].max()) < 0  # a real test
    assert math.isclose(float(fit.eta.min()), 1.0)


def test_fit_refuses_energies_where_one_energys_data_do_not_fix_the_inelastic_waves():
    import pytest

    problem = simulate_cfd(n_s=8, n_z=6, sqrt_s_max_gev=1.3, seed=1)
    with pytest.raises(ValueError, match="above the inelastic threshold"):
        fit_isospin(problem)
