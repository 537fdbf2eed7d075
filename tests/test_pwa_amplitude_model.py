"""AmplitudeModel: parameters, the fast intensity, fit fractions, their errors, and the SF penalty."""

import math

import numpy as np
import pytest
import torch

from hadrinv.data.pwa_model import PWAModel, generate_events, no_acceptance, read_model
from hadrinv.inference.unbinned import UnbinnedNLL, fit_unbinned
from hadrinv.models.pwa import AmplitudeModel, constraint_penalties
from hadrinv.physics import pwa

torch.set_num_threads(1)


def _events(n, seed):
    return pwa.phase_space_events(n, generator=torch.Generator().manual_seed(seed))


def _two_resonances(float_=("mass", "width", "coupling"), phase=2.0):
    """Two strongly interfering scalars (SF = 0.77 at phase 2)."""
    return PWAModel.model_validate(
        {
            "name": "two",
            "resonances": [
                {
                    "name": "f0(1500)",
                    "spin": 0,
                    "lineshape": "bw",
                    "mass": 1.507,
                    "width": 0.112,
                    "coupling": [1.0, 0.0],
                    "float": list(float_),
                },
                {
                    "name": "f0(1710)",
                    "spin": 0,
                    "lineshape": "bw",
                    "mass": 1.6762,
                    "width": 0.1627,
                    "coupling": [1.5, phase],
                    "float": list(float_),
                },
            ],
        }
    )


@pytest.fixture(scope="module")
def r0_mc():
    model = read_model("examples/pwa/R0.yaml")
    am = AmplitudeModel(model)
    return model, am, am.cache(*_events(200_000, 11))


# -- parameters ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["R0", "R_plus4"])
def test_parameter_round_trip(name):
    model = read_model(f"examples/pwa/{name}.yaml")
    am = AmplitudeModel(model)
    assert am.names[:6] == [
        "f0(980).mass",
        "f0(980).g_pipi",
        "f2(2340).mass",
        "f2(2340).width",
        "f2(2340).coupling_re",
        "f2(2340).coupling_im",
    ]
    assert "f0(980).coupling_re" not in am.names  # the reference coupling is fixed
    n_expected = 2 + 5 * 4 if name == "R0" else 2 + 5 * 4 + 4 * 2
    assert len(am) == len(am.initial()) == len(am.bounds()) == n_expected
    p = am.initial()
    assert float(p[am.index("f2(2340).coupling_re")]) == pytest.approx(1.5288 * math.cos(2.114), abs=1e-15)
    assert am.bounds()[am.index("f0(980).mass")] == (1e-6, None)
    assert am.bounds()[am.index("f2(2340).coupling_im")] == (None, None)
    back = am.to_model(p)
    for r, r_new in zip(model.resonances, back.resonances):
        assert r_new.mass == pytest.approx(r.mass, abs=1e-15)
        assert (r_new.width or 0) == pytest.approx(r.width or 0, abs=1e-15)
        assert (r_new.g_pipi or 0) == pytest.approx(r.g_pipi or 0, abs=1e-15)
        assert r_new.coupling[0] == pytest.approx(r.coupling[0], abs=1e-14)
        assert r_new.coupling[1] == pytest.approx(r.coupling[1], abs=1e-14)  # branch kept (e.g. 4.951, not -1.332)
    shifted = p.clone()
    shifted[am.index("f2(2340).mass")] = 2.5
    shifted[am.index("f2(2340).coupling_im")] = 0.0
    moved = am.to_model(shifted)
    assert moved.resonances[1].mass == 2.5
    assert moved.resonances[1].complex_coupling().imag == pytest.approx(0.0, abs=1e-15)
    assert moved.resonances[0].coupling == model.resonances[0].coupling


def test_bounds_from_yaml_and_constraint_penalties():
    model = PWAModel.model_validate(
        {
            "resonances": [
                {
                    "name": "f2(1270)",
                    "spin": 2,
                    "mass": 1.2755,
                    "width": 0.1867,
                    "float": ["mass", "width"],
                    "bounds": {"mass": [1.2, 1.35]},
                }
            ],
            "constraints": [{"parameter": "f2(1270).mass", "mean": 1.28, "alpha": 1.0e4}],
        }
    )
    am = AmplitudeModel(model)
    assert am.bounds() == [(1.2, 1.35), (1e-6, None)]
    penalties = constraint_penalties(model, am)
    assert list(penalties) == ["constraint:f2(1270).mass"]
    assert float(penalties["constraint:f2(1270).mass"](am.initial())) == pytest.approx(1.0e4 * 0.0045**2, rel=1e-12)


