"""hadrinv command line: list | run WORKFLOW | simulate MODEL.

Exit codes: 0 success, 1 unexpected failure, 2 bad input (file, row and problem on one line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from hadrinv.data.validation import DataError

EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.handler(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid configuration: {problems}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hadrinv", description="Inverse problems of hadron physics with physics-constrained ML.")
    sub = parser.add_subparsers(dest="command")

    p_list = sub.add_parser("list", help="list the workflows", description="List the workflows, one line each.")
    p_list.set_defaults(handler=_cmd_list)

    p_run = sub.add_parser("run", help="run a workflow", description="Run a workflow; settings: defaults < --preset < --config < options.")
    p_run.add_argument("workflow", help="workflow name (see `hadrinv list`)")
    p_run.add_argument("--config", help="YAML file of settings (keys as in OUT/config.yaml)")
    p_run.add_argument("--preset", help="quick (minutes, CI) or paper (the talk's full set-up)")
    p_run.add_argument("--data", help="input data file (default: built-in simulated data)")
    p_run.add_argument("--out", help="output folder (default: runs/WORKFLOW)")
    p_run.add_argument("--seed", type=int, help="random seed (same seed, same numbers on CPU)")
    p_run.add_argument("--device", choices=["cpu", "cuda"], help="torch device")
    p_run.add_argument("--method", help="extraction method, e.g. fit, gan or both (pipi-amplitude); minuit or newton (pwa-*)")
    p_run.add_argument("--case", help="test case, e.g. separable or omega-omega (halqcd-potential)")
    p_run.add_argument("--ensemble", type=int, metavar="N", help="number of ensemble members (GAN)")
    p_run.add_argument("--ray-address", help="run ensemble members / parallel tasks on an existing Ray cluster (default: local Ray)")
    p_run.add_argument("--workers", type=int, help="parallel workers on a local Ray (default: CPU count)")
    p_run.add_argument("--serial", action="store_true", help="run ensemble members / tasks in this process instead of Ray")
    p_run.add_argument("--resume", action="store_true", help="continue an interrupted run in --out without redoing finished work")
    p_run.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")
    p_run.set_defaults(handler=_cmd_run)

    p_sim = sub.add_parser("simulate", help="simulate a data set", description="Simulate pseudo-data of a physics model.")
    sims = p_sim.add_subparsers(dest="model")
    p_pipi = sims.add_parser("pipi", help="pi pi dsigma/dOmega from Breit-Wigner S and P waves (talk 000)",
                             description="Write the talk-000 toy: dsigma/dOmega (GeV^-2) on an (s, cos theta) grid, with errors; "
                                         "the generating parameters go to FILE.truth.json.")
    from hadrinv.data.pipi_toy import PipiToySpec

    d = PipiToySpec()
    p_pipi.add_argument("--out", required=True, help="output CSV file")
    p_pipi.add_argument("--n-s", type=int, default=d.n_s, help=f"energies (default {d.n_s})")
    p_pipi.add_argument("--n-z", type=int, default=d.n_z, help=f"angles per energy (default {d.n_z}; irregular: mean)")
    p_pipi.add_argument("--grid", choices=["regular", "irregular"], default=d.grid)
    p_pipi.add_argument("--s-max", type=float, default=d.s_max_gev2, help="largest s in GeV^2 (default 1)")
    p_pipi.add_argument("--f0-mass", type=float, default=d.f0_mass_gev, help=f"f0(500) mass in GeV (default {d.f0_mass_gev})")
    p_pipi.add_argument("--f0-width", type=float, default=d.f0_width_gev, help=f"f0(500) width in GeV (default {d.f0_width_gev})")
    p_pipi.add_argument("--rho-mass", type=float, default=d.rho_mass_gev, help=f"rho(770) mass in GeV (default {d.rho_mass_gev})")
    p_pipi.add_argument("--rho-width", type=float, default=d.rho_width_gev, help=f"rho(770) width in GeV (default {d.rho_width_gev})")
    p_pipi.add_argument("--noise", type=float, default=d.noise, help="Gaussian noise std as a fraction (default 0.01; the talk also used 0.05)")
    p_pipi.add_argument("--noise-relative-to", choices=["max", "point"], default=d.noise_relative_to,
                        help="max: fraction of the largest cross section (the talk's normalised data); point: of each point's cross section")
    p_pipi.add_argument("--seed", type=int, default=d.seed)
    p_pipi.set_defaults(handler=_cmd_simulate_pipi)

    from hadrinv.physics.femtoscopy import HAL_N_OMEGA, HAL_N_OMEGA_PION_MASS_MEV, P_OMEGA_REDUCED_MASS_MEV

    p_femto = sims.add_parser("femto", help="femtoscopic C(k) and delta(k) of a Gaussian-Yukawa potential (talk 001)",
                              description="Solve the s-wave Schroedinger equation for V(r) = b1 exp(-b2 r^2) + b3 (1 - exp(-b4 r^2)) "
                                          "(exp(-m_pi r)/r)^n_pi and write the Koonin-Pratt correlation function of a Gaussian source "
                                          "(non-identical pair, no Coulomb): columns k_mev, C, delta_deg. Defaults: HAL QCD N-Omega "
                                          "(t/a = 11), p-Omega reduced mass.")
    p_femto.add_argument("--r0", type=float, default=1.3, help="source size r0 in fm (default 1.3)")
    for name, unit in (("b1", "MeV"), ("b2", "fm^-2"), ("b3", "MeV fm^n_pi"), ("b4", "fm^-2")):
        p_femto.add_argument(f"--{name}", type=float, default=HAL_N_OMEGA[name], help=f"{name} in {unit} (default {HAL_N_OMEGA[name]})")
    p_femto.add_argument("--m-pi", type=float, default=HAL_N_OMEGA_PION_MASS_MEV, help=f"pion mass in MeV (default {HAL_N_OMEGA_PION_MASS_MEV})")
    p_femto.add_argument("--n-pi", type=float, default=2.0, help="power of the Yukawa factor (default 2)")
    p_femto.add_argument("--reduced-mass", type=float, default=P_OMEGA_REDUCED_MASS_MEV, help=f"reduced mass in MeV (default p-Omega, {P_OMEGA_REDUCED_MASS_MEV})")
    p_femto.add_argument("--k", default=",".join(str(5 * i) for i in range(1, 61)), help="momenta in MeV, comma-separated (default 5,10,...,300)")
    p_femto.add_argument("--out", required=True, help="output CSV file")
    p_femto.set_defaults(handler=_cmd_simulate_femto)
    from hadrinv.workflows.halqcd_potential.config import OmegaOmegaCaseConfig

    o = OmegaOmegaCaseConfig()
    p_corr = sims.add_parser("correlator", help="lattice-like R(t, r) of a Gaussian-sum potential (time-dependent HAL QCD, talk 001)",
                             description="Write synthetic R(t, r) = sum_n A_n phi_n(r) exp(-dW_n t) of two equal-mass hadrons in a spherical "
                                         "box, one correlator per source, with lattice-like noise per configuration (docs/halqcd.md). "
                                         "Defaults: the HAL QCD Omega-Omega potential, m = 1711.5 MeV, a = 0.0846 fm. HDF5 for .h5, else CSV.")
    p_corr.add_argument("--out", required=True, help="output file (.h5 or .csv)")
    p_corr.add_argument("--strengths", default=",".join(str(v) for v in o.strengths_mev), help="c_j in MeV, comma-separated")
    p_corr.add_argument("--ranges", default=",".join(str(v) for v in o.ranges_fm), help="d_j in fm, comma-separated")
    p_corr.add_argument("--hadron-mass", type=float, default=o.hadron_mass_mev, help=f"hadron mass in MeV (default {o.hadron_mass_mev})")
    p_corr.add_argument("--lattice-spacing", type=float, default=o.lattice_spacing_fm, help=f"a in fm (default {o.lattice_spacing_fm:.5f})")
    p_corr.add_argument("--box-sites", type=int, default=o.box_sites, help=f"box radius in lattice units (default {o.box_sites})")
    p_corr.add_argument("--times", default=f"{o.times[0]},{o.times[1]}", help="first,last time slice t/a (default %(default)s)")
    p_corr.add_argument("--sources", default=",".join(str(v) for v in o.sources), help="'wall' or Gaussian widths in fm (default %(default)s)")
    p_corr.add_argument("--configurations", type=int, default=o.configurations, help=f"noise samples (default {o.configurations})")
    p_corr.add_argument("--relative-error", type=float, default=o.relative_error, help=f"noise at the first slice (default {o.relative_error}; 0: exact)")
    p_corr.add_argument("--seed", type=int, default=0)
    p_corr.set_defaults(handler=_cmd_simulate_correlator)
    p_pwa = sims.add_parser("pwa", help="J/psi -> gamma pi pi events of a partial-wave model (talk 002)",
                            description="Generate events of a YAML partial-wave model (examples/pwa/): flat phase space, a detector "
                                        "acceptance, accept-reject on the intensity. One row per event: four-momenta (GeV) in the J/psi "
                                        "rest frame, z along the e+ beam (gamma_E..gamma_pz, pi1_E..pi1_pz, pi2_E..pi2_pz; pi1 = pi+). "
                                        "Parquet for .parquet, ROOT for .root, else CSV.")
    p_pwa.add_argument("--model", required=True, help="model YAML file, e.g. examples/pwa/R0.yaml")
    p_pwa.add_argument("--events", type=int, required=True, help="number of accepted events")
    p_pwa.add_argument("--acceptance", choices=["toy", "none"], default="toy", help="the documented toy acceptance (default) or none")
    p_pwa.add_argument("--seed", type=int, default=0)
    p_pwa.add_argument("--out", required=True, help="output file (.parquet, .root or .csv)")
    p_pwa.set_defaults(handler=_cmd_simulate_pwa)
    p_sim.set_defaults(handler=lambda args: (p_sim.print_help(), EXIT_BAD_INPUT)[1])
    return parser


def _cmd_list(args) -> int:
    from hadrinv.workflows.registry import all_workflows

    for workflow in all_workflows():
        print(f"{workflow.name:<18} {workflow.summary}")
    return 0


def _cmd_run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from hadrinv.workflows.registry import RunContext, get_workflow

    workflow = get_workflow(args.workflow)
    overrides = {"data": args.data, "out": args.out or f"runs/{workflow.name}", "seed": args.seed, "device": args.device, "method": args.method, "case": args.case}
    ensemble = {"members": args.ensemble, "ray_address": args.ray_address, "workers": args.workers, "executor": "serial" if args.serial else None}
    ensemble = {k: v for k, v in ensemble.items() if v is not None}
    if ensemble:
        # workflows with members (pipi-amplitude) say "ensemble", the others "execution" (parallel tasks)
        fields = workflow.config_class.model_fields
        section = "ensemble" if "ensemble" in fields else "execution" if "execution" in fields else None
        if section is None or (section == "execution" and "members" in ensemble):
            raise ValueError(f"{workflow.name} takes no {'--ensemble' if 'members' in ensemble else 'execution options'}")
        overrides[section] = ensemble
    if args.config and not Path(args.config).is_file():
        raise FileNotFoundError(f"{args.config}: no such config file")
    defaults_out = args.out is None and args.config is not None
    if defaults_out:
        overrides.pop("out")  # let the config file choose the folder
    config = workflow.config(args.preset, args.config, overrides)
    console = Console(stderr=True)
    result = workflow.run(config, RunContext(resume=args.resume, progress=not args.no_progress and console.is_terminal, log=console.log))
    table = Table(title=f"{workflow.name}: summary")
    for i, column in enumerate(result.summary_columns()):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in result.summary_rows():
        table.add_row(*row)
    output = Console()
    if not output.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        output = Console(width=200)
    output.print(table)
    invalid = result.invalid_methods() if hasattr(result, "invalid_methods") else []
    if invalid:
        Console().print(f"[bold red]warning[/]: not valid: {', '.join(invalid)} (see metrics.json)")
    Console().print(f"results: {result.out.resolve()}")
    return 0


def _cmd_simulate_pipi(args) -> int:
    from hadrinv.data.cross_sections import write_cross_sections
    from hadrinv.data.pipi_toy import PipiToySpec, simulate_pipi

    spec = PipiToySpec(
        n_s=args.n_s, n_z=args.n_z, grid=args.grid, s_max_gev2=args.s_max, f0_mass_gev=args.f0_mass, f0_width_gev=args.f0_width,
        rho_mass_gev=args.rho_mass, rho_width_gev=args.rho_width, noise=args.noise, noise_relative_to=args.noise_relative_to, seed=args.seed,
    )
    data = simulate_pipi(spec)
    path = write_cross_sections(data, args.out)
    print(f"wrote {len(data)} points at {len(data.energies)} energies to {path} (truth: {path.name}.truth.json)")
    return 0


def _cmd_simulate_femto(args) -> int:
    import torch

    from hadrinv.data.femto import write_correlation_csv
    from hadrinv.physics.femtoscopy import GaussianYukawaPotential, correlation_function

    try:
        k = [float(v) for v in args.k.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--k: {args.k!r} is not a comma-separated list of momenta in MeV") from None
    if len(k) < 1 or min(k) <= 0 or any(b <= a for a, b in zip(k, k[1:])):
        raise ValueError("--k: momenta must be positive and strictly increasing (MeV)")
    if args.r0 <= 0 or args.reduced_mass <= 0 or args.m_pi <= 0 or args.b2 < 0 or args.b4 < 0:
        raise ValueError("--r0, --reduced-mass and --m-pi must be positive, --b2 and --b4 non-negative")
    potential = GaussianYukawaPotential(args.b1, args.b2, args.b3, args.b4, m_pi_mev=args.m_pi, n_pi=args.n_pi)
    with torch.no_grad():
        C, delta = correlation_function(potential, torch.tensor(k, dtype=torch.float64), args.r0, args.reduced_mass)
    truth = {"r0_fm": args.r0, "b1_mev": args.b1, "b2_fm-2": args.b2, "b3_mev_fm^n_pi": args.b3, "b4_fm-2": args.b4,
             "m_pi_mev": args.m_pi, "n_pi": args.n_pi, "reduced_mass_mev": args.reduced_mass}
    path = write_correlation_csv(args.out, k, C[0].numpy(), delta_deg=torch.rad2deg(delta[0]).numpy(), truth=truth)
    print(f"wrote C(k) and delta(k) at {len(k)} momenta to {path} (parameters: {path.name}.truth.json)")
    return 0


def _cmd_simulate_pwa(args) -> int:
    import shutil

    import torch

    from hadrinv.data.pwa_events import write_events
    from hadrinv.data.pwa_model import ACCEPTANCES, generate_events, read_model

    if args.events < 1:
        raise ValueError("--events must be positive")
    model = read_model(args.model)
    events = generate_events(model, args.events, acceptance=ACCEPTANCES[args.acceptance], generator=torch.Generator().manual_seed(args.seed))
    path = write_events(args.out, events)
    shutil.copyfile(args.model, path.with_name(path.name + ".model.yaml"))  # the generating model beside the events
    print(f"wrote {args.events} events of {model.name} ({args.acceptance} acceptance) to {path} (model: {path.name}.model.yaml)")
    return 0


def _cmd_simulate_correlator(args) -> int:
    from hadrinv.data.correlators import simulate_correlators, write_correlator
    from hadrinv.physics.halqcd import GaussianSumPotential
    from hadrinv.workflows.halqcd_potential.config import OmegaOmegaCaseConfig

    def numbers(text: str, option: str) -> list[float]:
        try:
            return [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"{option}: {text!r} is not a comma-separated list of numbers") from None

    times = [int(v) for v in numbers(args.times, "--times")]
    sources = [v.strip() if v.strip() == "wall" else numbers(v, "--sources")[0] for v in args.sources.split(",") if v.strip()]
    spec = OmegaOmegaCaseConfig(strengths_mev=tuple(numbers(args.strengths, "--strengths")), ranges_fm=tuple(numbers(args.ranges, "--ranges")),
                                hadron_mass_mev=args.hadron_mass, lattice_spacing_fm=args.lattice_spacing, box_sites=args.box_sites,
                                times=tuple(times) if len(times) == 2 else (0, 0), sources=sources, configurations=args.configurations,
                                relative_error=args.relative_error, report_time=(times[0] + times[-1]) // 2 if times else 0)
    potential = GaussianSumPotential(spec.strengths_mev, spec.ranges_fm)
    data = simulate_correlators(potential, spec.hadron_mass_mev, spec.lattice_spacing_fm, spec.box_sites, spec.times, spec.sources,
                                spec.configurations, spec.relative_error, spec.noise_growth, spec.correlation_length_fm, spec.time_correlation, args.seed)
    truth = {"strengths_mev": list(spec.strengths_mev), "ranges_fm": list(spec.ranges_fm), "hadron_mass_mev": spec.hadron_mass_mev,
             "lattice_spacing_fm": spec.lattice_spacing_fm, "sources": [str(s) for s in spec.sources], "relative_error": spec.relative_error}
    path = write_correlator(args.out, data, truth=truth)
    C, S, T, n = data.samples.shape
    print(f"wrote R(t, r) for {C} configuration(s) x {S} source(s) x {T} slices x {n} radii to {path} (truth: {path.name}.truth.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
