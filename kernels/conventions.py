"""Ranking metrics under every peer's conventions, plus the top-k lists for beyond-accuracy metrics.

The default evaluation (binary relevance, lower item index first on ties, MAP over min(k, n_ho),
the metrics of :mod:`.ranking`, with or without beyond-accuracy sums) runs
:func:`evcf_fast.kernels.ranking.topk_metrics`. This file
holds the general kernel that the metric engine calls for anything else; it reuses the same
candidate search (:func:`.ranking._candidates`: one streamed pass, no sort, no copy of the row),
so it reads the scores once as well. Array contract as in :mod:`.ranking`, plus:

* ``ho_gain``: float64 gain per stored held-out entry, aligned with ``ho_indices`` (1 for binary
  relevance, the stored value (linear) or 2^value - 1 (exponential) for graded relevance);
* ``cumd[j] = discount[0] + ... + discount[j - 1]`` (length max(ks) + 1, ``cumd[0] = 0``);
* ``max_ho``: at least the largest number of held-out items of a row (scratch size).

Definitions (per row, ``n_ho`` held-out items, ranks 1..k, ``v`` the k_eff-th best score):

* ``tie_mode`` 0: equal scores rank the lower item index first; 1: the higher index first;
  2: NDCG takes the expected DCG over all orderings of tied items (a held-out item whose tie
  group of ``t`` non-excluded items starts after ``a`` better items gains
  ``gain * (cumd[min(a + t, k)] - cumd[min(a, k)]) / t``); the other metrics rank ties by
  lower index first.
* NDCG@k = DCG / IDCG; IDCG sums the ``min(n_ho, k)`` largest gains of the row (held-out items
  that are excluded included) times the discounts; with binary gains that is ``idcg``.
* MAP@k = sum over hit ranks r <= k of hits@r / r, divided by min(k, n_ho) (``map_mode`` 0),
  n_ho (1) or the number of hits within k (2; 0 without hits).
* R-precision@k (``RPREC``) = hits within rank min(k, n_ho) / n_ho: R-precision itself when
  n_ho <= k, and what trec_eval / ranx give for a run cut at k otherwise.
* F1@k (``F1``) = 2 P R / (P + R) with P = hits@k / k and R the Recall@k of ``recall_mode``;
  0 without hits.

Beyond-accuracy sums: for each cut-off ``bks[b]`` (int64, strictly decreasing), the row's top
``bks[b]`` items (fewer when fewer remain: ``len_out[u, b]``) are counted per item in the
calling thread's slab of ``tables`` and their popularity and self-information summed into
``pop_out[u, b]`` / ``info_out[u, b]``; the top-k lists are never written out
(:func:`.ranking._beyond_row`, shared with the default kernel).
"""

import numba as nb
import numpy as np

from .ranking import (
    _JIT,
    _ROWS_PER_TASK,
    HITRATE,
    MAP,
    MRR,
    NDCG,
    NEG_INF,
    PRECISION,
    RECALL,
    _better,
    _beyond_row,
    _candidates,
    _prefetch_sample,
    _row_scratch,
    _rth_largest,
    _split,
)

RPREC = 6
F1 = 7


@nb.njit(**_JIT)
def _tie_counts(row, ex, v, tied, n_tied, lows):
    """Non-excluded items of the row scoring exactly v (NaN as -inf); ``lows[q]`` gets how many
    of them have an index below ``tied[q]`` (``tied`` ascending)."""
    n = row.shape[0]
    ne = ex.shape[0]
    p = 0
    q = 0
    cnt = 0
    for j in range(n):
        while q < n_tied and tied[q] == j:
            lows[q] = cnt
            q += 1
        while p < ne and ex[p] < j:
            p += 1
        if p < ne and ex[p] == j:
            continue
        x = np.float64(row[j])
        if x != x:
            x = NEG_INF
        cnt += np.int64(x == v)
    return cnt


