"""The ``evcf`` command line.

Examples::

    evcf synth --preset small --format movielens --out raw/ratings.csv
    evcf prepare raw/ratings.csv --out data/small --n-heldout 200
    evcf info data/small
    evcf evaluate --scores scores.npy --split data/small --part test
    evcf train --data data/small --model hvamp --gated --out runs/hvamp
    evcf bench compare

Each group of subcommands lives next to the code it drives and exposes ``register(subparsers)``;
those modules import heavy libraries (torch, polars) inside the command functions so that
``evcf --help`` stays instant. The argparse Namespace stops in the command function: library
calls get explicit keyword arguments.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__

# Modules that add subcommands; each defines register(subparsers) and sets `func` on its parsers.
COMMAND_MODULES = (
    "evcf_fast.data.cli",
    "evcf_fast.metrics_cli",
    "evcf_fast.train.cli",
    "evcf_fast.benchtools.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evcf",
        description="Fast, exact data preparation, ranking metrics and VampPrior/GLU VAEs for "
                    "collaborative filtering.")
    parser.add_argument("--version", action="version", version=f"evcf_fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module: surface it
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
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
