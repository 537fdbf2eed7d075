"""pi pi amplitude (modulus and phase) from cross sections: baseline fit and physics-constrained GAN (talk 000)."""

from hadrinv.workflows.pipi_amplitude.config import PRESETS, PipiAmplitudeConfig
from hadrinv.workflows.pipi_amplitude.run import PipiAmplitudeResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "pipi-amplitude",
        "pi pi amplitude (modulus + phase) from dsigma/dOmega: unitarity fit vs physics-constrained GAN ensemble "
        "(talk 000)",
        PipiAmplitudeConfig,
        run,
        PRESETS,
    )
)

__all__ = ["PipiAmplitudeConfig", "PipiAmplitudeResult", "run", "WORKFLOW"]