@nb.njit(**_JIT)
def _records(row, ex, ho, hg, cs, ci, m, k_eff, floor, has_floor, tie_mode, v, rk, ra, rt, rg,
             tied, tpos, lows):
    """Held-out items that can count within the top k_eff, as records: rank ``rk`` (lower index
    first, or higher index first with tie_mode 1), items strictly better ``ra``, size of the tie
    group ``rt``, gain ``rg``. Sorted by rank; returns their number."""
    nr = 0
    ne = ex.shape[0]
    p = 0
    n_tied = 0
    for q in range(ho.shape[0]):
        h = ho[q]
        while p < ne and ex[p] < h:
            p += 1
        if p < ne and ex[p] == h:
            continue
        x = np.float64(row[h])
        if x != x:
            x = NEG_INF
        if tie_mode == 0:
            if has_floor and not x > floor:
                continue
            c = 1
            for t in range(m):
                c += np.int64(_better(cs[t], ci[t], x, h))
            if c > k_eff:
                continue
            rk[nr] = c
            ra[nr] = c - 1
            rt[nr] = 1
        else:
            if not x >= v:  # at least k_eff items score above it
                continue
            a = 0
            t_eq = 0
            lo = 0
            for t in range(m):
                s = cs[t]
                a += np.int64(s > x)
                if s == x:
                    t_eq += 1
                    lo += np.int64(ci[t] < h)
            if x == v:  # its tie group may reach beyond the candidates: counted on the row
                tied[n_tied] = h
                tpos[n_tied] = nr
                n_tied += 1
            rk[nr] = a + lo + 1
            ra[nr] = a
            rt[nr] = t_eq
        rg[nr] = hg[q]
        nr += 1
    if n_tied:
        e = _tie_counts(row, ex, v, tied, n_tied, lows)
        for q in range(n_tied):
            r = tpos[q]
            rt[r] = e
            rk[r] = ra[r] + lows[q] + 1
    if tie_mode == 1:
        for r in range(nr):  # a + (ties with a higher index) + 1
            rk[r] = ra[r] + rt[r] - (rk[r] - ra[r] - 1)
    _sort_records(rk, ra, rt, rg, nr)
    return nr


@nb.njit(**_JIT)
def _sort_records(rk, ra, rt, rg, nr):
    """Insertion sort of the records by rank (few per row)."""
    for i in range(1, nr):
        a, b, c, d = rk[i], ra[i], rt[i], rg[i]
        j = i
        while j > 0 and rk[j - 1] > a:
            rk[j], ra[j], rt[j], rg[j] = rk[j - 1], ra[j - 1], rt[j - 1], rg[j - 1]
            j -= 1
        rk[j], ra[j], rt[j], rg[j] = a, b, c, d


@nb.njit(**_JIT)
def _ideal(hg, k_max, discount, gbuf, gidcg):
    """Fill gidcg[:min(n_ho, k_max)] with the row's graded IDCG per cut-off (sum of the largest
    gains times the discounts; binary gains read the shared ``idcg`` table instead)."""
    c = min(hg.shape[0], k_max)
    if c > 0:
        _rth_largest(hg, c, gbuf)  # leaves the c largest gains in gbuf[:c], descending
    acc = 0.0
    for r in range(c):
        acc += gbuf[r] * discount[r]
        gidcg[r] = acc


