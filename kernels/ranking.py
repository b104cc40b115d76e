"""Fused masked top-K selection and binary-relevance ranking metrics (Numba).

Follows the evaluation of Liang et al., "Variational Autoencoders for Collaborative Filtering"
(WWW 2018; dawenl/vae_cf ``NDCG_binary_at_k_batch`` / ``Recall_at_k_batch``), as used by Kim & Suh,
"Enhancing VAEs for Collaborative Filtering" (RecSys 2019; psywaves/EVCF ``utils/evaluation.py``),
with the gaps of those references closed by an explicit tie rule and shorter lists.

Array contract (enforced by ``evcf_fast.metrics``, assumed here; nothing is validated):

* ``scores``: float32 or float64, C-order, shape ``(n_rows, n_items)``, ``n_items >= 1``.
* ``excl_indptr`` / ``ho_indptr``: int64, ``n_rows + 1`` CSR row pointers into ``*_indices``
  (they need not start at 0, so a row block of a larger CSR is passed as a slice of its indptr).
* ``excl_indices`` / ``ho_indices``: int32 or int64 item ids in ``[0, n_items)``, strictly
  increasing within each row (canonical CSR).
* ``ks``: int64 cut-offs, each in ``[1, n_items]``; ``codes``: int64 metric codes (``NDCG`` ...),
  one per cut-off.
* ``discount[r] = 1 / log2(r + 2)`` and ``idcg[r] = discount[0] + ... + discount[r]`` (float64,
  length ``max(ks)``): passed in so that every path shares the same table.

Definitions (binary relevance, ranks 1..k, ``n_ho`` = the row's held-out count):

* ranking order: higher score first; equal scores rank the LOWER item index first; -inf ranks
  after every finite score; NaN ranks as -inf (rows holding a NaN are reported so that the
  caller can refuse them); excluded items never appear. If fewer than k items are not excluded
  the list is shorter.
* NDCG@k = sum over hits at rank r <= k of discount[r-1], divided by idcg[min(n_ho, k) - 1].
* Recall@k = hits@k / min(k, n_ho) (``recall_mode == 0``) or hits@k / n_ho (``recall_mode == 1``).
* Precision@k = hits@k / k; HitRate@k = 1 if hits@k > 0; MRR@k = 1 / rank of the first hit
  (0 if none); MAP@k = (sum over hit ranks r <= k of hits@r / r) / min(k, n_ho).
* held-out items that are also excluded count in ``n_ho`` but can never be hit (as in vae_cf,
  which masks them to -inf before ranking).
* rows with no held-out items get NaN in every metric; the caller drops them from means.

Algorithm of :func:`topk_metrics`, per row, without sorting or copying the row and without a
mask. A sample of the row (runs of consecutive items spread over it) gives a threshold that
about ``_OVERSHOOT * K`` scores exceed. One pass over the row then turns each block of
``_BLOCK`` scores into a bit mask with one vectorised comparison and visits only the set bits:
survivors that are not excluded (the sorted exclude list is walked with a pointer) go to a
candidate buffer. Every item left out of the buffer is beaten by at least K candidates, so the
rank of a held-out item is 1 + the number of candidates that beat it: the top-K list is never
selected or sorted. If the sample was unlucky (fewer than K survivors) the row, now in cache, is
scanned again with a lower threshold and finally with none, so the result is exact either way.
If the buffer fills, a quickselect keeps the best K and raises the threshold.
"""

import numba as nb
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

_JIT = dict(nogil=True, cache=True)

# metric codes shared with evcf_fast.metrics (its registry maps names to these)
NDCG = 0
RECALL = 1
PRECISION = 2
HITRATE = 3
MRR = 4
MAP = 5

_BLOCK = 64  # scores tested per vectorised pass (one bit each in a uint64 mask)
_SAMPLE_RUNS = 64  # the sample that sets the first threshold: runs spread over the row ...
_SAMPLE_RUN = 16  # ... of this many consecutive items
_SAMPLE = _SAMPLE_RUNS * _SAMPLE_RUN
_OVERSHOOT = 2.0  # the sampled threshold aims at about _OVERSHOOT * K survivors ...
_FALLBACK = 3  # ... and the fallback threshold at _FALLBACK times as many
_TOP_MAX = 96  # longest sorted list kept while sampling (a longer one: no sampling)
_ROWS_PER_TASK = 16  # rows per parallel task: scratch buffers are allocated once per task
NEG_INF = -np.inf


