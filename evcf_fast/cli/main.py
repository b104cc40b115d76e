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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evcf",
        description="Fast, exact data preparation, ranking metrics and VampPrior/GLU VAEs for "
                    "collaborative filtering.")
    parser.add_argument("--version", action="version", version=f"evcf_fast {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # for relaunching (torchrun)
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
