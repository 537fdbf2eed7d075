"""pySecDec as the independent reference for one-loop triangles and boxes, when it is installed.

pySecDec (Borowka et al., arXiv:1703.09692; Heinrich et al., arXiv:2305.19768) evaluates the same integrals
by sector decomposition, its own contour deformation and a quasi-Monte Carlo lattice rule: a different
parametrisation, a different deformation and a different integrator, so agreement tests this package's
contour and integrators, not a shared piece of code. Its measure is d^D k / (i pi^(D/2)) with propagators
1 / (q^2 - m^2 + i delta), the convention of `hadrinv.physics.loop_integrals` (and of LoopTools and COLLIER
at O(eps^0) for finite integrals).

The library for a topology is generated (FORM, run by pySecDec) and compiled (`make disteval`, g++) once per
pySecDec version into a cache directory, a few seconds each; evaluation runs in a child process, because
pySecDec's evaluator patches asyncio process-wide and keeps worker processes of its own.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# LoopTools argument order; the propagators are q^2 - m_1^2, (q + p1)^2 - m_2^2, (q + p1 + p2)^2 - m_3^2, ...
PARAMETERS = {
    "triangle": ("p1sq", "p2sq", "p3sq", "m1sq", "m2sq", "m3sq"),
    "box": ("p1sq", "p2sq", "p3sq", "p4sq", "s12", "s23", "m1sq", "m2sq", "m3sq", "m4sq"),
}
_SOURCE = {
    "triangle": {
        "external_momenta": ["p1", "p2"],
        "propagators": ["(k)**2-m1sq", "(k+p1)**2-m2sq", "(k+p1+p2)**2-m3sq"],
        # p3sq = (p1 + p2)^2
        "replacement_rules": [["p1*p1", "p1sq"], ["p2*p2", "p2sq"], ["p1*p2", "(p3sq-p1sq-p2sq)/2"]],
    },
    "box": {
        "external_momenta": ["p1", "p2", "p3"],
        "propagators": ["(k)**2-m1sq", "(k+p1)**2-m2sq", "(k+p1+p2)**2-m3sq", "(k+p1+p2+p3)**2-m4sq"],
        # s12 = (p1 + p2)^2, s23 = (p2 + p3)^2, p4sq = (p1 + p2 + p3)^2
        "replacement_rules": [
            ["p1*p1", "p1sq"],
            ["p2*p2", "p2sq"],
            ["p3*p3", "p3sq"],
            ["p1*p2", "(s12-p1sq-p2sq)/2"],
            ["p2*p3", "(s23-p2sq-p3sq)/2"],
            ["p1*p3", "(p4sq+p2sq-s12-s23)/2"],
        ],
    },
}

_GENERATE = """
import json, sys
import pySecDec as psd
name, spec = sys.argv[1], json.loads(sys.argv[2])
li = psd.LoopIntegralFromPropagators(
    loop_momenta=["k"], external_momenta=spec["external_momenta"], propagators=spec["propagators"],
    powerlist=[1] * len(spec["propagators"]), replacement_rules=[tuple(r) for r in spec["replacement_rules"]],
    dimensionality="4-2*eps",
)
psd.loop_package(name=name, loop_integral=li, real_parameters=spec["parameters"], requested_orders=[0],
                 contour_deformation=True, decomposition_method="geometric")
"""

_EVALUATE = """
import json, sys
from pySecDec.integral_interface import DistevalLibrary
request = json.load(sys.stdin)
library = DistevalLibrary(request["spec"], verbose=False)
results = []
for point in request["points"]:
    r = library(parameters=point, epsrel=request["epsrel"], epsabs=1e-300, format="json", verbose=False)
    v, e = r["sums"][request["name"]][(0,)]  # the O(eps^0) coefficient and its error
    results.append([v.real, v.imag, e.real, e.imag])
json.dump(results, sys.stdout)
"""


@dataclass(frozen=True)
class PeerValue:
    """pySecDec's value of one integral, its error estimate (real and imaginary parts) and wall time."""

    value: complex
    error: complex
    seconds: float


def missing_reason() -> str | None:
    """Why pySecDec cannot serve here, or None when it can."""
    if importlib.util.find_spec("pySecDec") is None:
        return "pySecDec is not installed (pip install pysecdec: the test extra)"
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            return f"pySecDec needs {tool} to compile its integration libraries"
    return None


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hadrinv" / f"pysecdec-{importlib.metadata.version('pysecdec')}"


def build(topology: str, cache: Path | None = None) -> Path:
    """The compiled library's specification file for `topology`, generated and compiled on first use.

    Built in a private directory and renamed into the cache when complete, so that a killed build or two
    processes building at once never leave a half-built library where the next run looks.
    """
    if topology not in _SOURCE:
        raise ValueError(f"topology {topology!r}: pySecDec is set up for {', '.join(_SOURCE)}")
    cache = Path(cache) if cache is not None else cache_dir()
    target = cache / topology
    spec = target / "disteval" / f"{topology}.json"
    if spec.exists():
        return spec
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{topology}-") as work:
        source = {**_SOURCE[topology], "parameters": list(PARAMETERS[topology])}
        _check_call([sys.executable, "-c", _GENERATE, topology, json.dumps(source)], cwd=work, what="generation")
        _check_call(["make", "-j", str(os.cpu_count() or 1), "disteval"], cwd=Path(work) / topology, what="build")
        try:
            os.rename(Path(work) / topology, target)
        except OSError:  # another process finished first: its library is as good
            if not spec.exists():
                raise
    return spec


def evaluate(
    topology: str, points: list[tuple[float, ...]], epsrel: float = 1e-8, cache: Path | None = None
) -> list[PeerValue]:
    """pySecDec's values at `points`, each a tuple in LoopTools order (`PARAMETERS[topology]`), in GeV^2."""
    names = PARAMETERS.get(topology)
    if names is None:
        raise ValueError(f"topology {topology!r}: pySecDec is set up for {', '.join(_SOURCE)}")
    for point in points:
        if len(point) != len(names):
            raise ValueError(f"{topology}: {len(point)} arguments, expected {len(names)} ({', '.join(names)})")
    spec = build(topology, cache)
    request = {
        "spec": str(spec),
        "name": topology,
        "epsrel": epsrel,
        "points": [{n: float(v) for n, v in zip(names, point, strict=True)} for point in points],
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _EVALUATE], input=json.dumps(request), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"pySecDec evaluation failed: {_last_line(done.stderr)}")
    seconds = (time.perf_counter() - start) / max(len(points), 1)
    return [PeerValue(complex(a, b), complex(c, d), seconds) for a, b, c, d in json.loads(done.stdout)]


def _check_call(command: list[str], cwd: Path | str, what: str) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pySecDec {what} failed: {_last_line(done.stderr or done.stdout)}")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
