"""loop-integral: a one-loop scalar triangle C0 or box D0 by Monte Carlo in Feynman-parameter form.

The second Symanzik polynomial F decides the contour. On the real unit cube F = x^T Y x with x on the simplex
and Y the modified Cayley matrix, Y_ij = (m_i^2 + m_j^2 - s_ij) / 2; its minimum there is found exactly
(`min_f_on_simplex`). Where it is positive (below every threshold) the integrand is real and regular and is
integrated as it is. Where F changes sign, the poles of 1 / (F - i delta)^k lie on the real cube and the
integral runs over the learned contour of `hadrinv.inference.contour` instead: det(dz/dx) I(z(x)), complex,
with Im F(z) <= 0 checked on fresh points afterwards. The contour's training and its sign checks evaluate the
integrand (or F) too; they come out of the same budget `calls` and are counted in `calls` and `train_calls`.

Where a closed form exists for the kinematics it is the truth, and the pulls of the real and imaginary parts
against it decide validity with the integrator's own flag and the sign check: C0 with two lightlike legs and
equal internal masses (`c0_two_massless_legs`), D0 with four lightlike legs and equal masses
(`d0_massless_legs`). pySecDec, when installed, is evaluated beside at the same kinematics (`peers`); where
no closed form applies its value is the reference of the pulls. Writes OUT/result.json, OUT/deformation.png
and metrics.json last.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hadrinv.data.io import atomic_write_json
from hadrinv.inference.contour import ContourDeformation, check_sign, deformed_integrand, train_deformation
from hadrinv.inference.integration import IntegrationResult, integrate
from hadrinv.physics import loop_integrals
from hadrinv.physics.loop_closed_forms import c0_two_massless_legs, d0_massless_legs
from hadrinv.workflows.execution import thread_limit
from hadrinv.workflows.loop_integral import plots
from hadrinv.workflows.loop_integral.config import LoopIntegralConfig
from hadrinv.workflows.output import finish_output, prepare_output
from hadrinv.workflows.registry import RunContext

RESULT = "result.json"
PLOT = "deformation.png"
MAX_PULL = 4.0
IFLOW_BOX = 1.93696402386819321e-10  # D0(0, 0, 0, 125^2, 130^2, -130^2/2, 175^2 x 4), GeV^-4
# ContourDeformation measures the scale of F on this many uniform points when it is built
_SCALE_PROBE = 4096


@dataclass
class LoopIntegralResult:
    out: Path
    metrics: dict
    failures: list[str] = field(default_factory=list)

    def summary_columns(self) -> list[str]:
        return ["quantity", "value"]

    def summary_rows(self) -> list[tuple[str, str]]:
        m = self.metrics
        if "value" not in m:
            return [("status", "no integral: " + "; ".join(self.failures))]
        rows = [
            ("integral", f"{m['topology']} ({m['method']})"),
            ("real part", f"{m['value']:.10g} +- {m['error']:.3g}"),
            ("imaginary part", f"{m['value_imag']:.10g} +- {m['error_imag']:.3g}"),
            ("relative error", f"{m['relative_error']:.3g}"),
        ]
        for name, peer in m.get("peers", {}).items():
            rows.append((name, f"{peer['value']:.10g} {peer['value_imag']:+.10g}i ({peer['seconds']:.1f} s)"))
        exact = m.get("exact")
        if exact:
            rows.append(("reference", f"{exact['value']:.10g} {exact['value_imag']:+.10g}i ({exact['source']})"))
            pulls = m["pulls"]
            rows.append(("pulls (re, im)", ", ".join("-" if p is None else f"{p:+.2f}" for p in pulls.values())))
        rows += [
            ("contour", _contour_line(m["sign_check"])),
            ("calls (training)", f"{m['calls']} ({m['train_calls']})"),
            ("seconds", f"{m['seconds']:.1f}"),
        ]
        return rows


def _contour_line(sign: dict) -> str:
    if not sign["needed"]:
        return "real (F > 0 on the cube, no deformation)"
    state = "trained" if sign["trained"] else "constant lambda"
    verdict = "Im F <= 0" if sign["ok"] else f"Im F > 0 at {sign['violating_fraction']:.2%}"
    return f"{state}, {verdict} on {sign['points']} fresh points"


def build_loop(config: LoopIntegralConfig) -> loop_integrals.OneLoop:
    masses_sq = [m * m for m in config.masses()]
    inv = config.invariants()
    if config.topology == "triangle":
        return loop_integrals.triangle(inv["p1sq"], inv["p2sq"], inv["p12sq"], *masses_sq)
    return loop_integrals.box(inv["p1sq"], inv["p2sq"], inv["p3sq"], inv["p4sq"], inv["s12"], inv["s23"], *masses_sq)


def cayley_matrix(loop: loop_integrals.OneLoop) -> np.ndarray:
    """Y_ij = (m_i^2 + m_j^2 - s_ij) / 2, so that F = x^T Y x on the simplex sum x = 1."""
    m2 = loop.masses_sq.detach().numpy()
    return 0.5 * (m2[:, None] + m2[None, :] - loop.invariants.detach().numpy())


def min_f_on_simplex(loop: loop_integrals.OneLoop) -> float:
    """The minimum of F over the Feynman-parameter simplex (the real unit cube), exactly.

    At a minimiser x with support S, Lagrange gives Y_S x_S = mu 1 with mu = F(x): x_S = Y_S^-1 1 / (1^T Y_S^-1 1)
    with every component positive. A singular Y_S either has a null direction d with sum d = 0, along which F
    is constant, so that a smaller support holds a minimiser too, or forces mu = 0, reached where a null vector
    has one sign. Every face of at most four vertices is therefore checked once.
    """
    y = cayley_matrix(loop)
    n = len(y)
    best = float(np.min(np.diag(y)))
    for size in range(2, n + 1):
        for face in itertools.combinations(range(n), size):
            sub = y[np.ix_(face, face)]
            if np.linalg.cond(sub) > 1e12:
                # mu = 0 where the null vector lies inside the face (an invariant exactly at its threshold)
                null = np.linalg.svd(sub)[2][-1]
                if np.all(null > 0) or np.all(null < 0):
                    x = null / null.sum()
                    best = min(best, float(x @ sub @ x))
                continue
            x = np.linalg.solve(sub, np.ones(size))
            total = float(x.sum())
            if total != 0.0 and np.all(x / total > 0):
                best = min(best, 1.0 / total)
    return best


def random_kinematics(topology: str, n: int, seed: int) -> list[tuple[float, ...]]:
    """n generic points above a threshold, for checks against other codes: unequal masses of 50-200 GeV,
    timelike and spacelike legs up to 200 GeV, (p1 + p2)^2 or s12 of 300-600 GeV squared, a spacelike s23.
    Tuples in LoopTools order (squared invariants, then squared masses), GeV^2."""
    rng = np.random.default_rng(seed)
    make = loop_integrals.triangle if topology == "triangle" else loop_integrals.box
    legs, propagators = (2, 3) if topology == "triangle" else (4, 4)
    points: list[tuple[float, ...]] = []
    while len(points) < n:
        signed = rng.uniform(-200, 200, legs) * np.abs(rng.uniform(-200, 200, legs))
        mandelstam = [rng.uniform(300, 600) ** 2] + ([-(rng.uniform(50, 300) ** 2)] if topology == "box" else [])
        masses_sq = rng.uniform(50, 200, propagators) ** 2
        point = tuple(float(v) for v in (*signed, *mandelstam, *masses_sq))
        if min_f_on_simplex(make(*point)) < 0:
            points.append(point)
    return points


def needs_deformation(loop: loop_integrals.OneLoop) -> tuple[bool, float]:
    """(F changes sign on the real cube, min F there); a relative 1e-12 of the largest |Y_ij| counts as zero."""
    lowest = min_f_on_simplex(loop)
    return lowest < -1e-12 * float(np.abs(cayley_matrix(loop)).max()), lowest


def closed_form(config: LoopIntegralConfig) -> tuple[complex, str] | None:
    """The exact value and its source where one of the closed forms covers the kinematics, else None."""
    masses = config.masses()
    if masses[0] <= 0 or any(m != masses[0] for m in masses):
        return None
    m_sq = masses[0] ** 2
    inv = config.invariants()
    if config.topology == "triangle":
        legs = [inv["p1sq"], inv["p2sq"], inv["p12sq"]]
        # with equal masses C0 is symmetric in its three legs: any two lightlike ones will do
        if sum(v == 0 for v in legs) < 2:
            return None
        s = next((v for v in legs if v != 0), 0.0)
        return complex(c0_two_massless_legs(s, m_sq)), "c0_two_massless_legs"
    if any(inv[k] != 0 for k in ("p1sq", "p2sq", "p3sq", "p4sq")):
        # i-flow's box (one leg at 125 GeV) has no closed form here; its published value is the reference
        iflow = {"p1sq": 0.0, "p2sq": 0.0, "p3sq": 0.0, "p4sq": 125.0**2, "s12": 130.0**2, "s23": -(130.0**2) / 2}
        if m_sq == 175.0**2 and all(inv[k] == v for k, v in iflow.items()):
            return complex(IFLOW_BOX), "i-flow, arXiv:2001.05486"
        return None
    try:
        return complex(d0_massless_legs(inv["s12"], inv["s23"], m_sq)), "d0_massless_legs"
    except ValueError:  # both invariants positive with one above threshold: not covered
        return None


class _Counting:
    """A function of points that counts the points it is called on while `active` (and, with `unless_grad`,
    only outside autograd: F inside the contour's derivatives sits at points the integrand already counts)."""

    def __init__(self, f, unless_grad: bool = False):
        self.f, self.unless_grad, self.points, self.active = f, unless_grad, 0, True

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        if self.active and not (self.unless_grad and torch.is_grad_enabled()):
            self.points += len(t)
        return self.f(t)


def planned_deformation_calls(config: LoopIntegralConfig) -> int:
    """The contour's calls before any halving of lambda_max: the scale probe, the training batches, the check
    inside the training and the fresh check afterwards."""
    d = config.deformation
    training = d.steps * d.batch + d.check_points if d.train else 0
    return _SCALE_PROBE + training + d.check_points


def run(config: LoopIntegralConfig, context: RunContext | None = None) -> LoopIntegralResult:
    # batches of thousands of points in 2 or 3 dimensions: extra threads cost more than they bring, and
    # several times over on a busy machine
    threads = torch.get_num_threads()
    thread_limit(config.execution.threads_per_task)
    try:
        return _run(config, context or RunContext())
    finally:
        torch.set_num_threads(threads)


def _run(config: LoopIntegralConfig, context: RunContext) -> LoopIntegralResult:
    started = time.perf_counter()
    loop = build_loop(config)
    needed, lowest_f = needs_deformation(loop)
    if needed and planned_deformation_calls(config) > config.calls // 2:
        # the estimate must keep most of the budget: say so before any work
        raise ValueError(
            f"calls: the contour takes {planned_deformation_calls(config)} of the {config.calls} calls; give more "
            "calls or fewer deformation.steps, deformation.batch or deformation.check_points"
        )
    out = prepare_output(config.out, config, context)
    invariants = config.invariants()
    context.log(
        f"{config.topology}: invariants {', '.join(f'{k} = {v:.6g}' for k, v in invariants.items())} GeV^2, "
        f"masses {config.masses()} GeV; min F on the cube {lowest_f:.4g} GeV^2"
        + (" < 0: deformed contour" if needed else " >= 0: real contour")
    )
    failures: list[str] = []
    deformation, sign, contour_calls, history = None, {"needed": False}, 0, {}
    if needed:
        try:
            deformation, sign, contour_calls, history = _contour(loop, config)
        except RuntimeError as exc:  # lambda_max halved 30 times without meeting Im F <= 0
            failures.append(f"contour: {exc}")
            metrics = {"workflow": "loop-integral", "topology": config.topology, "invariants": invariants}
            metrics["seconds"] = time.perf_counter() - started
            finish_output(out, metrics, failures)
            return LoopIntegralResult(out, metrics, failures)
        context.log(
            f"contour: {'trained' if sign['trained'] else 'constant lambda'} with {contour_calls} calls, "
            f"Im F > 0 at {sign['violating_fraction']:.3%} of {sign['points']} fresh points"
        )
        f = deformed_integrand(loop.integrand, deformation)
    else:

        def f(x: torch.Tensor) -> torch.Tensor:
            return loop.integrand(x).real.contiguous()

    result = integrate(
        f,
        loop.dim,
        method=config.method,
        calls=config.calls - contour_calls,
        train_fraction=config.train_fraction,
        seed=config.seed,
        log=context.log,
    )
    record = _record(config, result, contour_calls, sign, lowest_f)
    record["peers"], missing = _peers(config, context)
    if missing:
        record["peers_missing"] = missing
    exact = closed_form(config)
    if exact is None and "pysecdec" in record["peers"]:
        peer = record["peers"]["pysecdec"]
        exact = complex(peer["value"], peer["value_imag"]), "pySecDec"
    if exact is not None:
        value, source = exact
        record["exact"] = {"value": value.real, "value_imag": value.imag, "source": source}
        record["pulls"] = {}
        parts = {
            "real": (record["value"], record["error"], value.real),
            "imag": (record["value_imag"], record["error_imag"], value.imag),
        }
        for part, (got, error, exact_part) in parts.items():
            record["pulls"][part] = (got - exact_part) / error if error > 0 else None
            if error == 0 and got != exact_part:  # a real contour where the exact value has an imaginary part
                failures.append(f"{part} part: {got:.6g} without error against {source}'s {exact_part:.6g}")
    if not result.is_valid:
        failures.append(f"integration: {result.message}")
    if needed and not sign["ok"]:
        failures.append(
            f"contour: Im F(z) > 0 at {sign['violating_fraction']:.3%} of {sign['points']} fresh points "
            "(a pole on the wrong side)"
        )
    for part, pull in record.get("pulls", {}).items():
        if pull is not None and abs(pull) > MAX_PULL:
            failures.append(
                f"{part} part: pull {pull:+.2f} against {record['exact']['source']} (|pull| > {MAX_PULL:g})"
            )
    record["is_valid"] = not failures
    if history:
        record["deformation"] = history
    plots.plot_contour(out / PLOT, loop, deformation, failures)
    atomic_write_json(out / RESULT, record)
    metrics = {"workflow": "loop-integral", **record, "seconds": time.perf_counter() - started}
    context.log(f"{config.topology}: {record['value']:.10g} {record['value_imag']:+.10g}i, {metrics['seconds']:.1f} s")
    finish_output(out, metrics, failures)
    return LoopIntegralResult(out, metrics, failures)


def peer_arguments(config: LoopIntegralConfig) -> tuple[float, ...]:
    """The integral's arguments in LoopTools order (squared invariants, then squared masses), GeV^2."""
    return (*config.invariants().values(), *(m * m for m in config.masses()))


def _peers(config: LoopIntegralConfig, context: RunContext) -> tuple[dict, dict]:
    """The peers' values at the run's kinematics, and why any asked for could not run."""
    values, missing = {}, {}
    if "pysecdec" in config.peers:
        from hadrinv.workflows.loop_integral import pysecdec_peer

        reason = pysecdec_peer.missing_reason()
        if reason is None:
            try:
                (peer,) = pysecdec_peer.evaluate(config.topology, [peer_arguments(config)])
            except RuntimeError as exc:  # a peer that fails costs its row, not the run
                reason = str(exc)
            else:
                values["pysecdec"] = {
                    "value": peer.value.real,
                    "value_imag": peer.value.imag,
                    "error": peer.error.real,
                    "error_imag": peer.error.imag,
                    "seconds": peer.seconds,
                }
        if reason is not None:
            missing["pysecdec"] = reason
            context.log(f"pysecdec: not run ({reason})")
    return values, missing


def _contour(loop: loop_integrals.OneLoop, config: LoopIntegralConfig) -> tuple[ContourDeformation, dict, int, dict]:
    """The contour, its fresh sign check, and the integrand calls and F evaluations both took."""
    d = config.deformation
    F = _Counting(loop.F, unless_grad=True)
    integrand = _Counting(loop.integrand)
    if d.train:
        deformation = train_deformation(
            F,
            integrand,
            loop.dim,
            steps=d.steps,
            batch=d.batch,
            lr=d.lr,
            seed=config.seed,
            hidden=d.hidden,
            lam=d.lam,
            lam_max=d.lam_max,
            check_points=d.check_points,
        )
        history = {
            "steps": d.steps,
            "loss_first": deformation.history["loss"][0] if deformation.history["loss"] else None,
            "loss_last": deformation.history["loss"][-1] if deformation.history["loss"] else None,
            "lam_max_halvings": deformation.history["lam_max_halvings"],
        }
    else:
        deformation = ContourDeformation(loop.dim, F, hidden=d.hidden, lam=d.lam, lam_max=d.lam_max, seed=config.seed)
        history = {"steps": 0}
    history["lam_max"] = float(deformation.lam_max)
    generator = torch.Generator().manual_seed(config.seed + 7)  # not the training's stream
    fresh = torch.rand(d.check_points, loop.dim, generator=generator, dtype=torch.float64)
    ok, violating = check_sign(F, deformation, fresh)
    F.active = integrand.active = False
    sign = {"needed": True, "trained": d.train, "ok": ok, "violating_fraction": violating, "points": d.check_points}
    return deformation, sign, F.points + integrand.points, history


def _record(
    config: LoopIntegralConfig,
    result: IntegrationResult,
    contour_calls: int,
    sign: dict,
    lowest_f: float,
) -> dict:
    value_imag = 0.0 if result.value_imag is None else result.value_imag
    error_imag = 0.0 if result.error_imag is None else result.error_imag
    modulus = math.hypot(result.value, value_imag)
    return {
        "value": result.value,
        "error": result.error,
        "value_imag": value_imag,
        "error_imag": error_imag,
        "relative_error": math.hypot(result.error, error_imag) / modulus if modulus else None,
        "calls": result.calls + contour_calls,
        "train_calls": result.train_calls + contour_calls,
        "contour_calls": contour_calls,
        "method": result.method,
        "relative_std": result.relative_std,
        "unweighting_efficiency": result.unweighting_efficiency,
        "integrator_valid": result.is_valid,
        "topology": config.topology,
        "invariants": config.invariants(),
        "masses": config.masses(),
        "min_f_on_cube": lowest_f,
        "sign_check": sign,
    }
