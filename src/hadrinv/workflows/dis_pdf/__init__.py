"""Quark distributions from DIS cross sections: VAIM, point-cloud VAIM, flows, diffusion vs a fit (talk 003)."""

from hadrinv.workflows.dis_pdf.config import PRESETS, DISPdfConfig
from hadrinv.workflows.dis_pdf.run import DISPdfResult, run
from hadrinv.workflows.registry import Workflow, register

WORKFLOW = register(
    Workflow(
        "dis-pdf",
        "u, d quark distributions from sigma_p, sigma_n: VAIM on a grid, point-cloud VAIM/flow on experiments' bins, "
        "vs a fit (talk 003)",
        DISPdfConfig,
        run,
        PRESETS,
    )
)

__all__ = ["DISPdfConfig", "DISPdfResult", "run", "WORKFLOW"]
