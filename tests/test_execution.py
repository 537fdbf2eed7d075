"""The shared execution section, typed estimator options, and what the CLI does with a user's settings,
folders and interruptions: every workflow alike, one line and exit 2 for bad input."""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hadrinv.cli import main
from hadrinv.data.cross_sections import write_cross_sections
from hadrinv.data.pipi_toy import PipiToySpec, simulate_pipi
from hadrinv.workflows.amortized_runs import with_members
from hadrinv.workflows.output import METRICS, OutputInUse, ResumeMismatch, prepare_output
from hadrinv.workflows.registry import RunContext, all_workflows, get_workflow

SRC = Path(__file__).resolve().parents[1] / "src" / "hadrinv"
WITH_ENSEMBLE = ("pipi-amplitude", "halqcd-potential", "femto-inverse", "inverse-toys", "dis-pdf")


@dataclass
class _Result:
    out: Path

    def summary_columns(self):
        return ["quantity", "value"]

    def summary_rows(self):
        return [("runs", "1")]


@pytest.fixture
def captured(monkeypatch):
    """Replace every workflow's run by one that records the resolved config (no work is done)."""
    seen = {}

    def fake(config, context):
        seen["config"], seen["context"] = config, context
        return _Result(Path(config.out))

    for workflow in all_workflows():
        monkeypatch.setattr(workflow, "run", fake)
    return seen


def _class_definitions(name: str) -> list[Path]:
    found = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        found += [path for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == name]
    return found


def test_one_execution_config_and_one_strict_base_in_the_tree():
    assert len(_class_definitions("ExecutionConfig")) == 1
    assert len(_class_definitions("Strict")) == 1


def test_every_workflow_has_the_execution_section():
    for workflow in all_workflows():
        execution = workflow.config_class().execution
        assert execution.executor == "ray" and execution.device == "cpu" and execution.threads_per_task == 1


@pytest.mark.parametrize("name", WITH_ENSEMBLE)
@pytest.mark.parametrize("flag", ["--ensemble", "--members"])
def test_ensemble_flag_sets_the_members_of_every_workflow_with_an_ensemble(tmp_path, captured, name, flag):
    assert main(["run", name, flag, "3", "--serial", "--workers", "2", "--out", str(tmp_path / "run")]) == 0
    execution = captured["config"].execution
    assert (execution.members, execution.executor, execution.workers) == (3, "serial", 2)


def test_members_reach_each_estimator_as_a_deep_ensemble():
    assert with_members({"hidden": 64}, 3) == {"hidden": 64, "members": 3}
    assert with_members({"hidden": 64, "members": 2}, None) == {"hidden": 64, "members": 2}


def test_ensemble_defaults_and_presets_per_workflow():
    assert get_workflow("pipi-amplitude").config().execution.members == 10
    assert get_workflow("pipi-amplitude").config("quick").execution.members == 4
    assert get_workflow("halqcd-potential").config("paper").execution.members == 16
    # a partial execution section keeps the workflow's default number of members
    assert get_workflow("pipi-amplitude").config(overrides={"execution": {"workers": 2}}).execution.members == 10
    assert get_workflow("inverse-toys").config().execution.members is None


