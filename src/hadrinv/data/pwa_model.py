"""Partial-wave models of J/psi -> gamma pi pi as YAML files, the toy acceptance, and event generation.

A model file lists resonances; for example (examples/pwa/spin2_E1.yaml):

    name: spin2_E1
    final_state: pi+ pi-            # or pi0 pi0
    resonances:
      - name: f2(1270)
        spin: 2                     # 0 or 2
        lineshape: bw_running       # bw (constant width), bw_running (Blatt-Weisskopf, L = spin), flatte
        mass: 1.2755                # GeV
        width: 0.1867               # GeV (bw, bw_running); flatte takes g_pipi (GeV^2) and optionally g_kk
        coupling: [1.0, 0.0]        # magnitude, phase (rad) of c_k
        helicity: [1.0, 1.7320508, 2.4494897]   # A0, A1, A2 for spin 2 (real, or [re, im] pairs); spin 0: omit
        float: [mass, width, coupling]           # what a fit frees (default: coupling)
        bounds: {mass: [1.2, 1.35]}
    constraints:                    # Gaussian constraints alpha (p - mean)^2 added to -ln L
      - {parameter: f2(1270).mass, mean: 1.2755, alpha: 1.0e4}

The first resonance's coupling is the reference: its phase is fixed (and its magnitude too, when the
fit normalises by the MC integral, which makes the overall scale irrelevant).
Bad files stop with one line `FILE: problem` (DataError; exit code 2 from the CLI).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hadrinv.data.validation import DataError
from hadrinv.physics import pwa

FLOATABLE = ("mass", "width", "g_pipi", "coupling", "helicity")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resonance(_Strict):
    name: str
    spin: Literal[0, 2]
    lineshape: Literal["bw", "bw_running", "flatte"] = "bw_running"
    mass: float = Field(gt=0)
    width: float | None = Field(None, gt=0)
    g_pipi: float | None = Field(None, gt=0, description="Flatte coupling to pi pi (GeV^2)")
    g_kk: float | None = Field(None, gt=0, description="Flatte coupling to K Kbar (GeV^2; default 8.570 g_pipi)")
    coupling: tuple[float, float] = (1.0, 0.0)
    helicity: list[float | tuple[float, float]] | None = None
    float_: list[str] = Field(default_factory=lambda: ["coupling"], alias="float")
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self):
        if self.lineshape == "flatte":
            if self.g_pipi is None:
                raise ValueError(f"{self.name}: a flatte line shape needs g_pipi (GeV^2)")
        elif self.width is None:
            raise ValueError(f"{self.name}: a {self.lineshape} line shape needs width (GeV)")
        expected = 1 if self.spin == 0 else 3
        if self.helicity is not None and len(self.helicity) != expected:
            raise ValueError(
                f"{self.name}: spin {self.spin} has {expected} helicity amplitude(s), got {len(self.helicity)}"
            )
        for name in self.float_:
            if name not in FLOATABLE:
                raise ValueError(f"{self.name}: cannot float {name!r}; choose from {', '.join(FLOATABLE)}")
        for name, (low, high) in self.bounds.items():
            if not high > low:
                raise ValueError(f"{self.name}: bounds of {name} need high > low")
        if self.coupling[0] < 0:
            raise ValueError(f"{self.name}: the coupling magnitude must be >= 0 (put the sign in the phase)")
        return self

    def helicity_amplitudes(self) -> torch.Tensor:
        """Complex helicity amplitudes (photon helicity +1): spin 0 -> (1,), spin 2 -> pure E1 by default."""
        if self.helicity is None:
            return torch.ones(1, dtype=torch.complex128) if self.spin == 0 else pwa.e1_helicity_amplitudes()
        values = [complex(v[0], v[1]) if isinstance(v, (tuple, list)) else complex(v) for v in self.helicity]
        return torch.tensor(values, dtype=torch.complex128)

    def line_shape(self, m: torch.Tensor, final_state: str) -> torch.Tensor:
        pion = pwa.M_PI_CHARGED if final_state == "pi+ pi-" else pwa.M_PI0
        if self.lineshape == "bw":
            return pwa.breit_wigner(m, self.mass, self.width)
        if self.lineshape == "bw_running":
            return pwa.breit_wigner_running(m, self.mass, self.width, L=self.spin, m1=pion, m2=pion)
        return pwa.flatte(m, self.mass, self.g_pipi, self.g_kk)

    def complex_coupling(self) -> complex:
        return self.coupling[0] * complex(math.cos(self.coupling[1]), math.sin(self.coupling[1]))


class Constraint(_Strict):
    parameter: str = Field(description="RESONANCE.FIELD, e.g. f0(980).mass")
    mean: float
    alpha: float = Field(gt=0, description="weight of alpha (p - mean)^2 in -ln L (alpha = 1/(2 sigma^2))")


class PWAModel(_Strict):
    name: str = "model"
    final_state: Literal["pi+ pi-", "pi0 pi0"] = "pi+ pi-"
    resonances: list[Resonance] = Field(min_length=1)
    constraints: list[Constraint] = Field(default_factory=list)

    @field_validator("resonances")
    @classmethod
    def _unique_names(cls, resonances):
        names = [r.name for r in resonances]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"resonance names must be unique: {', '.join(repeated)} repeated")
        return resonances

    @model_validator(mode="after")
    def _constraints_name_parameters(self):
        names = {r.name for r in self.resonances}
        for c in self.constraints:
            resonance, _, field = c.parameter.rpartition(".")
            if resonance not in names or field not in ("mass", "width", "g_pipi"):
                raise ValueError(
                    f"constraint on {c.parameter!r}: expected RESONANCE.mass, .width or .g_pipi of a listed resonance"
                )
        return self

    @property
    def pion_mass(self) -> float:
        return pwa.M_PI_CHARGED if self.final_state == "pi+ pi-" else pwa.M_PI0

    def angular_amplitudes(self, angles: pwa.HelicityAngles) -> torch.Tensor:
        """(N, K, 2, 2): what stays fixed while masses, widths and couplings float."""
        return pwa.angular_amplitudes(
            angles, [r.spin for r in self.resonances], [r.helicity_amplitudes() for r in self.resonances]
        )

    def intensity(self, gamma: torch.Tensor, pi1: torch.Tensor, pi2: torch.Tensor) -> torch.Tensor:
        """The model's intensity of each event at the file's parameter values."""
        angles = pwa.helicity_angles(gamma, pi1, pi2)
        shapes = torch.stack([r.line_shape(angles.m_pipi, self.final_state) for r in self.resonances], -1)
        couplings = torch.tensor([r.complex_coupling() for r in self.resonances], dtype=torch.complex128)
        return pwa.intensity(self.angular_amplitudes(angles), shapes, couplings)


PACKAGED_MODELS = Path(__file__).parent / "pwa_models"  # R0, R_plus4, spin0, spin2_E1 (also in examples/pwa/)


def model_path(name_or_path: str | Path) -> Path:
    """A YAML path as given, or the packaged model of that name (e.g. 'R0')."""
    packaged = PACKAGED_MODELS / f"{name_or_path}.yaml"
    return packaged if not Path(name_or_path).suffix and packaged.is_file() else Path(name_or_path)


def read_model(path: str | Path) -> PWAModel:
    path = model_path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a YAML model file ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise DataError(path, "a model file holds a mapping with 'resonances' (see examples/pwa/)")
    try:
        return PWAModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DataError(path, f"{where + ': ' if where else ''}{first['msg']}") from None


# ---- detector acceptance ---------------------------------------------------------------------------


def toy_acceptance(gamma: torch.Tensor, pi1: torch.Tensor, pi2: torch.Tensor) -> torch.Tensor:
    """A documented BESIII-like toy efficiency in [0, 1] per event: every particle inside |cos theta| < 0.93
    (the drift chamber / calorimeter coverage), pions with momentum > 0.1 GeV and photons with energy
    > 0.025 GeV (tracking and shower thresholds), times a smooth 0.9 - 0.2 cos^2(theta) per pion (material
    and tracking losses rising toward the end caps)."""

    def cos_theta(p):
        return p[:, 3] / p[:, 1:].norm(dim=-1).clamp_min(1e-12)

    inside = (cos_theta(gamma).abs() < 0.93) & (cos_theta(pi1).abs() < 0.93) & (cos_theta(pi2).abs() < 0.93)
    thresholds = (gamma[:, 0] > 0.025) & (pi1[:, 1:].norm(dim=-1) > 0.1) & (pi2[:, 1:].norm(dim=-1) > 0.1)
    smooth = (0.9 - 0.2 * cos_theta(pi1) ** 2) * (0.9 - 0.2 * cos_theta(pi2) ** 2)
    return smooth * (inside & thresholds).to(smooth.dtype)


def no_acceptance(gamma: torch.Tensor, pi1: torch.Tensor, pi2: torch.Tensor) -> torch.Tensor:
    return torch.ones(len(gamma), dtype=gamma.dtype)


ACCEPTANCES = {"toy": toy_acceptance, "none": no_acceptance}


def accepted_phase_space(
    n: int,
    acceptance=toy_acceptance,
    pion_mass: float = pwa.M_PI_CHARGED,
    generator: torch.Generator | None = None,
    batch: int = 200_000,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n flat phase-space events that passed the acceptance (accept-reject on the efficiency, <= 1): the MC
    sample whose average of the intensity normalises the likelihood."""
    kept, accepted = [], 0
    while accepted < n:
        events = pwa.phase_space_events(batch, (0.0, pion_mass, pion_mass), generator=generator)
        keep = torch.rand(batch, generator=generator, dtype=torch.float64) < acceptance(*events)
        kept.append(tuple(e[keep] for e in events))
        accepted += int(keep.sum())
    return tuple(torch.cat([k[i] for k in kept])[:n] for i in range(3))


