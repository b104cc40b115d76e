"""The ``evcf`` command line.

Examples::

    evcf synth --preset small --format movielens --out raw/ratings.csv
    evcf prepare raw/ratings.csv --out data/small --n-heldout 200
    evcf info data/small
    evcf evaluate --scores scores.npy --split data/small --part test
    evcf train --data data/small --model hvamp --gated --out runs/hvamp
    evcf bench compare

The CLI is the top floor of the package: it may import anything, and nothing in the library
imports it. Each area has one module here (``data``, ``evaluate``, ``train``, ``bench``) exposing
``register(subparsers)``; heavy libraries (torch, polars, numba) are imported inside the command
functions so that ``evcf --help`` stays instant. The argparse Namespace stops in the command
function: library calls get explicit keyword arguments.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from .. import __version__

# Modules that add subcommands (in --help order); each defines register(subparsers) and sets
# `func` on its parsers. COMMANDS names the commands each one adds (tests/test_data_cli.py checks
# it against the registrations): a command line that names a command registers, and imports,
# only its module, so `evcf prepare` does not pay for NumPy and the metrics package that
# `evcf evaluate`'s options import.
COMMAND_MODULES = ("data", "evaluate", "compare", "train", "diagnose", "sweep", "study",
                   "bench")
COMMANDS = {"prepare": "data", "synth": "data", "info": "data", "export": "data",
            "evaluate": "evaluate", "warmup": "evaluate", "compare": "compare",
            "train": "train", "recommend": "train", "plot": "train", "presets": "train",
            "diagnose": "diagnose", "sweep": "sweep", "study": "study", "bench": "bench"}

TRAIN_EXTRA_HINT = ("pip install 'evcf_fast[train]' (a CPU-only torch: pip install torch "
                    "--index-url https://download.pytorch.org/whl/cpu; see the README, Install)")


def _with_default(action: argparse.Action) -> str | None:
    """An option's help with its default appended, unless the help already states one."""
    text = action.help
    if text is None or text == argparse.SUPPRESS or "default" in text.lower():
        return text
    default = action.default
    if default is None or default is False or default == argparse.SUPPRESS or default == []:
        return text
    if isinstance(default, (list, tuple)):
        default = " ".join(str(v) for v in default)
    return f"{text} (default: {str(default).replace('%', '%%')})"


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option's default in ``--help`` (argparse's own only covers `%(default)s` users)."""

    def _get_help_string(self, action):
        return _with_default(action)


class RawDefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """:class:`DefaultsFormatter` for parsers whose description is laid out by hand."""

    def _get_help_string(self, action):
        return _with_default(action)


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every subcommand parser below it a defaults-showing formatter."""
    raw = issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)
    parser.formatter_class = RawDefaultsFormatter if raw else DefaultsFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                _show_defaults(sub)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``evcf`` parser with every subcommand, or only the module of ``command`` when it
    names one (what :func:`main` parses a command line with)."""
    parser = argparse.ArgumentParser(
        prog="evcf",
        description="Fast, exact data preparation, ranking metrics and VampPrior/GLU VAEs for "
                    "collaborative filtering.")
    parser.add_argument("--version", action="version", version=f"evcf_fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    _show_defaults(parser)
    return parser


# Errors that bad input, a bad environment or a resource limit cause: one clean line. Anything
# else (AttributeError, IndexError, RecursionError, ...) is a bug: one line saying so, and the
# traceback in a file. RecursionError and NotImplementedError subclass RuntimeError, so they are
# tested first.
EXPECTED = (ValueError, TypeError, OSError, KeyError, EOFError, MemoryError, RuntimeError)
BUGS = (RecursionError, NotImplementedError)


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words[0] if words else None)
    args = parser.parse_args(argv)
    code = _run(args, argv)
    if argv is None and getattr(args, "exit_at_once", False):
        _exit_at_once(code)
    return code


def _exit_at_once(code: int) -> None:
    """End a command-line process without the interpreter's teardown.

    Tearing down NumPy, Numba (LLVM), scipy and Polars takes 0.1 to 0.3 s, a tenth of a whole
    ``evcf prepare``. Commands that set ``exit_at_once`` (the data commands: every file they
    wrote is closed and renamed into place, their threads are done) skip it: the ``atexit``
    handlers run and the standard streams are flushed, then the process exits. Only for a real
    command line (``argv`` None): a caller of :func:`main` keeps its interpreter.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    previous = _sigterm_as_interrupt()
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for relaunching (torchrun)
    try:
        return int(args.func(args) or 0)
    except ImportError as exc:  # torch missing: a base install without the `train` extra
        if (exc.name != "torch" and "[train]" not in str(exc)) or os.environ.get("EVCF_DEBUG"):
            raise
        print(f"evcf {args.command}: error: this command needs PyTorch, which is not installed: "
              f"{TRAIN_EXTRA_HINT}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = getattr(args, "on_interrupt", None)
        detail = ""
        with contextlib.suppress(Exception):  # the report must never hide the interrupt
            detail = where(args) if where is not None else ""
        print(f"evcf {args.command}: interrupted" + (f"; {detail}" if detail else ""),
              file=sys.stderr)
        return 130
    except BaseException as exc:
        if isinstance(exc, SystemExit) or os.environ.get("EVCF_DEBUG"):
            raise
        if not isinstance(exc, Exception):
            raise
        if isinstance(exc, EXPECTED) and not isinstance(exc, BUGS):
            print(f"evcf {args.command}: error: {_message(exc)}", file=sys.stderr)
            return 2
        path = _save_traceback(args.command, argv)
        print(f"evcf {args.command}: internal error (a bug in evcf_fast, please report it): "
              f"{type(exc).__name__}: {_first_line(exc)}; traceback written to {path}",
              file=sys.stderr)
        return 70
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}" if exc.args else "missing key"
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    if type(exc).__module__.startswith(("torch", "polars", "numba")):
        return f"{type(exc).__name__}: {_first_line(exc)}"
    return text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def _save_traceback(command: str, argv) -> str:
    """Write the current exception's traceback (and the command line) to a file; its path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(tempfile.gettempdir()) / f"evcf-{command}-{stamp}-{os.getpid()}.traceback.txt"
    try:
        cmd = " ".join(sys.argv[:1] + list(argv if argv is not None else sys.argv[1:]))
        path.write_text(f"evcf_fast {__version__}\ncommand: {cmd}\n\n{traceback.format_exc()}")
    except OSError:
        return "(could not be written: set EVCF_DEBUG=1 to see it)"
    return str(path)


def _sigterm_as_interrupt():
    """SIGTERM (kill, a job scheduler's stop) is handled exactly like Ctrl-C; the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError):
        return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
