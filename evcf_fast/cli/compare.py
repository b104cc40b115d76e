"""``evcf compare``: paired significance tests between systems evaluated on the same users.

Examples::

    evcf compare runs/multvae runs/hvamp --split data/ml1m --baseline multvae
    evcf compare ease=scores_ease.npy vae=scores_vae.npy --split data/ml1m \\
        --metrics ndcg@100 recall@20 --markdown table.md --latex table.tex --json table.json
    evcf compare a=recs_a.parquet b=recs_b.parquet --split data/ml1m --part validation
    evcf compare a=a_users.parquet b=b_users.parquet --intersect   # `evaluate --per-user` files

Each system is ``[NAME=]SOURCE``; the name defaults to the file or folder name. A source is

* a run folder of ``evcf train`` (its best checkpoint is scored on the part's fold-in rows),
* a score matrix ``.npy`` (the part's users x the dataset's items),
* a top-K Parquet file (columns ``user``, ``item``, ``rank`` or ``score``),
* a per-user Parquet file written by ``evcf evaluate --per-user`` (columns ``user``,
  ``n_heldout`` and one column per metric): no ``--split`` needed.

The tests, corrections and tables are those of :func:`evcf_fast.compare.compare`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..metrics.spec import RECALL_DENOMINATORS
from ..train.config import DEVICES
from .evaluate import DEFAULT_METRICS, _metric_args

# the choices of evcf_fast.compare (that package imports numpy at import; --help stays light)
TESTS = ("t-test", "wilcoxon", "randomization")
CORRECTIONS = ("holm", "bonferroni", "none")


def register(subparsers) -> None:
    """Add ``compare`` to the ``evcf`` parser."""
    p = subparsers.add_parser(
        "compare", help="paired significance tests between systems on the same users",
        description="Mean +- standard error per system and metric, the difference to a baseline "
                    "with a paired bootstrap interval, and paired t-test, Wilcoxon signed-rank "
                    "and Fisher randomisation p-values with a multiple-comparison correction.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(
            line for line in __doc__.splitlines() if line.startswith("    ")))
    p.add_argument("systems", nargs="+", metavar="[NAME=]SOURCE",
                   help="run folder, scores .npy, top-K .parquet or per-user .parquet")
    p.add_argument("--split", metavar="DIR",
                   help="dataset directory (needed unless every source is a run folder or a "
                        "per-user file)")
    p.add_argument("--part", choices=("test", "validation"), default="test",
                   help="which held-out part (default: %(default)s)")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), metavar="M@K",
                   help="metrics as name@k (default: %(default)s)")
    p.add_argument("--baseline", metavar="NAME",
                   help="the system the others are compared with (default: the first)")
    p.add_argument("--tests", nargs="+", choices=TESTS, default=list(TESTS),
                   help="paired tests (default: all)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level "
                                                             "(default: %(default)s)")
    p.add_argument("--correction", choices=CORRECTIONS, default="holm",
                   help="multiple-comparison correction per metric and test "
                        "(default: %(default)s)")
    p.add_argument("--n-permutations", type=int, default=10_000,
                   help="random sign flips of the randomisation test (default: %(default)s)")
    p.add_argument("--n-bootstrap", type=int, default=10_000,
                   help="bootstrap resamples of the interval; 0 skips it (default: %(default)s)")
    p.add_argument("--confidence", type=float, default=0.95,
                   help="level of the bootstrap interval (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random tests "
                                                      "(default: %(default)s)")
    p.add_argument("--intersect", action="store_true",
                   help="keep only the users evaluated in every system (else a mismatch is an "
                        "error)")
    p.add_argument("--recall-denominator", choices=RECALL_DENOMINATORS, default="min",
                   help="Recall@k = hits / min(k, n_heldout) (default) or / n_heldout")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="where run folders are scored (default: %(default)s)")
    p.add_argument("--markdown", metavar="OUT.md", help="also write the Markdown table")
    p.add_argument("--latex", metavar="OUT.tex", help="write the LaTeX table (booktabs)")
    p.add_argument("--json", metavar="OUT.json", help="write every number as JSON")
    p.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    p.set_defaults(func=cmd_compare)


def parse_system(spec: str) -> tuple[str, Path]:
    """``NAME=SOURCE`` or ``SOURCE`` -> (name, path); the name defaults to the file's stem."""
    name, sep, source = spec.partition("=")
    if not sep:
        name, source = "", spec
    path = Path(source)
    name = name.strip() or (path.name if path.is_dir() else path.stem)
    if not name:
        raise ValueError(f"system {spec!r} must be [NAME=]SOURCE with a non-empty source")
    return name, path


