"""Monte Carlo integration of batched integrands on [0, 1]^d: `integrate(f, dim, method=...)`.

The methods live in `hadrinv.inference.integration`; this module is the short public path.
"""

from hadrinv.inference.integration import METHODS, IntegrationResult, integrate

__all__ = ["integrate", "IntegrationResult", "METHODS"]
