"""One-loop scalar triangles and boxes by Monte Carlo in Feynman-parameter form, on a learned complex contour
above threshold, checked against closed forms where they exist."""

from hadrinv.workflows.loop_integral.config import PRESETS, LoopIntegralConfig
from hadrinv.workflows.loop_integral.run import LoopIntegralResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "loop-integral",
        "one-loop triangle C0 or box D0 by Monte Carlo (vegas or a flow), learned contour deformation above "
        "threshold, pulls against closed forms",
        LoopIntegralConfig,
        run,
        PRESETS,
    )
)

__all__ = ["LoopIntegralConfig", "LoopIntegralResult", "run", "WORKFLOW"]
