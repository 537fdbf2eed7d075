"""Generic inference methods; none of them knows a particular physics model.

Amortized posterior estimators share one interface (``AmortizedEstimator``: fit, sample, log_prob,
save, load): VAIM, MDN, INN, ConditionalFlow, ConditionalDiffusion, FlowMatching, and the point
estimator Regressor (the regression DNN of an inverse map). EstimatorMixture is a deep ensemble of any
of them with the same interface.
"""

from hadrinv.inference.amortized import AmortizedEstimator, TrainingHistory
from hadrinv.inference.diffusion import ConditionalDiffusion
from hadrinv.inference.flow import ConditionalFlow
from hadrinv.inference.flow_matching import FlowMatching
from hadrinv.inference.inn import INN
from hadrinv.inference.mdn import MDN
from hadrinv.inference.mixture import EstimatorMixture
from hadrinv.inference.regression import Regressor
from hadrinv.inference.vaim import VAIM

__all__ = [
    "AmortizedEstimator",
    "TrainingHistory",
    "VAIM",
    "MDN",
    "INN",
    "ConditionalFlow",
    "ConditionalDiffusion",
    "FlowMatching",
    "Regressor",
    "EstimatorMixture",
]