# -- intensity -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["R0", "R_plus4", "spin2_E1", "spin0"])
def test_fast_intensity_equals_the_model(name):
    model = read_model(f"examples/pwa/{name}.yaml")
    am = AmplitudeModel(model)
    events = _events(3000, 1)
    fast = am.intensity(am.initial(), am.cache(*events))
    reference = model.intensity(*events)
    assert float(((fast - reference).abs() / reference).max()) < 1e-12


def test_floating_helicities_match_the_model_and_round_trip():
    model = read_model("examples/pwa/spin2_E1.yaml")
    model.resonances[0].float_ = ["mass", "width", "helicity"]
    am = AmplitudeModel(model)
    assert am.names[2:] == [f"f2'(1525).helicity_A{i}_{part}" for i in (1, 2) for part in ("re", "im")]
    events = _events(2000, 2)
    cache = am.cache(*events)
    assert cache["basis"].shape == (2000, 4, 6)  # one component per helicity amplitude
    assert (
        float(((am.intensity(am.initial(), cache) - model.intensity(*events)).abs() / model.intensity(*events)).max())
        < 1e-12
    )
    p = am.initial()
    p[am.index("f2'(1525).helicity_A1_im")] = 0.7
    p[am.index("f2'(1525).helicity_A2_re")] = -0.3
    changed = am.to_model(p)
    assert changed.resonances[0].helicity_amplitudes()[1] == pytest.approx(complex(math.sqrt(3.0), 0.7))
    assert (
        float(((am.intensity(p, cache) - changed.intensity(*events)).abs() / changed.intensity(*events)).max()) < 1e-12
    )


# -- fit fractions ---------------------------------------------------------------------------------


def test_r0_fit_fractions_match_the_file(r0_mc):
    _, am, mc = r0_mc
    F, interference, sf = am.fit_fractions(am.initial(), mc)
    documented = torch.tensor([39.52, 37.12, 24.72, 8.31, 3.16, 2.22], dtype=torch.float64) / 100
    assert torch.allclose(F, documented, rtol=0.02, atol=0)
    assert float(sf) == pytest.approx(1.1505, rel=0.02)
    assert float(F.sum() + interference.sum()) == pytest.approx(1.0, abs=1e-10)
    assert torch.equal(interference, torch.triu(interference, diagonal=1))
    chunked = am.fit_fractions(am.initial(), mc, chunk_size=30_000)[0]
    assert torch.allclose(chunked, F, rtol=1e-12, atol=0)


def test_single_resonance_fraction_is_one_with_no_error():
    am = AmplitudeModel(read_model("examples/pwa/spin0.yaml"))
    mc = am.cache(*_events(5000, 3))
    F, _, sf = am.fit_fractions(am.initial(), mc)
    assert float(F[0]) == pytest.approx(1.0, abs=1e-14) and float(sf) == pytest.approx(1.0, abs=1e-14)
    errors, sf_error, _ = am.fit_fraction_errors(am.initial(), np.diag([1e-6, 4e-6]), mc)
    assert float(errors[0]) < 1e-10 and float(sf_error) < 1e-10


