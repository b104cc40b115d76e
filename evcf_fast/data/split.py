"""The strong-generalization split of Liang et al. (WWW 2018), as used by Kim & Suh (RecSys 2019).

Follows PAPER_SPEC section 1.1 (with the 1.5 pandas fix) step by step, so that on the same input
the five matrices and the id maps are identical to the reference notebook's CSV files:

1. keep rows with ``rating > min_rating`` (no filter for implicit data);
2. collapse duplicated (user, item) pairs, keeping the first (not in the notebook, where the
   MovieLens and Netflix files have none; it changes nothing on duplicate-free input);
3. keep users with ``>= min_user_count`` interactions (one pass, no item filter);
4. ``RandomState(seed).permutation(n_users)`` over the user ids in ascending order (numerical for
   integer ids, lexicographic for string ids, as pandas sorts them); the last ``n_heldout`` are
   test users, the ``n_heldout`` before them validation users;
5. item vocabulary = items of the training users' rows in first-appearance (file) order;
6. per held-out block: reset ``RandomState(seed)`` and, for every user in ascending original-id
   order with ``n >= 5`` rows inside the vocabulary, ``choice(n, int(heldout_fraction * n),
   replace=False)`` marks the held-out rows (positions in file order).

Everything is vectorised (Polars/NumPy) or a compiled O(rows) kernel. Step 6 replays the legacy
MT19937 stream in a compiled kernel: legacy NumPy implements ``choice(n, k, replace=False)`` as
``permutation(n)[:k]``, a Fisher-Yates shuffle with masked rejection sampling, and the kernel
repeats exactly those draws (bit-identical; tests/test_data_split.py proves it against
``RandomState.choice`` and against the plain-loop version in tests/reference.py).

The parameters and their defaults are :class:`~evcf_fast.data.config.SplitConfig`'s.
"""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np
import polars as pl

from evcf_fast.kernels import split as K

from .._checks import check_choice
from .._progress import progress as _progress
from .config import INVALID_RATINGS, SplitConfig
from .dataset import SplitDataset, make_csr
from .readers._common import invalid_rating, invalid_rating_hint

#: A held-out user needs at least this many in-vocabulary rows to get targets (hard-coded 5 in
#: the notebook's ``split_train_test_proportion``, independent of ``min_user_count``).
MIN_ROWS_TO_SPLIT = 5

# Dense lookup tables are used for non-negative integer ids up to this bound (or 4x the rows).
_DENSE_ID_LIMIT = 1 << 24


def strong_generalization_split(interactions: pl.DataFrame, *, n_heldout: int,
                                min_rating: float | None = SplitConfig.min_rating,
                                min_user_count: int = SplitConfig.min_user_count,
                                seed: int = SplitConfig.seed,
                                heldout_fraction: float = SplitConfig.heldout_fraction,
                                exact: bool = SplitConfig.exact, progress: bool = False,
                                meta: dict | None = None,
                                invalid_ratings: str = "error") -> SplitDataset:
    """Split an interactions table into train / validation / test users (strong generalization).

    Parameters
    ----------
    interactions : polars.DataFrame
        Columns ``user``, ``item`` and, unless ``min_rating`` is None, ``rating``; one row per
        interaction in file order (see :func:`evcf_fast.data.readers.read_interactions`).
    n_heldout : int
        Number of validation users, and of test users (10,000 for ML-20M, 40,000 for Netflix).
    min_rating : float or None
        Keep rows with ``rating > min_rating`` (strictly). None keeps every row (implicit data).
    min_user_count : int
        Keep users with at least this many interactions after the rating filter.
    seed : int
        Seed of the user permutation and of the per-block fold-in/held-out draws.
    heldout_fraction : float
        Fraction of each held-out user's items that become targets (``int(f * n)``).
    exact : bool
        True: the notebook's legacy ``RandomState`` draws, bit-identical. False: one vectorised
        draw from ``numpy.random.default_rng(seed)`` (faster, statistically equivalent, not
        identical to the notebook).
    progress : bool
        Show a progress bar over the steps.
    meta : dict, optional
        Extra metadata merged into the result's ``meta`` (name, sources, ...).
    invalid_ratings : {"error", "drop"}
        With ``min_rating``: a null, NaN or infinite rating is a ValueError naming its row and
        the count, or (``"drop"``) such rows are dropped and counted in
        ``meta["counts"]["n_invalid_ratings"]`` (Polars orders NaN above every number, so
        ``NaN > 3.5`` would otherwise keep them as positives).

    Returns
    -------
    SplitDataset
    """
    config = SplitConfig(n_heldout=n_heldout, min_rating=min_rating,
                         min_user_count=min_user_count, seed=seed,
                         heldout_fraction=heldout_fraction, exact=exact)
    from .._jit import note_if_cold

    note_if_cold(K.group_items, K.legacy_heldout_draw if exact else K.split_segments)
    for col in ("user", "item"):
        if col not in interactions.columns:
            raise ValueError(f"interactions must have columns user and item, got "
                             f"{interactions.columns}")
    n_rows = interactions.height
    if config.min_rating is not None:
        if "rating" not in interactions.columns:
            raise ValueError("min_rating is set but the interactions have no rating column; "
                             "pass min_rating=None (--implicit) for implicit data")
        if not interactions.schema["rating"].is_numeric():
            raise ValueError(f"rating column must be numeric, got "
                             f"{interactions.schema['rating']}")
        check_choice(invalid_ratings, "invalid_ratings", INVALID_RATINGS)
        bad = interactions.select(invalid_rating()).to_series()
        n_bad = int(bad.sum())
        if n_bad and invalid_ratings == "error":
            row = int(bad.arg_true()[0])
            raise ValueError(f"rating must be a finite number, got {interactions['rating'][row]} "
                             f"in row {row} ({n_bad:,} rows have a null, NaN or infinite "
                             f"rating); {invalid_rating_hint()}")
        interactions = interactions.filter(~bad & (pl.col("rating") > config.min_rating))
    else:
        n_bad = 0
    ds = _split(interactions["user"], interactions["item"], config, n_rows=n_rows,
                progress=progress, meta=meta)
    ds.meta["counts"]["n_invalid_ratings"] = n_bad
    return ds


