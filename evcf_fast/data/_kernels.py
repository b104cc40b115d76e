"""Numba kernels behind the strong-generalization split and the synthetic-data writers.

They take and return raw NumPy arrays only (no Polars, no scipy), so each one can be tested from
a REPL with a few arrays. Every kernel is O(rows) or O(rows log row_length): the split of
Liang et al. (WWW 2018) / Kim & Suh (RecSys 2019), PAPER_SPEC section 1.1, without the per-user
pandas groupby of the reference notebook. The legacy NumPy RNG draws are not here: they must go
through ``numpy.random.RandomState`` to stay bit-identical, see ``split.py``.

Array contract used throughout: ``ucode``/``icode`` are dense int32 codes (users coded in ascending
original-id order), one entry per interaction row in file order; ``ptr``/``items`` is the stable
grouping of the item codes by user code (CSR-like, the items of one user in file order).
"""

from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(nogil=True, cache=True)


@nb.njit(**_JIT)
def group_items(ucode, icode, n_users):
    """Stable counting sort of the interactions by user code.

    Returns ``ptr`` (int64, n_users + 1) and ``items`` (int32): the item codes of user ``u`` are
    ``items[ptr[u]:ptr[u + 1]]``, in file order.
    """
    n = ucode.shape[0]
    ptr = np.zeros(n_users + 1, np.int64)
    for r in range(n):
        ptr[ucode[r] + 1] += 1
    for u in range(n_users):
        ptr[u + 1] += ptr[u]
    nxt = ptr[:-1].copy()
    items = np.empty(n, np.int32)
    for r in range(n):
        u = ucode[r]
        items[nxt[u]] = icode[r]
        nxt[u] += 1
    return ptr, items


@nb.njit(**_JIT)
def drop_repeats(ptr, items, n_items):
    """Keep the first occurrence of every item within each user segment (file order).

    Returns the compacted (``ptr``, ``items``); a marker per item remembers the last user that
    had it, so each user costs O(its rows).
    """
    n_users = ptr.shape[0] - 1
    new_ptr = np.zeros(n_users + 1, np.int64)
    out = np.empty(items.shape[0], np.int32)
    mark = np.full(n_items, -1, np.int64)
    q = 0
    for u in range(n_users):
        for p in range(ptr[u], ptr[u + 1]):
            i = items[p]
            if mark[i] != u:
                mark[i] = u
                out[q] = i
                q += 1
        new_ptr[u + 1] = q
    return new_ptr, out[:q].copy()


@nb.njit(**_JIT)
def first_appearance(ucode, icode, is_train_user, n_items):
    """Item vocabulary of the training users in first-appearance order (``pd.unique``).

    Returns ``sid_of`` (int32 per item code, -1 where the item never occurs in a training row)
    and the vocabulary size. Repeated (user, item) rows cannot change first appearances, so
    they need not be removed first.
    """
    sid_of = np.full(n_items, -1, np.int32)
    nxt = 0
    for r in range(ucode.shape[0]):
        if is_train_user[ucode[r]]:
            i = icode[r]
            if sid_of[i] < 0:
                sid_of[i] = nxt
                nxt += 1
    return sid_of, nxt


@nb.njit(**_JIT)
def gather_user_items(codes, ptr, items, sid_of):
    """For each user code in ``codes``: its items mapped to sids, in file order.

    Items outside the vocabulary (``sid_of < 0``) are dropped, as in the notebook's ``numerize``
    step. Returns (``optr`` int64, ``osid`` int32).
    """
    m = codes.shape[0]
    optr = np.zeros(m + 1, np.int64)
    for j in range(m):
        u = codes[j]
        c = 0
        for p in range(ptr[u], ptr[u + 1]):
            if sid_of[items[p]] >= 0:
                c += 1
        optr[j + 1] = optr[j] + c
    osid = np.empty(optr[m], np.int32)
    for j in range(m):
        u = codes[j]
        q = optr[j]
        for p in range(ptr[u], ptr[u + 1]):
            s = sid_of[items[p]]
            if s >= 0:
                osid[q] = s
                q += 1
    return optr, osid


@nb.njit(**_JIT)
def sort_rows(indptr, indices, n_cols):
    """Return ``indices`` with every CSR row sorted, in O(nnz + n_cols).

    A bucket pass by column, then a scatter back to the rows in increasing column order (a
    two-pass radix sort; far cheaper than a comparison sort per short row).
    """
    n_rows = indptr.shape[0] - 1
    nnz = indices.shape[0]
    cptr = np.zeros(n_cols + 1, np.int64)
    for p in range(nnz):
        cptr[indices[p] + 1] += 1
    for c in range(n_cols):
        cptr[c + 1] += cptr[c]
    nxt = cptr[:-1].copy()
    row_of = np.empty(nnz, np.int32)
    for j in range(n_rows):
        for p in range(indptr[j], indptr[j + 1]):
            c = indices[p]
            row_of[nxt[c]] = j
            nxt[c] += 1
    out = np.empty(nnz, np.int32)
    rnext = indptr[:-1].copy()
    for c in range(n_cols):
        for q in range(cptr[c], cptr[c + 1]):
            j = row_of[q]
            out[rnext[j]] = c
            rnext[j] += 1
    return out


@nb.njit(**_JIT)
def split_segments(order, optr, osid, is_heldout, n_cols):
    """Assemble fold-in and held-out CSR rows.

    Output row ``k`` is the input segment ``order[k]`` of (``optr``, ``osid``), split by the
    per-entry flag ``is_heldout``; both parts sorted (``n_cols`` columns). Returns
    (fold_in_indptr, fold_in_indices, heldout_indptr, heldout_indices).
    """
    m = order.shape[0]
    fptr = np.zeros(m + 1, np.int64)
    hptr = np.zeros(m + 1, np.int64)
    for k in range(m):
        j = order[k]
        h = 0
        for p in range(optr[j], optr[j + 1]):
            if is_heldout[p]:
                h += 1
        hptr[k + 1] = hptr[k] + h
        fptr[k + 1] = fptr[k] + (optr[j + 1] - optr[j]) - h
    find = np.empty(fptr[m], np.int32)
    hind = np.empty(hptr[m], np.int32)
    for k in range(m):
        j = order[k]
        f = fptr[k]
        h = hptr[k]
        for p in range(optr[j], optr[j + 1]):
            if is_heldout[p]:
                hind[h] = osid[p]
                h += 1
            else:
                find[f] = osid[p]
                f += 1
    return fptr, sort_rows(fptr, find, n_cols), hptr, sort_rows(hptr, hind, n_cols)


@nb.njit(**_JIT)
def smallest_keys(optr, keys, fraction, min_count):
    """The vectorised (``fast``, not notebook-identical) 80/20 draw.

    For each segment of length ``n >= min_count``, flag the ``int(fraction * n)`` entries with
    the smallest random ``keys``: a uniform draw without replacement, like ``choice``, but from a
    different random stream.
    """
    flag = np.zeros(keys.shape[0], np.bool_)
    for j in range(optr.shape[0] - 1):
        a, b = optr[j], optr[j + 1]
        n = b - a
        if n >= min_count:
            k = int(fraction * n)
            if k > 0:
                sel = np.argsort(keys[a:b])[:k]
                for t in range(k):
                    flag[a + sel[t]] = True
    return flag
