"""The halqcd-potential workflow's two cases: the models' cases with their classical baselines.

The baselines are least-squares fits (an inference method), so they live here rather than in
`hadrinv.models.halqcd`: a fit of the separable form to the same residual, and the leading-order local
potential of the time-dependent HAL QCD method fitted by a sum of Gaussians.
"""

from __future__ import annotations

import math

import torch

from hadrinv.data.correlators import CorrelatorData
from hadrinv.inference.fit import least_squares
from hadrinv.models.halqcd import OmegaOmegaCase, OmegaOmegaSettings, SeparableCase, SeparableSettings
from hadrinv.physics.halqcd import HBARC_MEV_FM, GaussianSumPotential, leading_order_potential
from hadrinv.physics.nonlocal_scattering import SeparablePotential
from hadrinv.physics.schrodinger import solve_s_wave, zero_energy_scattering_length
from hadrinv.workflows.halqcd_potential.config import HalqcdPotentialConfig


class SeparableWithBaseline(SeparableCase):
    """The separable case and its classical baseline."""

    def baseline(self) -> dict:
        """A least-squares fit of the separable form w exp(-mu r) exp(-mu r') to the same residual (Hessian errors)."""
        d = self.member_data(0, 0)  # exact wave functions: the same data for every member
        r = d.nodes
        m = d.outputs.shape[-1]
        norm = torch.sqrt((d.outputs**2 * d.residual_weights).sum())

        def pulls(x):
            U = x[0] * torch.exp(-x[1] * r)[:, None] * torch.exp(-x[1] * r)[None, :]
            residual = d.outputs - (d.inputs * d.measure) @ U[:m].T
            return (residual * torch.sqrt(d.residual_weights)).reshape(-1) / norm

        fit = least_squares(pulls, [-0.01, 0.7], names=["w", "mu"])
        fitted = SeparablePotential(strength=float(fit.values[0]), mu=float(fit.values[1]), mass=self.mass)
        k = self.phase_momenta()
        return {
            "method": "fit of the separable form (w, mu), Hessian errors",
            "parameters": {n: [float(v), float(e)] for n, v, e in zip(fit.names, fit.values, fit.errors)},
            "phase_shifts_rad": fitted.phase_shift(k),
            "scattering_length": fitted.scattering_length(),
            "v_eff": None,
            "chi2_per_ndf": fit.chi2_per_ndf,
            "is_valid": fit.is_valid,
        }


class OmegaOmegaWithBaseline(OmegaOmegaCase):
    """The Omega-Omega case and its classical baseline."""

    def baseline(self, bootstrap: int = 40, fit_radius_fm: float = 2.5) -> dict:
        """The standard HAL QCD analysis of the same data: the leading-order local potential V_LO(r) at the
        report slice (first source), fitted by a sum of Gaussians (as many as the truth has; errors of V_LO
        from a bootstrap over configurations), then the phase shifts and scattering length of the fit."""
        slice_ = self.report_index() - 1  # leading_order_potential starts at the second slice
        lo = lambda R: (
            leading_order_potential(R[0], self.mesh.step, self.hadron_mass, time_step=self.time_step)[slice_]
            * HBARC_MEV_FM
        )
        V_lo = lo(self.correlator(None, 0))
        r = self.mesh.nodes()[: len(V_lo)]
        if len(self.samples) > 1:
            sigma = torch.stack([lo(self.correlator(b, 104729)) for b in range(bootstrap)]).std(0)
        else:
            sigma = torch.ones_like(V_lo)
        sigma = sigma.clamp_min(1e-3 * float(V_lo.abs().max()))
        keep = r <= fit_radius_fm
        rk, Vk, sk = r[keep], V_lo[keep], sigma[keep]
        n_terms = self.n_gaussians

        def model(x):  # x = (c_1..c_n in MeV, log d_1..log d_n in fm)
            c, d = x[:n_terms], torch.exp(x[n_terms:])
            return (c[:, None] * torch.exp(-((rk[None, :] / d[:, None]) ** 2))).sum(0)

        # generic start (not the truth): ranges spread over the fit window, strengths by linear least squares
        d0 = torch.logspace(math.log10(0.1), math.log10(1.0), n_terms, dtype=torch.float64)
        basis = torch.exp(-((rk[:, None] / d0[None, :]) ** 2)) / sk[:, None]
        c0 = torch.linalg.lstsq(basis, Vk / sk).solution
        fit = least_squares(
            lambda x: (model(x) - Vk) / sk,
            torch.cat([c0, torch.log(d0)]).numpy(),
            names=[f"c{j + 1}_mev" for j in range(n_terms)] + [f"log_d{j + 1}_fm" for j in range(n_terms)],
        )
        fitted = GaussianSumPotential(
            tuple(float(v) for v in fit.values[:n_terms]), tuple(float(math.exp(v)) for v in fit.values[n_terms:])
        )
        k = self.phase_momenta()
        V_fit = lambda rr: fitted(rr)[None]

        return {
            "method": (
                f"leading-order local potential V_LO(r) at t/a = {self.settings.report_time} (same data), "
                f"fitted by {n_terms} Gaussians on r <= {fit_radius_fm} fm; phase shifts of the fit"
            ),
            "parameters": {n: [float(v), float(e)] for n, v, e in zip(fit.names, fit.values, fit.errors)},
            "chi2_per_ndf": fit.chi2_per_ndf,
            "phase_shifts_rad": solve_s_wave(V_fit, k, self.settings.hadron_mass_mev / 2).delta[0],
            "scattering_length": float(zero_energy_scattering_length(V_fit, self.settings.hadron_mass_mev / 2)[0][0]),
            "v_eff": torch.cat([V_lo, V_lo[-1:]]),
            "is_valid": fit.is_valid,
        }


def build_case(
    config: HalqcdPotentialConfig, data: CorrelatorData | None = None
) -> SeparableWithBaseline | OmegaOmegaWithBaseline:
    if config.case == "separable":
        return SeparableWithBaseline(SeparableSettings(**config.separable.model_dump()))
    return OmegaOmegaWithBaseline(
        OmegaOmegaSettings(**config.omega_omega.model_dump()), data, noise_seed=config.seed + 7919
    )