@nb.njit(**_JIT)
def _metrics_ext(rk, ra, rt, rg, nr, n_ho, ks, codes, recall_mode, map_mode, tie_mode, discount,
                 cumd, gidcg, out):
    """Every requested metric of one row from its records (see the module docstring)."""
    for q in range(ks.shape[0]):
        k = ks[q]
        code = codes[q]
        if n_ho == 0:
            out[q] = np.nan
            continue
        cut = min(k, n_ho)
        hits = 0
        first = 0
        hits_r = 0
        dcg = 0.0
        ap = 0.0
        for t in range(nr):
            r = rk[t]
            if r <= k:
                hits += 1
                if hits == 1:
                    first = r
                dcg += rg[t] * discount[r - 1]
                ap += hits / r
                if r <= cut:
                    hits_r += 1
        if code == NDCG:
            if tie_mode == 2:
                dcg = 0.0
                for t in range(nr):
                    a = ra[t]
                    if a < k:
                        dcg += rg[t] * (cumd[min(a + rt[t], k)] - cumd[a]) / rt[t]
            out[q] = dcg / gidcg[cut - 1]
        elif code == RECALL:
            out[q] = hits / (cut if recall_mode == 0 else n_ho)
        elif code == PRECISION:
            out[q] = hits / k
        elif code == HITRATE:
            out[q] = 1.0 if hits > 0 else 0.0
        elif code == MRR:
            out[q] = 1.0 / first if hits > 0 else 0.0
        elif code == MAP:
            if map_mode == 0:
                out[q] = ap / cut
            elif map_mode == 1:
                out[q] = ap / n_ho
            else:
                out[q] = ap / hits if hits > 0 else 0.0
        elif code == RPREC:
            out[q] = hits_r / n_ho
        else:  # F1
            if hits == 0:
                out[q] = 0.0
            else:
                prec = hits / k
                rec = hits / (cut if recall_mode == 0 else n_ho)
                out[q] = 2.0 * prec * rec / (prec + rec)


@nb.njit(**_JIT)
def _kth_largest(cs, ci, m, k, floor, has_floor, sel, buf, ties):
    """The k-th largest of cs[:m] (1 <= k <= m); sel, buf and ties (>= m) are scratch."""
    _, need = _split(cs, ci, m, k, floor, has_floor, sel, buf, ties, True)
    return buf[need - 1]


