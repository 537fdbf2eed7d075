"""Neural importance sampling: the flow is a normalised density on the cube, its estimates are unbiased with
honest errors, and it beats flat sampling where the integrand is peaked; the nis-benchmark workflow end to end."""

import itertools
import json
import math

import pytest
import torch

from hadrinv.inference.nis import FlowSettings, UnitFlow, binary_masks, flow_sample_weights, mean_and_error, train_flow
from hadrinv.integration import integrate
from hadrinv.workflows.nis_benchmark.integrands import camel, gauss, get_integrand

SMALL = FlowSettings(transforms=4, bins=8, hidden=16, rounds=6, steps_per_round=10, batch=512)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("dim", [2, 3, 5, 8])
def test_binary_masks_split_every_pair_of_features(dim):
    masks = binary_masks(dim)
    assert len(masks) == 2 * math.ceil(math.log2(dim))
    for i, j in itertools.combinations(range(dim), 2):
        assert any(m[i] != m[j] for m in masks)


def test_flow_is_a_normalised_density_on_the_cube():
    flow = train_flow(lambda x: gauss(x, 0.15), 3, 6000, SMALL, seed=1)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x, log_q = flow.sample(4000, generator)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert torch.allclose(flow.log_prob(x), log_q, atol=1e-4)
        assert float(log_q.max()) > 0.5  # trained: far from the uniform density
    # E_q[1 / q] is the volume of the cube, 1: the density the weights use is the one sampled from
    one = flow_sample_weights(flow, lambda x: torch.ones(len(x), dtype=torch.float64), 100_000, 3, 50_000)
    value, error, _ = mean_and_error(one)
    assert abs(value - 1.0) < 4 * error


def test_quasi_random_replicas_are_unbiased_and_beat_random_points():
    flow = train_flow(lambda x: gauss(x, 0.2), 2, 8000, SMALL, seed=2)
    exact = math.erf(1 / 0.4) ** 2
    iid = flow_sample_weights(flow, gauss, 32_000, 5, 10_000)
    qmc = flow_sample_weights(flow, gauss, 32_000, 5, 10_000, replicas=16)
    value, error, _ = mean_and_error(iid)
    value_qmc, error_qmc, _ = mean_and_error(qmc, replicas=16)
    assert abs(value - exact) < 4 * error and abs(value_qmc - exact) < 4 * error_qmc
    assert error_qmc < 0.5 * error  # the weights are smooth in the base point: Sobol points pay off


def test_training_never_leaves_the_flow_worse_than_uniform():
    """A flat integrand in 10-D: the best measured flow is the uniform one (or as good)."""
    result = integrate(lambda x: 1.0 + 0.01 * x.sum(1), 10, "flow", calls=20_000, seed=0, flow=SMALL)
    flat = integrate(lambda x: 1.0 + 0.01 * x.sum(1), 10, "flat", calls=20_000, seed=0)
    assert result.relative_std <= 1.5 * flat.relative_std


def test_untrained_flow_is_uniform():
    flow = UnitFlow(4, SMALL)
    with torch.no_grad():
        x, log_q = flow.sample(1000, torch.Generator().manual_seed(0))
    assert float(log_q.abs().max()) < 1e-5
    assert abs(float(x.mean()) - 0.5) < 0.02


@pytest.mark.parametrize("method", ["flow", "vegas+flow"])
def test_flow_methods_find_the_camel_and_beat_flat(method):
    exact = (0.5 * (math.erf(1 / 0.6) + math.erf(2 / 0.6))) ** 3
    flat = integrate(camel, 3, "flat", calls=20_000, seed=4)
    result = integrate(camel, 3, method, calls=20_000, seed=4, flow=SMALL)
    assert result.is_valid and result.method == method
    assert abs(result.value - exact) < 4 * result.error
    # rounds and Sobol replicas take whole blocks: a few calls of the budget may stay unused, none is exceeded
    assert 20_000 - 64 <= result.calls <= 20_000 and result.train_calls <= 0.35 * 20_000
    assert result.error < 0.5 * flat.error  # a variance at least 4 times smaller
    assert len(result.sample_weights) == result.calls - result.train_calls


def test_flow_with_zero_regions_and_a_complex_integrand():
    annulus = get_integrand("annulus")
    result = integrate(annulus.f, 2, "flow", calls=20_000, seed=0, flow=SMALL)
    assert math.isfinite(result.value) and math.isfinite(result.error)
    assert abs(result.value - annulus.exact) < 4 * result.error

    def phase(x):  # int_0^1 exp(i pi x) dx = 2 i / pi
        return torch.exp(1j * math.pi * x[:, 0])

    result = integrate(phase, 1, "flow", calls=20_000, seed=0, flow=SMALL)
    assert abs(result.value) < 4 * result.error
    assert abs(result.value_imag - 2 / math.pi) < 4 * result.error_imag


def test_flow_refuses_non_finite_integrands():
    def broken(x):
        return torch.where(x[:, 0] > 0.9, torch.nan, 1.0)

    with pytest.raises(ValueError, match="non-finite"):
        integrate(broken, 2, "flow", calls=5000, flow=SMALL)


def test_flow_pulls_are_calibrated_over_seeds():
    """Errors are honest: pulls over independent seeds have mean ~0 and spread ~1."""
    exact = math.erf(1 / 0.4) ** 2
    pulls = []
    for seed in range(8):
        r = integrate(gauss, 2, "flow", calls=8000, seed=seed, flow=SMALL)
        pulls.append((r.value - exact) / r.error)
    pulls = torch.tensor(pulls)
    assert float(pulls.abs().max()) < 4
    assert abs(float(pulls.mean())) < 4 / math.sqrt(len(pulls)) * 1.0 + 0.3
    assert 0.3 < float(pulls.std()) < 2.0


def test_nis_benchmark_workflow(tmp_path):
    import hadrinv

    result = hadrinv.workflows.run(
        "nis-benchmark",
        out=str(tmp_path / "run"),
        integrands=["gauss-2", "triangle"],
        methods=["flat", "vegas", "flow"],
        peers=[],
        calls=10_000,
        flow={"transforms": 4, "bins": 8, "hidden": 16, "rounds": 5, "steps_per_round": 10, "batch": 512},
        execution={"executor": "serial"},
    )
    assert not result.failures
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["largest_abs_pull"] < 4
    assert set(metrics["results"]) == {f"{i}/{m}" for i in ("gauss-2", "triangle") for m in ("flat", "vegas", "flow")}
    assert metrics["variance_over_vegas"]["gauss-2/flat"] > 10  # vegas is far better than flat on a peak
    assert (tmp_path / "run" / "results.csv").read_text().count("\n") == 7
    assert (tmp_path / "run" / "variance_ratios.png").is_file()


def test_nis_benchmark_flags_results_off_the_exact_value(tmp_path):
    import hadrinv

    result = hadrinv.workflows.run(
        "nis-benchmark",
        out=str(tmp_path / "run"),
        integrands=["polynomial-2"],
        methods=["flat"],
        peers=[],
        calls=1000,
        pull_limit=1e-6,
        execution={"executor": "serial"},
    )
    assert result.failures and "errors from the exact value" in result.failures[0]
    assert not (tmp_path / "run" / "metrics.json").exists()
    assert (tmp_path / "run" / "metrics.NOT-CONVERGED.json").is_file()


def test_unknown_integrand_is_refused():
    with pytest.raises(ValueError, match="unknown integrand"):
        get_integrand("banana-3")
    with pytest.raises(ValueError, match="dimension"):
        get_integrand("gauss")