def m_spectrum(
    m_pipi: torch.Tensor, weights: torch.Tensor | None = None, bins: int = 400, pion_mass: float = pwa.M_PI_CHARGED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Histogram of m_pipi (GeV) between 2 m_pi and M_J/psi: (edges (bins + 1,), probabilities (bins,)),
    the shape an importance-sampled MC should follow (`accepted_weighted_phase_space`); bins with a
    negative total weight count as empty."""
    m = torch.as_tensor(m_pipi, dtype=torch.float64).reshape(-1)
    w = torch.ones_like(m) if weights is None else torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
    edges = torch.linspace(2.0 * pion_mass, pwa.M_JPSI, bins + 1, dtype=torch.float64)
    totals = torch.zeros(bins, dtype=torch.float64).index_add_(0, torch.bucketize(m, edges[1:-1]), w).clamp(min=0.0)
    if not float(totals.sum()) > 0:
        raise ValueError("m_spectrum: no positive weight")
    return edges, totals / totals.sum()


def accepted_weighted_phase_space(
    n: int,
    spectrum: tuple[torch.Tensor, torch.Tensor] | None,
    acceptance=toy_acceptance,
    pion_mass: float = pwa.M_PI_CHARGED,
    generator: torch.Generator | None = None,
    flat_fraction: float = 0.2,
    batch: int = 200_000,
) -> tuple[torch.Tensor, ...]:
    """n importance-sampled phase-space events (`pwa.weighted_phase_space_events`, m_pipi following
    ``spectrum`` = (edges, probabilities)) that passed the acceptance, with their weights:
    (gamma, pi1, pi2, weight)."""
    edges, probabilities = spectrum if spectrum is not None else (None, None)
    kept, accepted = [], 0
    while accepted < n:
        *events, w = pwa.weighted_phase_space_events(
            batch, edges, probabilities, flat_fraction, (0.0, pion_mass, pion_mass), generator=generator
        )
        keep = torch.rand(batch, generator=generator, dtype=torch.float64) < acceptance(*events)
        kept.append(tuple(e[keep] for e in (*events, w)))
        accepted += int(keep.sum())
    return tuple(torch.cat([k[i] for k in kept])[:n] for i in range(4))


def generate_events(
    model: PWAModel,
    n: int,
    acceptance=toy_acceptance,
    generator: torch.Generator | None = None,
    batch: int = 200_000,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n events distributed as intensity x acceptance: flat phase space, then accept-reject in batches.

    The envelope is the largest weight seen so far times 1.5; if a later batch exceeds it, every event
    accepted so far is thinned by old/new envelope (exact accept-reject with the larger envelope).
    ``progress(done, n)`` is called after every batch, the last time with done = n. done never decreases
    (a bar that ran backwards would read as a fault): when a larger envelope thins the kept events it holds
    until the count passes it again."""
    masses = (0.0, model.pion_mass, model.pion_mass)
    kept: list[tuple[torch.Tensor, ...]] = []
    envelope = 0.0
    accepted = reported = 0
    while accepted < n:
        gamma, pi1, pi2 = pwa.phase_space_events(batch, masses, generator=generator)
        w = model.intensity(gamma, pi1, pi2) * acceptance(gamma, pi1, pi2)
        top = float(w.max())
        if top > envelope:
            new = 1.5 * top
            if kept:  # thin what was kept with the old, smaller envelope
                ratio = envelope / new
                for i, (g, a, b) in enumerate(kept):
                    mask = torch.rand(len(g), generator=generator, dtype=torch.float64) < ratio
                    kept[i] = (g[mask], a[mask], b[mask])
            envelope = new
        keep = torch.rand(batch, generator=generator, dtype=torch.float64) * envelope < w
        kept.append((gamma[keep], pi1[keep], pi2[keep]))
        accepted = sum(len(k[0]) for k in kept)
        if progress is not None:
            reported = max(reported, min(accepted, n))
            progress(reported, n)
    gamma, pi1, pi2 = (torch.cat([k[i] for k in kept])[:n] for i in range(3))
    return gamma, pi1, pi2


MC_CHUNK = 200_000  # events generated and cached at a time (the binned caches stream them)


def mc_samplers(sampling: str, spectrum: tuple[torch.Tensor, torch.Tensor] | None, efficiency, pion_mass: float):
    """(accepted, generator-level) MC makers (size, generator) -> events: flat phase space, or importance
    sampled with m_pipi following ``spectrum`` (the data's: `data.pwa_model.m_spectrum`), with weights (a
    4th element)."""
    masses = (0.0, pion_mass, pion_mass)
    if sampling == "flat":
        return (
            lambda n, gen: accepted_phase_space(n, efficiency, pion_mass, generator=gen),
            lambda n, gen: pwa.phase_space_events(n, masses, generator=gen),
        )
    if sampling == "importance":
        edges, probabilities = spectrum
        return (
            lambda n, gen: accepted_weighted_phase_space(n, spectrum, efficiency, pion_mass, generator=gen),
            lambda n, gen: pwa.weighted_phase_space_events(n, edges, probabilities, masses=masses, generator=gen),
        )
    raise ValueError(f"unknown MC sampling {sampling!r}; use 'importance' or 'flat'")


def mc_chunks_of(n: int, make, generator: torch.Generator):
    """make(size, generator) for chunks of at most MC_CHUNK events adding up to n."""
    for start in range(0, n, MC_CHUNK):
        yield make(min(MC_CHUNK, n - start), generator)