@nb.njit(parallel=True, **_JIT)
def topk_metrics_ext(scores, excl_indptr, excl_indices, ho_indptr, ho_indices, ho_gain, ks,
                     codes, recall_mode, map_mode, tie_mode, graded, discount, idcg, cumd, max_ho,
                     bks, tables, with_pop, count_empty, pop_out, info_out, len_out, out,
                     nan_rows):
    """Fused masked top-K, metrics under the given conventions and beyond-accuracy sums.

    Arguments as in :func:`.ranking.topk_metrics` and the module docstring; ``out``,
    ``nan_rows``, ``pop_out``, ``info_out`` (float64) and ``len_out`` (int64, list lengths),
    each (n_rows, len(bks)), are written; the counts of ``tables`` (item records,
    (n_threads, len(bks), n_items), counts zeroed by the caller, one slab per Numba thread) are
    added to for the rows with held-out items (every row when ``count_empty``). ``ks`` may be
    empty when only lists are asked.
    """
    n_rows, n_items = scores.shape
    k_acc = ks.max() if ks.shape[0] else 1
    k_b = bks.max() if bks.shape[0] else 1
    k = min(max(k_acc, k_b), n_items)
    n_tasks = (n_rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        cs, ci, top, tb, masks, summ = _row_scratch(scores, k)
        size = max(max_ho, 1)
        rk = np.empty(size, np.int64)
        ra = np.empty(size, np.int64)
        rt = np.empty(size, np.int64)
        rg = np.empty(size, np.float64)
        tied = np.empty(size, np.int64)
        tpos = np.empty(size, np.int64)
        lows = np.empty(size, np.int64)
        gbuf = np.empty(k, np.float64)
        gidcg = np.empty(k, np.float64)
        buf = np.empty(cs.shape[0], np.float64)
        ties = np.empty(cs.shape[0], np.int64)
        sel = np.empty(cs.shape[0], np.int64)
        for u in range(task * _ROWS_PER_TASK, min(n_rows, (task + 1) * _ROWS_PER_TASK)):
            row = scores[u]
            nxt = scores[min(u + 1, n_rows - 1)]
            _prefetch_sample(nxt)
            ex = excl_indices[excl_indptr[u]:excl_indptr[u + 1]]
            lo, hi = ho_indptr[u], ho_indptr[u + 1]
            ho = ho_indices[lo:hi]
            hg = ho_gain[lo:hi]
            k_eff, m, floor, has_floor, has_nan = _candidates(row, ex, k, cs, ci, top, tb, masks,
                                                              summ, nxt)
            nan_rows[u] = has_nan
            v = NEG_INF
            if k_eff > 0 and tie_mode != 0:
                v = _kth_largest(cs, ci, m, k_eff, floor, has_floor, sel, buf, ties)
            if ks.shape[0]:
                nr = 0
                if ho.shape[0] > 0 and k_eff > 0:
                    nr = _records(row, ex, ho, hg, cs, ci, m, k_eff, floor, has_floor, tie_mode,
                                  v, rk, ra, rt, rg, tied, tpos, lows)
                if ho.shape[0] > 0 and graded:
                    _ideal(hg, k, discount, gbuf, gidcg)
                _metrics_ext(rk, ra, rt, rg, nr, ho.shape[0], ks, codes, recall_mode, map_mode,
                             tie_mode, discount, cumd, gidcg if graded else idcg, out[u])
            if bks.shape[0]:
                _beyond_row(ci, cs, m, k_eff, floor, has_floor, False, bks,
                            tables[nb.get_thread_id()], with_pop,
                            count_empty or ho.shape[0] > 0, pop_out[u], info_out[u], len_out[u],
                            sel, buf, ties)


@nb.njit(parallel=True, **_JIT)
def topk_metrics_from_topk_ext(topk, excl_indptr, excl_indices, ho_indptr, ho_indices, ho_gain,
                               ks, codes, recall_mode, map_mode, graded, discount, idcg, cumd,
                               max_ho, bks, tables, with_pop, count_empty, pop_out, info_out,
                               len_out, out):
    """:func:`topk_metrics_ext` for precomputed top-K lists (as
    :func:`.ranking.topk_metrics_from_topk`: excluded items are dropped from the lists); the
    lists' order is the ranking, so there are no ties."""
    n_rows, width = topk.shape
    k_acc = ks.max() if ks.shape[0] else 1
    k_b = bks.max() if bks.shape[0] else 1
    k = max(k_acc, k_b)
    n_tasks = (n_rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        size = max(max_ho, 1)
        rk = np.empty(size, np.int64)
        ra = np.empty(size, np.int64)
        rt = np.ones(size, np.int64)
        rg = np.empty(size, np.float64)
        gbuf = np.empty(k, np.float64)
        gidcg = np.empty(k, np.float64)
        lst = np.empty(k, np.int64)
        dummy = np.empty(k, np.float64)
        for u in range(task * _ROWS_PER_TASK, min(n_rows, (task + 1) * _ROWS_PER_TASK)):
            ex = excl_indices[excl_indptr[u]:excl_indptr[u + 1]]
            lo, hi = ho_indptr[u], ho_indptr[u + 1]
            ho = ho_indices[lo:hi]
            hg = ho_gain[lo:hi]
            rank = 0
            nr = 0
            for t in range(width):
                item = topk[u, t]
                if item < 0 or rank == k:
                    break
                j = np.searchsorted(ex, item)
                if j < ex.shape[0] and ex[j] == item:
                    continue
                lst[rank] = item
                rank += 1
                j = np.searchsorted(ho, item)
                if j < ho.shape[0] and ho[j] == item:
                    rk[nr] = rank
                    ra[nr] = rank - 1
                    rg[nr] = hg[j]
                    nr += 1
            if ks.shape[0]:
                if ho.shape[0] > 0 and graded:
                    _ideal(hg, k, discount, gbuf, gidcg)
                _metrics_ext(rk, ra, rt, rg, nr, ho.shape[0], ks, codes, recall_mode, map_mode,
                             0, discount, cumd, gidcg if graded else idcg, out[u])
            if bks.shape[0]:
                _beyond_row(lst, dummy, rank, rank, NEG_INF, False, True, bks,
                            tables[nb.get_thread_id()], with_pop,
                            count_empty or ho.shape[0] > 0, pop_out[u], info_out[u], len_out[u],
                            lst, dummy, lst)
