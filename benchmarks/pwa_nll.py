"""Cost of -ln L and its gradient for the talk's 6-resonance model R0 (target: <= 1 s per value +
gradient on 1e6 data + 1e6 MC events).

    python benchmarks/pwa_nll.py [--data 1000000] [--mc 1000000] [--threads 2] [--repeats 5]

-ln L(p) = -sum_i ln I(x_i; p) + N_data ln(<I>_MC) with every mass, width (g_pipi for the f0(980) Flatte)
and coupling floating (22 parameters). What does not change during a fit is cached once: the angular
amplitudes (N, K, 2, 2) and m_pipi of data and MC events. Timed, in the same run: value + autodiff
gradient, and the baseline a fit without autodiff would use, value + central finite-difference gradient
(2 P + 1 evaluations), autodiff through the reference complex-arithmetic intensity, and autodiff over the
whole sample at once (no chunks). Data and MC are
both flat phase-space events here: the cost does not depend on how
the events are distributed. Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import resource
import shlex
import sys
import time

import torch

from hadrinv.data.pwa_model import read_model
from hadrinv.inference.unbinned import UnbinnedNLL
from hadrinv.physics import pwa

CHUNK = 32768  # events per chunk of the chunked gradient


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def _cache(model, n: int, seed: int, complex_path: bool) -> dict:
    """What a fit computes once: the real amplitude basis (or the complex angular amplitudes), m^2 and the
    Flatte phase-space factors."""
    gamma, pi1, pi2 = pwa.phase_space_events(n, generator=torch.Generator().manual_seed(seed))
    angles = pwa.helicity_angles(gamma, pi1, pi2)
    angular = model.angular_amplitudes(angles)
    m = angles.m_pipi
    cache = {"m": m, "m2": m * m, "rho_pipi": pwa.rho_pipi(m), "rho_kk": pwa.rho_kk(m)}
    cache["angular" if complex_path else "basis"] = angular if complex_path else pwa.real_amplitude_basis(angular)
    return cache


def make_nll(model, data: dict, mc: dict):
    resonances = model.resonances
    K = len(resonances)

    def intensity(cache, p):
        if "angular" in cache:  # the reference path: complex arithmetic, line shapes from scratch
            shapes = torch.stack(
                [
                    pwa.flatte(cache["m"], p[2 * k], p[2 * k + 1])
                    if r.lineshape == "flatte"
                    else pwa.breit_wigner(cache["m"], p[2 * k], p[2 * k + 1])
                    for k, r in enumerate(resonances)
                ],
                -1,
            )
            re_im = p[2 * K :].reshape(K - 1, 2)
            c = torch.cat([torch.ones(1, dtype=torch.complex128), torch.complex(re_im[:, 0], re_im[:, 1])])
            return pwa.intensity(cache["angular"], shapes, c)
        parts = [
            pwa.flatte_parts(cache["m2"], p[2 * k], p[2 * k + 1], cache["rho_pipi"], cache["rho_kk"])
            if r.lineshape == "flatte"
            else pwa.breit_wigner_parts(cache["m2"], p[2 * k], p[2 * k + 1])
            for k, r in enumerate(resonances)
        ]
        br, bi = torch.stack([q[0] for q in parts], -1), torch.stack([q[1] for q in parts], -1)
        re_im = p[2 * K :].reshape(K - 1, 2)
        cr = torch.cat([torch.ones(1, dtype=torch.float64), re_im[:, 0]])
        ci = torch.cat([torch.zeros(1, dtype=torch.float64), re_im[:, 1]])
        return pwa.intensity_from_basis(cache["basis"], cr * br - ci * bi, cr * bi + ci * br)

    def nll(p):
        data_i, mc_i = intensity(data, p), intensity(mc, p)
        return -torch.log(data_i).sum() + len(data_i) * torch.log(mc_i.mean())

    nll.intensity = intensity  # for the chunked gradient
    nll.data, nll.mc = data, mc

    start = [v for r in resonances for v in (r.mass, r.g_pipi if r.lineshape == "flatte" else r.width)]
    start += [v for r in resonances[1:] for v in (r.complex_coupling().real, r.complex_coupling().imag)]
    return nll, torch.tensor(start, dtype=torch.float64)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=int, default=1_000_000)
    parser.add_argument("--mc", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="examples/pwa/R0.yaml")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"command: python benchmarks/pwa_nll.py {shlex.join(sys.argv[1:])}".rstrip())
    model = read_model(args.model)
    rows = []
    for path in ("complex", "real"):  # complex first: the peak memory printed after "real" includes both caches
        started = time.perf_counter()
        data, mc = _cache(model, args.data, 1, path == "complex"), _cache(model, args.mc, 2, path == "complex")
        print(
            f"{path} path: cached {args.data} data + {args.mc} MC events ({len(model.resonances)} resonances) in "
            f"{time.perf_counter() - started:.1f} s; peak RSS so far {_peak_rss_gb():.2f} GB"
        )
        nll, p0 = make_nll(model, data, mc)
        rows += _time(nll, p0, args.repeats, path)
        del data, mc
    auto = rows[-2]  # the chunked autodiff row: the fit's path
    fd = rows[-1]
    print(f"\n{'method':<36} {'s per value+gradient':>21} {'evaluations/s':>14} {'ratio':>7}")
    for name, seconds, _, _ in rows:
        print(f"{name:<36} {seconds:>21.3f} {1 / seconds:>14.2f} {seconds / auto[1]:>7.2f}")
    agreement = float(((auto[3] - fd[3]).abs() / auto[3].abs().clamp_min(1e-3)).max())
    print(
        f"\n{len(p0)} free parameters; -ln L = {float(auto[2]):.6g}; "
        f"max relative gradient difference autodiff vs finite differences {agreement:.1e}"
    )
    print(f"peak RSS {_peak_rss_gb():.2f} GB; target: value + gradient <= 1 s on 2 cores (real path, chunked autodiff)")
    return 0


def _time(nll, p0, repeats: int, path: str) -> list:
    """(name, seconds per value + gradient, value, gradient) rows: autodiff, and for the real path also
    central finite differences (the baseline)."""

    def value_and_autodiff():
        p = p0.clone().requires_grad_(True)
        value = nll(p)
        (grad,) = torch.autograd.grad(value, p)
        return value.detach(), grad

    engine = UnbinnedNLL(lambda p, cache: nll.intensity(cache, p), nll.data, nll.mc, chunk_size=CHUNK)

    def value_and_chunked_autodiff():
        """The fit engine's path (inference/unbinned.py): value and gradient accumulated over event chunks,
        so the per-event intermediates of a chunk stay in the CPU caches instead of streaming gigabytes
        through memory per evaluation."""
        return engine.value_and_gradient(p0)

    def value_and_finite_differences(step=1e-6):
        with torch.no_grad():
            value = nll(p0)
            grad = torch.empty_like(p0)
            for i in range(len(p0)):  # one pair of evaluations per parameter: what the baseline costs
                e = torch.zeros_like(p0)
                e[i] = step
                grad[i] = (nll(p0 + e) - nll(p0 - e)) / (2 * step)
        return value, grad

    rows = []
    plan = [(f"{path}: autodiff gradient", value_and_autodiff, repeats)]
    if path == "real":
        plan.append((f"{path}: autodiff, chunks of {CHUNK}", value_and_chunked_autodiff, repeats))
        plan.append((f"{path}: finite differences", value_and_finite_differences, 1))
    for name, function, n in plan:
        function()  # warm-up
        started = time.perf_counter()
        for _ in range(n):
            value, grad = function()
        rows.append((name, (time.perf_counter() - started) / n, value, grad))
    return rows


if __name__ == "__main__":
    sys.exit(main())
