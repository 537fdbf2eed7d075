"""PWA model files, the toy acceptance and accept-reject generation against known answers."""

import math

import pytest
import torch

from hadrinv.data.pwa_model import generate_events, no_acceptance, read_model, toy_acceptance
from hadrinv.data.validation import DataError
from hadrinv.physics import pwa

EXAMPLES = "examples/pwa"


@pytest.mark.parametrize("name, a", [("spin0", 1.0), ("spin2_E1", 1.0 / 13.0)])
def test_generated_photon_angles_follow_the_known_answers(name, a):
    model = read_model(f"{EXAMPLES}/{name}.yaml")
    gamma, pi1, pi2 = generate_events(
        model, 40000, acceptance=no_acceptance, generator=torch.Generator().manual_seed(2)
    )
    c2 = pwa.helicity_angles(gamma, pi1, pi2).cos_theta_gamma ** 2
    expected = (1 / 3 + a / 5) / (1 + a / 3)  # <cos^2> of 1 + a cos^2
    assert float(c2.mean()) == pytest.approx(expected, abs=4 * float(c2.std()) / math.sqrt(len(c2)))
    assert float(pwa.energy_momentum_violation(gamma, pi1, pi2).max()) < 1e-12


def test_generated_mass_spectrum_peaks_at_the_resonance():
    model = read_model(f"{EXAMPLES}/spin0.yaml")
    gamma, pi1, pi2 = generate_events(
        model, 20000, acceptance=no_acceptance, generator=torch.Generator().manual_seed(3)
    )
    m = pwa.helicity_angles(gamma, pi1, pi2).m_pipi
    histogram = torch.histc(m, bins=60, min=0.3, max=3.0)
    peak = 0.3 + (int(histogram.argmax()) + 0.5) * 2.7 / 60
    assert peak == pytest.approx(1.676, abs=0.05)


def test_r0_reproduces_the_talks_fit_fractions():
    model = read_model(f"{EXAMPLES}/R0.yaml")
    gamma, pi1, pi2 = pwa.phase_space_events(200000, generator=torch.Generator().manual_seed(4))
    angles = pwa.helicity_angles(gamma, pi1, pi2)
    A = model.angular_amplitudes(angles)
    shapes = torch.stack([r.line_shape(angles.m_pipi, model.final_state) for r in model.resonances], -1)
    c = torch.tensor([r.complex_coupling() for r in model.resonances], dtype=torch.complex128)
    total = pwa.intensity(A, shapes, c).mean()
    fractions = (
        torch.stack(
            [
                (c[k].abs() ** 2 * ((A[:, k] * shapes[:, k, None, None]).abs() ** 2).sum((-1, -2))).mean()
                for k in range(len(c))
            ]
        )
        / total
    )
    talk = torch.tensor([39.5, 37.1, 24.7, 8.30, 3.16, 2.22], dtype=torch.float64) / 100
    assert torch.allclose(fractions, talk, rtol=0.03)
    assert float(fractions.sum()) == pytest.approx(1.150, abs=0.01)


def test_toy_acceptance_is_an_efficiency():
    gamma, pi1, pi2 = pwa.phase_space_events(20000, generator=torch.Generator().manual_seed(5))
    eff = toy_acceptance(gamma, pi1, pi2)
    assert float(eff.min()) >= 0 and float(eff.max()) <= 0.9**2 + 1e-12
    forward = gamma[:, 3] / gamma[:, 1:].norm(dim=-1) > 0.95
    assert torch.all(eff[forward] == 0)
    assert 0.3 < float(eff.mean()) < 0.8


@pytest.mark.parametrize(
    "text, message",
    [
        ("resonances: []", "resonances"),
        ("resonances:\n  - {name: a, spin: 1, mass: 1.0, width: 0.1}", "spin"),
        ("resonances:\n  - {name: a, spin: 0, lineshape: flatte, mass: 1.0}", "g_pipi"),
        ("resonances:\n  - {name: a, spin: 2, mass: 1.0, width: 0.1, helicity: [1.0]}", "3 helicity"),
        (
            "resonances:\n  - {name: a, spin: 0, mass: 1.0, width: 0.1}\n  - {name: a, spin: 0, mass: 1.2, width: 0.1}",
            "unique",
        ),
        (
            "resonances:\n  - {name: a, spin: 0, mass: 1.0, width: 0.1}\n"
            "constraints:\n  - {parameter: b.mass, mean: 1.0, alpha: 1.0}",
            "constraint",
        ),
        ("resonances: [", "not a YAML"),
        ("- 1\n- 2", "mapping"),
    ],
)
def test_bad_model_files_stop_with_one_line(tmp_path, text, message):
    path = tmp_path / "model.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_model(path)
    assert message in str(info.value) and str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("suffix", [".parquet", ".root", ".csv"])
def test_cli_simulate_pwa_writes_readable_events(tmp_path, suffix):
    from hadrinv.cli import main
    from hadrinv.data.pwa_events import read_events

    path = tmp_path / f"events{suffix}"
    assert (
        main(
            [
                "simulate",
                "pwa",
                "--model",
                f"{EXAMPLES}/spin0.yaml",
                "--events",
                "300",
                "--out",
                str(path),
                "--seed",
                "1",
            ]
        )
        == 0
    )
    sample = read_events(path)
    assert len(sample) == 300
    assert (tmp_path / f"events{suffix}.model.yaml").is_file()
    assert float(toy_acceptance(sample.gamma, sample.pi1, sample.pi2).min()) > 0  # the toy acceptance was applied


def test_cli_simulate_pwa_bad_model_exits_2(tmp_path, capsys):
    from hadrinv.cli import main

    bad = tmp_path / "m.yaml"
    bad.write_text("resonances:\n  - {name: a, spin: 1, mass: 1.0, width: 0.1}")
    assert main(["simulate", "pwa", "--model", str(bad), "--events", "10", "--out", str(tmp_path / "e.csv")]) == 2
    assert str(bad) in capsys.readouterr().err