def _kind(path: Path) -> str:
    """What a source is: "run", "scores", "topk" or "per_user"."""
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"system source {str(path)!r} is a folder but not a run folder of "
                             f"`evcf train` (no config.json in it)")
        return "run"
    if not path.exists():
        raise FileNotFoundError(f"system source {str(path)!r} does not exist")
    if path.suffix == ".npy":
        return "scores"
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            columns = set(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises several types for files that are not Parquet
            raise ValueError(f"system source {str(path)!r} is not a readable Parquet file: "
                             f"{exc}") from None
        return "per_user" if "n_heldout" in columns else "topk"
    raise ValueError(f"system source {str(path)!r} must be a run folder, a .npy score matrix or "
                     f"a .parquet file (top-K lists or `evcf evaluate --per-user` output), got "
                     f"suffix {path.suffix!r}")


def _per_user_file(path: Path, metrics: tuple[str, ...]):
    """({metric: values}, user ids) of an ``evcf evaluate --per-user`` file."""
    import numpy as np
    import polars as pl

    df = pl.read_parquet(path)
    missing = [m for m in metrics if m not in df.columns]
    if missing:
        raise ValueError(f"per-user file {str(path)!r} has no column(s) {missing}; it holds "
                         f"{[c for c in df.columns if '@' in c]} (re-run `evcf evaluate "
                         f"--per-user` with --metrics {' '.join(metrics)})")
    ids = df["user_id"] if "user_id" in df.columns else df["user"]
    values = {m: df[m].cast(pl.Float64).to_numpy() for m in metrics}
    return values, np.asarray(ids.cast(pl.Utf8).to_numpy())


def cmd_compare(args) -> int:
    from .._io import atomic_file, check_output
    from ..compare import compare
    from ..compare.inputs import check_per_user, metric_kind
    from ..data.dataset import SplitDataset
    from ..metrics import ItemPopularity, evaluate, evaluate_topk
    from ..metrics.topk_file import read_topk_parquet

    metrics = _metric_args(args.metrics)
    check_per_user(metrics)  # before any system is evaluated
    systems = [parse_system(s) for s in args.systems]
    inputs = [path for _, path in systems] + [args.split]
    for flag in ("markdown", "latex", "json"):
        if getattr(args, flag) is not None:  # before any work: a folder, an input, unwritable
            check_output(getattr(args, flag), overwrite=True, inputs=inputs, folder=False,
                         what=f"--{flag}")
    names = [n for n, _ in systems]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"system names must be unique, got {dupes} more than once; name them "
                         f"with NAME=SOURCE")
    if args.baseline is not None and args.baseline not in names:  # before any evaluation
        raise ValueError(f"--baseline must be one of the system names {names}, got "
                         f"{args.baseline!r}")
    kinds = {name: _kind(path) for name, path in systems}
    datasets: dict[str, SplitDataset] = {}

    def dataset(split) -> SplitDataset:
        key = str(Path(split).resolve())
        if key not in datasets:
            datasets[key] = SplitDataset.load(split)
        return datasets[key]

    def need_split(name):
        if args.split is None:
            raise ValueError(f"--split DIR is required to evaluate system {name!r} "
                             f"({kinds[name]} source)")
        return dataset(args.split)

    popularity: dict[int, ItemPopularity] = {}
    needs_train = any(metric_kind(m) == "list" for m in metrics)

    def with_train(ds) -> dict:
        """``train=`` for avgpop/novelty: the split's training popularity, counted once per
        split however many systems use it."""
        if not needs_train:
            return {}
        if id(ds) not in popularity:
            popularity[id(ds)] = ItemPopularity.of(ds.train)
        return {"train": popularity[id(ds)]}

    results, users = {}, {}
    common = dict(metrics=metrics, recall_denominator=args.recall_denominator,
                  n_threads=args.threads)
    for name, path in systems:
        kind = kinds[name]
        if kind == "per_user":
            results[name], users[name] = _per_user_file(path, metrics)
            continue
        if kind == "run":
            from ..train.inference import load_run, score_rows
            from ..train.run_folder import run_data_dir

            split = run_data_dir(path, args.split)
            model, _, _ = load_run(path, data=split, device=args.device)
            ds = dataset(split)
            fold_in, heldout = ds.part(args.part)
            scores = score_rows(model, fold_in, device=args.device)
            results[name] = evaluate(scores, heldout, exclude=fold_in, progress=False, **common,
                                     **with_train(ds))
        else:
            ds = need_split(name)
            fold_in, heldout = ds.part(args.part)
            if kind == "scores":
                results[name] = evaluate(str(path), heldout, exclude=fold_in, progress=False,
                                         **common, **with_train(ds))
            else:
                top = read_topk_parquet(path, n_users=heldout.shape[0], n_items=heldout.shape[1])
                results[name] = evaluate_topk(top, heldout, exclude=fold_in, **common,
                                              **with_train(ds))
        ids = getattr(ds, f"{args.part}_user_ids", None)
        import numpy as np

        users[name] = (np.asarray(ids).astype(str) if ids is not None
                       else np.arange(heldout.shape[0]).astype(str))
    report = compare(results, baseline=args.baseline, metrics=metrics, tests=args.tests,
                     alpha=args.alpha, correction=args.correction,
                     n_permutations=args.n_permutations, n_bootstrap=args.n_bootstrap,
                     confidence=args.confidence, seed=args.seed, users=users,
                     intersect=args.intersect, n_threads=args.threads)
    markdown = report.to_markdown()
    print(markdown)
    for path, text in ((args.markdown, markdown), (args.latex, report.to_latex()),
                       (args.json, report.to_json())):
        if path:
            with atomic_file(path) as tmp:
                tmp.write_text(text + "\n")
            print(f"wrote {path}")
    return 0
