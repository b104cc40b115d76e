"""``evcf evaluate``: ranking metrics of a score matrix (or of top-K lists) on a dataset part.

Examples::

    evcf evaluate --scores scores.npy --split data/ml20m --part test
    evcf evaluate --scores scores.npy --split data/ml20m --metrics ndcg@100 recall@20 recall@50 \\
        --json test.json --per-user test_users.parquet
    evcf evaluate --topk recs.parquet --split data/ml20m --metrics ndcg@10,recall@10
    evcf evaluate --run runs/hvamp --part test

The score matrix holds the part's users in row order (row u = user u of ``--part``) and the
dataset's items in column order; it is read in chunks, so it may be larger than memory. A top-K
file has columns ``user`` (row index in the part), ``item`` (column index) and ``rank`` (1 =
best) or ``score`` (higher is better; equal scores: lower item index first). Definitions: see
:mod:`evcf_fast.metrics` (vae_cf semantics, fold-in items excluded, ties by lower item index).
"""

from __future__ import annotations

import argparse
import json

from ..metrics.spec import (
    EMPTY_USERS,
    MAP_DENOMINATORS,
    METRICS,
    RECALL_DENOMINATORS,
    RELEVANCE,
    TIES,
)
from ..train.config import DEVICES

DEFAULT_METRICS = ("ndcg@100", "recall@20", "recall@50")