def test_propagated_errors_agree_with_parameter_sampling():
    model = _two_resonances()
    am = AmplitudeModel(model)
    gen = torch.Generator().manual_seed(4)
    data = am.cache(*generate_events(model, 3000, acceptance=no_acceptance, generator=gen))
    mc = am.cache(*_events(20_000, 5))
    nll = UnbinnedNLL(am.intensity, data, mc)
    covariance = torch.linalg.inv(nll.hessian(am.initial())).numpy()
    errors, sf_error, cov_f = am.fit_fraction_errors(am.initial(), covariance, mc, chunk_size=7000)
    mean, std = am.fit_fraction_samples(am.initial(), covariance, mc, 400, generator=torch.Generator().manual_seed(6))
    F = am.fit_fractions(am.initial(), mc)[0]
    assert torch.all(errors > 0.005)  # a real uncertainty with 3000 events
    assert torch.allclose(std, errors, rtol=0.2, atol=0), (std, errors)
    assert torch.allclose(mean, F, rtol=0, atol=3 * float(errors.max()) / math.sqrt(400) + 0.01)
    assert float(sf_error) > 0 and torch.allclose(torch.diagonal(cov_f).sqrt(), errors)
    # the autodiff Jacobian against central finite differences
    _, jac = am.fit_fraction_jacobian(am.initial(), mc, chunk_size=None)
    step = 1e-6
    for i in range(len(am)):
        e = torch.zeros(len(am), dtype=torch.float64)
        e[i] = step
        fd = (am.fit_fractions(am.initial() + e, mc)[0] - am.fit_fractions(am.initial() - e, mc)[0]) / (2 * step)
        assert torch.allclose(jac[:, i], fd, rtol=1e-5, atol=1e-7)


# -- binned normalisation ---------------------------------------------------------------------------


def test_binned_cache_reproduces_the_mc_average_fractions_and_gradient(r0_mc):
    """<I>, F and d<I>/dp from 0.2 MeV bins against the event-by-event sums of the same sample, at the
    file's values and at a displaced point (masses and widths shifted by several sigma of a 1e5 fit)."""
    _, am, mc = r0_mc
    events = _events(200_000, 11)
    binned = am.binned_cache([tuple(e[:70_000] for e in events), tuple(e[70_000:] for e in events)])  # streamed
    assert binned["m"].shape[0] < 20_000 and binned["basis"].shape[1:] == (len(am._components), 2 * len(am._components))
    shift = torch.linspace(-1, 1, len(am), dtype=torch.float64) * 0.01
    for params in (am.initial(), am.initial() + shift):
        params = params.clone().requires_grad_(True)
        exact, approx = am.intensity(params, mc).mean(), am.intensity(params, binned).mean()
        assert float((approx / exact).detach()) - 1 == pytest.approx(0.0, abs=3e-5)
        g_exact = torch.autograd.grad(torch.log(exact), params)[0]
        g_approx = torch.autograd.grad(torch.log(approx), params)[0]
        assert torch.allclose(g_approx, g_exact, rtol=0, atol=2e-3 * float(g_exact.abs().max()))
        with torch.no_grad():
            assert torch.allclose(
                am.fit_fractions(params, binned)[0], am.fit_fractions(params, mc)[0], rtol=0, atol=5e-5
            )


def test_binned_cache_error_shrinks_with_the_bin_width(r0_mc):
    _, am, mc = r0_mc
    events = _events(200_000, 11)
    exact = float(am.intensity(am.initial(), mc).mean())
    errors = [
        abs(float(am.intensity(am.initial(), am.binned_cache([events], w)).mean()) / exact - 1)
        for w in (2e-3, 5e-4, 1e-4)
    ]
    assert errors[0] > 3 * errors[1] > 9 * errors[2], errors
    with pytest.raises(ValueError, match="bin_width"):
        am.binned_cache([events], 0.0)


def test_importance_sampled_mc_gives_the_same_normalisation_with_less_noise(r0_mc):
    """R0's ln <I> over the accepted phase space and its gradient, from flat MC and from MC whose m_pipi
    follows the data's spectrum (weighted, binned): the same values within errors, and a smaller spread
    over repeated samples along the f0(980), the parameters that flat MC scatters most in a fit
    (benchmarks/pwa_mc_noise.py; not every gradient component gains: f2'(1525).mass's is noisier)."""
    from hadrinv.data.pwa_model import accepted_phase_space, accepted_weighted_phase_space, m_spectrum, toy_acceptance

    model, am, _ = r0_mc
    g = torch.Generator().manual_seed(21)
    data = generate_events(model, 20_000, acceptance=toy_acceptance, generator=g)
    spectrum = m_spectrum(pwa.invariant_mass(data[1] + data[2]))

    def normalisation(cache):
        params = am.initial().requires_grad_(True)
        value = torch.log(am.intensity(params, cache).mean())
        return torch.cat([value.detach()[None], torch.autograd.grad(value, params)[0]])

    flat = torch.stack(
        [normalisation(am.binned_cache([accepted_phase_space(30_000, toy_acceptance, generator=g)])) for _ in range(8)]
    )
    weighted = torch.stack(
        [
            normalisation(
                am.binned_cache([accepted_weighted_phase_space(30_000, spectrum, toy_acceptance, generator=g)])
            )
            for _ in range(8)
        ]
    )
    error = ((flat.var(0) + weighted.var(0)) / 8).sqrt()
    assert bool(((flat.mean(0) - weighted.mean(0)).abs() < 4 * error).all())
    narrow = [0] + [1 + am.index(name) for name in ("f0(980).mass", "f0(980).g_pipi")]
    ratio = weighted[:, narrow].std(0) / flat[:, narrow].std(0)
    assert float(ratio.max()) < 0.8, ratio  # measured 0.66, 0.21, 0.13


