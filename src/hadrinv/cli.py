"""hadrinv command line: list | run WORKFLOW | integrate FILE.py:FUNCTION | simulate MODEL.

Exit codes: 0 success, 1 unexpected failure (integrate: a result that is not valid), 2 bad input (file, row
and problem on one line), 3 a method did not converge (the reason first on stderr, metrics in
metrics.NOT-CONVERGED.json), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from hadrinv import integrate_command, simulate_amplitudes_command
from hadrinv.data.validation import DataError

EXIT_BAD_INPUT = 2
EXIT_NOT_CONVERGED = 3
EXIT_INTERRUPTED = 130


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
        print(f"error: invalid configuration: {'; '.join(_problem(e) for e in exc.errors())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, FileNotFoundError, KeyError, IsADirectoryError, NotADirectoryError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        hint = f" --out {out}" if out else ""
        where = f"hadrinv run {args.workflow} --resume{hint}" if args.command == "run" else "the same command"
        print(
            f"\ninterrupted: the output is incomplete (no metrics.json); `{where}` continues without redoing "
            "finished work",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


def _problem(error: dict) -> str:
    """One validation problem as 'dotted.key: message'; a message that starts with a deeper key path (the
    options of an estimator) extends the path."""
    path = ".".join(str(p) for p in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    head, sep, rest = message.partition(": ")
    if sep and head and " " not in head:
        return f"{path}.{head}: {rest}" if path else message
    return f"{path}: {message}" if path else message


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hadrinv", description="Inverse problems of hadron physics with physics-constrained ML."
    )
    sub = parser.add_subparsers(dest="command")

    p_list = sub.add_parser("list", help="list the workflows", description="List the workflows, one line each.")
    p_list.set_defaults(handler=_cmd_list)

    p_run = sub.add_parser(
        "run", help="run a workflow", description="Run a workflow; settings: defaults < --preset < --config < options."
    )
    p_run.add_argument("workflow", help="workflow name (see `hadrinv list`)")
    p_run.add_argument("--config", help="YAML file of settings (keys as in OUT/config.yaml)")
    p_run.add_argument("--preset", help="quick (minutes, CI) or paper (the talk's full set-up)")
    p_run.add_argument("--data", help="input data file (default: built-in simulated data)")
    p_run.add_argument("--out", help="output folder (default: runs/WORKFLOW)")
    p_run.add_argument("--seed", type=int, help="random seed (same seed, same numbers on CPU)")
    p_run.add_argument(
        "--method",
        help="extraction method: fit, gan, diffusion, both (fit, gan) or all (pipi-amplitude); fit, diffusion or both "
        "(pipi-isospin); minuit, newton (pwa-*); flat, vegas, flow, vegas+flow (loop-integral); bnn, ensemble, "
        "mlp or all (amplitude-surrogate); flow, discflow, ot-attention or all (event-generator); ibu, omnifold, "
        "cinn or all (unfold)",
    )
    p_run.add_argument("--test", help="test table (amplitude-surrogate; default: held out from --data)")
    p_run.add_argument(
        "--boost", choices=["none", "loss", "performance", "all"], help="training boost (amplitude-surrogate)"
    )
    p_run.add_argument("--events", type=int, help="events to generate per method (event-generator)")
    p_run.add_argument(
        "--efficiency",
        metavar="FILE.py:FUNCTION",
        help="per-event detector efficiency of the columns (event-generator)",
    )
    p_run.add_argument(
        "--case",
        help="test case: separable or omega-omega (halqcd-potential); gaussian, gaussian-4d, pwa (unfold); pwa (mem)",
    )
    unfold = p_run.add_argument_group("unfold")
    unfold.add_argument("--mc", help="paired MC table: gen_NAME and reco_NAME columns (with --data)")
    unfold.add_argument("--observables", help="comma-separated observables to unfold (default: all in common)")
    unfold.add_argument("--bins", type=int, help="bins per observable")
    loop = p_run.add_argument_group("loop-integral (GeV; LoopTools order)")
    loop.add_argument("--topology", choices=["triangle", "box"], help="one-loop triangle C0 or box D0")
    loop.add_argument("--internal-masses", nargs="+", type=float, metavar="M", help="propagator masses (one: all)")
    loop.add_argument(
        "--external", nargs="+", type=float, metavar="M", help="external legs as signed masses, p^2 = m |m|"
    )
    loop.add_argument("--s12", type=float, help="box: (p1 + p2)^2 in GeV^2")
    loop.add_argument("--s23", type=float, help="box: (p2 + p3)^2 in GeV^2")
    loop.add_argument("--calls", type=int, help="integrand calls in all, training included")
    execution = p_run.add_argument_group("execution (the same for every workflow; config section `execution`)")
    execution.add_argument("--device", choices=["cpu", "cuda"], help="torch device")
    execution.add_argument(
        "--ensemble",
        "--members",
        dest="members",
        type=int,
        metavar="N",
        help="ensemble members (GANs, kernel networks, or members of each posterior estimator)",
    )
    execution.add_argument(
        "--ray-address", help="run parallel tasks on an existing Ray cluster, e.g. auto (default: a local Ray)"
    )
    execution.add_argument("--workers", type=int, help="parallel tasks on a local Ray (default: CPU count)")
    execution.add_argument("--serial", action="store_true", help="run the tasks in this process instead of Ray")
    p_run.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in --out without redoing finished work "
        "(settings: OUT/config.yaml unless --config or --preset is given)",
    )
    p_run.add_argument(
        "--force",
        action="store_true",
        help="write into an existing --out that holds something else than an "
        "unfinished run of this workflow (its checkpoints and metrics.json are replaced)",
    )
    p_run.add_argument("--no-progress", action="store_true", help="log lines instead of progress bars")
    p_run.set_defaults(handler=_cmd_run)
    integrate_command.add_parser(sub)

    p_sim = sub.add_parser(
        "simulate", help="simulate a data set", description="Simulate pseudo-data of a physics model."
    )
    sims = p_sim.add_subparsers(dest="model")
    p_pipi = _simulator(
        sims,
        "pipi",
        _cmd_simulate_pipi,
        help="pi pi dsigma/dOmega from Breit-Wigner S and P waves (talk 000)",
        description="Write the talk-000 toy: dsigma/dOmega (GeV^-2) on an (s, cos theta) grid, with errors; "
        "the generating parameters go to FILE.truth.json.",
    )
    from hadrinv.data.pipi_toy import GRIDS, PipiToySpec

    d = PipiToySpec()
    p_pipi.add_argument("--out", required=True, help="output CSV file")
    p_pipi.add_argument("--n-s", type=int, default=d.n_s, help=f"energies (default {d.n_s})")
    p_pipi.add_argument("--n-z", type=int, default=d.n_z, help=f"angles per energy (default {d.n_z}; irregular: mean)")
    p_pipi.add_argument("--grid", choices=list(GRIDS), default=d.grid)
    _numbers(
        p_pipi,
        ("--s-max", d.s_max_gev2, "largest s in GeV^2"),
        ("--f0-mass", d.f0_mass_gev, "f0(500) mass in GeV"),
        ("--f0-width", d.f0_width_gev, "f0(500) width in GeV"),
        ("--rho-mass", d.rho_mass_gev, "rho(770) mass in GeV"),
        ("--rho-width", d.rho_width_gev, "rho(770) width in GeV"),
    )
    p_pipi.add_argument(
        "--noise",
        type=float,
        default=d.noise,
        help="Gaussian noise std as a fraction (default 0.01; the talk also used 0.05)",
    )
    p_pipi.add_argument(
        "--noise-relative-to",
        choices=["max", "point"],
        default=d.noise_relative_to,
        help="max: fraction of the largest cross section (the talk's normalised data); point: of each point's cross "
        "section",
    )
    p_pipi.add_argument("--seed", type=int, default=d.seed)

    from hadrinv.workflows.pipi_isospin.config import CFDSimulationConfig

    c = CFDSimulationConfig()
    p_channels = _simulator(
        sims,
        "pipi-channels",
        _cmd_simulate_pipi_channels,
        help="pi pi dsigma/dOmega in several charge channels from the CFD waves (GKPY 2011)",
        description="Write CFD pseudo-data: dsigma/dOmega (GeV^-2) of each charge channel at every energy and angle, "
        "errors a fixed fraction of each point; columns channel, s, cos_theta, dsigma_domega, error. The settings go "
        "to FILE.truth.json (the pipi-isospin workflow then compares with the CFD waves).",
    )
    p_channels.add_argument("--out", required=True, help="output CSV file")
    p_channels.add_argument("--n-s", type=int, default=c.n_s, help=f"energies (default {c.n_s})")
    p_channels.add_argument("--n-z", type=int, default=c.n_z, help=f"angles per energy and channel (default {c.n_z})")
    p_channels.add_argument("--grid", choices=["regular", "irregular"], default=c.grid)
    p_channels.add_argument(
        "--sqrt-s-max", type=float, default=c.sqrt_s_max_gev, help=f"GeV, at most 1.42 (default {c.sqrt_s_max_gev})"
    )
    p_channels.add_argument(
        "--channels", default=",".join(c.channels), help=f"comma-separated (default {','.join(c.channels)})"
    )
    p_channels.add_argument("--noise", type=float, default=c.noise, help=f"relative error (default {c.noise})")
    p_channels.add_argument(
        "--flux-error",
        type=float,
        default=c.flux_error,
        help=f"absolute error of S0-inelastic (default {c.flux_error})",
    )
    p_channels.add_argument("--seed", type=int, default=0)

    from hadrinv.physics.femtoscopy import HAL_N_OMEGA, HAL_N_OMEGA_PION_MASS_MEV, P_OMEGA_REDUCED_MASS_MEV

    p_femto = _simulator(
        sims,
        "femto",
        _cmd_simulate_femto,
        help="femtoscopic C(k) and delta(k) of a Gaussian-Yukawa potential (talk 001)",
        description="Solve the s-wave Schroedinger equation for V(r) = b1 exp(-b2 r^2) + b3 (1 - exp(-b4 r^2)) "
        "(exp(-m_pi r)/r)^n_pi and write the Koonin-Pratt correlation function of a Gaussian source "
        "(non-identical pair, no Coulomb): columns k_mev, C, error, delta_deg. "
        "Defaults: HAL QCD N-Omega (t/a = 11), p-Omega reduced mass.",
    )
    p_femto.add_argument("--r0", type=float, default=1.3, help="source size r0 in fm (default 1.3)")
    for name, unit in (("b1", "MeV"), ("b2", "fm^-2"), ("b3", "MeV fm^n_pi"), ("b4", "fm^-2")):
        p_femto.add_argument(
            f"--{name}", type=float, default=HAL_N_OMEGA[name], help=f"{name} in {unit} (default {HAL_N_OMEGA[name]})"
        )
    p_femto.add_argument(
        "--m-pi",
        type=float,
        default=HAL_N_OMEGA_PION_MASS_MEV,
        help=f"pion mass in MeV (default {HAL_N_OMEGA_PION_MASS_MEV})",
    )
    p_femto.add_argument("--n-pi", type=float, default=2.0, help="power of the Yukawa factor (default 2)")
    p_femto.add_argument(
        "--reduced-mass",
        type=float,
        default=P_OMEGA_REDUCED_MASS_MEV,
        help=f"reduced mass in MeV (default p-Omega, {P_OMEGA_REDUCED_MASS_MEV})",
    )
    p_femto.add_argument(
        "--k",
        default=",".join(str(5 * i) for i in range(1, 61)),
        help="momenta in MeV, comma-separated (default 5,10,...,300)",
    )
    p_femto.add_argument(
        "--relative-error",
        type=float,
        default=0.01,
        help="the error column, as a fraction of C (default 0.01): C is exact, without noise; "
        "the column is the 1-sigma error a measurement would carry, so the file feeds "
        "`run femto-inverse --data`",
    )
    p_femto.add_argument("--out", required=True, help="output CSV file")
    from hadrinv.models.halqcd import OmegaOmegaSettings

    o = OmegaOmegaSettings()
    p_corr = _simulator(
        sims,
        "correlator",
        _cmd_simulate_correlator,
        help="lattice-like R(t, r) of a Gaussian-sum potential (time-dependent HAL QCD, talk 001)",
        description="Write synthetic R(t, r) = sum_n A_n phi_n(r) exp(-dW_n t) of two equal-mass hadrons in a "
        "spherical box, one correlator per source, with lattice-like noise per configuration (docs/halqcd.md). "
        "Defaults: the HAL QCD Omega-Omega potential, m = 1711.5 MeV, a = 0.0846 fm. HDF5 for .h5, else CSV.",
    )
    p_corr.add_argument("--out", required=True, help="output file (.h5 or .csv)")
    p_corr.add_argument(
        "--strengths", default=",".join(str(v) for v in o.strengths_mev), help="c_j in MeV, comma-separated"
    )
    p_corr.add_argument("--ranges", default=",".join(str(v) for v in o.ranges_fm), help="d_j in fm, comma-separated")
    _numbers(
        p_corr,
        ("--hadron-mass", o.hadron_mass_mev, "hadron mass in MeV"),
        ("--lattice-spacing", o.lattice_spacing_fm, "a in fm"),
        ("--box-sites", o.box_sites, "box radius in lattice units"),
    )
    p_corr.add_argument(
        "--times", default=f"{o.times[0]},{o.times[1]}", help="first,last time slice t/a (default %(default)s)"
    )
    p_corr.add_argument(
        "--sources",
        default=",".join(str(v) for v in o.sources),
        help="'wall' or Gaussian widths in fm (default %(default)s)",
    )
    p_corr.add_argument(
        "--configurations", type=int, default=o.configurations, help=f"noise samples (default {o.configurations})"
    )
    p_corr.add_argument(
        "--relative-error",
        type=float,
        default=o.relative_error,
        help=f"noise at the first slice (default {o.relative_error}; 0: exact)",
    )
    p_corr.add_argument("--seed", type=int, default=0)
    p_pwa = _simulator(
        sims,
        "pwa",
        _cmd_simulate_pwa,
        help="J/psi -> gamma pi pi events of a partial-wave model (talk 002)",
        description="Generate events of a YAML partial-wave model (examples/pwa/): flat phase space, a detector "
        "acceptance, accept-reject on the intensity. One row per event: four-momenta (GeV) in the J/psi "
        "rest frame, z along the e+ beam (gamma_E..gamma_pz, pi1_E..pi1_pz, pi2_E..pi2_pz; pi1 = pi+). "
        "Parquet for .parquet, ROOT for .root, else CSV.",
    )
    p_pwa.add_argument("--model", required=True, help="model YAML file, e.g. examples/pwa/R0.yaml")
    p_pwa.add_argument("--events", type=int, required=True, help="number of accepted events")
    p_pwa.add_argument(
        "--acceptance", choices=["toy", "none"], default="toy", help="the documented toy acceptance (default) or none"
    )
    p_pwa.add_argument("--seed", type=int, default=0)
    p_pwa.add_argument("--out", required=True, help="output file (.parquet, .root or .csv)")
    simulate_amplitudes_command.add_parser(sims)
    p_sim.set_defaults(handler=lambda args: (p_sim.print_help(), EXIT_BAD_INPUT)[1])
    return parser


def _simulator(sims, name: str, handler, help: str, description: str) -> argparse.ArgumentParser:
    parser = sims.add_parser(name, help=help, description=description)
    parser.set_defaults(handler=handler)
    return parser


def _numbers(parser: argparse.ArgumentParser, *options: tuple[str, float | int, str]) -> None:
    """Numeric options (flag, default, help): the default's type is the option's type."""
    for flag, default, text in options:
        parser.add_argument(flag, type=type(default), default=default, help=f"{text} (default %(default)s)")


def _workflows():
    from hadrinv.workflows.registry import all_workflows

    return all_workflows()


def _cmd_list(args) -> int:
    for workflow in _workflows():
        print(f"{workflow.name:<18} {workflow.summary}")
    return 0


def _cmd_run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from hadrinv.workflows.registry import RunContext, get_workflow

    workflow = get_workflow(args.workflow)
    if args.members is not None and workflow.ensemble is None:
        with_ensemble = ", ".join(w.name for w in _workflows() if w.ensemble)
        raise ValueError(f"{workflow.name} has no ensemble: --ensemble/--members applies to {with_ensemble}")
    execution = {
        "members": args.members,
        "device": args.device,
        "ray_address": args.ray_address,
        "workers": args.workers,
        "executor": "serial" if args.serial else None,
    }
    overrides = {
        "data": args.data,
        "out": args.out,
        "seed": args.seed,
        "method": args.method,
        "test": args.test,
        "boost": args.boost,
        "events": args.events,
        "efficiency": args.efficiency,
        "case": args.case,
        "mc": args.mc,
        "observables": args.observables.split(",") if args.observables else None,
        "bins": args.bins,
        "topology": args.topology,
        "internal_masses": args.internal_masses,
        "external": args.external,
        "s12": args.s12,
        "s23": args.s23,
        "calls": args.calls,
        "execution": {k: v for k, v in execution.items() if v is not None} or None,
    }
    if args.out and Path(args.out).is_file():
        raise ValueError(f"--out {args.out}: is a file; give a folder for the run's outputs")
    config_file = args.config
    if args.resume and not args.config and not args.preset:
        # resuming continues the interrupted run's own settings; options given here still apply on top
        saved = Path(args.out or workflow.config_class.model_fields["out"].default) / "config.yaml"
        if saved.is_file():
            config_file = saved
    config = workflow.config(args.preset, config_file, overrides)
    console = Console(stderr=True)
    result = workflow.run(
        config,
        RunContext(
            resume=args.resume, force=args.force, progress=not args.no_progress and console.is_terminal, log=console.log
        ),
    )
    failures = getattr(result, "failures", [])
    for line in failures:  # first: a reader of the summary must not miss it
        Console(stderr=True).print(f"[bold red]not converged[/]: {line}", highlight=False)
    table = Table(title=f"{workflow.name}: summary" + (" (NOT CONVERGED)" if failures else ""))
    for i, column in enumerate(result.summary_columns()):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in result.summary_rows():
        table.add_row(*row)
    output = Console()
    if not output.is_terminal:  # logs and pipes: do not squeeze the table into 80 columns
        output = Console(width=200)
    output.print(table)
    invalid = result.invalid_methods() if hasattr(result, "invalid_methods") else []
    if failures:
        Console(stderr=True).print(
            f"[bold red]error[/]: not converged: {'; '.join(failures)} (metrics in metrics.NOT-CONVERGED.json)",
            highlight=False,
        )
        return EXIT_NOT_CONVERGED
    if invalid:  # reference methods beside the workflow's own (baselines) that did not converge
        Console().print(f"[bold red]warning[/]: not valid: {', '.join(invalid)} (see metrics.json)")
    Console().print(f"results: {result.out.resolve()}")
    return 0


def _cmd_simulate_pipi(args) -> int:
    from hadrinv.data.cross_sections import write_cross_sections
    from hadrinv.data.pipi_toy import PipiSpecError, PipiToySpec, simulate_pipi

    options = {
        "n_s": "--n-s",
        "n_z": "--n-z",
        "grid": "--grid",
        "s_max_gev2": "--s-max",
        "f0_mass_gev": "--f0-mass",
        "f0_width_gev": "--f0-width",
        "rho_mass_gev": "--rho-mass",
        "rho_width_gev": "--rho-width",
        "noise": "--noise",
        "noise_relative_to": "--noise-relative-to",
        "seed": "--seed",
    }
    try:
        spec = PipiToySpec(
            n_s=args.n_s,
            n_z=args.n_z,
            grid=args.grid,
            s_max_gev2=args.s_max,
            f0_mass_gev=args.f0_mass,
            f0_width_gev=args.f0_width,
            rho_mass_gev=args.rho_mass,
            rho_width_gev=args.rho_width,
            noise=args.noise,
            noise_relative_to=args.noise_relative_to,
            seed=args.seed,
        )
    except PipiSpecError as exc:  # name the option the user typed, not the field behind it
        raise ValueError(f"{options.get(exc.field, exc.field)}: {exc.problem}") from None
    data = simulate_pipi(spec)
    path = write_cross_sections(data, args.out)
    print(f"wrote {len(data)} points at {len(data.energies)} energies to {path} (truth: {path.name}.truth.json)")
    return 0


def _cmd_simulate_pipi_channels(args) -> int:
    from pydantic import ValidationError

    from hadrinv.data.channel_cross_sections import write_channel_cross_sections
    from hadrinv.models.pipi_isospin import simulate_cfd
    from hadrinv.workflows.pipi_isospin.config import CFDSimulationConfig
    from hadrinv.workflows.pipi_isospin.run import TRUTH_MODEL

    options = {"n_s": "--n-s", "n_z": "--n-z", "sqrt_s_max_gev": "--sqrt-s-max", "channels": "--channels"}
    settings = {
        "n_s": args.n_s,
        "n_z": args.n_z,
        "grid": args.grid,
        "sqrt_s_max_gev": args.sqrt_s_max,
        "channels": [c.strip() for c in args.channels.split(",") if c.strip()],
        "noise": args.noise,
        "flux_error": args.flux_error,
    }
    try:
        spec = CFDSimulationConfig(**settings).model_dump()
    except ValidationError as exc:  # name the option the user typed, not the field behind it
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        raise ValueError(f"{options.get(field, '--' + field.replace('_', '-'))}: {error['msg']}") from None
    problem = simulate_cfd(**spec, seed=args.seed)
    data = problem.to_data(str(args.out), {"model": TRUTH_MODEL, **spec, "seed": args.seed})
    path = write_channel_cross_sections(data, args.out)
    print(
        f"wrote {len(data)} points in {len(spec['channels'])} channels at {problem.n_energies} energies to {path} "
        f"(truth: {path.name}.truth.json)"
    )
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
    if not args.relative_error > 0:
        raise ValueError(
            f"--relative-error must be positive (the 1-sigma error as a fraction of C), not {args.relative_error:g}"
        )
    potential = GaussianYukawaPotential(args.b1, args.b2, args.b3, args.b4, m_pi_mev=args.m_pi, n_pi=args.n_pi)
    with torch.no_grad():
        C, delta = correlation_function(potential, torch.tensor(k, dtype=torch.float64), args.r0, args.reduced_mass)
    truth = {
        "r0_fm": args.r0,
        "b1_mev": args.b1,
        "b2_fm-2": args.b2,
        "b3_mev_fm^n_pi": args.b3,
        "b4_fm-2": args.b4,
        "m_pi_mev": args.m_pi,
        "n_pi": args.n_pi,
        "reduced_mass_mev": args.reduced_mass,
        "relative_error": args.relative_error,
    }
    C = C[0].numpy()
    if not (C > 0).all():  # a zero error would make the file unreadable as measured data
        raise ValueError(f"C(k) = {C.min():g} <= 0 at some k: no relative error can be given there")
    path = write_correlation_csv(
        args.out, k, C, error=args.relative_error * C, delta_deg=torch.rad2deg(delta[0]).numpy(), truth=truth
    )
    print(
        f"wrote C(k) (exact), its error ({args.relative_error:g} C) and delta(k) at {len(k)} momenta to {path} "
        f"(parameters: {path.name}.truth.json)"
    )
    return 0


def _cmd_simulate_pwa(args) -> int:
    import contextlib
    import shutil

    import torch
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from hadrinv.data.pwa_events import write_events
    from hadrinv.data.pwa_model import ACCEPTANCES, generate_events, model_path, read_model

    if args.events < 1:
        raise ValueError("--events must be positive")
    model = read_model(args.model)
    # large samples take minutes: a bar on a terminal, else a line per tenth (logs and pipes stay short)
    console = Console(stderr=True)
    if console.is_terminal:
        bar = Progress(
            TextColumn("generating events"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        task = bar.add_task("events", total=args.events)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done)
    else:
        bar, logged = contextlib.nullcontext(), [0]

        def report(done: int, total: int) -> None:
            if 10 * done // total > logged[0]:
                logged[0] = 10 * done // total
                print(f"generated {done} / {total} events", file=sys.stderr, flush=True)

    with bar:
        events = generate_events(
            model,
            args.events,
            acceptance=ACCEPTANCES[args.acceptance],
            generator=torch.Generator().manual_seed(args.seed),
            progress=report,
        )
    path = write_events(args.out, events)
    # the generating model beside the events; a packaged model given by name (R0) is a file only under model_path
    shutil.copyfile(model_path(args.model), path.with_name(path.name + ".model.yaml"))
    print(
        f"wrote {args.events} events of {model.name} ({args.acceptance} acceptance) to {path} (model: "
        f"{path.name}.model.yaml)"
    )
    return 0


def _cmd_simulate_correlator(args) -> int:
    from hadrinv.data.correlators import write_correlator
    from hadrinv.models.halqcd import OmegaOmegaSettings

    def numbers(text: str, option: str) -> list[float]:
        try:
            return [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"{option}: {text!r} is not a comma-separated list of numbers") from None

    times = [int(v) for v in numbers(args.times, "--times")]
    sources = [
        v.strip() if v.strip() == "wall" else numbers(v, "--sources")[0] for v in args.sources.split(",") if v.strip()
    ]
    spec = OmegaOmegaSettings(
        strengths_mev=tuple(numbers(args.strengths, "--strengths")),
        ranges_fm=tuple(numbers(args.ranges, "--ranges")),
        hadron_mass_mev=args.hadron_mass,
        lattice_spacing_fm=args.lattice_spacing,
        box_sites=args.box_sites,
        times=tuple(times) if len(times) == 2 else (0, 0),
        sources=sources,
        configurations=args.configurations,
        relative_error=args.relative_error,
        report_time=(times[0] + times[-1]) // 2 if times else 0,
    )
    data = spec.correlators(args.seed)
    path = write_correlator(args.out, data, truth=spec.truth())
    C, S, T, n = data.samples.shape
    print(
        f"wrote R(t, r) for {C} configuration(s) x {S} source(s) x {T} slices x {n} radii to {path} (truth: "
        f"{path.name}.truth.json)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
