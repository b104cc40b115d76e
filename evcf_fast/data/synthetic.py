"""Seeded synthetic rating logs with the structure of MovieLens-20M and the Netflix Prize data.

The generative model (our own; shapes follow PAPER_SPEC 1.2 and 1.3, i.e. Liang et al., WWW 2018,
Table 1 after preprocessing):

* items have Zipf-like popularity (long tail) and belong to one of ``n_clusters`` latent taste
  clusters;
* users have log-normal activity (long tail, at least ``min_positives`` liked items, so that
  every user survives the ``>= 5`` filter and the preprocessed user count equals the preset's),
  a primary and a secondary cluster; a liked item comes from the primary cluster, the secondary
  one, or global popularity; disliked items (rating <= 3.5, removed by the filter) come from
  global popularity;
* ratings: liked 4 / 4.5 / 5 (Netflix: 4 / 5), disliked 0.5..3.5 (Netflix: 1..3); timestamps
  are per-user uniform over a few years.

A model that learns the clusters clearly beats item popularity; the ``small`` preset is sized for
about a minute of CPU training. Writers produce MovieLens ``ratings.csv`` and the Netflix Prize
``combined_data_*.txt`` / ``training_set/mv_*.txt`` layouts, so the readers run end to end.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import polars as pl

from .._checks import check_int
from .._io import atomic_dir, atomic_file, check_output


@dataclasses.dataclass(frozen=True, kw_only=True)
class SyntheticPreset:
    """Sizes and knobs of one synthetic dataset (counts are exact, not expectations)."""

    n_users: int  # users; all keep >= min_positives liked items, so all survive preprocessing
    n_items: int  # item universe (ids drawn from 1..max_item_id)
    n_positives: int  # rows with rating > 3.5
    n_rows: int  # raw rows (liked + disliked)
    n_clusters: int  # latent taste clusters
    p_primary: float = 0.6  # share of liked items from the user's primary cluster
    p_secondary: float = 0.25  # ... from the secondary cluster (rest: global popularity)
    zipf: float = 0.9  # item popularity exponent within a cluster
    activity_sigma: float = 1.0  # log-normal spread of user activity
    min_positives: int = 5
    half_stars: bool = True  # MovieLens 0.5-step ratings; False: Netflix 1..5 integers
    max_user_id: int  # raw user ids are a sorted sample of 1..max_user_id
    max_item_id: int
    n_heldout: int  # validation (and test) users for --format split
    first_day: int = 9131  # 1995-01-01, days since the epoch
    n_days: int = 7300


PRESETS: dict[str, SyntheticPreset] = {
    "small": SyntheticPreset(n_users=4_000, n_items=1_500, n_positives=300_000, n_rows=480_000,
                             n_clusters=12, max_user_id=4_000, max_item_id=3_000, n_heldout=300),
    # preprocessed ML-20M: 136,677 users, ~10M positives, 20,720 rated items (PAPER_SPEC 1.2);
    # raw rows as in ml-20m/ratings.csv
    "ml20m": SyntheticPreset(n_users=136_677, n_items=20_720, n_positives=9_990_682,
                             n_rows=20_000_263, n_clusters=50, max_user_id=138_493,
                             max_item_id=131_262, n_heldout=10_000),
    # preprocessed Netflix: 463,435 users, 56,880,037 positives; 100,480,507 raw rating rows
    "netflix": SyntheticPreset(n_users=463_435, n_items=17_770, n_positives=56_880_037,
                               n_rows=100_480_507, n_clusters=50, half_stars=False,
                               max_user_id=2_649_429, max_item_id=17_770, n_heldout=40_000,
                               first_day=10_906, n_days=2_240),
}


def make_synthetic(preset: str | SyntheticPreset = "small", *, seed: int = 0,
                   **overrides) -> pl.DataFrame:
    """Generate a synthetic interactions table.

    Parameters
    ----------
    preset : {"small", "ml20m", "netflix"} or SyntheticPreset
        Sizes (see ``PRESETS``).
    seed : int
        Everything is a deterministic function of the seed.
    **overrides
        Fields of :class:`SyntheticPreset` to change, e.g. ``n_users=500``.

    Returns
    -------
    polars.DataFrame
        Columns ``user`` (Int32), ``item`` (Int32), ``rating`` (Float32), ``timestamp`` (Int64,
        seconds), sorted by user then item like MovieLens ``ratings.csv``.
    """
    p = _resolve(preset, overrides)
    rng = np.random.default_rng(seed)
    # item popularity: Zipf within each cluster, clusters of random sizes
    cluster_of = rng.integers(0, p.n_clusters, p.n_items)
    cl_order = np.argsort(cluster_of, kind="stable")
    cl_ptr = np.zeros(p.n_clusters + 1, np.int64)
    cl_ptr[1:] = np.cumsum(np.bincount(cluster_of, minlength=p.n_clusters))
    weight = np.empty(p.n_items)
    cl_cdf = np.empty(p.n_items)
    cl_items = np.empty(p.n_items, np.int32)
    for c in range(p.n_clusters):
        members = cl_order[cl_ptr[c]:cl_ptr[c + 1]]
        members = rng.permutation(members)  # popularity rank independent of the item id
        w = 1.0 / np.arange(1, len(members) + 1) ** p.zipf
        weight[members] = w / w.sum() * rng.lognormal(0.0, 0.5)
        cl_items[cl_ptr[c]:cl_ptr[c + 1]] = members
        cl_cdf[cl_ptr[c]:cl_ptr[c + 1]] = np.cumsum(w) / w.sum()
    glob_cdf = np.cumsum(weight) / weight.sum()

    activity = rng.lognormal(0.0, p.activity_sigma, p.n_users)
    n_pos = _allocate(p.n_positives, activity, p.min_positives, max(p.min_positives,
                                                                   p.n_items // 4), rng)
    n_neg_total = p.n_rows - p.n_positives
    neg_w = activity * rng.lognormal(0.0, 0.5, p.n_users)
    n_neg = _allocate(n_neg_total, neg_w, 0, p.n_items // 2 - n_pos.max(), rng)
    primary = rng.integers(0, p.n_clusters, p.n_users)
    secondary = (primary + rng.integers(1, max(2, p.n_clusters), p.n_users)) % p.n_clusters

    from evcf_fast.kernels.synth import sample_user_items

    ptr, items, liked = sample_user_items(
        n_pos.astype(np.int64), n_neg.astype(np.int64), primary.astype(np.int64),
        secondary.astype(np.int64), cl_ptr, cl_items, cl_cdf, glob_cdf, p.p_primary,
        p.p_secondary, int(rng.integers(0, 2**31 - 1)))
    n = items.shape[0]
    user_code = np.repeat(np.arange(p.n_users, dtype=np.int32), np.diff(ptr))

    if p.half_stars:
        pos_vals, pos_p = np.array([4.0, 4.5, 5.0]), np.array([0.45, 0.2, 0.35])
        neg_vals = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5])
        neg_p = np.array([1.0, 3.0, 2.0, 8.0, 6.0, 20.0, 14.0])
    else:
        pos_vals, pos_p = np.array([4.0, 5.0]), np.array([0.55, 0.45])
        neg_vals, neg_p = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 6.5])
    pos_cdf, neg_cdf = np.cumsum(pos_p) / pos_p.sum(), np.cumsum(neg_p) / neg_p.sum()
    start = rng.integers(p.first_day, p.first_day + p.n_days, p.n_users)
    span = rng.integers(1, 3 * 365, p.n_users)
    rating = np.empty(n, np.float32)
    timestamp = np.empty(n, np.int64)
    step = 1 << 23  # chunks bound the temporaries at Netflix scale (100M rows)
    for a in range(0, n, step):
        b = min(n, a + step)
        u = rng.random(b - a)
        pos = np.minimum(np.searchsorted(pos_cdf, u), len(pos_vals) - 1)
        neg = np.minimum(np.searchsorted(neg_cdf, u), len(neg_vals) - 1)
        rating[a:b] = np.where(liked[a:b], pos_vals[pos], neg_vals[neg])
        uc = user_code[a:b]
        day = start[uc] + (rng.random(b - a) * span[uc]).astype(np.int64)
        day = np.minimum(day, p.first_day + p.n_days - 1)
        timestamp[a:b] = day * 86_400 + rng.integers(0, 86_400, b - a)
    del liked

    user_ids = np.sort(rng.choice(p.max_user_id, p.n_users, replace=False) + 1).astype(np.int32)
    item_ids = np.sort(rng.choice(p.max_item_id, p.n_items, replace=False) + 1).astype(np.int32)
    # items are sorted by code within a user and codes map to ascending ids: ML-20M row order
    return pl.DataFrame({"user": user_ids[user_code], "item": item_ids[items], "rating": rating,
                         "timestamp": timestamp})


def write_movielens(interactions: pl.DataFrame, path: str | os.PathLike, *,
                    overwrite: bool = False) -> Path:
    """Write an ML-20M-style ``ratings.csv`` (``userId,movieId,rating,timestamp``) atomically."""
    path = Path(path)
    df = interactions.select(
        pl.col("user").alias("userId"), pl.col("item").alias("movieId"),
        pl.col("rating").cast(pl.Float64).round(1).alias("rating"),
        pl.col("timestamp").alias("timestamp"))
    with atomic_file(path, overwrite=overwrite) as tmp:
        df.write_csv(tmp, float_precision=1)
    return path


def write_netflix(interactions: pl.DataFrame, out_dir: str | os.PathLike, *,
                  layout: str = "combined", n_files: int = 4, overwrite: bool = False) -> Path:
    """Write the Netflix Prize text layout into a new directory (atomically).

    Parameters
    ----------
    interactions : polars.DataFrame
        Columns ``user``, ``item`` (the movie id), ``rating`` and ``timestamp`` (seconds).
    out_dir : path-like
        Directory to create.
    layout : {"combined", "training_set"}
        ``combined_data_1.txt``..``combined_data_<n_files>.txt`` (Kaggle; movies split into
        contiguous ranges) or one ``training_set/mv_<7-digit id>.txt`` per movie (original).
    n_files : int
        Number of combined files.
    overwrite : bool
        Replace an existing ``out_dir``.
    """
    if layout not in ("combined", "training_set"):
        raise ValueError(f"layout must be 'combined' or 'training_set', got {layout!r}")
    if n_files < 1:
        raise ValueError(f"n_files must be >= 1, got {n_files}")
    from evcf_fast.kernels.synth import format_netflix

    # rows grouped by movie, original order inside a movie (a stable sort)
    df = interactions.select("user", "item", "rating", "timestamp").sort("item",
                                                                          maintain_order=True)
    item = df["item"].to_numpy()
    movie_ids, starts = np.unique(item, return_index=True)
    gptr = np.append(starts, len(item)).astype(np.int64)
    users = df["user"].to_numpy()
    rating = df["rating"].to_numpy()
    ratings = rating.astype(np.int8)
    if not np.array_equal(ratings, rating):
        raise ValueError("Netflix ratings are integers 1..5, got fractional ratings such as "
                         f"{rating[ratings != rating][0]}; generate with half_stars=False")
    del rating
    days = (df["timestamp"].to_numpy() // 86_400).astype(np.int32)
    with atomic_dir(out_dir, overwrite=overwrite, kind="synthetic netflix") as tmp:
        if layout == "combined":
            bounds = np.linspace(0, len(movie_ids), n_files + 1).round().astype(np.int64)
            for f in range(n_files):
                a, b = bounds[f], bounds[f + 1]
                buf, _ = format_netflix(movie_ids[a:b].astype(np.int64), gptr[a:b + 1],
                                        users, ratings, days)
                (tmp / f"combined_data_{f + 1}.txt").write_bytes(buf.tobytes())
        else:
            (tmp / "training_set").mkdir()
            buf, offsets = format_netflix(movie_ids.astype(np.int64), gptr, users, ratings, days)
            mv = memoryview(buf)
            for g, m in enumerate(movie_ids.tolist()):
                (tmp / "training_set" / f"mv_{m:07d}.txt").write_bytes(
                    mv[offsets[g]:offsets[g + 1]])
    return Path(out_dir)


def _resolve(preset, overrides) -> SyntheticPreset:
    if isinstance(preset, SyntheticPreset):
        p = preset
    elif preset in PRESETS:
        p = PRESETS[preset]
    else:
        raise ValueError(f"unknown synthetic preset {preset!r}, expected one of "
                         f"{', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(SyntheticPreset)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown SyntheticPreset field(s) {unknown}, expected some of "
                        f"{sorted(fields)}")
    p = dataclasses.replace(p, **overrides)
    if p.n_users < 1 or p.n_items < 2:
        raise ValueError(f"need n_users >= 1 and n_items >= 2, got {p.n_users} and {p.n_items}")
    if not p.n_users * p.min_positives <= p.n_positives <= p.n_rows:
        raise ValueError(f"need n_users * min_positives <= n_positives <= n_rows, got "
                         f"{p.n_users} * {p.min_positives} vs {p.n_positives} vs {p.n_rows}")
    if p.max_user_id < p.n_users or p.max_item_id < p.n_items:
        raise ValueError("max_user_id / max_item_id must be >= n_users / n_items")
    if p.n_rows > p.n_users * (p.n_items // 2):
        raise ValueError(f"n_rows={p.n_rows} is too dense for {p.n_users} users x "
                         f"{p.n_items} items (at most half of the items per user)")
    return p


def _allocate(total: int, weights: np.ndarray, lo: int, hi: int,
              rng: np.random.Generator) -> np.ndarray:
    """Integers in [lo, hi], roughly proportional to ``weights``, summing exactly to ``total``."""
    n = weights.shape[0]
    if not lo * n <= total <= hi * n:
        raise ValueError(f"cannot allocate {total} rows to {n} users with {lo}..{hi} each")
    share = weights / weights.sum() * (total - lo * n)
    counts = np.clip(lo + np.floor(share).astype(np.int64), lo, hi)
    while True:
        diff = total - int(counts.sum())
        if diff == 0:
            return counts
        room = np.flatnonzero(counts < hi) if diff > 0 else np.flatnonzero(counts > lo)
        pick = rng.choice(room, min(abs(diff), room.shape[0]), replace=False)
        counts[pick] += 1 if diff > 0 else -1


def synthesize(preset: str, out: str | os.PathLike, *, format: str = "movielens",
               seed: int = 0, n_heldout: int | None = None, overwrite: bool = False,
               progress: bool = False) -> Path:
    """Generate a preset and write it (what ``evcf synth`` runs).

    Parameters
    ----------
    preset : {"small", "ml20m", "netflix"}
    out : path-like
        ``ratings.csv`` file (movielens), a directory of ``combined_data_*.txt`` (netflix) or a
        dataset directory (split).
    format : {"movielens", "netflix", "split"}
    seed : int
    n_heldout : int, optional
        Validation/test users for ``format="split"`` (default: the preset's).
    overwrite : bool
        Replace an existing output; otherwise it is an error (raised before generating).
    progress : bool
        Progress bar over the steps.
    """
    from .._progress import progress as _progress

    if format not in ("movielens", "netflix", "split"):
        raise ValueError(f"format must be movielens, netflix or split, got {format!r}")
    p = _resolve(preset, {})
    check_int(seed, "seed", minimum=0, maximum=2**32 - 1)
    if n_heldout is not None and format != "split":
        raise ValueError("n_heldout only applies to format='split'")
    out = check_output(out, overwrite=overwrite, folder=format != "movielens")  # before work
    bar = _progress(total=2, desc=f"synth {preset}", unit="step", enabled=progress)
    bar.set_postfix_str("generate")
    df = make_synthetic(p, seed=seed, half_stars=p.half_stars and format != "netflix")
    bar.update()
    bar.set_postfix_str("write")
    if format == "movielens":
        write_movielens(df, out, overwrite=overwrite)
    elif format == "netflix":
        write_netflix(df, out, overwrite=overwrite)
    else:
        from .split import strong_generalization_split

        ds = strong_generalization_split(
            df, n_heldout=p.n_heldout if n_heldout is None else n_heldout,
            meta={"name": out.name, "source_format": f"synthetic:{preset}",
                  "sources": [{"path": f"synthetic preset {preset!r}, seed {seed}"}]})
        ds.save(out, overwrite=overwrite)
    bar.update()
    bar.close()
    return out
