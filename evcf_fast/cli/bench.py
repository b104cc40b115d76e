"""``evcf bench compare|report|run``: the performance-regression workflow on the command line.

Examples::

    evcf bench run                          # full suite, saved under .benchmarks/ (= make bench)
    evcf bench run --quick                  # every benchmark once, no timing (= make bench-quick)
    evcf bench compare                      # the two newest saved runs
    evcf bench compare 0003 0007 --threshold 0.10 --markdown
    evcf bench report --out bench_out/report --overwrite
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

DEFAULT_STORAGE = ".benchmarks"
DEFAULT_BENCH_DIR = "bench"


def _storage_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", type=Path, default=Path(DEFAULT_STORAGE),
                   help=f"pytest-benchmark storage folder (default {DEFAULT_STORAGE})")


def register(subparsers) -> None:
    """Add the ``bench`` command group to the ``evcf`` parser."""
    bench = subparsers.add_parser("bench", help="run, compare and report benchmarks",
                                  description="Track performance across commits: save runs, "
                                              "compare two, and plot the history.")
    sub = bench.add_subparsers(dest="bench_command", required=True, metavar="ACTION")

    c = sub.add_parser("compare", help="compare two saved runs (default: the two newest)",
                       description="Ratio of medians candidate/baseline per benchmark with a "
                                   "bootstrap interval, also normalised by the in-run "
                                   "calibration. Exit 1 when a tracked benchmark regresses.")
    c.add_argument("baseline", nargs="?", help="baseline run: a JSON path or a file-name prefix "
                                               "in the storage (e.g. 0003); default: second newest")
    c.add_argument("candidate", nargs="?", help="candidate run (default: newest)")
    _storage_arg(c)
    c.add_argument("--threshold", type=float, default=0.15,
                   help="relative slowdown that fails (default 0.15 = 15%%)")
    c.add_argument("--confidence", type=float, default=0.95,
                   help="level of the bootstrap intervals (default 0.95)")
    c.add_argument("--no-calibration", action="store_true",
                   help="judge raw ratios (do not divide by the calibration ratio)")
    c.add_argument("--markdown", action="store_true", help="print a Markdown table")
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    c.set_defaults(func=cmd_compare)

    r = sub.add_parser("report", help="Markdown table and PNG plots of saved runs")
    r.add_argument("runs", nargs="*", help="runs (paths or prefixes), oldest first; default: "
                                           "every run in the storage")
    _storage_arg(r)
    r.add_argument("--out", type=Path, required=True, help="output directory")
    r.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    r.set_defaults(func=cmd_report)

    u = sub.add_parser("run", help="run the benchmark suite with pytest-benchmark and save it")
    _storage_arg(u)
    u.add_argument("--bench-dir", type=Path, default=Path(DEFAULT_BENCH_DIR),
                   help=f"folder of the benchmark files (default {DEFAULT_BENCH_DIR})")
    u.add_argument("--quick", action="store_true",
                   help="every benchmark once at reduced size with assertions; nothing saved")
    u.add_argument("-k", dest="keyword", help="pytest -k expression selecting benchmarks")
    u.add_argument("--pytest-args", default="",
                   help="extra pytest arguments as one string: --pytest-args=\"-x -q\"")
    u.set_defaults(func=cmd_run)


def _pick_runs(baseline: str | None, candidate: str | None, storage: Path):
    from ..benchtools.results import list_runs, resolve_run

    if baseline is not None and candidate is not None:
        return resolve_run(baseline, storage=storage), resolve_run(candidate, storage=storage)
    runs = list_runs(storage)
    if candidate is not None or baseline is not None:
        # one given: compare it against the newest run (or the newest against it)
        given = resolve_run(baseline, storage=storage)
        newest = runs[-1] if runs else None
        if newest is None or newest.path.resolve() == given.path.resolve():
            raise ValueError(f"need a second run to compare with {baseline!r}; got "
                             f"{len(runs)} run(s) in {str(storage)!r}")
        return given, newest
    if len(runs) < 2:
        raise ValueError(f"need two saved runs to compare, found {len(runs)} in {str(storage)!r};"
                         f" run `make bench` (again) first")
    return runs[-2], runs[-1]


def cmd_compare(args: argparse.Namespace) -> int:
    from ..benchtools.compare import compare_runs, format_comparison

    baseline, candidate = _pick_runs(args.baseline, args.candidate, args.storage)
    result = compare_runs(baseline, candidate, threshold=args.threshold,
                          confidence=args.confidence, calibrate=not args.no_calibration,
                          seed=args.seed)
    print(format_comparison(result, markdown=args.markdown))
    return 1 if result.regressions else 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..benchtools.report import write_report
    from ..benchtools.results import list_runs, resolve_run

    if args.runs:
        runs = [resolve_run(spec, storage=args.storage) for spec in args.runs]
    else:
        runs = list_runs(args.storage)
    files = write_report(runs, args.out, overwrite=args.overwrite,
                         inputs=[args.storage, *(r.path for r in runs)])
    print(f"wrote {files.markdown}, {files.history_png}, {files.speedup_png} "
          f"({len(runs)} run(s))")
    return 0


def pytest_command(*, bench_dir: Path, storage: Path, quick: bool, keyword: str | None,
                   extra: str = "") -> list[str]:
    """The pytest command line that ``evcf bench run`` (and ``make bench``) executes.

    Parameters
    ----------
    bench_dir : Path
        Folder of the benchmark files.
    storage : Path
        pytest-benchmark storage folder (ignored in quick mode, which saves nothing).
    quick : bool
        ``--benchmark-disable``: each benchmark once with its assertions, reduced sizes.
    keyword : str or None
        A ``-k`` expression.
    extra : str
        More pytest arguments, split like a shell would.

    Returns
    -------
    list of str
    """
    cmd = [sys.executable, "-m", "pytest", str(bench_dir), "-p", "no:cacheprovider"]
    if quick:
        cmd += ["--benchmark-disable", "-q"]
    else:
        # --benchmark-save-data keeps every round: the bootstrap intervals of `compare` need them
        cmd += [f"--benchmark-storage={storage}", "--benchmark-autosave",
                "--benchmark-save-data"]
    if keyword:
        cmd += ["-k", keyword]
    return cmd + shlex.split(extra)


def cmd_run(args: argparse.Namespace) -> int:
    if not args.bench_dir.is_dir():
        raise FileNotFoundError(f"benchmark folder {str(args.bench_dir)!r} not found; run from "
                                f"the repository root or pass --bench-dir")
    before = set(args.storage.rglob("*.json")) if args.storage.is_dir() else set()
    cmd = pytest_command(bench_dir=args.bench_dir, storage=args.storage, quick=args.quick,
                         keyword=args.keyword, extra=args.pytest_args)
    print("+ " + shlex.join(cmd), flush=True)
    rc = subprocess.call(cmd)
    if not args.quick and args.storage.is_dir():
        new = sorted(set(args.storage.rglob("*.json")) - before)
        for path in new:
            print(f"saved {path}; compare with: evcf bench compare")
    return rc