def split_positives(user: pl.Series, item: pl.Series, *, n_rows: int | None, n_heldout: int,
                    min_rating: float | None, min_user_count: int = SplitConfig.min_user_count,
                    seed: int = SplitConfig.seed,
                    heldout_fraction: float = SplitConfig.heldout_fraction,
                    exact: bool = SplitConfig.exact, progress: bool = False,
                    meta: dict | None = None, threads: int | None = None) -> SplitDataset:
    """Steps 2-6 of :func:`strong_generalization_split` on already rating-filtered rows.

    ``n_rows`` (the row count before the filter) and ``min_rating`` are only recorded in the
    metadata; :func:`evcf_fast.data.pipeline.prepare` filters inside the Polars scan and calls
    this directly (with ``n_rows=None`` while a thread still counts the rows: it then fills in
    ``meta["counts"]["n_rows"]``). ``threads``: the cores the split may use (default: the
    process's); with two or more, independent steps run side by side. The result is the same.
    """
    config = SplitConfig(n_heldout=n_heldout, min_rating=min_rating,
                         min_user_count=min_user_count, seed=seed,
                         heldout_fraction=heldout_fraction, exact=exact)
    return _split(user, item, config, n_rows=n_rows, progress=progress, meta=meta,
                  threads=threads)


def _split(user: pl.Series, item: pl.Series, config: SplitConfig, *, n_rows: int | None,
           progress: bool, meta: dict | None, threads: int | None = None) -> SplitDataset:
    n_heldout, min_rating = config.n_heldout, config.min_rating
    min_user_count, seed = config.min_user_count, config.seed
    heldout_fraction, exact = config.heldout_fraction, config.exact
    bar = _progress(total=6, desc="split", unit="step", enabled=progress)
    n_positive = user.len()
    if n_positive == 0:
        rule = "any row" if min_rating is None else f"rating > {min_rating}"
        raise ValueError(f"no interactions left after the rating filter: expected some rows with "
                         f"{rule}, got none out of {n_rows:,}")
    # the compiled kernels release the GIL: with a second core free, independent steps run on
    # two threads
    parallel = (available_cores() if threads is None else threads) >= 2
    (ucode, user_ids), (icode, item_ids) = _both(parallel, lambda: factorize(user, sort=True),
                                                 lambda: factorize(item, sort=False))
    bar.update()

    ptr, items = K.group_items(ucode, icode, len(user_ids))
    counts = K.count_distinct(ptr, items, len(item_ids))
    n_duplicates = n_positive - int(counts.sum())
    if n_duplicates:  # compact only when needed (real MovieLens / Netflix files have none)
        ptr, items = K.drop_repeats(ptr, items, len(item_ids))
    kept = np.flatnonzero(counts >= min_user_count).astype(np.int32)
    n_users = kept.shape[0]
    if n_users == 0:
        raise ValueError(f"no users left after filtering: expected users with >= "
                         f"{min_user_count} interactions, got none among {len(user_ids):,} users")
    if 2 * n_heldout >= n_users:
        raise ValueError(f"n_heldout={n_heldout} asks for {2 * n_heldout:,} validation + test "
                         f"users but only {n_users:,} users remain after filtering; expected "
                         f"n_heldout <= {(n_users - 1) // 2:,} (at least one training user)")
    bar.update()

    # Steps 4 and 6 of the notebook: one permutation, blocks taken from its end.
    perm = np.random.RandomState(seed).permutation(n_users)
    order = kept[perm]  # user codes in uid order
    n_train = n_users - 2 * n_heldout
    is_train = np.zeros(len(user_ids), np.bool_)
    is_train[order[:n_train]] = True
    sid_of, n_items = K.first_appearance(ucode, icode, is_train, len(item_ids))
    del ucode, icode
    bar.update()

    train_codes = order[:n_train]

    def train_rows():
        tr_ptr, tr_ind = K.gather_user_items(train_codes, ptr, items, sid_of)
        return tr_ptr, K.sort_rows(tr_ptr, tr_ind, n_items)

    def heldout_blocks():
        return _heldout_blocks(order, n_train, n_heldout, ptr, items, sid_of, counts, n_items,
                               user_ids, seed=seed, exact=exact,
                               heldout_fraction=heldout_fraction)

    (tr_ptr, tr_ind), (blocks, out_of_vocab, without_targets) = _both(parallel, train_rows,
                                                                      heldout_blocks)
    bar.update(2)

    sid_codes = np.empty(n_items, np.int64)
    sid_codes[sid_of[sid_of >= 0]] = np.flatnonzero(sid_of >= 0)
    counts_meta = {
        "n_rows": n_rows, "n_positive": n_positive, "n_duplicates": n_duplicates,
        "n_users_before_filter": len(user_ids), "n_users": n_users,
        "n_users_dropped": len(user_ids) - n_users,
        "n_interactions": int(counts[kept].sum()), "n_items_before_vocab": len(item_ids),
        "n_heldout_rows_out_of_vocab": out_of_vocab,
        "n_heldout_users_without_targets": without_targets,
    }
    full_meta = {**(meta or {}), "params": config.to_dict(), "counts": counts_meta}
    vd, te = blocks["validation"], blocks["test"]
    ds = SplitDataset(
        train=make_csr(tr_ptr, tr_ind, n_items), validation_fold_in=vd[0],
        validation_heldout=vd[1], test_fold_in=te[0], test_heldout=te[1],
        item_ids=item_ids[sid_codes], train_user_ids=user_ids[train_codes],
        validation_user_ids=vd[2], test_user_ids=te[2], meta=full_meta)
    bar.update()
    bar.close()
    return ds


