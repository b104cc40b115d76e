"""The ``evcf`` command line: the top floor, which may import anything and is imported by nothing.

``evcf_fast.cli.main.main(argv)`` is the entry point (``[project.scripts] evcf``); it is
re-exported here so ``from evcf_fast.cli import main`` keeps working.
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
