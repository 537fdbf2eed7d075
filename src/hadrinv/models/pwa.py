"""A `PWAModel` as a function of a flat float64 parameter vector: fast intensity, fit fractions, penalties.

Parameters. `AmplitudeModel(model)` floats, resonance by resonance in the file's order, what the YAML's
``float`` list names, in the fixed order

    NAME.mass, NAME.width (bw, bw_running) or NAME.g_pipi (flatte),
    NAME.coupling_re, NAME.coupling_im,
    NAME.helicity_A1_re, NAME.helicity_A1_im, NAME.helicity_A2_re, NAME.helicity_A2_im   (spin 2 only).

The first resonance's coupling never floats, whatever its ``float`` list says: it stays at its YAML value
and fixes the reference phase and the overall scale (the likelihood normalised by the MC integral does not
depend on the scale, and only relative phases are observable). The other couplings float as Cartesian
(re, im) of c_k (no phase wrap-around, no singular point at |c| = 0 apart from the phase itself).
Floating helicity amplitudes (spin 2): A0 stays at its YAML value (default 1) and A1, A2 float as (re, im),
so that what is fitted are the ratios A1/A0 and A2/A0 (times the fixed A0). ``helicity`` in the float list
of a spin-0 resonance is ignored (it has a single amplitude, absorbed in the coupling). g_KK of a Flatte
stays fixed at its YAML value, or follows 8.570 g_pipi when the file does not give it.

Cache. `cache(gamma, pi1, pi2)` computes once what does not depend on the parameters: m, m^2, rho_pipi,
rho_kk and the real amplitude basis (`pwa.real_amplitude_basis`) of the "components": one per resonance
with fixed helicities (the angular amplitude with the YAML helicities), and one per helicity amplitude
lambda_x = 0, 1, 2 of a spin-2 resonance whose helicities float (the amplitude is linear in them). It is a
dict of tensors with the event dimension first, so `data.chunks.slice_events` can chunk it.

Fit fractions (on generator-level, NOT accepted, phase-space MC): with a_k = c_k BW_k(m) A_k (the
(M, lambda_gamma) vector of resonance k) and G_kl = <Re(a_k . conj a_l)>_MC,

    F_k = G_kk / <I>,   I_kl = 2 G_kl / <I> (k < l),   <I> = sum_kl G_kl,   SF = sum_k F_k,

so that sum_k F_k + sum_{k<l} I_kl = 1 identically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch

from hadrinv.data.chunks import slice_events
from hadrinv.data.pwa_model import PWAModel
from hadrinv.physics import pwa

__all__ = ["AmplitudeModel", "HARD_VARIABLES", "constraint_penalties", "hard_bounds", "hard_variables"]

# what fixes a J/psi -> gamma pi pi event up to its azimuth about the beam: m_pipi (GeV), the photon's polar angle in
# the J/psi frame and the pi1 helicity angles in the pi pi frame
HARD_VARIABLES = ("m_pipi", "cos_theta_gamma", "cos_theta_pi", "phi_pi")

POSITIVE_LOWER = 1e-6  # default lower bound of masses, widths and g_pipi (GeV, GeV^2)
DEFAULT_CHUNK = 8192  # events per chunk of the fit-fraction Jacobian
DEFAULT_BIN_WIDTH_GEV = 2e-4  # m_pipi bins of `binned_cache`: 0.2 MeV


class AmplitudeModel:
    """The floating parameters of a `PWAModel` as one float64 vector (see the module docstring)."""

    def __init__(self, model: PWAModel):
        self.model = model
        self.pion_mass = model.pion_mass
        names: list[str] = []
        values: list[float] = []
        bounds: list[tuple[float | None, float | None]] = []
        self._index: dict[str, int] = {}

        def add(name: str, value: float, bound):
            self._index[name] = len(names)
            names.append(name)
            values.append(float(value))
            bounds.append(bound)

        # components: (resonance index, helicity index or None for "fixed helicities")
        self._components: list[tuple[int, int | None]] = []
        self.floating_helicity: list[bool] = []
        for k, r in enumerate(model.resonances):
            floats = set(r.float_)
            if r.lineshape == "flatte" and "width" in floats:
                raise ValueError(f"{r.name}: a flatte line shape floats g_pipi, not width")
            if r.lineshape != "flatte" and "g_pipi" in floats:
                raise ValueError(f"{r.name}: only a flatte line shape has g_pipi")
            if "mass" in floats:
                add(f"{r.name}.mass", r.mass, self._bound(r, "mass"))
            width_name = "g_pipi" if r.lineshape == "flatte" else "width"
            if width_name in floats:
                add(f"{r.name}.{width_name}", getattr(r, width_name), self._bound(r, width_name))
            if "coupling" in floats and k > 0:
                c = r.complex_coupling()
                add(f"{r.name}.coupling_re", c.real, (None, None))
                add(f"{r.name}.coupling_im", c.imag, (None, None))
            float_h = r.spin == 2 and "helicity" in floats
            self.floating_helicity.append(float_h)
            if float_h:
                h = r.helicity_amplitudes()
                for i in (1, 2):
                    add(f"{r.name}.helicity_A{i}_re", float(h[i].real), (None, None))
                    add(f"{r.name}.helicity_A{i}_im", float(h[i].imag), (None, None))
                self._components += [(k, 0), (k, 1), (k, 2)]
            else:
                self._components.append((k, None))
        self.names = names
        self._initial = torch.tensor(values, dtype=torch.float64)
        self._bounds = bounds
        K, C = len(model.resonances), len(self._components)
        self._component_resonance = torch.tensor([k for k, _ in self._components], dtype=torch.long)
        assign = torch.zeros(C, K, dtype=torch.float64)
        assign[torch.arange(C), self._component_resonance] = 1.0
        self._assign = assign  # (C, K): sums component amplitudes into resonance amplitudes

    # -- parameters ----------------------------------------------------------------------------------

    @staticmethod
    def _bound(r, field: str) -> tuple[float | None, float | None]:
        if field in r.bounds:
            low, high = r.bounds[field]
            return (float(low), float(high))
        return (POSITIVE_LOWER, None)

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self._index[name]

    def initial(self) -> torch.Tensor:
        """The YAML values of the floating parameters, (P,) float64."""
        return self._initial.clone()

    def bounds(self) -> list[tuple[float | None, float | None]]:
        """(low, high) per parameter: the YAML bounds; masses, widths, g_pipi default to (1e-6, None)."""
        return list(self._bounds)

    def _value(self, params: torch.Tensor, name: str, default: float) -> torch.Tensor:
        i = self._index.get(name)
        return params[i] if i is not None else torch.tensor(float(default), dtype=torch.float64)

    def to_model(self, params) -> PWAModel:
        """A copy of the model with the fitted values (phases kept on the branch nearest the YAML's)."""
        p = torch.as_tensor(params, dtype=torch.float64).detach().reshape(-1)
        out = self.model.model_copy(deep=True)
        for k, r in enumerate(out.resonances):
            if f"{r.name}.mass" in self._index:
                r.mass = float(p[self._index[f"{r.name}.mass"]])
            for field in ("width", "g_pipi"):
                if f"{r.name}.{field}" in self._index:
                    setattr(r, field, float(p[self._index[f"{r.name}.{field}"]]))
            if f"{r.name}.coupling_re" in self._index:
                re, im = float(p[self._index[f"{r.name}.coupling_re"]]), float(p[self._index[f"{r.name}.coupling_im"]])
                phase = math.atan2(im, re)
                old = r.coupling[1]
                phase += 2.0 * math.pi * round((old - phase) / (2.0 * math.pi))
                r.coupling = (math.hypot(re, im), phase)
            if self.floating_helicity[k]:
                h = r.helicity_amplitudes()
                values = [complex(h[0])] + [
                    complex(
                        float(p[self._index[f"{r.name}.helicity_A{i}_re"]]),
                        float(p[self._index[f"{r.name}.helicity_A{i}_im"]]),
                    )
                    for i in (1, 2)
                ]
                r.helicity = [(v.real, v.imag) for v in values]
        return out

    # -- per-event cache -----------------------------------------------------------------------------

    def cache(self, gamma: torch.Tensor, pi1: torch.Tensor, pi2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Parameter-free per-event quantities, a dict of tensors with the event dimension first."""
        return self.cache_from_angles(pwa.helicity_angles(gamma, pi1, pi2))

    def cache_from_hard(self, hard: torch.Tensor) -> dict[str, torch.Tensor]:
        """The cache of events given by their `HARD_VARIABLES` (N, 4), the photon at azimuth 0: the intensity of
        an unpolarised-beam J/psi does not depend on the azimuth of the whole event about the beam."""
        hard = torch.as_tensor(hard, dtype=torch.float64)
        m, cos_gamma, cos_pi, phi_pi = hard.unbind(-1)
        return self.cache_from_angles(pwa.HelicityAngles.from_photon_angles(m, cos_gamma, 0.0, cos_pi, phi_pi))

    def cache_from_angles(self, angles: pwa.HelicityAngles) -> dict[str, torch.Tensor]:
        spins, helicities = [], []
        for k, i in self._components:
            r = self.model.resonances[k]
            spins.append(r.spin)
            if i is None:
                helicities.append(r.helicity_amplitudes())
            else:
                unit = torch.zeros(3, dtype=torch.complex128)
                unit[i] = 1.0
                helicities.append(unit)
        angular = pwa.angular_amplitudes(angles, spins, helicities)
        m = angles.m_pipi
        return {
            "m": m,
            "m2": m * m,
            "rho_pipi": pwa.rho_pipi(m),
            "rho_kk": pwa.rho_kk(m),
            "basis": pwa.real_amplitude_basis(angular),
        }

    def binned_cache(
        self, event_chunks: Iterable[tuple[torch.Tensor, ...]], bin_width: float = DEFAULT_BIN_WIDTH_GEV
    ) -> dict[str, torch.Tensor]:
        """An MC sample compressed into m_pipi bins: a cache (one row per non-empty bin) whose average
        intensity equals the sample's, <I>_MC, up to the line shapes' variation inside a bin.

        Why: the MC average normalises -ln L and gives the fit fractions; per event it costs as much as
        the data term at a tenth of the statistics. The angular part does not depend on the parameters:
        I_j = z(m_j)^dagger M_j z(m_j) with M_j = B_j^dagger B_j (B_j the event's (4, C) amplitude basis,
        z the components' c_k BW_k(m) h), so a bin b keeps S_b = sum_{j in b} M_j and evaluates z once,
        at the bin's mean mass. The row of bin b is R_b = sqrt(n_rows / N) Lambda^(1/2) V^dagger with
        S_b = V Lambda V^dagger, so that |R_b z|^2 averaged over rows is sum_b z^dagger S_b z / N, and
        `intensity`, `gram` and the fractions work on it unchanged. The error is second order in
        bin_width / (width of the narrowest structure): 1e-7 relative on <I> for 0.5 MeV bins on the R0
        model (tests/test_pwa_amplitude_model.py). Bin edges are aligned on the K Kbar threshold, where
        the Flatte line shape has a cusp. ``event_chunks``: (gamma, pi1, pi2) or (gamma, pi1, pi2, weight)
        tuples, so that samples larger than memory can be streamed; with weights (importance-sampled MC) the
        sums are weighted and N is the total weight."""
        if bin_width <= 0:
            raise ValueError(f"bin_width must be positive, got {bin_width}")
        threshold = 2.0 * pwa.M_K_CHARGED
        low = threshold - bin_width * math.ceil((threshold - 2.0 * self.pion_mass) / bin_width)
        n_bins = int(math.ceil((pwa.M_JPSI - low) / bin_width)) + 1
        C = len(self._components)
        sums = torch.zeros(n_bins, C, C, dtype=torch.complex128)
        mass_sums = torch.zeros(n_bins, dtype=torch.float64)
        counts = torch.zeros(n_bins, dtype=torch.float64)
        total = 0.0
        for chunk in event_chunks:
            gamma, pi1, pi2 = chunk[:3]
            cache = self.cache(gamma, pi1, pi2)
            w = torch.ones_like(cache["m"]) if len(chunk) == 3 else torch.as_tensor(chunk[3], dtype=torch.float64)
            basis = torch.complex(cache["basis"][..., :C], cache["basis"][..., C:])  # (N, 4, C)
            index = torch.floor((cache["m"] - low) / bin_width).long().clamp(0, n_bins - 1)
            sums.index_add_(0, index, w[:, None, None] * (basis.conj().transpose(-1, -2) @ basis))
            mass_sums.index_add_(0, index, w * cache["m"])
            counts.index_add_(0, index, w)
            total += float(w.sum())
        if total == 0:
            raise ValueError("binned_cache got no events")
        filled = counts > 0
        rows = int(filled.sum())
        sums = 0.5 * (sums[filled] + sums[filled].conj().transpose(-1, -2))
        eigenvalues, vectors = torch.linalg.eigh(sums)
        root = torch.sqrt(eigenvalues.clamp(min=0.0) * rows / total).to(torch.complex128)
        r = root.unsqueeze(-1) * vectors.conj().transpose(-1, -2)  # (rows, C, C), r^dagger r = S_b rows / N
        m = mass_sums[filled] / counts[filled]
        return {
            "m": m,
            "m2": m * m,
            "rho_pipi": pwa.rho_pipi(m),
            "rho_kk": pwa.rho_kk(m),
            "basis": torch.cat([r.real, r.imag], -1).contiguous(),
        }

    # -- amplitudes ----------------------------------------------------------------------------------

    def _line_shape_parts(self, params: torch.Tensor, cache) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary parts of BW_k(m), (N, K) each."""
        re_parts, im_parts = [], []
        for r in self.model.resonances:
            m0 = self._value(params, f"{r.name}.mass", r.mass)
            if r.lineshape == "flatte":
                g = self._value(params, f"{r.name}.g_pipi", r.g_pipi)
                g_kk = None if r.g_kk is None else torch.tensor(r.g_kk, dtype=torch.float64)
                a, b = pwa.flatte_parts(cache["m2"], m0, g, cache["rho_pipi"], cache["rho_kk"], g_kk)
            elif r.lineshape == "bw":
                a, b = pwa.breit_wigner_parts(cache["m2"], m0, self._value(params, f"{r.name}.width", r.width))
            else:
                bw = pwa.breit_wigner_running(
                    cache["m"],
                    m0,
                    self._value(params, f"{r.name}.width", r.width),
                    L=r.spin,
                    m1=self.pion_mass,
                    m2=self.pion_mass,
                )
                a, b = bw.real, bw.imag
            re_parts.append(a)
            im_parts.append(b)
        return torch.stack(re_parts, -1), torch.stack(im_parts, -1)

    def _couplings(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        re, im = [], []
        for r in self.model.resonances:
            c = r.complex_coupling()
            re.append(self._value(params, f"{r.name}.coupling_re", c.real))
            im.append(self._value(params, f"{r.name}.coupling_im", c.imag))
        return torch.stack(re), torch.stack(im)

    def _helicity_factors(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(re, im) of the factor multiplying each component: 1 for fixed helicities, A_i otherwise."""
        re, im = [], []
        one, zero = torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
        for k, i in self._components:
            r = self.model.resonances[k]
            if i is None:
                re.append(one)
                im.append(zero)
            elif i == 0:
                h0 = complex(r.helicity_amplitudes()[0])
                re.append(torch.tensor(h0.real, dtype=torch.float64))
                im.append(torch.tensor(h0.imag, dtype=torch.float64))
            else:
                re.append(params[self._index[f"{r.name}.helicity_A{i}_re"]])
                im.append(params[self._index[f"{r.name}.helicity_A{i}_im"]])
        return torch.stack(re), torch.stack(im)

    def _component_weights(self, params: torch.Tensor, cache) -> tuple[torch.Tensor, torch.Tensor]:
        """z of every component, c_k BW_k(m) h, as (re, im), (N, C) each."""
        br, bi = self._line_shape_parts(params, cache)
        cr, ci = self._couplings(params)
        wr, wi = cr * br - ci * bi, cr * bi + ci * br  # (N, K)
        idx = self._component_resonance
        wr, wi = wr[:, idx], wi[:, idx]
        hr, hi = self._helicity_factors(params)
        return wr * hr - wi * hi, wr * hi + wi * hr

    def intensity(self, params, cache) -> torch.Tensor:
        """I(x; params), (N,): the fast real path (`pwa.intensity_from_basis`)."""
        params = torch.as_tensor(params, dtype=torch.float64).reshape(-1)
        zr, zi = self._component_weights(params, cache)
        return pwa.intensity_from_basis(cache["basis"], zr, zi)

    def resonance_amplitudes(self, params, cache) -> tuple[torch.Tensor, torch.Tensor]:
        """Re and Im of a_k = c_k BW_k A_k for each (M, lambda_gamma), (N, 4, K) each."""
        params = torch.as_tensor(params, dtype=torch.float64).reshape(-1)
        zr, zi = self._component_weights(params, cache)
        C = zr.shape[-1]
        b_re, b_im = cache["basis"][..., :C], cache["basis"][..., C:]
        a_re = b_re * zr[:, None, :] - b_im * zi[:, None, :]
        a_im = b_re * zi[:, None, :] + b_im * zr[:, None, :]
        return a_re @ self._assign, a_im @ self._assign

    def _gram_sum(self, params, cache) -> torch.Tensor:
        """sum over events of Re(a_k . conj a_l), (K, K)."""
        a_re, a_im = self.resonance_amplitudes(params, cache)
        return torch.einsum("nak,nal->kl", a_re, a_re) + torch.einsum("nak,nal->kl", a_im, a_im)

    def _chunks(self, cache, chunk_size: int | None):
        n = cache["m2"].shape[0]
        step = n if not chunk_size else int(chunk_size)
        for start in range(0, n, step):
            stop = min(start + step, n)
            yield cache if (start, stop) == (0, n) else slice_events(cache, start, stop, n)

    def gram(self, params, mc_cache, chunk_size: int | None = None) -> torch.Tensor:
        """G_kl = <Re(a_k . conj a_l)>_MC, (K, K) (differentiable; chunked sums if chunk_size)."""
        params = torch.as_tensor(params, dtype=torch.float64).reshape(-1)
        total = sum(self._gram_sum(params, c) for c in self._chunks(mc_cache, chunk_size))
        return total / mc_cache["m2"].shape[0]

    # -- fit fractions -------------------------------------------------------------------------------

    @staticmethod
    def _fractions_from_gram(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        total = g.sum()
        fractions = torch.diagonal(g) / total
        interference = torch.triu(2.0 * g, diagonal=1) / total
        return fractions, interference, fractions.sum()

    def fit_fractions(self, params, mc_cache, chunk_size: int | None = None):
        """(F (K,), interference (K, K) upper triangle k < l, SF): on generator-level phase-space MC."""
        return self._fractions_from_gram(self.gram(params, mc_cache, chunk_size))

    def fit_fraction_jacobian(
        self, params, mc_cache, chunk_size: int | None = DEFAULT_CHUNK
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(F (K,), dF/dp (K, P)). F_k = D_k / T needs only the K + 1 sums D_k = sum |a_k|^2 and
        T = sum I: their Jacobian comes from torch.func.jacrev chunk by chunk (memory bounded by a chunk),
        then the chain rule through F(D, T) (also autodiff)."""
        params = torch.as_tensor(params, dtype=torch.float64).reshape(-1).detach()
        K = len(self.model.resonances)
        v = torch.zeros(K + 1, dtype=torch.float64)
        dv = torch.zeros(K + 1, params.numel(), dtype=torch.float64)

        def sums(q, c):
            a_re, a_im = self.resonance_amplitudes(q, c)
            diagonal = (a_re * a_re + a_im * a_im).sum((0, 1))
            total = self.intensity(q, c).sum()
            out = torch.cat([diagonal, total[None]])
            return out, out.detach()

        for c in self._chunks(mc_cache, chunk_size):
            jac, value = torch.func.jacrev(lambda q, c=c: sums(q, c), has_aux=True)(params)
            v, dv = v + value, dv + jac.detach()
        f_of_v = lambda x: x[:K] / x[K]
        return f_of_v(v), torch.func.jacrev(f_of_v)(v) @ dv

    def fit_fraction_errors(self, params, covariance, mc_cache, chunk_size: int | None = DEFAULT_CHUNK):
        """Linear propagation: (errors of F (K,), error of SF, covariance of F (K, K)), cov_F = J C J^T."""
        _, jac = self.fit_fraction_jacobian(params, mc_cache, chunk_size)
        cov = torch.as_tensor(np.asarray(covariance), dtype=torch.float64)
        cov_f = jac @ cov @ jac.T
        j_sf = jac.sum(0)
        sf_var = j_sf @ cov @ j_sf
        return torch.sqrt(torch.clamp(torch.diagonal(cov_f), min=0.0)), torch.sqrt(torch.clamp(sf_var, min=0.0)), cov_f

    def fit_fraction_samples(
        self,
        params,
        covariance,
        mc_cache,
        n: int,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-check of `fit_fraction_errors`: F for n draws from N(params, covariance); (mean (K,), std (K,))."""
        params = torch.as_tensor(params, dtype=torch.float64).reshape(-1).detach()
        cov = torch.as_tensor(np.asarray(covariance), dtype=torch.float64)
        w, v = torch.linalg.eigh(0.5 * (cov + cov.T))
        root = v * torch.sqrt(torch.clamp(w, min=0.0))  # root @ root.T = cov, also for a singular covariance
        draws = params + torch.randn(n, params.numel(), generator=generator, dtype=torch.float64) @ root.T
        with torch.no_grad():
            samples = torch.stack([self.fit_fractions(d, mc_cache, chunk_size)[0] for d in draws])
        return samples.mean(0), samples.std(0)

    def sf_penalty(
        self, mc_cache, target: float, lam: float, n_events: int, chunk_size: int | None = None
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """params -> lam * n_events * (SF(params) - target)^2, the fit-fraction constraint added to -ln L
        (L~ = -ln L + lambda N (SF - SF_target)^2); mc_cache: generator-level phase-space MC.

        The callable carries a Gauss-Newton Hessian, 2 lam N grad(SF) grad(SF)^T (the term
        (SF - target) d^2 SF is dropped): the exact one runs autodiff through the fractions on the whole MC
        in every direction and made a 22-parameter L~ fit take over 15 minutes on 2e4 events (measured);
        the Jacobian of the fractions costs one reverse pass per fraction."""

        def penalty(params: torch.Tensor) -> torch.Tensor:
            sf = self.fit_fractions(params, mc_cache, chunk_size)[2]
            return lam * n_events * (sf - target) ** 2

        def gauss_newton_hessian(params) -> torch.Tensor:
            _, jac = self.fit_fraction_jacobian(
                torch.as_tensor(params, dtype=torch.float64), mc_cache, chunk_size or DEFAULT_CHUNK
            )
            grad_sf = jac.sum(0)
            return 2.0 * lam * n_events * torch.outer(grad_sf, grad_sf)

        penalty.hessian = gauss_newton_hessian
        return penalty


def constraint_penalties(
    model: PWAModel, amplitude_model: AmplitudeModel
) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The YAML's Gaussian constraints, alpha (p - mean)^2, keyed 'constraint:PARAMETER', for
    UnbinnedNLL(penalties=...). A constraint on a parameter that does not float is constant and left out."""
    out = {}
    for c in model.constraints:
        if c.parameter not in amplitude_model.names:
            continue
        i, mean, alpha = amplitude_model.index(c.parameter), float(c.mean), float(c.alpha)
        out[f"constraint:{c.parameter}"] = lambda p, i=i, mean=mean, alpha=alpha: alpha * (p[i] - mean) ** 2
    return out


def hard_variables(gamma: torch.Tensor, pi1: torch.Tensor, pi2: torch.Tensor) -> torch.Tensor:
    """(N, 4) `HARD_VARIABLES` of J/psi-frame four-momenta (N, 4) in GeV."""
    angles = pwa.helicity_angles(gamma, pi1, pi2)
    return torch.stack([angles.m_pipi, angles.cos_theta_gamma, angles.cos_theta_pi, angles.phi_pi], -1)


def hard_bounds(pion_mass: float = pwa.M_PI_CHARGED) -> tuple[list[float], list[float]]:
    """(low, high) of the `HARD_VARIABLES`: a box, the whole of phase space (its density is p q / M in m_pipi times
    a constant, `physics.phase_space.two_body_phase_space_density`)."""
    return [2.0 * pion_mass, -1.0, -1.0, -math.pi], [pwa.M_JPSI, 1.0, 1.0, math.pi]
