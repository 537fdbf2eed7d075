"""Neural importance sampling against vegas and flat Monte Carlo on i-flow's test suite (talk 004,
"Reducing variance in exact calculations"): every method at equal total calls, MadNIS beside when installed."""

from hadrinv.workflows.nis_benchmark.config import PRESETS, NisBenchmarkConfig
from hadrinv.workflows.nis_benchmark.run import NisBenchmarkResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "nis-benchmark",
        "flow, vegas+flow, vegas and flat Monte Carlo (and MadNIS) on i-flow's integrands at equal calls (talk 004)",
        NisBenchmarkConfig,
        run,
        PRESETS,
    )
)

__all__ = ["NisBenchmarkConfig", "NisBenchmarkResult", "run", "WORKFLOW"]
