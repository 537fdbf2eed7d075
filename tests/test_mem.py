"""The matrix-element method: the importance-sampled likelihood against closed forms and quadrature, the J/psi case's
physics (azimuthal symmetry, phase space) and the workflow end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from hadrinv.data.pwa_model import read_model
from hadrinv.inference.mem import ImportanceSamples, MEMSettings, fit_mem
from hadrinv.models.pwa import AmplitudeModel, hard_bounds, hard_variables
from hadrinv.physics.phase_space import phase_space_events
from hadrinv.workflows.mem.config import MEMConfig
from hadrinv.workflows.mem.pwa_case import Detector, Process, known_detector_samples, simulate_data, simulate_mc
from hadrinv.workflows.mem.run import Likelihood, run
from hadrinv.workflows.registry import RunContext


def test_log_likelihood_is_the_log_of_the_weighted_mean_and_stable():
    rng = np.random.default_rng(0)
    log_w, log_f = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    samples = ImportanceSamples(np.zeros((5, 7, 1)), log_w)
    expected = np.log(np.mean(np.exp(log_w + log_f), axis=1))
    assert np.allclose(samples.log_likelihood(log_f), expected, atol=1e-12)
    # far below exp's range, and with samples that carry no weight
    shifted = log_w - 2000.0
    shifted[:, 0] = -np.inf
    got = ImportanceSamples(np.zeros((5, 7, 1)), shifted).log_likelihood(log_f)
    direct = np.log(np.mean(np.exp(log_w[:, 1:] + log_f[:, 1:]), axis=1) * 6 / 7) - 2000.0
    assert np.allclose(got, direct, atol=1e-9)
    assert np.allclose(samples.ess_fraction(np.zeros((5, 7)) - log_w), 1.0)


def test_gaussian_convolution_against_its_closed_form():
    """f = N(alpha, 1), Gaussian transfer of width s: p(r | alpha) = N(r; alpha, sqrt(1 + s^2)). Samples from the
    transfer read as a density of x (weights 1) give it to within the Monte Carlo error."""
    rng = np.random.default_rng(1)
    s, alpha, r = 0.5, 0.3, np.array([-1.0, 0.2, 1.7])
    hard = r[:, None] + s * rng.normal(size=(3, 200_000))
    samples = ImportanceSamples(hard[..., None], np.zeros(hard.shape))
    got = np.exp(samples.log_likelihood(norm.logpdf(hard, alpha, 1.0)))
    assert np.allclose(got, norm.pdf(r, alpha, math.hypot(1.0, s)), rtol=5e-3)


@pytest.fixture(scope="module")
def toy_mem():
    """1-D toy: hard x flat on (-3, 3) in the MC, reco = x + N(0, 0.4), efficiency 0.5 + 0.4 tanh(x)."""
    rng = np.random.default_rng(2)
    x = rng.uniform(-3, 3, 30_000)
    reco = x + rng.normal(0, 0.4, x.shape)
    reco[rng.uniform(size=x.shape) >= 0.5 + 0.4 * np.tanh(x)] = np.nan
    settings = MEMSettings(transforms=3, hidden=32, max_epochs=25, batch_size=256, patience=5, seed=0)
    return fit_mem(x[:, None], reco[:, None], ([-3.0], [3.0]), settings), x, reco


def test_learned_mem_matches_the_exact_likelihood_ratio(toy_mem):
    """log L_i(alpha) - log L_i(alpha0) from the flows against quadrature of the exact integrand, for f(x | alpha) =
    N(x; alpha, 1) on the box: the flows learned the detector from the MC pairs alone."""
    mem, _, _ = toy_mem
    reco = np.array([[-1.5], [-0.4], [0.3], [1.1], [2.2]])
    samples = mem.importance_samples(reco, 4000)
    assert samples.hard.shape == (5, 4000, 1) and (np.abs(samples.hard) < 3).all()
    grid = np.linspace(-3, 3, 6001)
    eps = 0.5 + 0.4 * np.tanh(grid)

    def exact(alpha):
        integrand = norm.pdf(grid, alpha, 1.0) * eps * norm.pdf(reco, grid, 0.4)
        return np.log(np.trapezoid(integrand, grid, axis=1))

    def learned(alpha):
        return samples.log_likelihood(norm.logpdf(samples.hard[..., 0], alpha, 1.0))

    for alpha in (-0.6, 0.6):
        difference = (learned(alpha) - learned(0.0)) - (exact(alpha) - exact(0.0))
        assert np.abs(difference).max() < 0.05, difference
    assert samples.ess_fraction().mean() > 0.8


def test_fit_mem_refuses_unpaired_or_out_of_bounds_events():
    x = np.zeros((10, 1))
    with pytest.raises(ValueError, match="paired"):
        fit_mem(x, np.zeros((9, 1)))
    with pytest.raises(ValueError, match="outside the bounds"):
        fit_mem(x + 5.0, x, ([-3.0], [3.0]))
    with pytest.raises(ValueError, match="reconstructed MC events"):
        fit_mem(x, x)


def test_hard_variables_give_the_intensity_of_the_four_momenta():
    """The J/psi's intensity does not depend on the event's azimuth about the beam: the four hard variables fix it."""
    model = read_model("R0")
    amplitude = AmplitudeModel(model)
    events = phase_space_events(500, generator=torch.Generator().manual_seed(3))
    hard = hard_variables(*events)
    low, high = hard_bounds()
    assert bool(((hard > torch.tensor(low)) & (hard < torch.tensor(high))).all())
    p = amplitude.initial()
    assert torch.allclose(amplitude.intensity(p, amplitude.cache(*events)), model.intensity(*events), rtol=1e-12)
    from_hard = amplitude.intensity(p, amplitude.cache_from_hard(hard))
    assert torch.allclose(from_hard, model.intensity(*events), rtol=1e-10)


def test_process_floats_only_the_chosen_parameter_and_refuses_others():
    process = Process("R0", "f2(1270).width")
    assert process.amplitude.names == ["f2(1270).width"] and process.value == pytest.approx(0.196)
    with pytest.raises(ValueError, match="expected RESONANCE.FIELD"):
        Process("R0", "f2(9999).mass")
    with pytest.raises(ValueError, match="floats g_pipi, not width"):
        Process("R0", "f0(980).width")  # a Flatte floats g_pipi


def test_phase_space_measure_and_known_detector_weights():
    """Flat phase space in the hard variables has density p q / M in m_pipi: reweighting flat m_pipi points by it
    gives the phase-space MC's m_pipi mean; points outside the box carry no weight."""
    process = Process("R0", "f2'(1525).mass")
    rng = np.random.default_rng(4)
    m = rng.uniform(process.low[0], process.high[0], 400_000)
    flat = np.stack([m, *np.zeros((3, len(m)))], 1)
    w = np.exp(process.log_phase_space(flat))
    events = phase_space_events(200_000, generator=torch.Generator().manual_seed(5))
    mc_mean = float(hard_variables(*events)[:, 0].mean())
    assert np.sum(w * m) / np.sum(w) == pytest.approx(mc_mean, abs=3e-3)
    detector = Detector(np.array([0.02, 0.03, 0.05, 0.1]))
    reco = np.array([[1.5, 0.95, 0.0, 0.0], [1.5, 0.2, 0.99, 3.1]])
    samples = known_detector_samples(process, detector, reco, 2000, seed=0)
    lost = ~np.isfinite(samples.log_weight)
    outside = ~process.inside(samples.hard.reshape(-1, 4)).reshape(2, -1)
    photon_cut = np.abs(samples.hard[..., 1]) >= 0.9
    assert np.array_equal(lost, outside | photon_cut)
    assert 0.9 < lost[0].mean() < 1.0  # most photons of the first event beyond |cos| = 0.9


