"""``evcf study``: models, presets and sweeps on one dataset, run in order, one report folder.

Examples::

    evcf study studies/ml1m.toml                 # runs what is not finished, then reports
    evcf study studies/ml1m.toml --out /scratch/ml1m --device cuda
    evcf study studies/ml1m.toml --report        # the report only, from the finished rows
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..train.config import DEVICES


def register(subparsers) -> None:
    """Add ``study`` to the ``evcf`` parser."""
    s = subparsers.add_parser(
        "study", help="run a list of models/presets/sweeps on one dataset and report them",
        description="Run the rows of a study file in order (finished runs are not redone, "
                    "killed ones resume), then write OUT/report/: results.md (test NDCG@100/@20, "
                    "Recall@20/@50 +- SE, validation, epochs, time, the command of each row), "
                    "results.json, curves.png and per_user.npz. The file format is in "
                    "evcf_fast.train.study.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(
            line for line in __doc__.splitlines() if line.startswith("    ")))
    s.add_argument("spec", type=Path, help="study file (TOML)")
    s.add_argument("--out", type=Path, help="study folder (default: the file's `out`)")
    s.add_argument("--device", choices=DEVICES,
                   help="device of every row (a `set` field of every row and sweep)")
    s.add_argument("--report", action="store_true",
                   help="only write the report (every row must be finished)")
    s.add_argument("--quiet", action="store_true", help="no progress output")
    s.set_defaults(func=cmd_study)


def cmd_study(args) -> int:
    import dataclasses

    from ..train.study import StudySpec, row_dir, row_summary, run_study
    from ..train.study_report import write_study_report

    spec = StudySpec.load(args.spec)
    if args.device is not None:
        spec = dataclasses.replace(spec, overrides={**spec.overrides, "device": args.device})
    out = args.out or spec.out
    if out is None:
        raise ValueError(f"{args.spec} has no `out` and --out is missing: where should the "
                         f"study's runs go?")

    def log(line):
        if not args.quiet:
            print(line, file=sys.stderr)

    if args.report:
        results = []
        for row in spec.rows:
            run = _finished_run(row, row_dir(out, row))
            results.append(row_summary(spec, row, run, out=out))
    else:
        results = run_study(spec, out=out, progress=not args.quiet, log=log)
    text, folder = write_study_report(results, Path(out) / "report",
                                      header=f"# study {args.spec.name} on {spec.data}")
    print(text)
    print(f"report: {folder}")
    return 0


def _finished_run(row, where: Path) -> Path:
    if row.sweep is not None:
        from ..train.sweep import best_trials, load_study

        best = best_trials(load_study(out=where), top=1)
        if best:
            return Path(best[0].user_attrs["run_dir"])
    elif (where / "test.json").exists():
        return where
    raise ValueError(f"row {row.name!r} is not finished ({where}); run the study without "
                     f"--report first")