# -- fits ------------------------------------------------------------------------------------------


def test_fit_recovers_mass_and_width_of_a_toy():
    model = read_model("examples/pwa/spin0.yaml")
    am = AmplitudeModel(model)
    data = am.cache(*generate_events(model, 5000, acceptance=no_acceptance, generator=torch.Generator().manual_seed(7)))
    mc = am.cache(*_events(50_000, 8))
    nll = UnbinnedNLL(am.intensity, data, mc, chunk_size=25_000)
    start = am.initial() + torch.tensor([0.01, 0.015], dtype=torch.float64)
    result = fit_unbinned(nll, start, method="newton", names=am.names)
    assert result.is_valid, result.message
    truth = am.initial().numpy()
    assert np.all(np.isfinite(result.errors))
    assert np.all((result.errors > 0.0005) & (result.errors < 0.02)), result.errors  # a few MeV
    assert np.all(np.abs(result.values - truth) < 3 * result.errors), (result.values, truth, result.errors)
    fitted = am.to_model(result.values)
    assert fitted.resonances[0].mass == pytest.approx(result.values[0])


def test_sf_penalty_moves_the_fitted_sf_to_the_target():
    model = _two_resonances(float_=("coupling",))
    am = AmplitudeModel(model)
    assert am.names == ["f0(1710).coupling_re", "f0(1710).coupling_im"]
    n = 2000
    data = am.cache(*generate_events(model, n, acceptance=no_acceptance, generator=torch.Generator().manual_seed(9)))
    mc = am.cache(*_events(20_000, 10))
    plain = fit_unbinned(UnbinnedNLL(am.intensity, data, mc), am.initial(), names=am.names)
    sf_plain = float(am.fit_fractions(plain.values, mc)[2])
    target = 1.0
    assert abs(sf_plain - target) > 0.1  # the data want SF ~ 0.77
    penalised_nll = UnbinnedNLL(
        am.intensity, data, mc, penalties={"sf": am.sf_penalty(mc, target, lam=100.0, n_events=n)}
    )
    penalised = fit_unbinned(penalised_nll, am.initial(), names=am.names)
    sf = float(am.fit_fractions(penalised.values, mc)[2])
    assert plain.is_valid and penalised.is_valid, (plain.message, penalised.message)
    assert abs(sf - target) < 0.01, (sf_plain, sf)
    assert penalised.nll > plain.nll  # the constraint costs likelihood
    assert set(penalised.penalties) == {"sf"}


def test_sf_penalty_gauss_newton_hessian_is_exact_at_the_target():
    """At SF = target the dropped term (SF - target) d^2 SF vanishes: the carried Hessian equals autodiff's."""
    model = _two_resonances()
    am = AmplitudeModel(model)
    cache = am.cache(*_events(4000, 21))
    p = am.initial()
    sf = float(am.fit_fractions(p, cache)[2])
    penalty = am.sf_penalty(cache, target=sf, lam=0.5, n_events=1000)
    exact = torch.func.hessian(penalty)(p)
    assert torch.allclose(penalty.hessian(p), exact, rtol=1e-8, atol=1e-10 * float(exact.abs().max()))
    off = am.sf_penalty(cache, target=sf + 0.2, lam=0.5, n_events=1000)
    assert not torch.allclose(off.hessian(p), torch.func.hessian(off)(p), rtol=1e-3)  # away from it, an approximation
