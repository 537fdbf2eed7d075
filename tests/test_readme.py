"""The README's Python examples run as written, and print what they promise."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[str]:
    section = README.read_text().split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_has_four_python_examples():
    assert len(_examples()) == 4


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_readme_python_example_runs(tmp_path, index):
    done = subprocess.run(
        [sys.executable, "-c", _examples()[index]], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    if index == 0:
        error = float(re.search(r"mean \|theta\^2 - 1\| = ([0-9.]+)", done.stdout).group(1))
        assert error < 0.1  # the posterior concentrates on the circle, within about the noise
    elif index == 2:  # a Gaussian of width 0.2 in four dimensions: (0.2 sqrt(pi) erf(2.5))^4
        value, error = (float(v) for v in re.search(r"value +\| ([0-9.e+-]+) \+- ([0-9.e+-]+)", done.stdout).groups())
        assert abs(value - (0.2 * math.sqrt(math.pi) * math.erf(2.5)) ** 4) < 4 * error
        assert re.search(r"valid +\| yes", done.stdout)
    elif index == 3:  # a surrogate of e+ e- -> q qbar g: percent-level precision, calibrated uncertainties
        found = re.search(r"within ([0-9.]+) %, coverage ([0-9.]+)", done.stdout)
        within, coverage = (float(v) for v in found.groups())
        assert within < 5.0 and abs(coverage - 0.68) < 0.06
    else:
        import hadrinv

        assert done.stdout.splitlines()[0] == hadrinv.__version__
        assert "valid: True" in done.stdout
        assert (tmp_path / "runs" / "pipi-fit" / "metrics.json").is_file()
