"""Forward models: physical parameters -> observables, apart from the methods that invert them.

Layering: physics -> data -> models -> inference -> workflows -> CLI; a module here imports only
`hadrinv.physics`, `hadrinv.data` and other models (tests/test_models.py enforces it).
"""

from hadrinv.models.base import ForwardModel
from hadrinv.models.dis import DISProblem
from hadrinv.models.femtoscopy import FemtoscopyModel, SimulatedSet
from hadrinv.models.halqcd import KernelData, OmegaOmegaCase, OmegaOmegaSettings, SeparableCase, SeparableSettings
from hadrinv.models.pipi import PipiProblem
from hadrinv.models.pwa import AmplitudeModel
from hadrinv.models.toys import ToyProblem

__all__ = [
    "AmplitudeModel",
    "DISProblem",
    "FemtoscopyModel",
    "ForwardModel",
    "KernelData",
    "OmegaOmegaCase",
    "OmegaOmegaSettings",
    "PipiProblem",
    "SeparableCase",
    "SeparableSettings",
    "SimulatedSet",
    "ToyProblem",
]
