"""`hadrinv integrate FILE.py:FUNCTION --dim D --out DIR`: Monte Carlo integration of a user's function.

FUNCTION is a batched torch function f(x: Tensor[n, D] float64 on [0, 1]^D) -> Tensor[n], real or complex.
DIR/result.json (value, error, calls, weight statistics, validity) is written last and atomically, after the
weight-distribution plot DIR/weights.png, so a result.json in DIR always belongs to a finished integration:
an earlier one is removed before anything else happens. Bad input (the file, the function, what it returns,
the options) stops with one line on stderr naming FILE.py:FUNCTION and exit code 2; an integration whose
estimate is not to be trusted still writes its result (is_valid false) and exits with code 1.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import inspect
import math
import sys
import traceback
import uuid
from pathlib import Path

RESULT = "result.json"
PLOT = "weights.png"


class _BadInput(Exception):
    """A problem of the user's file, function or options: one line, no traceback."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    from hadrinv.integration import METHODS, integrate

    defaults = inspect.signature(integrate).parameters
    parser = subparsers.add_parser(
        "integrate",
        help="integrate a function of yours over [0, 1]^D",
        description="Monte Carlo integral over [0, 1]^D of FUNCTION in FILE.py, a batched torch function "
        "f(x: Tensor[n, D] float64) -> Tensor[n], real or complex. Writes DIR/result.json and the weight "
        "distribution DIR/weights.png. Exit codes: 0 valid, 1 not valid (the reason is printed), 2 bad input.",
    )
    parser.add_argument("function", metavar="FILE.py:FUNCTION", help="the file and the integrand's name in it")
    parser.add_argument("--dim", type=int, required=True, metavar="D", help="dimension of the unit hypercube")
    parser.add_argument(
        "--method",
        choices=METHODS,
        default=defaults["method"].default,
        help="sampling method (default %(default)s; flat is plain Monte Carlo, the reference)",
    )
    parser.add_argument(
        "--calls",
        type=int,
        default=100_000,
        metavar="N",
        help="integrand evaluations in all, training included (default %(default)s)",
    )
    parser.add_argument(
        "--train-calls",
        type=int,
        metavar="M",
        help="of the N calls, those spent adapting or training the sampler (default: the method's own share)",
    )
    parser.add_argument("--seed", type=int, default=defaults["seed"].default, help="random seed (default %(default)s)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder for result.json and weights.png")
    parser.set_defaults(handler=_cmd_integrate)
    return parser


