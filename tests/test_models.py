"""The models layer: every forward model honours the `ForwardModel` protocol, and the layering
physics -> data -> models -> inference -> workflows -> CLI holds (checked on the source with `ast`)."""

import ast
import math
from pathlib import Path

import pytest
import torch

from hadrinv.data.pipi_toy import PipiToySpec, simulate_pipi
from hadrinv.models import (
    DISProblem,
    FemtoscopyModel,
    ForwardModel,
    OmegaOmegaCase,
    OmegaOmegaSettings,
    PipiProblem,
    SeparableCase,
    SeparableSettings,
    ToyProblem,
)
from hadrinv.models.dis import make_problem as make_dis_problem
from hadrinv.models.femtoscopy import PARAMETERS, TALK_RANGES, two_to_five
from hadrinv.models.toys import make_problem as make_toy_problem

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hadrinv"
LAYERS = ("physics", "data", "models", "inference", "workflows", "cli")
TWO_PARAMETER_FIXED = {"r0": 1.3, "b2": 73.9, "b4": 0.78}


def _models() -> dict[str, ForwardModel]:
    return {
        "toy sum_of_squares_2d": make_toy_problem("sum_of_squares_2d", 0.05, 2.0),
        "toy sum_of_squares_10d": make_toy_problem("sum_of_squares_10d", 0.05, 2.0),
        "toy ring": make_toy_problem("ring", 0.05, 2.0),
        "dis grid": make_dis_problem(4, 3, 0.03),
        "femtoscopy five": FemtoscopyModel(k_points=12),
        "femtoscopy two": FemtoscopyModel(names=("b1", "b3"), fixed=TWO_PARAMETER_FIXED, k_points=12),
        "pipi": PipiProblem.from_data(simulate_pipi(PipiToySpec(n_s=5, n_z=6)), l_max=1),
    }


@pytest.mark.parametrize("name", list(_models()))
def test_forward_models_follow_the_protocol(name):
    model = _models()[name]
    assert isinstance(model, ForwardModel)
    low, high = (torch.as_tensor(b, dtype=torch.float64) for b in model.bounds)
    assert len(model.names) == model.theta_dim == len(low) == len(high)
    assert bool((low < high).all())
    n = 6
    theta = model.sample_prior(n, torch.Generator().manual_seed(1))
    assert theta.shape == (n, model.theta_dim)
    t = theta.double()
    assert bool(((t >= low) & (t <= high)).all())
    x = model.simulate(theta, torch.Generator().manual_seed(2))
    assert x.shape[0] == n and bool(torch.isfinite(x).all())
    again = model.simulate(theta, torch.Generator().manual_seed(2))
    assert torch.equal(x, again)  # the generator is the only source of noise


def test_model_classes_are_forward_models():
    # issubclass does not work on protocols with properties: look the members up on the classes
    members = ("names", "theta_dim", "bounds", "sample_prior", "simulate")
    for cls in (ToyProblem, DISProblem, FemtoscopyModel, PipiProblem):
        missing = [m for m in members if not hasattr(cls, m) and m not in getattr(cls, "__dataclass_fields__", {})]
        assert missing == [], (cls, missing)
    assert {type(m) for m in _models().values()} == {ToyProblem, DISProblem, FemtoscopyModel, PipiProblem}
    assert not isinstance(SeparableCase(), ForwardModel)  # one truth and its data, no prior


def test_femtoscopy_free_and_fixed_parameters():
    model = FemtoscopyModel(names=("b1", "b3"), fixed=TWO_PARAMETER_FIXED, k_points=8)
    theta = model.sample_prior(5, torch.Generator().manual_seed(0))
    assert torch.equal(model.theta5(theta), two_to_five(theta, TWO_PARAMETER_FIXED))
    assert torch.equal(model.simulate(theta), model.curves(model.theta5(theta))["C"])
    with pytest.raises(ValueError, match="neither free nor fixed"):
        FemtoscopyModel(names=("b1",))
    with pytest.raises(ValueError, match="unknown parameter"):
        FemtoscopyModel(names=("r0", "b1", "b2", "b3", "b5"))


