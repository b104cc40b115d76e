"""``evcf sweep``: hyperparameter search on Optuna (see :mod:`evcf_fast.train.sweep`).

Examples::

    evcf sweep ease.toml --data data/ml1m --out sweeps/ease
    evcf sweep hvamp.toml --data data/ml1m --out sweeps/hvamp --trials 50 --timeout 7200
    evcf sweep hvamp.toml --data data/ml1m --out sweeps/hvamp \\
        --storage postgresql://user@host/db          # one study for several machines
    evcf sweep --report --out sweeps/hvamp            # best trials, history and importance plots
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add ``sweep`` to the ``evcf`` parser."""
    from ..train.sweep import STUDY_NAME

    s = subparsers.add_parser(
        "sweep", help="hyperparameter search (Optuna): trials are run folders, pruned early",
        description="Search a TOML space of ModelConfig/TrainConfig fields: each trial trains a "
                    "normal run in OUT/trials/, reports its per-epoch validation metric to the "
                    "pruner and returns the best one. Several processes may share one study "
                    "(--storage); a killed sweep resumes where it stopped.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(
            line for line in __doc__.splitlines() if line.startswith("    ")))
    s.add_argument("spec", nargs="?", type=Path, help="search space (TOML); not with --report")
    s.add_argument("--data", type=Path, help="prepared split directory")
    s.add_argument("--out", type=Path, required=True,
                   help="sweep directory (trials/, study.db, report/)")
    s.add_argument("--trials", type=int, help="trial budget over every process (default: the "
                   "spec's n_trials)")
    s.add_argument("--timeout", type=float, help="seconds for this process (default: the "
                   "spec's timeout, else none)")
    s.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUT/study.db)")
    s.add_argument("--study-name", default=STUDY_NAME, help="(default: %(default)s)")
    s.add_argument("--heartbeat", type=float, default=60.0,
                   help="seconds between heartbeats; a trial silent for twice that is retried "
                        "(default: %(default)s)")
    s.add_argument("--report", action="store_true",
                   help="only report: best trials, OUT/report/{history,importance}.png")
    s.add_argument("--top", type=int, default=10, help="trials in the report (default: 10)")
    s.add_argument("--quiet", action="store_true", help="no per-trial progress")
    s.set_defaults(func=cmd_sweep)


def cmd_sweep(args) -> int:
    from ..train.sweep import SweepSpec, load_study, run_sweep
    from ..train.sweep_report import write_report

    if args.report:
        study = load_study(out=args.out, storage=args.storage, study_name=args.study_name)
    else:
        if args.spec is None or args.data is None:
            raise ValueError("evcf sweep needs SPEC.toml and --data DIR (or --report)")
        spec = SweepSpec.load(args.spec)
        study = run_sweep(spec, data=args.data, out=args.out, storage=args.storage,
                          study_name=args.study_name, n_trials=args.trials,
                          timeout=args.timeout, heartbeat=args.heartbeat,
                          progress=not args.quiet)
    text, paths = write_report(study, args.out / "report", top=args.top)
    print(text)
    print("report: " + ", ".join(str(p) for p in paths))
    return 0
