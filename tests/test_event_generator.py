"""The event-generator workflow: the Dalitz features (physical events by construction), event tables, the
efficiency function, small end-to-end runs on simulated and users' tables, and the refusal of bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import hadrinv.workflows as workflows
from hadrinv.cli import main
from hadrinv.data.event_tables import read_event_table, write_event_table
from hadrinv.data.pwa_events import COLUMNS, read_events
from hadrinv.data.validation import DataError
from hadrinv.physics.phase_space import dalitz_coordinates, events_from_dalitz, phase_space_events
from hadrinv.workflows.event_generator.features import Representation, representation_of

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "train_events": 3000,
    "test_events": 2000,
    "flow": {"transforms": 2, "hidden": 16, "epochs": 2, "batch": 256},
    "discflow": {"warmup_epochs": 1, "classifier_hidden": 16, "final_classifier_epochs": 1},
    "ot": {"d_model": 16, "heads": 2, "layers": 1, "steps": 15, "batch": 256},
    "c2st_events": 2000,
    "min_bin_count": 50,
    "execution": {"executor": "serial"},
}


def test_dalitz_coordinates_invert_the_event_construction():
    events = phase_space_events(2000, generator=torch.Generator().manual_seed(1))
    s12, s23, cos_theta, phi, psi = coordinates = dalitz_coordinates(*events)
    assert float(cos_theta.abs().max()) <= 1 and float(phi.min()) >= 0 and float(psi.max()) < 2 * math.pi
    for a, b in zip(events, events_from_dalitz(*coordinates), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    # the orientation is isotropic: <cos theta> ~ 0 within 4 sigma of 1/sqrt(3 N)
    assert abs(float(cos_theta.mean())) < 4 / math.sqrt(3 * 2000)


def test_any_feature_vector_decodes_to_a_physical_event(tmp_path):
    rep = Representation("pwa", COLUMNS)
    z = 3.0 * torch.randn(5000, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    values = rep.decode(z)
    path = write_event_table(tmp_path / "decoded.parquet", COLUMNS, values)
    sample = read_events(path)  # conservation and masses checked to 1e-4 GeV per component
    assert len(sample) == 5000
    assert torch.allclose(rep.encode(values)[:, 2:], z[:, 2:], rtol=0, atol=1e-6)  # the angles invert exactly
    assert torch.allclose(rep.decode(rep.encode(values)), values, rtol=0, atol=1e-9)


def test_numeric_tables_round_trip_and_keep_the_weight(tmp_path):
    values = torch.randn(50, 3, dtype=torch.float64)
    weight = torch.rand(50, dtype=torch.float64) + 0.5
    for suffix in ("csv", "parquet"):
        path = write_event_table(tmp_path / f"t.{suffix}", ("m12sq", "m23sq", "x"), values, weight)
        table = read_event_table(path)
        assert table.layout == "numeric" and table.columns == ("m12sq", "m23sq", "x")
        assert torch.allclose(table.values, values) and torch.allclose(table.weight, weight)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a,b\n1,2\n3,x\n", ":3: column b"),
        ("a,b\n", "no data rows"),
        ("a,b\n1,2\nnan,4\n", ":3:"),
        ("a,weight\n1,2\n3,-1\n", "negative weight"),
    ],
)
def test_bad_numeric_tables_name_the_row(tmp_path, text, needle):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad.csv") as info:
        read_event_table(path)
    assert needle in str(info.value)


def test_bad_parquet_columns_are_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1.0, 2.0], "label": ["x", "y"]}), tmp_path / "text.parquet")
    with pytest.raises(ValueError, match="column label has type string"):
        read_event_table(tmp_path / "text.parquet")
    pq.write_table(pa.table({"a": [1.0, None, 3.0]}), tmp_path / "null.parquet")
    with pytest.raises(ValueError, match="event 1: column a is missing"):
        read_event_table(tmp_path / "null.parquet")


def efficiency_file(tmp_path) -> str:
    path = tmp_path / "eff.py"
    path.write_text(
        "import numpy as np\n\n"
        "def photon_threshold(gamma_E, **rest):\n"
        "    return np.clip((gamma_E - 0.1) / 0.8, 0.0, 1.0)\n\n"
        "def broken(columns):\n"
        "    raise RuntimeError('database unreachable')\n\n"
        "def too_large(columns):\n"
        "    return 2.0 + 0 * columns['gamma_E']\n"
    )
    return str(path)


def test_simulated_run_with_an_efficiency_writes_physical_events_and_all_metrics(tmp_path):
    out = tmp_path / "run"
    result = workflows.run(
        "event-generator", out=str(out), efficiency=efficiency_file(tmp_path) + ":photon_threshold", **TINY
    )
    assert result.failures == []
    m = json.loads((out / "metrics.json").read_text())
    assert list(m["methods"]) == ["flow", "discflow", "ot-attention", "ot-attention-no-jsu"]
    assert m["train_events"] < 3000  # the efficiency removed events
    for name, row in m["methods"].items():
        assert 0.4 < row["c2st"]["auc"] <= 1.0, name
        assert set(row["histograms"]) >= {"m_pipi", "cos_theta_gamma", "E_gamma"}
        assert set(row["peaks"]) == {"f0(980)", "f2'(1525)"} and row["triangular_discriminator"] >= 0
        assert row["seconds_per_event"] > 0 and row["speedup_vs_accept_reject"] > 0
        assert set(row["efficiency_corrected"]) == set(row["histograms"])
        generated = read_events(out / name / "generated.parquet")  # physical: conservation and masses
        assert len(generated) == m["test_events"]
    assert m["methods"]["ot-attention"]["johnson_su_features"] == ["logit_m_pipi"]  # the PWA layout's default
    assert m["methods"]["ot-attention-no-jsu"]["johnson_su_features"] == []
    discflow = m["methods"]["discflow"]
    assert discflow["c2st"]["auc_weighted"] is not None and m["methods"]["flow"]["c2st"]["auc_weighted"] is None
    assert abs(discflow["weights"]["n"] - m["test_events"]) == 0
    for name in ("generated.parquet", "model.pt", "peaks.png"):
        assert (out / name).is_file()


def test_a_users_numeric_table_runs_through_the_same_command(tmp_path):
    g = torch.Generator().manual_seed(4)
    n = 4000
    # a Dalitz-like table: a narrow Breit-Wigner in m12 on a broad background, and a second variable
    m12 = torch.where(
        torch.rand(n, generator=g) < 0.3,
        0.892 + 0.025 * torch.tan(math.pi * (torch.rand(n, generator=g) - 0.5)).clamp(-20, 20),
        0.6 + 1.0 * torch.rand(n, generator=g),
    )
    values = torch.stack([m12, torch.randn(n, generator=g)], dim=1).double()
    data = write_event_table(tmp_path / "dalitz.parquet", ("m12", "y"), values)
    out = tmp_path / "run"
    argv = ["run", "event-generator", "--data", str(data), "--out", str(out), "--method", "ot-attention", "--serial"]
    config = tmp_path / "tiny.yaml"
    import yaml

    settings = {k: v for k, v in TINY.items() if k not in ("train_events", "test_events")}
    settings["ot"] = {**settings["ot"], "johnson_su_features": ["m12"]}
    config.write_text(yaml.safe_dump(settings))
    assert main([*argv, "--config", str(config), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["layout"] == "numeric" and m["features"] == ["m12", "y"] and m["test_events"] == 800
    generated = read_event_table(out / "generated.parquet")
    assert generated.columns == ("m12", "y") and len(generated) == 800 and generated.weight is not None
    # on 70 % background the peak's kurtosis stays low: the transform takes the column when named
    assert m["feature_excess_kurtosis"]["m12"] < 3 and abs(m["feature_excess_kurtosis"]["y"]) < 0.5
    assert m["methods"]["ot-attention"]["johnson_su_features"] == ["m12"]
    assert m["methods"]["ot-attention-no-jsu"]["johnson_su_features"] == []
    assert np.isfinite(m["methods"]["ot-attention"]["histograms"]["m12"]["chi2"])


def _pwa_table(tmp_path, n: int, edit=None) -> str:
    events = phase_space_events(n, generator=torch.Generator().manual_seed(5))
    values = torch.cat(events, dim=1)
    path = tmp_path / "events.csv"
    write_event_table(path, COLUMNS, values)
    if edit:
        lines = path.read_text().splitlines()
        lines[3] = edit(lines[3])
        path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    "case", ["empty", "NaN", "non-numeric", "fewer than a batch", "efficiency fails", "eff > 1", "off shell"]
)
def test_bad_input_stops_in_one_line_and_leaves_nothing(tmp_path, capsys, case):
    out = tmp_path / "out"
    options: list[str] = []
    if case == "empty":
        path = tmp_path / "empty.parquet"
        write_event_table(path, ("a", "b"), torch.zeros(0, 2))
        data, needle = str(path), "no events"
    elif case == "NaN":
        data, needle = _pwa_table(tmp_path, 600, lambda line: "nan," + line.split(",", 1)[1]), ":4:"
    elif case == "non-numeric":
        data, needle = _pwa_table(tmp_path, 600, lambda line: "abc," + line.split(",", 1)[1]), ":4:"
    elif case == "fewer than a batch":
        data, needle = _pwa_table(tmp_path, 300), "need at least"
    elif case == "off shell":  # a three-body table with one pion 10 MeV too heavy
        data = _three_body_table(tmp_path, 800, suffix="csv")
        lines = Path(data).read_text().splitlines()
        fields = lines[40].split(",")
        fields[8] = repr(float(fields[8]) + 0.01)
        lines[40] = ",".join(fields)
        Path(data).write_text("\n".join(lines) + "\n")
        needle = "event 39: pi has mass"
    else:
        data = _pwa_table(tmp_path, 3000)
        function = "broken" if case == "efficiency fails" else "too_large"
        options = ["--efficiency", efficiency_file(tmp_path) + ":" + function]
        needle = "database unreachable" if case == "efficiency fails" else "outside [0, 1]"
    argv = ["run", "event-generator", "--data", data, "--out", str(out), "--serial", "--no-progress", *options]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()


def test_an_unknown_peak_observable_is_refused_before_training():
    from hadrinv.workflows.event_generator.config import EventGeneratorConfig
    from hadrinv.workflows.event_generator.run import peak_windows

    rep = Representation("pwa", COLUMNS)
    assert [p.name for p in peak_windows(EventGeneratorConfig(), rep)] == ["f0(980)", "f2'(1525)"]
    config = EventGeneratorConfig(peaks=[{"name": "phi", "observable": "m_kk", "low": 1.0, "high": 1.04}])
    with pytest.raises(ValueError, match="no observable 'm_kk'; have m_pipi"):
        peak_windows(config, rep)
    assert peak_windows(EventGeneratorConfig(), Representation("numeric", ("a", "b"))) == []


def test_an_efficiency_takes_its_columns_by_name_or_as_one_dict(tmp_path):
    from hadrinv.data.event_tables import EventTable
    from hadrinv.workflows.event_generator.efficiency import evaluate_efficiency

    table = EventTable(("a", "b"), torch.tensor([[0.2, 0.0], [0.8, 1.0]], dtype=torch.float64))
    by_name = evaluate_efficiency("a", lambda a: a, table)  # one parameter named after a column
    as_dict = evaluate_efficiency("d", lambda columns: columns["b"], table)
    assert by_name.tolist() == [0.2, 0.8] and as_dict.tolist() == [0.0, 1.0]


def _example_generator():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "three_body" / "dalitz_generator.py"
    spec = importlib.util.spec_from_file_location("dalitz_generator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _three_body_table(tmp_path, n: int, suffix: str = "parquet") -> str:
    path = tmp_path / f"ds_kkpi.{suffix}"
    _example_generator().main(["--events", str(n), "--seed", "3", "--out", str(path)])
    return str(path)


def test_a_three_body_table_made_elsewhere_is_read_in_dalitz_features(tmp_path):
    gen = _example_generator()
    table = read_event_table(_three_body_table(tmp_path, 3000))
    assert table.layout == "three-body" and table.decay.particles == ("Kp", "Km", "pi")
    for found, exact in zip(table.decay.masses, (gen.M_K, gen.M_K, gen.M_PI), strict=True):
        assert found == pytest.approx(exact, abs=1e-9)
    assert table.decay.parent_mass == pytest.approx(gen.M_DS, abs=1e-9)
    rep = representation_of(table)
    assert rep.feature_names[0] == "logit_m_Km_pi" and rep.observable_names[:3] == ("m_Km_pi", "m_Kp_Km", "m_Kp_pi")
    assert torch.allclose(rep.decode(rep.encode(table.values)), table.values, rtol=0, atol=1e-9)
    # the narrow phi(1020) of the independent generator is where its invariant mass says
    m_kk = rep.observables(table.values)["m_Kp_Km"]
    assert abs(np.median(m_kk[(m_kk > 1.0) & (m_kk < 1.04)]) - gen.PHI[0]) < 2e-3
    # any feature vector decodes to an event that the reader accepts as the same decay
    z = 3.0 * torch.randn(2000, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    path = write_event_table(tmp_path / "decoded.csv", table.columns, rep.decode(z))
    again = read_event_table(path)
    assert again.layout == "three-body" and again.decay.masses == pytest.approx(table.decay.masses, abs=1e-9)


@pytest.mark.parametrize(
    ("column", "shift", "needle"),
    [("Km_E", 1e-3, "Km has mass"), ("pi_px", 5e-3, "px sum to")],
)
def test_a_three_body_event_off_shell_or_not_conserving_is_named(tmp_path, column, shift, needle):
    import pyarrow.parquet as pq

    path = _three_body_table(tmp_path, 500)
    import pyarrow as pa

    data = pq.read_table(path).to_pydict()
    data[column][17] += shift
    if column == "pi_px":  # on shell still: only conservation breaks
        p2 = sum(data[f"pi_{c}"][17] ** 2 for c in ("px", "py", "pz"))
        data["pi_E"][17] = math.sqrt(_example_generator().M_PI ** 2 + p2)

    pq.write_table(pa.table(data), path)
    with pytest.raises(DataError, match=f"event 17: .*{needle}"):
        read_event_table(path)


def test_a_three_body_table_runs_through_the_same_command(tmp_path):
    data = _three_body_table(tmp_path, 4000)
    out = tmp_path / "run"
    settings = {k: v for k, v in TINY.items() if k not in ("train_events", "test_events")}
    peaks = [{"name": "phi(1020)", "observable": "m_Kp_Km", "low": 1.0, "high": 1.04, "bins": 8}]
    result = workflows.run("event-generator", data=data, out=str(out), peaks=peaks, **settings)
    assert result.failures == []
    m = json.loads((out / "metrics.json").read_text())
    assert m["layout"] == "three-body" and m["features"][0] == "logit_m_Km_pi"
    assert m["methods"]["ot-attention"]["johnson_su_features"] == ["logit_m_Km_pi"]  # the two-body mass
    for name, row in m["methods"].items():
        assert set(row["peaks"]) == {"phi(1020)"} and "m_Kp_Km" in row["histograms"], name
        generated = read_event_table(out / name / "generated.parquet")  # physical: conservation and masses
        assert generated.layout == "three-body" and len(generated) == m["test_events"]