def _heldout_blocks(order, n_train, n_heldout, ptr, items, sid_of, counts, n_items, user_ids, *,
                    seed, exact, heldout_fraction):
    """Step 6 of the notebook for the validation and test blocks: ({name: (fold-in CSR,
    held-out CSR, raw user ids)}, rows outside the vocabulary, users without targets)."""
    blocks = {}
    out_of_vocab = 0
    without_targets = 0
    for b, name in enumerate(("validation", "test")):
        block = order[n_train + b * n_heldout: n_train + (b + 1) * n_heldout]
        by_id = np.sort(block)  # the notebook's groupby('userId') order
        optr, osid = K.gather_user_items(by_id, ptr, items, sid_of)
        out_of_vocab += int(counts[by_id].sum()) - osid.shape[0]
        if exact:
            flag = legacy_heldout_draw(optr, seed=seed, fraction=heldout_fraction)
        else:
            keys = np.random.default_rng([seed, b]).random(osid.shape[0])
            flag = K.smallest_keys(optr, keys, heldout_fraction, MIN_ROWS_TO_SPLIT)
        row_of = np.searchsorted(by_id, block)  # uid order -> position in id order
        fptr, find, hptr, hind = K.split_segments(row_of, optr, osid, flag, n_items)
        without_targets += int(np.count_nonzero(np.diff(hptr) == 0))
        blocks[name] = (make_csr(fptr, find, n_items), make_csr(hptr, hind, n_items),
                        user_ids[block])
    return blocks, out_of_vocab, without_targets


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _both(parallel: bool, first, second):
    """``(first(), second())``: on two threads when ``parallel`` (the split's kernels release
    the GIL), else one after the other (in that order: the same peak memory as before)."""
    if not parallel:
        return first(), second()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                               thread_name_prefix="evcf-split") as pool:
        a = pool.submit(first)
        b = second()
        return a.result(), b