# ---------------------------------------------------------------------------------------------
# scalar helpers


@intrinsic
def _cttz(typingctx, x):
    """Count trailing zero bits (LLVM ``cttz``): the position of the lowest set bit."""

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 0))

    return x(x), codegen


@nb.njit(inline="always", **_JIT)
def _better(sa, ia, sb, ib):
    """(score, item) a ranks strictly before b: higher score, then lower item index."""
    return (sa > sb) | ((sa == sb) & (ia < ib))


@nb.njit(**_JIT)
def _select(cs, ci, m, k):
    """Reorder cs/ci[:m] so that [:k] holds the k best (unordered) and [k-1] the k-th best.

    Quickselect with a median-of-three pivot and a branch-free partition; keys are distinct
    (item ids are unique), so equal keys cannot degrade it.
    """
    lo = 0
    hi = m - 1
    target = k - 1
    while hi > lo:
        mid = (lo + hi) >> 1
        # median of three moved to hi as the pivot
        if _better(cs[mid], ci[mid], cs[lo], ci[lo]):
            cs[mid], cs[lo] = cs[lo], cs[mid]
            ci[mid], ci[lo] = ci[lo], ci[mid]
        if _better(cs[hi], ci[hi], cs[lo], ci[lo]):
            cs[hi], cs[lo] = cs[lo], cs[hi]
            ci[hi], ci[lo] = ci[lo], ci[hi]
        if _better(cs[mid], ci[mid], cs[hi], ci[hi]):
            cs[mid], cs[hi] = cs[hi], cs[mid]
            ci[mid], ci[hi] = ci[hi], ci[mid]
        ps = cs[hi]
        pi = ci[hi]
        store = lo
        for q in range(lo, hi):
            # branch-free Lomuto: swap unconditionally, advance when q beat the pivot
            xs = cs[q]
            xi = ci[q]
            cs[q] = cs[store]
            ci[q] = ci[store]
            cs[store] = xs
            ci[store] = xi
            store += np.int64(_better(xs, xi, ps, pi))
        cs[hi], cs[store] = cs[store], cs[hi]
        ci[hi], ci[store] = ci[store], ci[hi]
        if store == target:
            return
        if store < target:
            lo = store + 1
        else:
            hi = store - 1


@nb.njit(**_JIT)
def _sample_thresholds(row, ex, r, r_fb, top):
    """The r-th and r_fb-th largest scores of a sample of the non-excluded items (NaN as -inf).

    The sample is ``_SAMPLE_RUNS`` runs of ``_SAMPLE_RUN`` consecutive items spread evenly over
    the row: evenly spread so that item ids sorted by popularity do not bias it, in runs so that
    it touches few cache lines. Returns (thr, ok, thr_fb, ok_fb, has_nan); ok is false when
    fewer than r sampled items are not excluded (same for the fallback).
    """
    n = row.shape[0]
    span = n - _SAMPLE_RUN
    # first touch every run with independent loads so that the cache misses overlap (the
    # NaN test keeps the loads alive and is true information about the row)
    has_nan = False
    for b in range(_SAMPLE_RUNS):
        j0 = (b * span) // (_SAMPLE_RUNS - 1)
        has_nan |= row[j0] != row[j0]
        has_nan |= row[j0 + _SAMPLE_RUN - 1] != row[j0 + _SAMPLE_RUN - 1]
    ne = ex.shape[0]
    filled = 0
    p = 0
    for b in range(_SAMPLE_RUNS):
        j0 = (b * span) // (_SAMPLE_RUNS - 1)
        for j in range(j0, j0 + _SAMPLE_RUN):
            while p < ne and ex[p] < j:
                p += 1
            if p < ne and ex[p] == j:
                continue
            x = np.float64(row[j])
            if x != x:
                x = NEG_INF
            if filled < r_fb:
                q = filled
                filled += 1
            elif x > top[r_fb - 1]:
                q = r_fb - 1
            else:
                continue
            # insertion into the descending list top[:filled]
            while q > 0 and top[q - 1] < x:
                top[q] = top[q - 1]
                q -= 1
            top[q] = x
    thr = top[r - 1] if filled >= r else NEG_INF
    thr_fb = top[r_fb - 1] if filled >= r_fb else NEG_INF
    return thr, filled >= r, thr_fb, filled >= r_fb, has_nan


