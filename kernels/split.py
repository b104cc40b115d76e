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
# the MT19937 helpers, inlined into their caller (as calls they cost 6x the draw itself)
_INLINE = dict(_JIT, inline="always")


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


@nb.njit(**_JIT)
def dense_codes(vals, limit):
    """Codes of non-negative integer ids through a presence table, in ascending id order.

    Returns (``codes`` int32, ``uniques`` int64, ok); ``ok`` is False (and nothing else is
    computed) when an id is negative or ``>= limit``: the caller then falls back to sorting.
    """
    n = vals.shape[0]
    hi = -1
    for r in range(n):
        v = vals[r]
        if v < 0 or v >= limit:
            return np.zeros(0, np.int32), np.zeros(0, np.int64), False
        if v > hi:
            hi = v
    code_of = np.zeros(hi + 1, np.int32)
    for r in range(n):
        code_of[vals[r]] = 1
    k = 0
    for v in range(hi + 1):
        if code_of[v]:
            code_of[v] = k + 1
            k += 1
    uniques = np.empty(k, np.int64)
    for v in range(hi + 1):
        if code_of[v]:
            uniques[code_of[v] - 1] = v
    codes = np.empty(n, np.int32)
    for r in range(n):
        codes[r] = code_of[vals[r]] - 1
    return codes, uniques, True


@nb.njit(**_JIT)
def count_distinct(ptr, items, n_items):
    """Distinct items per user segment (repeats of a (user, item) pair counted once)."""
    n_users = ptr.shape[0] - 1
    counts = np.zeros(n_users, np.int64)
    mark = np.full(n_items, -1, np.int64)
    for u in range(n_users):
        c = 0
        for p in range(ptr[u], ptr[u + 1]):
            i = items[p]
            if mark[i] != u:
                mark[i] = u
                c += 1
        counts[u] = c
    return counts


# --- the legacy NumPy MT19937 stream, for bit-identical RandomState.permutation draws --------

_MT_N = 624
_MT_M = 397


@nb.njit(**_INLINE)
def _mt_twist(key, i, j, k):
    y = (key[i] & np.uint32(0x80000000)) | (key[j] & np.uint32(0x7FFFFFFF))
    v = key[k] ^ (y >> np.uint32(1))
    if y & np.uint32(1):
        v ^= np.uint32(0x9908B0DF)
    key[i] = v


@nb.njit(**_INLINE)
def _mt_generate(key):
    """Refill the 624-word MT19937 state (numpy's mt19937_gen)."""
    for i in range(_MT_N - _MT_M):
        _mt_twist(key, i, i + 1, i + _MT_M)
    for i in range(_MT_N - _MT_M, _MT_N - 1):
        _mt_twist(key, i, i + 1, i + _MT_M - _MT_N)
    _mt_twist(key, _MT_N - 1, 0, _MT_M - 1)


@nb.njit(**_INLINE)
def _mt_next32(key, pos):
    """One tempered 32-bit output (numpy's mt19937_next32); ``pos`` is a 1-element array."""
    if pos[0] >= _MT_N:
        _mt_generate(key)
        pos[0] = 0
    y = key[pos[0]]
    pos[0] += 1
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    y ^= y >> np.uint32(18)
    return y


@nb.njit(**_INLINE)
def _random_interval(key, pos, mx):
    """Uniform integer in [0, mx] by masked rejection (numpy's legacy random_interval)."""
    if mx == 0:
        return 0
    mask = np.uint32(mx)
    mask |= mask >> np.uint32(1)
    mask |= mask >> np.uint32(2)
    mask |= mask >> np.uint32(4)
    mask |= mask >> np.uint32(8)
    mask |= mask >> np.uint32(16)
    while True:
        v = _mt_next32(key, pos) & mask
        if v <= np.uint32(mx):
            return np.int64(v)


@nb.njit(**_JIT)
def legacy_heldout_draw(optr, key, pos, fraction, min_count):
    """The notebook's per-user ``np.random.choice(n, int(fraction * n), replace=False)`` loop.

    Legacy ``choice`` without replacement is ``permutation(n)[:k]``, and ``permutation`` is
    ``arange(n)`` shuffled by a Fisher-Yates pass from the top (``random_interval(i)`` for
    ``i = n-1 .. 1``). This replays exactly that on the MT19937 state (``key``, ``pos``) of a
    ``RandomState`` (``get_state()``), segment by segment, for segments with ``n >= min_count``.
    Returns the held-out flag of every entry. Segments must be shorter than 2**32.
    """
    flag = np.zeros(optr[-1], np.bool_)
    buf = np.empty(0, np.int64)
    for j in range(optr.shape[0] - 1):
        a = optr[j]
        n = optr[j + 1] - a
        if n < min_count:
            continue
        if buf.shape[0] < n:
            buf = np.empty(n, np.int64)
        for t in range(n):
            buf[t] = t
        for i in range(n - 1, 0, -1):
            s = _random_interval(key, pos, i)
            tmp = buf[i]
            buf[i] = buf[s]
            buf[s] = tmp
        k = int(fraction * n)
        for t in range(k):
            flag[a + buf[t]] = True
    return flag
