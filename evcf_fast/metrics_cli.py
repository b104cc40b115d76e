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
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                   help="where --run scores the model (default: cpu)")
    p.add_argument("--part", choices=("test", "validation"), default="test",
                   help="which held-out part (default: test)")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), metavar="M@K",
                   help="metrics as name@k, space or comma separated; names: ndcg, recall, "
                        "precision, hitrate (hit), mrr, map (default: %(default)s)")
    p.add_argument("--recall-denominator", choices=("min", "heldout"), default="min",
                   help="Recall@k = hits / min(k, n_heldout) (vae_cf, default) or / n_heldout")
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


def _metric_args(values: list[str]) -> tuple[str, ...]:
    return tuple(m for v in values for m in v.split(",") if m.strip())


def _load_part(args):
    from .data.dataset import SplitDataset

    if args.split is None:
        raise ValueError("--split DIR is required (a dataset directory written by `evcf "
                         "prepare`), unless the scores come from --run")
    ds = SplitDataset.load(args.split)
    fold_in, heldout = ds.part(args.part)
    user_ids = getattr(ds, f"{args.part}_user_ids", None)
    return fold_in, heldout, user_ids


def _scores_from_args(args):
    """(scores, fold_in, heldout) for the chosen source: the ``--scores`` file, unread.

    The hook for other sources of scores (e.g. ``--run``, scoring a trained model): return
    anything :func:`evcf_fast.metrics.evaluate` accepts as scores.
    """
    import numpy as np

    if getattr(args, "run", None) is not None:
        from .train.inference import part_scores, run_data_dir

        args.split = run_data_dir(args.run, args.split)  # the run's dataset unless --split
        return part_scores(args.run, part=args.part, data=args.split, device=args.device)
    fold_in, heldout, _ = _load_part(args)
    try:
        shape = np.load(args.scores, mmap_mode="r", allow_pickle=False).shape
    except FileNotFoundError:
        raise FileNotFoundError(f"scores file {args.scores!r} does not exist") from None
    except (ValueError, EOFError) as exc:
        raise ValueError(f"scores file {args.scores!r} is not a readable .npy array: "
                         f"{exc}") from None
    if tuple(shape) != tuple(heldout.shape):
        raise ValueError(f"scores file {args.scores!r} has shape {tuple(shape)}, but part "
                         f"{args.part!r} of {args.split!r} has {heldout.shape[0]} users and "
                         f"{heldout.shape[1]} items: expected {tuple(heldout.shape)}")
    return args.scores, fold_in, heldout


def read_topk_parquet(path, *, n_users: int, n_items: int, nan_as_neg_inf: bool = False):
    """Top-K lists of a Parquet file as an int64 matrix (n_users, width), best first, -1 padded.

    Columns ``user`` and ``item`` (integers, row and column indices) and ``rank`` (smaller is
    better) or ``score`` (larger is better); equal ranks or scores put the lower item first.
    Users absent from the file get empty lists.
    """
    import numpy as np
    import polars as pl

    try:
        df = pl.read_parquet(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"top-K file {str(path)!r} does not exist") from None
    except Exception as exc:  # polars raises its own error types for corrupt files
        raise ValueError(f"top-K file {str(path)!r} is not a readable Parquet file: "
                         f"{exc}") from None
    cols = set(df.columns)
    order_col = "rank" if "rank" in cols else "score" if "score" in cols else None
    if not {"user", "item"} <= cols or order_col is None:
        raise ValueError(f"top-K file {str(path)!r} has columns {sorted(cols)}; expected user, "
                         f"item, and rank or score")
    user = df["user"].to_numpy()
    item = df["item"].to_numpy()
    key = df[order_col].to_numpy()
    for name, a in (("user", user), ("item", item)):
        if a.dtype.kind not in "iu":
            raise TypeError(f"top-K column {name!r} must hold integers, got {a.dtype}")
    if user.size and (user.min() < 0 or user.max() >= n_users):
        raise ValueError(f"top-K column 'user' must be row indices in [0, {n_users}) of the "
                         f"part, got values in [{user.min()}, {user.max()}]")
    if item.size and (item.min() < 0 or item.max() >= n_items):
        raise ValueError(f"top-K column 'item' must be item indices in [0, {n_items}), got "
                         f"values in [{item.min()}, {item.max()}]")
    key = key.astype(np.float64)
    if np.isnan(key).any():
        if not nan_as_neg_inf or order_col == "rank":
            raise ValueError(f"top-K column {order_col!r} holds NaN in "
                             f"{int(np.isnan(key).sum())} rows; pass --nan-as-neg-inf to rank "
                             f"NaN scores last")
        key = np.where(np.isnan(key), -np.inf, key)
    order = np.lexsort((item, key if order_col == "rank" else -key, user))
    user, item = user[order].astype(np.int64), item[order].astype(np.int64)
    counts = np.bincount(user, minlength=n_users)
    width = max(1, int(counts.max()) if counts.size else 1)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(user.size) - first[user]
    top = np.full((n_users, width), -1, np.int64)
    top[user, pos] = item
    return top


def cmd_evaluate(args) -> int:
    from ._io import atomic_file
    from .metrics import evaluate, evaluate_topk

    metrics = _metric_args(args.metrics)
    if args.topk is not None:
        fold_in, heldout, user_ids = _load_part(args)
        top = read_topk_parquet(args.topk, n_users=heldout.shape[0], n_items=heldout.shape[1],
                                nan_as_neg_inf=args.nan_as_neg_inf)
        result = evaluate_topk(top, heldout, exclude=fold_in, metrics=metrics,
                               recall_denominator=args.recall_denominator,
                               n_threads=args.threads)
        source = {"topk": str(args.topk)}
    else:
        scores, fold_in, heldout = _scores_from_args(args)
        result = evaluate(scores, heldout, exclude=fold_in, metrics=metrics,
                          recall_denominator=args.recall_denominator,
                          nan_policy="neg_inf" if args.nan_as_neg_inf else "raise",
                          batch_size=args.batch_size, n_threads=args.threads,
                          progress=not args.quiet)
        user_ids = _load_part(args)[2]
        source = ({"run": str(args.run)} if getattr(args, "run", None) is not None
                  else {"scores": str(scores)})
    print(result.table())
    if args.json:
        summary = {**result.to_dict(), **source, "split": str(args.split), "part": args.part}
        with atomic_file(args.json) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
    if args.per_user:
        _write_per_user(args.per_user, result, user_ids)
    return 0


def _write_per_user(path, result, user_ids) -> None:
    import numpy as np
    import polars as pl

    from ._io import atomic_file

    columns = {"user": np.arange(result.n_users, dtype=np.int64)}
    if user_ids is not None and len(user_ids) == result.n_users:
        columns["user_id"] = np.asarray(user_ids)
    columns["n_heldout"] = np.asarray(result.n_heldout)
    columns.update({name: np.asarray(v) for name, v in result.per_user.items()})
    with atomic_file(path) as tmp:
        pl.DataFrame(columns).write_parquet(tmp)
