"""`hadrinv integrate FILE.py:FUNCTION`: integrals of a user's file, its outputs, and one-line refusals."""

from __future__ import annotations

import functools
import json
import math
import textwrap

import pytest

import hadrinv.integration
from hadrinv.cli import main

INTEGRANDS = textwrap.dedent(
    """
    import torch

    NOT_A_FUNCTION = 3


    def product(x):
        return x[:, 0] * x[:, 1]


    def phase(x):
        return torch.exp(1j * torch.pi * x[:, 0])


    def raises(x):
        return x[:, 0] / undefined_name


    def wrong_shape(x):
        return x


    def nan(x):
        return torch.where(x[:, 0] > 0.5, torch.nan, 1.0)


    def inf(x):
        return 1.0 / torch.zeros(len(x), dtype=x.dtype)


    def interrupted(x):
        raise KeyboardInterrupt
    """
)


@pytest.fixture
def integrands(tmp_path):
    path = tmp_path / "integrands.py"
    path.write_text(INTEGRANDS)
    return path


def _run(function: str, out, *options: str) -> int:
    return main(["integrate", function, "--out", str(out), *options])


@pytest.mark.parametrize("method", ["vegas", "flat"])
def test_a_real_integrand_gives_its_integral_result_json_and_plot(integrands, tmp_path, capsys, method):
    out = tmp_path / "out"
    assert _run(f"{integrands}:product", out, "--dim", "2", "--method", method, "--calls", "20000") == 0
    record = json.loads((out / "result.json").read_text())
    assert abs(record["value"] - 0.25) < 4 * record["error"]
    assert record["method"] == method
    assert record["is_valid"] is True and record["message"] == ""
    assert record["function"] == f"{integrands}:product" and record["dim"] == 2 and record["seed"] == 0
    for key in ("calls", "train_calls", "relative_std", "unweighting_efficiency"):
        assert key in record
    assert "value_imag" not in record and "error_imag" not in record
    assert (out / "weights.png").stat().st_size > 1000
    printed = capsys.readouterr()
    assert "valid                  | yes" in printed.out and printed.err == ""


@pytest.mark.parametrize("method", ["flat", "vegas"])
def test_a_complex_integrand_gives_its_imaginary_part(integrands, tmp_path, method):
    out = tmp_path / "out"
    assert _run(f"{integrands}:phase", out, "--dim", "1", "--method", method, "--calls", "20000") == 0
    record = json.loads((out / "result.json").read_text())  # the integral of exp(i pi x) is 2i / pi
    assert abs(record["value"]) < 4 * record["error"]
    assert abs(record["value_imag"] - 2 / math.pi) < 4 * record["error_imag"]
    assert (out / "weights.png").is_file()


def test_train_calls_sets_the_share_spent_adapting(integrands, tmp_path):
    out = tmp_path / "out"
    assert _run(f"{integrands}:product", out, "--dim", "2", "--calls", "20000", "--train-calls", "2000") == 0
    record = json.loads((out / "result.json").read_text())
    assert 0 < record["train_calls"] < 0.2 * record["calls"]  # the default share is a half


def test_an_invalid_result_is_written_and_exits_1(integrands, tmp_path, capsys, monkeypatch):
    real = hadrinv.integration.integrate

    @functools.wraps(real)  # the parser reads its defaults off the signature
    def untrusted(*args, **kwargs):
        result = real(*args, **kwargs)
        result.is_valid, result.message = False, "iterations disagree"
        return result

    monkeypatch.setattr(hadrinv.integration, "integrate", untrusted)
    out = tmp_path / "out"
    assert _run(f"{integrands}:product", out, "--dim", "2", "--method", "flat", "--calls", "1000") == 1
    record = json.loads((out / "result.json").read_text())
    assert record["is_valid"] is False and record["message"] == "iterations disagree"
    assert "iterations disagree" in capsys.readouterr().err


def test_every_method_is_offered(capsys):
    with pytest.raises(SystemExit):
        main(["integrate", "--help"])
    text = capsys.readouterr().out
    assert all(method in text for method in hadrinv.integration.METHODS)


BAD = {
    "missing file": ("missing.py:f", ["--dim", "1"], "no such file"),
    "syntax error": ("syntax.py:f", ["--dim", "1"], "syntax error"),
    "import raises": ("raising.py:f", ["--dim", "1"], "RuntimeError: no integrand today"),
    "missing function": ("integrands.py:absent", ["--dim", "1"], "defines no absent"),
    "not callable": ("integrands.py:NOT_A_FUNCTION", ["--dim", "1"], "not a function"),
    "no function part": ("integrands.py", ["--dim", "1"], "FILE.py:FUNCTION"),
    "function raises": ("integrands.py:raises", ["--dim", "2"], "NameError"),
    "wrong shape": ("integrands.py:wrong_shape", ["--dim", "2"], "shape"),
    "NaN": ("integrands.py:nan", ["--dim", "1", "--method", "flat"], "non-finite"),
    "inf": ("integrands.py:inf", ["--dim", "1"], "non-finite"),
    "dim below 1": ("integrands.py:product", ["--dim", "0"], "--dim"),
    "calls below 2": ("integrands.py:product", ["--dim", "2", "--calls", "1"], "--calls"),
    "train calls above calls": (
        "integrands.py:product",
        ["--dim", "2", "--calls", "100", "--train-calls", "100"],
        "--train-calls",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_says_what_in_one_line_and_leaves_no_result(integrands, tmp_path, capsys, case):
    (tmp_path / "syntax.py").write_text("def f(x):\n    return x[:, 0] +\n")
    (tmp_path / "raising.py").write_text("raise RuntimeError('no integrand today')\n")
    function, options, problem = BAD[case]
    function = f"{tmp_path}/{function}"
    out = tmp_path / "out"
    out.mkdir()
    for earlier in ("result.json", "weights.png"):
        (out / earlier).write_text("from an earlier run")
    assert _run(function, out, "--calls", "2000", *options) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"hadrinv integrate: {function}: ") and err.count("\n") == 1, err
    assert problem in err
    assert not (out / "result.json").exists() and not (out / "weights.png").exists()


def test_an_interrupt_leaves_no_result(integrands, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text("from an earlier run")
    assert _run(f"{integrands}:interrupted", out, "--dim", "1") == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (out / "result.json").exists()