def _cmd_integrate(args) -> int:
    from hadrinv.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED

    out = Path(args.out)
    module_name = f"_hadrinv_integrand_{uuid.uuid4().hex}"
    try:
        _remove_earlier_outputs(out)
        options = _options(args)
        f = _load(args.function, module_name)
        result = _integrate(f, args, options)
        _write_plot(out / PLOT, result, args.function)
        _write_result(out / RESULT, result, args)
    except _BadInput as exc:
        print(f"hadrinv integrate: {args.function}: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        for name in (PLOT, RESULT):  # either may be complete already; the run as a whole is not
            (out / name).unlink(missing_ok=True)
        print(f"\nhadrinv integrate: {args.function}: interrupted, no {RESULT} written", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        sys.modules.pop(module_name, None)
    print(result)
    print(f"results: {out.resolve()}")
    if not result.is_valid:
        print(f"hadrinv integrate: {args.function}: not valid: {result.message}", file=sys.stderr)
        return 1
    return 0


def _remove_earlier_outputs(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise _BadInput(f"--out {out}: is a file; give a folder")
    for name in (RESULT, PLOT):
        try:
            (out / name).unlink(missing_ok=True)
        except OSError as exc:
            raise _BadInput(f"--out {out}: cannot remove the earlier {name}: {exc.strerror}") from None


def _load(spec: str, module_name: str):
    """FUNCTION from FILE.py, imported under a unique module name: the file's own name may be that of an
    installed module, or of another user file integrated in the same process."""
    path_text, colon, name = spec.rpartition(":")
    if not colon or not path_text or not name:
        raise _BadInput("give the file and the function as FILE.py:FUNCTION")
    path = Path(path_text)
    if not path.exists():
        raise _BadInput(f"no such file {path_text}")
    if not path.is_file():
        raise _BadInput(f"{path_text} is not a file")
    loader = importlib.machinery.SourceFileLoader(module_name, str(path))
    module_spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # dataclasses and typing look the module up while it executes
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # as `python FILE.py` would: helpers beside the file import
    try:
        loader.exec_module(module)
    except SyntaxError as exc:
        raise _BadInput(f"syntax error in {path_text} line {exc.lineno}: {exc.msg}") from None
    except (Exception, SystemExit) as exc:
        raise _BadInput(f"importing {path_text} raised {_describe(exc, path)}") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    if not hasattr(module, name):
        defined = [
            k for k, v in vars(module).items() if callable(v) and not k.startswith("_") and not inspect.ismodule(v)
        ]
        known = f" (callables there: {', '.join(defined)})" if defined else ""
        raise _BadInput(f"{path_text} defines no {name}{known}")
    function = getattr(module, name)
    if not callable(function):
        raise _BadInput(f"{name} is a {type(function).__name__}, not a function")
    return _Guarded(function, name, path)


class _Guarded:
    """The user's function, its own exceptions turned into a one-line _BadInput naming the line in their file.

    It runs without autograd: the integrand is a number to sample, and a result that requires grad could not
    be handed to numpy (vegas)."""

    def __init__(self, function, name: str, path: Path):
        self.function, self.name, self.path = function, name, path

    def __call__(self, x):
        import numpy as np
        import torch

        try:
            with torch.no_grad():
                y = self.function(x)
        except (Exception, SystemExit) as exc:
            raise _BadInput(f"{self.name} raised {_describe(exc, self.path)} on a batch of {_points(len(x))}") from None
        if not isinstance(y, torch.Tensor) and np.asarray(y).dtype.kind not in "biufc":
            raise _BadInput(f"{self.name} returned a {type(y).__name__}; expected a Tensor of shape ({len(x)},)")
        return y


def _points(n: int) -> str:
    return f"{n} point" if n == 1 else f"{n} points"


def _describe(exc: BaseException, path: Path) -> str:
    """'TypeError: message (line N)', the line being the last one of the user's file in the traceback."""
    line = next(
        (
            frame.lineno
            for frame in reversed(traceback.extract_tb(exc.__traceback__))
            if Path(frame.filename).resolve() == path.resolve()
        ),
        None,
    )
    where = f" (line {line})" if line is not None else ""
    text = str(exc)
    return f"{type(exc).__name__}{': ' + text if text else ''}{where}"


def _options(args) -> dict:
    """integrate's keywords from the options, checked before the user's file runs."""
    if args.dim < 1:
        raise _BadInput(f"--dim must be at least 1, not {args.dim}")
    if args.calls < 2:
        raise _BadInput(f"--calls must be at least 2, not {args.calls}")
    options = {"method": args.method, "calls": args.calls, "seed": args.seed}
    if args.train_calls is not None:  # else the method's own share
        if not 0 <= args.train_calls < args.calls:
            raise _BadInput(
                f"--train-calls must be at least 0 and less than --calls ({args.calls}), not {args.train_calls}: "
                "the estimate needs calls of its own"
            )
        options["train_fraction"] = args.train_calls / args.calls
    return options


def _integrate(f, args, options: dict):
    from hadrinv.integration import integrate

    try:
        return integrate(f, args.dim, **options)
    except ValueError as exc:  # integrate's own verdict on what f returned (shape, NaN or inf)
        raise _BadInput(str(exc)) from None


def _write_result(path: Path, result, args) -> None:
    from hadrinv.data.io import atomic_write_json

    record = {"function": args.function, "dim": args.dim, "seed": args.seed, **result.as_dict()}
    # strict JSON has no Infinity or NaN (a relative std with a zero mean weight is infinite)
    record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    atomic_write_json(path, record)


def _write_plot(path: Path, result, function: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from hadrinv.data.io import atomic_write_file

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    try:
        weights = result.sample_weights
        statistics = (
            f"relative std {result.relative_std:.3g}\nunweighting efficiency {result.unweighting_efficiency:.3g}"
        )
        if weights is None or not np.any(weights != 0):
            ax.text(0.5, 0.5, f"no non-zero weights\n{statistics}", ha="center", va="center", transform=ax.transAxes)
        else:
            # a log axis needs positive numbers: complex weights and weights of both signs are shown by modulus
            by_modulus = np.iscomplexobj(weights) or bool(np.any(weights < 0))
            w = np.abs(weights) if by_modulus else np.asarray(weights, dtype=float)
            ratio = w / w.mean()
            positive = ratio[ratio > 0]
            low, high = positive.min(), positive.max()
            edges = np.geomspace(low, high, 61)
            if high <= low * 1.01:  # a constant weight (flat sampling of a constant), up to rounding: one bar
                edges = np.array([low / 2, high * 2])
            zeros = len(ratio) - len(positive)
            label = statistics + (f"\n{zeros} zero weights not shown" if zeros else "")
            ax.hist(positive, bins=edges, histtype="stepfilled", alpha=0.6, label=label)
            ax.axvline(1.0, color="k", lw=0.8, ls="--")
            ax.set_xscale("log")
            ax.set_xlabel("|w| / <|w|>" if by_modulus else "w / <w>")
            ax.set_ylabel("samples")
            ax.legend(fontsize=8, loc="upper left")
        ax.set_title(f"{function}: {result.method}, {len(weights) if weights is not None else 0} weights", fontsize=9)
        fig.tight_layout()
        atomic_write_file(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        plt.close(fig)
