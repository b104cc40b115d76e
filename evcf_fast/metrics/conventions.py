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


@dataclass(frozen=True)
class Beyond:
    """Kernel arguments for the beyond-accuracy metrics of an evaluation."""

    specs: tuple[MetricSpec, ...]
    bks: np.ndarray  # int64 distinct cut-offs, decreasing
    pop: np.ndarray  # float64 training popularity per item (users)
    info: np.ndarray  # float64 self-information per item, -log2(max(pop, 1) / n_train_users)

    def outputs(self, n_rows: int, n_items: int, n_slabs: int):
        """Zeroed per-item counts (one slab per Numba thread) and the per-row outputs
        (pop sums, self-information sums, list lengths) of the kernels."""
        nb = self.bks.size
        return (np.zeros((n_slabs if nb else 1, nb, n_items if nb else 0), np.int32),
                np.empty((n_rows, nb), np.float64), np.empty((n_rows, nb), np.float64),
                np.empty((n_rows, nb), np.int64))


def beyond_args(specs: tuple[MetricSpec, ...], train, n_items: int) -> Beyond:
    """Cut-offs and popularity tables for the list and global metrics among ``specs``."""
    bspecs = _beyond(specs)
    bks = np.array(sorted({s.k for s in bspecs}, reverse=True), np.int64)
    needs_train = [str(s) for s in bspecs if METRICS[s.name].kind == "list"]
    if needs_train and train is None:
        raise ValueError(must_be("train", f"the training interactions (a scipy CSR with "
                                 f"n_items={n_items} columns) for {needs_train}", "None"))
    if train is None or not needs_train:  # empty tables: the kernels skip the gathers
        empty = np.zeros(0, np.float64)
        return Beyond(bspecs, bks, empty, empty)
    import scipy.sparse as sp

    if not sp.issparse(train) or train.format != "csr":
        raise TypeError(must_be("train", "a scipy.sparse CSR matrix/array",
                                type(train).__name__))
    if train.shape[1] != n_items:
        raise ValueError(must_be("train", f"{n_items} columns (n_items)",
                                 f"shape {tuple(train.shape)}"))
    n_train = int(train.shape[0])
    if n_train == 0:
        raise ValueError(must_be("train", "at least one user", "an empty matrix"))
    pop = np.bincount(np.asarray(train.indices), minlength=n_items).astype(np.float64)
    info = -np.log2(np.maximum(pop, 1.0) / n_train)
    return Beyond(bspecs, bks, pop, info)


def finish(per_user: dict[str, np.ndarray], n_heldout: np.ndarray, conv: Conventions,
           beyond: Beyond, counts, pop_out, info_out, len_out):
    """Apply the empty-user rule and add the beyond-accuracy values: (per_user, aggregate).

    ``counts`` (slabs, len(bks), n_items) are the kernels' per-item counts over the users in
    the means; ``pop_out``, ``info_out``, ``len_out`` their per-user sums and list lengths.
    """
    empty = n_heldout == 0
    if conv.empty_users == "zero" and empty.any():
        for values in per_user.values():
            values[empty] = 0.0
    aggregate: dict[str, float] = {}
    if not beyond.specs:
        return per_user, aggregate
    total = counts.sum(0)
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
            aggregate[str(s)] = _global_value(s.name, total[b])
    return per_user, aggregate


def _global_value(name: str, counts: np.ndarray) -> float:
    """Coverage, Gini index or Shannon entropy (nats) of per-item recommendation counts."""
    n = counts.shape[0]
    total = float(counts.sum())
    if name == "coverage":
        return float((counts > 0).sum()) / n
    if total == 0:
        return math.nan
    if name == "gini":
        c = np.sort(counts).astype(np.float64)
        i = np.arange(1, n + 1, dtype=np.float64)
        return float(((2 * i - n - 1) * c).sum() / (n * total))
    p = counts[counts > 0] / total  # entropy
    return float(-(p * np.log(p)).sum())