def legacy_heldout_draw(optr: np.ndarray, *, seed: int, fraction: float) -> np.ndarray:
    """The notebook's per-user ``np.random.choice`` loop, on one freshly seeded RandomState.

    ``optr`` delimits each held-out user's in-vocabulary rows (users in ascending id order, rows
    in file order); returns the held-out flag of every row. Runs the compiled replay of the
    legacy MT19937 stream (:func:`evcf_fast.kernels.split.legacy_heldout_draw`), bit-identical
    to the plain loop over ``RandomState.permutation`` in tests/reference.py
    (tests/test_data_split.py checks both against ``RandomState.choice``).
    """
    key, pos = _mt_state(seed)
    return K.legacy_heldout_draw(np.asarray(optr, np.int64), key, pos, float(fraction),
                                 MIN_ROWS_TO_SPLIT)


def _mt_state(seed: int):
    state = np.random.RandomState(seed).get_state()
    return state[1].astype(np.uint32), np.array([state[2]], np.int64)


def factorize(s: pl.Series, *, sort: bool) -> tuple[np.ndarray, np.ndarray]:
    """Dense int32 codes of a column of ids, and the id of each code.

    With ``sort=True`` codes follow ascending id order (numerical for integers, lexicographic
    by code point for strings: the order of a pandas groupby index). Otherwise the code order is
    unspecified.
    """
    if s.null_count():
        raise ValueError(f"column {s.name} has {s.null_count()} missing values")
    dtype = s.dtype
    if dtype.is_integer():
        vals = s.to_numpy()
        if vals.shape[0] == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int64)
        if dtype != pl.UInt64:
            # O(rows + max id): a presence table gives sorted uniques and the codes at once
            codes, uniques, ok = K.dense_codes(vals, max(_DENSE_ID_LIMIT, 4 * vals.shape[0]))
            if ok:
                return codes, uniques
        uniques = np.sort(s.unique().to_numpy()).astype(np.int64)
        return np.searchsorted(uniques, vals).astype(np.int32), uniques
    if dtype in (pl.String, pl.Categorical, pl.Enum):
        s = s.cast(pl.String)
        uniques = s.unique(maintain_order=not sort)
        if sort:
            uniques = uniques.sort()
        table = pl.DataFrame({"id": uniques,
                              "code": np.arange(uniques.len(), dtype=np.int32)})
        codes = (pl.DataFrame({"id": s}).join(table, on="id", how="left",
                                               maintain_order="left")["code"])
        return codes.to_numpy(), uniques.to_numpy().astype(str)
    raise TypeError(f"column {s.name} must hold integer or string ids, got {dtype}")


def warmup(exact: bool | None = None) -> None:
    """Compile (or load from Numba's cache) the split kernels on a tiny table.

    ``exact`` True or False loads only that draw's kernels, for integer ids (the overloads
    :func:`evcf_fast.data.pipeline.prepare` calls; a cold cache prints the first-use note);
    None (``evcf warmup``) covers both draws through :func:`strong_generalization_split`.
    """
    users = np.repeat(np.arange(30, dtype=np.int64), 6)
    items = (np.arange(users.size, dtype=np.int64) * 7) % 40
    if exact is not None:
        from .._jit import note_if_cold

        note_if_cold(K.group_items, K.legacy_heldout_draw if exact else K.split_segments)
        # two chunks, as a parse returns them: to_numpy() then copies into writable arrays,
        # the argument types of a real file's split (one chunk would give read-only views)
        user, item = (pl.concat([pl.Series(a[:90]), pl.Series(a[90:])], rechunk=False)
                      for a in (users, items))
        split_positives(user, item, n_rows=users.size, n_heldout=5, min_rating=None,
                        exact=exact)
        return
    table = pl.DataFrame({"user": users, "item": items,
                          "rating": np.full(users.size, 5.0, np.float64)})
    for exact in (True, False):
        strong_generalization_split(table, n_heldout=5, exact=exact)
