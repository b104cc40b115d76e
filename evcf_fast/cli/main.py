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
import os
import sys

from .. import __version__
from . import bench, data, evaluate, train

# Modules that add subcommands; each defines register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES = (data, evaluate, train, bench)

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evcf",
        description="Fast, exact data preparation, ranking metrics and VampPrior/GLU VAEs for "
                    "collaborative filtering.")
    parser.add_argument("--version", action="version", version=f"evcf_fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    _show_defaults(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ImportError as exc:  # torch missing: a base install without the `train` extra
        if (exc.name != "torch" and "[train]" not in str(exc)) or os.environ.get("EVCF_DEBUG"):
            raise
        print(f"evcf {args.command}: error: this command needs PyTorch, which is not installed: "
              f"{TRAIN_EXTRA_HINT}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, KeyError) as exc:
        if os.environ.get("EVCF_DEBUG"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"evcf {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"evcf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