@pytest.mark.parametrize("name", ["pwa-fit-fractions", "pwa-pull-study"])
def test_ensemble_flag_is_refused_where_there_is_no_ensemble(tmp_path, capsys, captured, name):
    assert main(["run", name, "--ensemble", "3", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has no ensemble" in err
    assert "config" not in captured


def test_members_in_a_config_file_of_a_workflow_without_ensemble_is_refused(tmp_path, capsys, captured):
    path = tmp_path / "c.yaml"
    path.write_text("execution:\n  members: 3\n")
    assert main(["run", "pwa-fit-fractions", "--config", str(path)]) == 2
    assert "execution.members" in capsys.readouterr().err


def test_cuda_is_refused_where_a_workflow_runs_on_cpu_only(capsys, captured):
    assert main(["run", "pwa-fit-fractions", "--device", "cuda"]) == 2
    assert "execution.device" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, text, key",
    [
        ("inverse-toys", "estimator_options:\n  flow:\n    membrs: 3\n", "estimator_options.flow.membrs"),
        ("dis-pdf", "grid_options:\n  vaim:\n    membrs: 3\n", "grid_options.vaim.membrs"),
        (
            "dis-pdf",
            "cloud_options:\n  flow:\n    embedding: set\n    embedding_options: {featres: 8}\n",
            "cloud_options.flow.embedding_options.featres",
        ),
        ("femto-inverse", "flow:\n  membrs: 3\n", "flow.membrs"),
        ("femto-inverse", "regressor:\n  hidden: many\n", "regressor.hidden"),
        ("inverse-toys", "method_training:\n  flow:\n    max_epoch: 3\n", "method_training.flow.max_epoch"),
        ("pipi-amplitude", "gan:\n  membrs: 3\n", "gan.membrs"),
    ],
)
def test_unknown_or_mistyped_option_stops_before_any_work_naming_the_key(tmp_path, capsys, name, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    started = time.perf_counter()
    assert main(["run", name, "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    assert time.perf_counter() - started < 5.0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and key in err
    assert not (tmp_path / "run").exists()


def test_malformed_yaml_is_one_line_naming_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("gan:\n  epochs: [1,\n  hidden: 3\n")
    assert main(["run", "pipi-amplitude", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "broken.yaml:" in err and "YAML" in err


def test_out_pointing_at_a_file_is_refused(tmp_path, capsys, captured):
    target = tmp_path / "results.txt"
    target.write_text("mine")
    assert main(["run", "pipi-amplitude", "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert target.read_text() == "mine"


def _config(**settings):
    return get_workflow("pipi-amplitude").config(overrides=settings)


def test_a_folder_of_someone_else_is_never_cleared(tmp_path):
    out = tmp_path / "mine"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "notes.pt").write_text("user's file")
    (out / METRICS).write_text("{}")
    with pytest.raises(OutputInUse, match="--force"):
        prepare_output(out, _config(out=str(out)), RunContext())
    assert (out / "checkpoints" / "notes.pt").is_file() and (out / METRICS).is_file()
    prepare_output(out, _config(out=str(out)), RunContext(force=True))
    assert not (out / "checkpoints").exists() and not (out / METRICS).exists()


def test_a_finished_run_needs_resume_or_force_and_an_unfinished_one_restarts(tmp_path):
    out = tmp_path / "run"
    config = _config(out=str(out))
    prepare_output(out, config, RunContext())
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "fit.pt").write_text("x")
    prepare_output(out, config, RunContext())  # unfinished, same workflow: starts again
    assert not (out / "checkpoints").exists()
    (out / METRICS).write_text("{}")
    with pytest.raises(OutputInUse, match="finished run"):
        prepare_output(out, config, RunContext())
    prepare_output(out, config, RunContext(resume=True))
    other = get_workflow("halqcd-potential").config(overrides={"out": str(out)})
    with pytest.raises(OutputInUse):
        prepare_output(out, other, RunContext())


def test_resume_names_the_setting_that_differs(tmp_path):
    out = tmp_path / "run"
    prepare_output(out, _config(out=str(out), seed=1), RunContext())
    with pytest.raises(ResumeMismatch, match=r"seed differs: 1 in the interrupted run, 2 now"):
        prepare_output(out, _config(out=str(out), seed=2), RunContext(resume=True))
    # how the tasks run may change on resume
    prepare_output(
        out, _config(out=str(out), seed=1, execution={"executor": "serial", "workers": 1}), RunContext(resume=True)
    )


def test_resume_reads_the_runs_own_config(tmp_path, captured):
    out = tmp_path / "run"
    config = _config(out=str(out), seed=7, method="fit", execution={"members": 2})
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["run", "pipi-amplitude", "--resume", "--out", str(out), "--serial"]) == 0
    resolved = captured["config"]
    assert (resolved.seed, resolved.method, resolved.execution.members) == (7, "fit", 2)
    assert resolved.execution.executor == "serial" and captured["context"].resume


def test_interrupt_is_one_line_that_says_how_to_continue(tmp_path, capsys, monkeypatch):
    def interrupted(config, context):
        raise KeyboardInterrupt

    monkeypatch.setattr(get_workflow("pipi-amplitude"), "run", interrupted)
    assert main(["run", "pipi-amplitude", "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err and str(tmp_path / "run") in err


@pytest.mark.slow
def test_damaged_checkpoint_on_resume_is_one_line_without_unsafe_advice(tmp_path, capsys):
    data = write_cross_sections(simulate_pipi(PipiToySpec(n_s=10, n_z=8)), tmp_path / "toy.csv")
    out = tmp_path / "run"
    assert (
        main(["run", "pipi-amplitude", "--data", str(data), "--method", "fit", "--out", str(out), "--no-progress"]) == 0
    )
    checkpoint = out / "checkpoints" / "fit.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:200])
    (out / METRICS).unlink()
    capsys.readouterr()
    assert main(["run", "pipi-amplitude", "--resume", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err  # the run's log lines come first
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "fit.pt" in errors[0] and "unreadable" in errors[0]
    assert "weights_only" not in err and "Traceback" not in err
    assert not (out / METRICS).exists()