@nb.njit(inline="always", **_JIT)
def _take(row, ex, mask, base, m, p, thr, has_nan, k, cs, ci):
    """Visit the set bits of ``mask`` (items base + bit): append those that are not excluded and
    beat the threshold; compact the buffer when full. Returns (m, p, thr, has_nan)."""
    ne = ex.shape[0]
    while mask:
        t = base + np.int64(_cttz(mask))
        mask &= mask - np.uint64(1)
        x = np.float64(row[t])
        if x != x:
            has_nan = True
            continue
        if not x > thr:  # the threshold rose after a compaction within this block
            continue
        while p < ne and ex[p] < t:
            p += 1
        if p < ne and ex[p] == t:
            continue
        cs[m] = x
        ci[m] = t
        m += 1
        if m == cs.shape[0]:  # keep the best k and raise the threshold to the k-th best
            _select(cs, ci, m, k)
            m = k
            thr = cs[k - 1]
    return m, p, thr, has_nan


@nb.njit(**_JIT)
def _scan(row, ex, thr, have_thr, k, cs, ci, tb):
    """Collect candidates for the top k of the row into cs/ci; return (m, has_nan).

    Postcondition: every non-excluded item left out of cs/ci[:m] is beaten by at least
    min(k, m) items inside it. Without a threshold every item is taken until the buffer is full
    (NaN as -inf); from then on, or from the start with a threshold, only scores strictly above
    the threshold are taken. The strict comparison is exact after a compaction because later
    items have higher indices and so lose ties; for a given threshold the caller checks that
    m >= k. ``tb`` is a 1-element scratch array of the row's dtype: every threshold is a score
    of the row, so comparing in the row's own dtype is exact and keeps the block test
    vectorised.
    """
    n = row.shape[0]
    ne = ex.shape[0]
    cap = cs.shape[0]
    p = 0
    m = 0
    j = 0
    has_nan = False
    if not have_thr:
        # take every item until the first compaction gives a threshold
        while j < n:
            x = np.float64(row[j])
            if x != x:
                has_nan = True
                x = NEG_INF
            while p < ne and ex[p] < j:
                p += 1
            if p < ne and ex[p] == j:
                j += 1
                continue
            cs[m] = x
            ci[m] = j
            m += 1
            j += 1
            if m == cap:
                _select(cs, ci, m, k)
                m = k
                have_thr = True
                break
        if not have_thr:
            return m, has_nan
        thr = cs[k - 1]
    tb[0] = thr
    thr_n = tb[0]
    n_full = j + ((n - j) // _BLOCK) * _BLOCK
    while j < n_full:
        # one vectorised pass over the block: a bit per score that beats the threshold or is
        # NaN (NaN fails every comparison); only the set bits are then visited
        mask = np.uint64(0)
        for t in range(_BLOCK):
            mask |= np.uint64(not (row[j + t] <= thr_n)) << np.uint64(t)
        if mask:
            m, p, thr, has_nan = _take(row, ex, mask, j, m, p, thr, has_nan, k, cs, ci)
            tb[0] = thr
            thr_n = tb[0]
        j += _BLOCK
    if j < n:
        mask = np.uint64(0)
        for t in range(n - j):
            mask |= np.uint64(not (row[j + t] <= thr_n)) << np.uint64(t)
        m, p, thr, has_nan = _take(row, ex, mask, j, m, p, thr, has_nan, k, cs, ci)
    return m, has_nan


@nb.njit(**_JIT)
def _candidates(row, ex, k, cs, ci, top, tb):
    """Candidates for the top k of one row (see :func:`_scan`).

    Returns (k_eff, m, floor, has_floor, has_nan): k_eff = min(k, number of non-excluded
    items); cs/ci[:m] with m >= k_eff satisfy the postcondition of :func:`_scan`; when
    has_floor, every candidate scores strictly above ``floor`` and nothing else can rank in the
    top k_eff.
    """
    n = row.shape[0]
    k_eff = min(k, n - ex.shape[0])
    if k_eff <= 0:
        has_nan = False
        for j in range(n):
            if row[j] != row[j]:
                has_nan = True
        return 0, 0, NEG_INF, False, has_nan
    r = int(np.ceil(_OVERSHOOT * k_eff * _SAMPLE / n))
    r_fb = _FALLBACK * r
    if n >= 2 * _SAMPLE and r_fb <= top.shape[0]:
        thr, ok, thr_fb, ok_fb, _ = _sample_thresholds(row, ex, r, r_fb, top)
        if ok:
            m, has_nan = _scan(row, ex, thr, True, k_eff, cs, ci, tb)
            if m >= k_eff:
                return k_eff, m, thr, True, has_nan
        if ok_fb:
            m, has_nan = _scan(row, ex, thr_fb, True, k_eff, cs, ci, tb)
            if m >= k_eff:
                return k_eff, m, thr_fb, True, has_nan
    m, has_nan = _scan(row, ex, NEG_INF, False, k_eff, cs, ci, tb)
    return k_eff, m, NEG_INF, False, has_nan


@nb.njit(**_JIT)
def _hit_ranks(row, ex, ho, cs, ci, m, k_eff, floor, has_floor, ranks):
    """Ranks (1-based, ascending) of the held-out items that rank within the top k_eff.

    The rank of a non-excluded item is 1 + the number of candidates that beat it (exact
    whenever it is at most k_eff, by the postcondition of :func:`_scan`). Returns the count.
    """
    nh = 0
    ne = ex.shape[0]
    p = 0
    for q in range(ho.shape[0]):
        h = ho[q]
        while p < ne and ex[p] < h:
            p += 1
        if p < ne and ex[p] == h:
            continue
        x = np.float64(row[h])
        if x != x:
            x = NEG_INF
        if has_floor and not x > floor:
            continue
        c = 1
        for t in range(m):
            c += np.int64(_better(cs[t], ci[t], x, h))
        if c > k_eff:
            continue
        # insertion keeps ranks ascending (few hits per row)
        t = nh
        while t > 0 and ranks[t - 1] > c:
            ranks[t] = ranks[t - 1]
            t -= 1
        ranks[t] = c
        nh += 1
    return nh


@nb.njit(**_JIT)
def _metrics_row(ranks, nh, n_ho, ks, codes, recall_mode, discount, idcg, out):
    """Every requested metric of one row from its ascending hit ranks."""
    for q in range(ks.shape[0]):
        k = ks[q]
        code = codes[q]
        if n_ho == 0:
            out[q] = np.nan
            continue
        hits = 0
        dcg = 0.0
        ap = 0.0
        for t in range(nh):
            r = ranks[t]
            if r > k:
                break
            hits += 1
            dcg += discount[r - 1]
            ap += hits / r
        cut = min(k, n_ho)
        if code == NDCG:
            out[q] = dcg / idcg[cut - 1]
        elif code == RECALL:
            out[q] = hits / (cut if recall_mode == 0 else n_ho)
        elif code == PRECISION:
            out[q] = hits / k
        elif code == HITRATE:
            out[q] = 1.0 if hits > 0 else 0.0
        elif code == MRR:
            out[q] = 1.0 / ranks[0] if hits > 0 else 0.0
        else:  # MAP
            out[q] = ap / cut


# ---------------------------------------------------------------------------------------------
# parallel drivers


@nb.njit(parallel=True, **_JIT)
def topk_metrics(scores, excl_indptr, excl_indices, ho_indptr, ho_indices, ks, codes,
                 recall_mode, discount, idcg, out, nan_rows):
    """Fused masked top-K and ranking metrics for a block of rows (see the module docstring).

    Parameters
    ----------
    scores : float32 or float64 array of shape (n_rows, n_items), C-order
    excl_indptr, excl_indices : CSR of the items to exclude (fold-in items) for these rows
    ho_indptr, ho_indices : CSR of the held-out items for these rows
    ks, codes : int64 arrays of equal length, cut-off and metric code per output column
    recall_mode : int, 0 for hits / min(k, n_ho), 1 for hits / n_ho
    discount, idcg : float64 arrays of length max(ks)
    out : float64 array of shape (n_rows, len(ks)), written
    nan_rows : uint8 array of shape (n_rows,), written: 1 where the row holds a NaN score
    """
    n_rows, n_items = scores.shape
    k = min(ks.max(), n_items)
    cap = min(n_items, max(4 * k + 64, 256))
    n_tasks = (n_rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        cs = np.empty(cap, np.float64)
        ci = np.empty(cap, np.int64)
        top = np.empty(_TOP_MAX, np.float64)
        tb = np.empty(1, scores.dtype)
        ranks = np.empty(k, np.int64)
        for u in range(task * _ROWS_PER_TASK, min(n_rows, (task + 1) * _ROWS_PER_TASK)):
            row = scores[u]
            ex = excl_indices[excl_indptr[u]:excl_indptr[u + 1]]
            ho = ho_indices[ho_indptr[u]:ho_indptr[u + 1]]
            k_eff, m, floor, has_floor, has_nan = _candidates(row, ex, k, cs, ci, top, tb)
            nan_rows[u] = has_nan
            nh = 0
            if ho.shape[0] > 0 and k_eff > 0:
                nh = _hit_ranks(row, ex, ho, cs, ci, m, k_eff, floor, has_floor, ranks)
            _metrics_row(ranks, nh, ho.shape[0], ks, codes, recall_mode, discount, idcg, out[u])


@nb.njit(parallel=True, **_JIT)
def topk_metrics_from_topk(topk, excl_indptr, excl_indices, ho_indptr, ho_indices, ks, codes,
                           recall_mode, discount, idcg, out):
    """Ranking metrics from a precomputed top-K index matrix (best first).

    ``topk`` is an int32/int64 array of shape (n_rows, width); each row lists distinct item ids
    best first, padded at the end with -1 when shorter. Items of the exclude CSR are dropped from
    the list (the items after them move up), so excluded items never appear. The other
    arguments are those of :func:`topk_metrics`.
    """
    n_rows, width = topk.shape
    k = ks.max()
    n_tasks = (n_rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        ranks = np.empty(k, np.int64)
        for u in range(task * _ROWS_PER_TASK, min(n_rows, (task + 1) * _ROWS_PER_TASK)):
            ex = excl_indices[excl_indptr[u]:excl_indptr[u + 1]]
            ho = ho_indices[ho_indptr[u]:ho_indptr[u + 1]]
            rank = 0
            nh = 0
            for t in range(width):
                item = topk[u, t]
                if item < 0 or rank == k:
                    break
                j = np.searchsorted(ex, item)
                if j < ex.shape[0] and ex[j] == item:
                    continue
                rank += 1
                j = np.searchsorted(ho, item)
                if j < ho.shape[0] and ho[j] == item:
                    ranks[nh] = rank
                    nh += 1
            _metrics_row(ranks, nh, ho.shape[0], ks, codes, recall_mode, discount, idcg, out[u])


@nb.njit(parallel=True, **_JIT)
def masked_topk(scores, excl_indptr, excl_indices, k, out, nan_rows):
    """The top-k item ids of each row, best first, with the ranking order of the module.

    ``out`` is an int64 array of shape (n_rows, k), written; rows with fewer than k
    non-excluded items are padded with -1. ``nan_rows`` as in :func:`topk_metrics`.
    """
    n_rows, n_items = scores.shape
    kk = min(k, n_items)
    cap = min(n_items, max(4 * kk + 64, 256))
    n_tasks = (n_rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        cs = np.empty(cap, np.float64)
        ci = np.empty(cap, np.int64)
        top = np.empty(_TOP_MAX, np.float64)
        tb = np.empty(1, scores.dtype)
        for u in range(task * _ROWS_PER_TASK, min(n_rows, (task + 1) * _ROWS_PER_TASK)):
            row = scores[u]
            ex = excl_indices[excl_indptr[u]:excl_indptr[u + 1]]
            k_eff, m, floor, has_floor, has_nan = _candidates(row, ex, kk, cs, ci, top, tb)
            nan_rows[u] = has_nan
            if k_eff > 0:
                _select(cs, ci, m, k_eff)
            # order the winners: item index ascending, then a stable sort by score descending
            order = np.argsort(ci[:k_eff], kind="mergesort")
            vals = -cs[:k_eff][order]
            order2 = np.argsort(vals, kind="mergesort")
            for t in range(k_eff):
                out[u, t] = ci[order[order2[t]]]
            for t in range(k_eff, k):
                out[u, t] = -1