def test_samples_at_the_true_hard_points_reproduce_the_true_hard_likelihood():
    process = Process("R0", "f2'(1525).mass")
    detector = Detector(np.array([0.02, 0.03, 0.05, 0.1]))
    mc = simulate_mc(process, detector, 20_000, seed=0)
    data = simulate_data(process, detector, 200, 0.6, seed=1)
    assert np.isfinite(data.reco).all() and len(data.hard) == 200
    norm_cache = process.normalisation_cache(mc.events, detector.efficiency(mc.hard))
    truth = Likelihood(process, process.amplitude.cache(*data.events), norm_cache)
    repeated = np.repeat(data.hard[:, None, :], 3, axis=1)
    samples = ImportanceSamples(repeated, np.zeros((200, 3)))
    via_samples = Likelihood(process, process.hard_cache(repeated.reshape(-1, 4)), norm_cache, samples)
    for alpha in (1.50, 1.5223, 1.55):
        assert via_samples(alpha) == pytest.approx(truth(alpha), rel=1e-9)


TINY = {
    "mc_events": 20_000,
    "datasets": 2,
    "data_events": 300,
    "samples": 20,
    "flows": {"transforms": 3, "hidden": 32, "max_epochs": 15, "batch_size": 256, "patience": 3},
}


def test_workflow_end_to_end(tmp_path):
    config = MEMConfig(**TINY, out=str(tmp_path / "mem"))
    result = run(config, RunContext(progress=False, log=lambda message: None))
    metrics = json.loads((tmp_path / "mem" / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"true hard", "known detector", "learned MEM"}
    lines = (tmp_path / "mem" / "fits.csv").read_text().splitlines()
    assert lines[0] == "dataset,method,value,error,valid" and len(lines) == 1 + 3 * 2
    assert (tmp_path / "mem" / "mem.png").is_file()
    truth = metrics["truth"]
    for row in result.rows:
        assert abs(row["mean_value"] - truth) < 4 * row["mean_error"]
        assert 0 < row["mean_error"] < 0.05
    # the detector loses information: no method fitted on reconstructed events beats the true hard events
    assert result.rows[1]["error_ratio"] > 1.0
    # --resume reuses the trained flows and gives the same fits
    logged = []
    run(config, RunContext(resume=True, progress=False, log=logged.append))
    assert any("reusing the trained flows" in line for line in logged)
    assert (tmp_path / "mem" / "fits.csv").read_text().splitlines() == lines


def test_bad_parameter_stops_before_the_output_folder(tmp_path):
    with pytest.raises(ValueError, match="expected RESONANCE.FIELD"):
        run(MEMConfig(**TINY, parameter="nonsense", out=str(tmp_path / "mem")))
    assert not (tmp_path / "mem").exists()