def test_pipi_simulation_is_the_cross_section_of_elastic_waves():
    problem = PipiProblem.from_data(simulate_pipi(PipiToySpec(n_s=4, n_z=5)), l_max=2)
    delta = problem.sample_prior(3, torch.Generator().manual_seed(0))
    re, im = problem.elastic_waves(delta)
    assert torch.allclose(im, re**2 + im**2)  # Im f = |f|^2: elastic unitarity
    clean = problem.cross_section(re, im)
    pulls = (problem.simulate(delta, torch.Generator().manual_seed(0)) - clean) / problem.error
    assert pulls.shape == (3, len(problem)) and float(pulls.std()) == pytest.approx(1.0, abs=0.2)


def test_workflow_configs_mirror_the_models_defaults():
    from hadrinv.workflows.femto_inverse.config import PARAMETERS as WORKFLOW_PARAMETERS
    from hadrinv.workflows.femto_inverse.config import PhysicsConfig
    from hadrinv.workflows.halqcd_potential.config import OmegaOmegaCaseConfig, SeparableCaseConfig

    assert OmegaOmegaSettings(**OmegaOmegaCaseConfig().model_dump()) == OmegaOmegaSettings()
    assert SeparableSettings(**SeparableCaseConfig().model_dump()) == SeparableSettings()
    physics, model = PhysicsConfig(), FemtoscopyModel()
    assert WORKFLOW_PARAMETERS == PARAMETERS
    assert {n: tuple(v) for n, v in physics.ranges.model_dump().items()} == TALK_RANGES
    assert dict(physics.two_parameter_fixed) == TWO_PARAMETER_FIXED
    for name in ("reduced_mass_mev", "m_pi_mev", "n_pi", "k_min_mev", "k_max_mev", "k_points"):
        assert getattr(physics, name) == getattr(model, name), name


def test_omega_omega_settings_reject_what_the_workflow_config_rejects():
    for bad, message in (
        ({"ranges_fm": (0.1, 0.2)}, "one positive range per strength"),
        ({"times": (5, 6)}, "at least three slices"),
        ({"report_time": 25}, "strictly inside"),
        ({"sources": ("wall", -1.0)}, "positive Gaussian width"),
        ({"configurations": 1}, "configurations must be >= 2"),
    ):
        with pytest.raises(ValueError, match=message):
            OmegaOmegaSettings(**bad)


def test_omega_omega_case_without_noise_is_exact():
    settings = OmegaOmegaSettings(relative_error=0.0, box_sites=40, times=(5, 9), report_time=7, sources=("wall",))
    case = OmegaOmegaCase(settings)
    assert case.samples.shape[:2] == (1, 1)
    data = case.member_data(0, 0)
    assert data.inputs.shape[0] == data.outputs.shape[0] == 3 and math.isfinite(case.depth())


# -- the import rule -------------------------------------------------------------------------------


def _imported_layers(source: str, module: str) -> list[tuple[int, str]]:
    """(line, layer) of every hadrinv layer that `module` (dotted name) imports, relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: -node.level]
                base = ".".join(parent + ([base] if base else []))
            targets = [base] if base != "hadrinv" else [f"hadrinv.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] == "hadrinv" and len(parts) > 1 and parts[1] in LAYERS:
                found.append((node.lineno, parts[1]))
    return found


def _violations(layer: str) -> list[str]:
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    out = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        module = ".".join(("hadrinv", *path.relative_to(PACKAGE).with_suffix("").parts))
        for line, imported in _imported_layers(path.read_text(), module):
            if imported not in allowed:
                out.append(f"{path.relative_to(PACKAGE)}:{line} imports hadrinv.{imported}")
    return out


@pytest.mark.parametrize("layer", ["physics", "data", "models"])
def test_layers_import_only_layers_to_their_left(layer):
    assert (PACKAGE / layer).is_dir()
    assert _violations(layer) == []


def test_the_import_check_sees_every_form_of_import():
    source = "\n".join(
        [
            "import hadrinv.inference.fit",
            "from hadrinv.workflows.execution import thread_limit",
            "from hadrinv import cli",
            "from ..inference import fit",
            "def f():\n    from hadrinv.inference.unbinned import slice_events",
            "from hadrinv.physics import pwa",
            "from . import toys",
        ]
    )
    layers = [layer for _, layer in _imported_layers(source, "hadrinv.models.example")]
    assert sorted(layers) == sorted(["inference", "workflows", "cli", "inference", "inference", "physics", "models"])
