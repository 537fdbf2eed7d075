"""The README's Python examples run as written, and print what they promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[str]:
    section = README.read_text().split("## Use from Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_readme_has_two_python_examples():
    assert len(_examples()) == 2


@pytest.mark.parametrize("index", [0, 1])
def test_readme_python_example_runs(tmp_path, index):
    done = subprocess.run(
        [sys.executable, "-c", _examples()[index]], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    if index == 0:
        error = float(re.search(r"mean \|theta\^2 - 1\| = ([0-9.]+)", done.stdout).group(1))
        assert error < 0.1  # the posterior concentrates on the circle, within about the noise
    else:
        import hadrinv

        assert done.stdout.splitlines()[0] == hadrinv.__version__
        assert "valid: True" in done.stdout
        assert (tmp_path / "runs" / "pipi-fit" / "metrics.json").is_file()