def register(subparsers) -> None:
    """Add ``evaluate`` to the ``evcf`` parser."""
    p = subparsers.add_parser(
        "evaluate", help="ranking metrics (NDCG, Recall, ...) of scores on a dataset part",
        description="Evaluate a score matrix (.npy, users x items of the part, read in chunks)\n"
                    "or top-K lists (Parquet) against the held-out items of a dataset part,\n"
                    "with the part's fold-in items excluded from the ranking (Liang et al. /\n"
                    "vae_cf definitions; equal scores rank the lower item index first).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(
            line for line in __doc__.splitlines() if line.startswith("    ")))
    # the source of the rankings
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="RUN_DIR",
                        help="a run directory of `evcf train`: score its best checkpoint on the "
                             "part's fold-in rows (--split defaults to the run's dataset)")
    source.add_argument("--scores", metavar="S.npy",
                        help="score matrix, float32/float64, shape (users of the part, n_items)")
    source.add_argument("--topk", metavar="FILE.parquet",
                        help="top-K lists: columns user, item, and rank or score")
    p.add_argument("--split", metavar="DIR",
                   help="dataset directory written by `evcf prepare` (required unless --run)")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="where --run scores the model (default: cpu)")
    p.add_argument("--part", choices=("test", "validation"), default="test",
                   help="which held-out part (default: test)")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), metavar="M@K",
                   help="metrics as name@k, space or comma separated; names: "
                        f"{', '.join(METRICS)} (hit = hitrate); avgpop and novelty use the "
                        "split's training popularity (default: %(default)s)")
    p.add_argument("--recall-denominator", choices=RECALL_DENOMINATORS, default="min",
                   help="Recall@k = hits / min(k, n_heldout) (vae_cf, default) or / n_heldout")
    p.add_argument("--map-denominator", choices=MAP_DENOMINATORS, default="min",
                   help="MAP@k divides by min(k, n_heldout) (vae_cf, RecBole; default), "
                        "n_heldout (ranx, trec_eval) or the hits within k (torchmetrics)")
    p.add_argument("--empty-users", choices=EMPTY_USERS, default="skip",
                   help="users without held-out items: left out of the means (default), "
                        "counted as 0, or an error")
    p.add_argument("--ties", choices=TIES, default="lower_first",
                   help="equal scores: lower item index first (default), higher index first "
                        "(trec_eval), or tie-averaged NDCG (scikit-learn, torchmetrics)")
    p.add_argument("--relevance", choices=RELEVANCE, default="binary",
                   help="NDCG gains: binary (default), the held-out values (linear) or "
                        "2^value - 1 (exponential)")
    p.add_argument("--nan-as-neg-inf", action="store_true",
                   help="rank NaN scores as -inf instead of failing")
    p.add_argument("--json", metavar="OUT.json", help="write means, standard errors and counts")
    p.add_argument("--per-user", metavar="OUT.parquet",
                   help="write per-user values (NaN for users without held-out items)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="users per kernel call (default: ~64 MiB of scores)")
    p.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    w = subparsers.add_parser(
        "warmup", help="compile every Numba kernel signature now; later runs load the cache",
        description="Compile (or load from Numba's cache) the metric kernels for float32/float64 "
                    "scores, in memory and memory-mapped, int32/int64 indices, and the split "
                    "kernels, then print where the machine code is cached. Run it once after "
                    "installing (or in an image build): the first `evcf evaluate` or `evcf "
                    "prepare` then starts in well under a second instead of compiling.")
    w.set_defaults(func=cmd_warmup)


def _metric_args(values: list[str]) -> tuple[str, ...]:
    return tuple(m for v in values for m in v.split(",") if m.strip())


def _part(ds, part: str):
    """(fold_in, heldout, user_ids) of ``part`` of the dataset ``ds``."""
    fold_in, heldout = ds.part(part)
    return fold_in, heldout, getattr(ds, f"{part}_user_ids", None)


def _check_score_file(path, *, heldout, split, part: str) -> None:
    """The ``--scores`` file is a readable .npy array of the part's shape (read lazily later)."""
    import numpy as np

    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except FileNotFoundError:
        raise FileNotFoundError(f"scores file {path!r} does not exist") from None
    except (ValueError, EOFError) as exc:
        raise ValueError(f"scores file {path!r} is not a readable .npy array: "
                         f"{exc}") from None
    if tuple(shape) != tuple(heldout.shape):
        raise ValueError(f"scores file {path!r} has shape {tuple(shape)}, but part "
                         f"{part!r} of {split!r} has {heldout.shape[0]} users and "
                         f"{heldout.shape[1]} items: expected {tuple(heldout.shape)}")


def cmd_evaluate(args) -> int:
    from .._io import atomic_file, check_output
    from ..metrics import evaluate, evaluate_topk
    from ..metrics.topk_file import read_topk_parquet

    metrics = _metric_args(args.metrics)
    inputs = [args.scores, args.topk, args.run, args.split]
    for flag, out in (("--json", args.json), ("--per-user", args.per_user)):
        if out is not None:  # before any work: a folder, an input, an unwritable place
            check_output(out, overwrite=True, inputs=inputs, folder=False, what=flag)
    split, model = args.split, None
    if args.run is not None:  # the run's dataset unless --split; loaded once, with the model
        from ..train.inference import load_run
        from ..train.run_folder import run_data_dir

        split = run_data_dir(args.run, split)
        model, ds, _ = load_run(args.run, data=split, device=args.device)
    elif split is None:
        raise ValueError("--split DIR is required (a dataset directory written by `evcf "
                         "prepare`), unless the scores come from --run")
    else:
        from ..data.dataset import SplitDataset

        ds = SplitDataset.load(split)
    fold_in, heldout, user_ids = _part(ds, args.part)
    conventions = dict(recall_denominator=args.recall_denominator,
                       map_denominator=args.map_denominator, empty_users=args.empty_users,
                       relevance=args.relevance, train=ds.train)
    if args.topk is not None:
        if args.ties != "lower_first":
            raise ValueError(f"--ties {args.ties} applies to --scores and --run: the order of "
                             f"--topk lists is given by their rank or score column")
        top = read_topk_parquet(args.topk, n_users=heldout.shape[0], n_items=heldout.shape[1],
                                nan_as_neg_inf=args.nan_as_neg_inf)
        result = evaluate_topk(top, heldout, exclude=fold_in, metrics=metrics,
                               n_threads=args.threads, **conventions)
        source = {"topk": str(args.topk)}
    else:
        if model is not None:
            from ..train.inference import score_rows

            scores = score_rows(model, fold_in, device=args.device)
            source = {"run": str(args.run)}
        else:
            _check_score_file(args.scores, heldout=heldout, split=split, part=args.part)
            scores, source = args.scores, {"scores": str(args.scores)}
        result = evaluate(scores, heldout, exclude=fold_in, metrics=metrics, ties=args.ties,
                          **conventions, nan_policy="neg_inf" if args.nan_as_neg_inf else "raise",
                          batch_size=args.batch_size, n_threads=args.threads,
                          progress=not args.quiet)
    what = (f"run {args.run}, best checkpoint {_checkpoint(args.run)}" if args.run is not None
            else f"top-K lists {args.topk}" if args.topk is not None
            else f"scores {args.scores}")
    print(f"{args.part} part of {split} ({heldout.shape[0]:,} users, {heldout.shape[1]:,} items; "
          f"fold-in items excluded), {what}:")
    print(result.table())
    if args.json:
        summary = {**result.to_dict(), **source, "split": str(split), "part": args.part}
        with atomic_file(args.json, inputs=inputs, what="--json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json} (means, standard errors, counts)")
    if args.per_user:
        result.write_per_user(args.per_user, user_ids=user_ids)
        print(f"wrote {args.per_user} (one row per user)")
    return 0


def _checkpoint(run) -> str:
    """``RUN/best.pt (epoch E, validation M=V)`` as recorded in the run's test.json."""
    from pathlib import Path

    path = Path(run) / "best.pt"
    test = Path(run) / "test.json"
    try:
        info = json.loads(test.read_text())
        metric = info.get("best_epoch_metric", "validation metric")
        value = info.get("best_validation")
        tail = f", {metric} {value:.5f}" if isinstance(value, float) else ""
        return f"{path} (epoch {info['best_epoch']}{tail})"
    except (OSError, ValueError, KeyError):
        return str(path)


def cmd_warmup(args) -> int:
    import time

    from .._jit import cache_dir, cold
    from ..data.split import warmup as warmup_split
    from ..kernels import ranking
    from ..metrics import warmup as warmup_metrics

    compiled = cold(ranking.topk_metrics)
    t0 = time.perf_counter()
    warmup_metrics()
    t1 = time.perf_counter()
    warmup_split()
    t2 = time.perf_counter()
    verb = "compiled" if compiled else "loaded from the cache (already compiled)"
    print(f"metric kernels {verb} in {t1 - t0:.1f} s, split kernels in {t2 - t1:.1f} s")
    print(f"machine code cached in {cache_dir(ranking.topk_metrics)}")
    return 0
