"""Generic inference methods; none of them knows a particular physics model."""

from hadrinv.inference.amortized import AmortizedEstimator, TrainingHistory
from hadrinv.inference.flow import ConditionalFlow
from hadrinv.inference.mdn import MDN

__all__ = ["AmortizedEstimator", "TrainingHistory", "ConditionalFlow", "MDN"]
