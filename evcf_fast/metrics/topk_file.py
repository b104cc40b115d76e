"""Reading precomputed top-K lists from Parquet for :func:`evcf_fast.metrics.evaluate_topk`.

Recommendations produced elsewhere (another library, a served model) arrive as long tables of
``user, item, rank`` or ``user, item, score`` rows; this turns one into the dense, -1 padded
matrix that ``evaluate_topk`` validates and scores. It lives in the library rather than the CLI so
that scripts and notebooks read such files the same way ``evcf evaluate --topk`` does.

polars is imported on first use, so ``import evcf_fast.metrics`` never pulls it in.
"""

from __future__ import annotations

import numpy as np


def read_topk_parquet(path, *, n_users: int, n_items: int, nan_as_neg_inf: bool = False):
    """Top-K lists of a Parquet file as an int64 matrix (n_users, width), best first, -1 padded.

    Columns ``user`` and ``item`` (integers, row and column indices) and ``rank`` (smaller is
    better) or ``score`` (larger is better); equal ranks or scores put the lower item first.
    Users absent from the file get empty lists.
    """
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
