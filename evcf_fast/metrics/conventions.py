"""Evaluation conventions (the options that make our numbers match a peer's) and the
beyond-accuracy metrics computed from the top-k lists.

Shared by both backends and ``evaluate_topk``: the options are checked here once, the gains of
graded relevance and the training popularity are built here, and the per-user arrays the
kernels return are finished here (users without held-out items, list and global metrics), so
that every path gives the same numbers with the same messages. Definitions are in
:mod:`evcf_fast.metrics`; the README's peer table says which option set reproduces which peer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, must_be
from .spec import (
    EMPTY_USERS,
    MAP_DENOMINATORS,
    METRICS,
    RECALL_DENOMINATORS,
    RELEVANCE,
    TIES,
    MetricSpec,
    _beyond,
)


@dataclass(frozen=True)
class Conventions:
    """The chosen convention per option (see :func:`evcf_fast.metrics.evaluate`)."""

    recall_denominator: str = "min"
    map_denominator: str = "min"
    empty_users: str = "skip"
    ties: str = "lower_first"
    relevance: str = "binary"

    @classmethod
    def check(cls, *, recall_denominator="min", map_denominator="min", empty_users="skip",
              ties="lower_first", relevance="binary") -> Conventions:
        check_choice(recall_denominator, "recall_denominator", RECALL_DENOMINATORS)
        check_choice(map_denominator, "map_denominator", MAP_DENOMINATORS)
        check_choice(empty_users, "empty_users", EMPTY_USERS)
        check_choice(ties, "ties", TIES)
        check_choice(relevance, "relevance", RELEVANCE)
        return cls(recall_denominator, map_denominator, empty_users, ties, relevance)

    @property
    def recall_mode(self) -> int:
        return RECALL_DENOMINATORS.index(self.recall_denominator)

    @property
    def map_mode(self) -> int:
        return MAP_DENOMINATORS.index(self.map_denominator)

    @property
    def tie_mode(self) -> int:
        return TIES.index(self.ties)

    @property
    def default_kernel(self) -> bool:
        """The fused default kernel computes these conventions (the others need the general one)."""
        return (self.map_denominator == "min" and self.ties == "lower_first"
                and self.relevance == "binary")


def check_empty_users(conv: Conventions, n_heldout: np.ndarray) -> None:
    """Under ``empty_users="raise"``, refuse users without held-out items before any work."""
    if conv.empty_users != "raise":
        return
    empty = n_heldout == 0
    if empty.any():
        raise ValueError(must_be(
            "heldout", "at least one item per user under empty_users='raise'",
            f"{int(empty.sum())} users without held-out items (first: row "
            f"{int(np.argmax(empty))}); pass empty_users='skip' or 'zero' to evaluate them"))


def gains(heldout, indices: np.ndarray, relevance: str) -> np.ndarray:
    """float64 gain per stored held-out entry, aligned with the CSR's ``indices``."""
    if relevance == "binary":
        return np.ones(indices.shape[0], np.float64)
    data = getattr(heldout, "data", None)
    if data is None or not hasattr(heldout, "format"):
        raise TypeError(must_be("heldout", f"a scipy CSR with graded values under "
                                f"relevance={relevance!r}", type(heldout).__name__))
    values = np.asarray(data, dtype=np.float64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        raise ValueError(must_be(
            "heldout values", f"finite and > 0 under relevance={relevance!r} (they are the "
            f"gains)", f"{int(bad.sum())} values that are not (first: {values[bad][0]!r})"))
    return values if relevance == "linear" else np.exp2(values) - 1.0


#: The kernels' per-item record in each thread's beyond-accuracy slab (see
#: :mod:`evcf_fast.kernels.ranking`): how many top-k lists of the thread's rows hold the item,
#: its training popularity (users) and its self-information, 16 bytes in one cache line.
ITEM_TABLE = np.dtype([("count", np.int32), ("pop", np.int32), ("info", np.float64)],
                      align=True)


@dataclass(frozen=True)
class Beyond:
    """Kernel arguments for the beyond-accuracy metrics of an evaluation."""

    specs: tuple[MetricSpec, ...]
    bks: np.ndarray  # int64 distinct cut-offs, decreasing
    pop: np.ndarray  # float64 training popularity per item (users)
    info: np.ndarray  # float64 self-information per item, -log2(max(pop, 1) / n_train_users)

    @property
    def with_pop(self) -> bool:
        """Whether a list metric (popularity, novelty) was asked: the tables are filled."""
        return self.pop.size > 0

    def outputs(self, n_rows: int, n_items: int, n_slabs: int):
        """Item tables (``ITEM_TABLE`` records, one slab per Numba thread and cut-off, counts
        zeroed, popularity and self-information filled in when asked) and the per-row outputs
        (pop sums, self-information sums, list lengths) of the kernels."""
        nb = self.bks.size
        tables = np.zeros((n_slabs if nb else 1, nb, n_items if nb else 0), ITEM_TABLE)
        if nb and self.with_pop:
            tables["pop"] = self.pop  # integers below 2**31: counts of training users
            tables["info"] = self.info
        return (tables, np.empty((n_rows, nb), np.float64), np.empty((n_rows, nb), np.float64),
                np.empty((n_rows, nb), np.int64))


@dataclass(frozen=True)
class ItemPopularity:
    """Training popularity per item, for ``avgpop@k`` and ``novelty@k``: ``counts[i]`` training
    users hold item i, out of ``n_users``.

    ``evaluate(..., train=csr)`` counts the training matrix on every call; to evaluate many
    score matrices (systems, checkpoints, batches) against the same training data, count once
    with :meth:`of` and pass the result as ``train=`` instead.
    """

    counts: np.ndarray  # int64 (n_items,), non-negative
    n_users: int

    def __post_init__(self):
        c = self.counts
        if not isinstance(c, np.ndarray) or c.ndim != 1 or c.dtype.kind not in "iu":
            raise TypeError(must_be("ItemPopularity.counts", "a 1-d integer numpy array",
                                    _describe(c)))
        if c.size and int(c.min()) < 0:
            raise ValueError(must_be("ItemPopularity.counts", "non-negative",
                                     f"minimum {int(c.min())}"))
        if isinstance(self.n_users, bool) or not isinstance(self.n_users, (int, np.integer)) \
                or self.n_users < 1:
            raise ValueError(must_be("ItemPopularity.n_users", "an int >= 1",
                                     repr(self.n_users)))

    @classmethod
    def of(cls, train, *, n_items: int | None = None) -> ItemPopularity:
        """Count a training CSR (users x items) once (a parallel Numba pass)."""
        return cls(*_train_counts(train, n_items))


def _count_items(indices: np.ndarray, n_items: int):
    """Training entries per item and the number of out-of-range indices, counted in parallel
    (:func:`evcf_fast.kernels.csr.column_counts`; chunks below 2**31 entries each)."""
    import numba

    from .._jit import note_if_cold
    from ..kernels.csr import column_counts

    note_if_cold(column_counts)
    nnz = indices.shape[0]
    n_chunks = max(1 if nnz < 200_000 else numba.get_num_threads(), -(-nnz // (2**31 - 1)))
    return column_counts(indices, n_items, n_chunks)


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"a {x.ndim}-d {x.dtype} array"
    return type(x).__name__


def _train_counts(train, n_items: int | None) -> tuple[np.ndarray, int]:
    """(entries per item, number of users) of a training CSR, checked."""
    import scipy.sparse as sp

    if not sp.issparse(train) or train.format != "csr":
        raise TypeError(must_be("train", "a scipy.sparse CSR matrix/array or an "
                                "ItemPopularity", type(train).__name__))
    if n_items is not None and train.shape[1] != n_items:
        raise ValueError(must_be("train", f"{n_items} columns (n_items)",
                                 f"shape {tuple(train.shape)}"))
    n_train = int(train.shape[0])
    if n_train == 0:
        raise ValueError(must_be("train", "at least one user", "an empty matrix"))
    n_cols = int(train.shape[1])
    counts, n_bad = _count_items(np.asarray(train.indices), n_cols)
    if n_bad:
        raise ValueError(must_be("train", f"column indices in [0, {n_cols})",
                                 f"{n_bad} outside it (a malformed CSR)"))
    return counts.astype(np.int64, copy=False), n_train


def beyond_args(specs: tuple[MetricSpec, ...], train, n_items: int) -> Beyond:
    """Cut-offs and popularity tables for the list and global metrics among ``specs``;
    ``train`` is a training CSR (counted here) or an :class:`ItemPopularity`."""
    bspecs = _beyond(specs)
    bks = np.array(sorted({s.k for s in bspecs}, reverse=True), np.int64)
    needs_train = [str(s) for s in bspecs if METRICS[s.name].kind == "list"]
    if needs_train and train is None:
        raise ValueError(must_be("train", f"the training interactions (a scipy CSR with "
                                 f"n_items={n_items} columns, or an ItemPopularity) for "
                                 f"{needs_train}", "None"))
    if train is None or not needs_train:  # empty tables: the kernels skip the gathers
        empty = np.zeros(0, np.float64)
        return Beyond(bspecs, bks, empty, empty)
    if isinstance(train, ItemPopularity):
        if train.counts.shape[0] != n_items:
            raise ValueError(must_be("train", f"an ItemPopularity of {n_items} items (n_items)",
                                     f"one of {train.counts.shape[0]}"))
        counts, n_train = train.counts, train.n_users
    else:
        counts, n_train = _train_counts(train, n_items)
    if int(counts.max(initial=0)) >= 2**31:
        raise ValueError(must_be("train", "item popularities below 2**31",
                                 f"{int(counts.max())}"))
    pop = counts.astype(np.float64)
    info = -np.log2(np.maximum(pop, 1.0) / n_train)
    return Beyond(bspecs, bks, pop, info)


def finish(per_user: dict[str, np.ndarray], n_heldout: np.ndarray, conv: Conventions,
           beyond: Beyond, tables, pop_out, info_out, len_out):
    """Apply the empty-user rule and add the beyond-accuracy values: (per_user, aggregate).

    ``tables`` (slabs, len(bks), n_items; ``ITEM_TABLE``) hold the kernels' per-item counts
    over the users in the means; ``pop_out``, ``info_out``, ``len_out`` their per-user sums and
    list lengths.
    """
    empty = n_heldout == 0
    if conv.empty_users == "zero" and empty.any():
        for values in per_user.values():
            values[empty] = 0.0
    aggregate: dict[str, float] = {}
    if not beyond.specs:
        return per_user, aggregate
    counts = tables["count"].sum(0, dtype=np.int64)
    stats: dict[int, dict[str, float]] = {}  # per cut-off, from one histogram of its counts
    for s in beyond.specs:
        b = int(np.flatnonzero(beyond.bks == s.k)[0])
        if METRICS[s.name].kind == "list":
            sums = (pop_out if s.name == "avgpop" else info_out)[:, b]
            length = len_out[:, b]
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(length > 0, sums / np.maximum(length, 1), np.nan)
            if conv.empty_users != "zero":
                values[empty] = np.nan
            per_user[str(s)] = values
        else:
            if b not in stats:
                stats[b] = count_statistics(counts[b])
            aggregate[str(s)] = stats[b][s.name]
    return per_user, aggregate


def count_statistics(counts: np.ndarray) -> dict[str, float]:
    """Catalogue coverage, Gini index and Shannon entropy (nats) of per-item recommendation
    counts (non-negative integers), all from the histogram h[v] = number of items counted v
    times, which has far fewer entries than the catalogue:

    * coverage = (n - h[0]) / n;
    * entropy = -sum_i p_i ln p_i with p_i = c_i / T (T the total) = -sum_v h[v] (v/T) ln(v/T);
    * Gini = sum_i (2 i - n - 1) c_(i) / (n T) with c_(1) <= ... <= c_(n), without sorting:
      the items counted v times fill the consecutive positions start_v + 1 .. start_v + h[v],
      whose weights 2 i - n - 1 sum to h[v] (2 start_v + h[v] - n) (integers, exact in int64).

    Gini and entropy are NaN when nothing was counted.
    """
    n = counts.shape[0]
    hist = np.bincount(counts)
    values = np.flatnonzero(hist)
    h = hist[values]
    total = float((values * h).sum())
    out = {"coverage": float(n - hist[0]) / n if n else math.nan}
    if total == 0:
        return {**out, "gini": math.nan, "entropy": math.nan}
    start = np.cumsum(h) - h
    weights = h * (2 * start + h - n)
    out["gini"] = float((values.astype(np.float64) * weights).sum() / (n * total))
    nz = values > 0
    p = values[nz] / total
    out["entropy"] = float(-(h[nz] * p * np.log(p)).sum())
    return out
