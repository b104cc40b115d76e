"""One-pass structural check of CSR arrays (what ``SplitDataset.load`` trusts afterwards).

The metric engine and the training batches rely on every CSR matrix having a non-decreasing
``indptr`` within ``[0, nnz]`` and, per row, column indices in ``[0, n_cols)`` that strictly
increase (sorted, no duplicates). :func:`check_csr` verifies all of it with one branch-free
(vectorised) pass over the indices and one pass over the rows. Only when that finds a problem
does the slower :func:`first_problem` walk the rows to name the first bad one.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: Problem codes returned by :func:`check_csr` / :func:`first_problem`.
OK, BAD_INDPTR, INDEX_OUT_OF_RANGE, UNSORTED_OR_DUPLICATE = 0, 1, 2, 3


@nb.njit(nogil=True, cache=True)
def first_problem(indptr, indices, n_cols):
    """``(row, code)`` of the first structurally bad row, or ``(-1, OK)`` (a plain row walk)."""
    n_rows = indptr.shape[0] - 1
    nnz = indices.shape[0]
    for r in range(n_rows):
        a = indptr[r]
        b = indptr[r + 1]
        if b < a or a < 0 or b > nnz:
            return r, BAD_INDPTR
        prev = -1
        for j in range(a, b):
            i = indices[j]
            if i < 0 or i >= n_cols:
                return r, INDEX_OUT_OF_RANGE
            if i <= prev:
                return r, UNSORTED_OR_DUPLICATE
            prev = i
    return -1, OK


@nb.njit(nogil=True, cache=True)
def _drops(indices):
    """How many positions ``j >= 1`` have ``indices[j] <= indices[j - 1]`` (vectorised)."""
    n = 0
    for j in range(1, indices.shape[0]):
        n += indices[j] <= indices[j - 1]
    return n


@nb.njit(nogil=True, cache=True)
def _row_starts(indptr, indices, n_cols):
    """``(indptr ok, first/last index in range, drops at starts of non-empty rows)``."""
    n_rows = indptr.shape[0] - 1
    nnz = indices.shape[0]
    at_starts = 0
    in_range = True
    ok_ptr = True
    for r in range(n_rows):
        a = indptr[r]
        b = indptr[r + 1]
        ok_ptr &= (a <= b) & (a >= 0) & (b <= nnz)
        if ok_ptr and b > a:
            in_range &= (indices[a] >= 0) & (indices[b - 1] < n_cols)
            if a > 0:
                at_starts += indices[a] <= indices[a - 1]
    return ok_ptr, in_range, at_starts


@nb.njit(nogil=True, cache=True)
def check_csr(indptr, indices, n_cols):
    """Check CSR structure: ``(row, code)`` of the first bad row, or ``(-1, OK)``.

    ``indptr[0] == 0`` and ``indptr[-1] == len(indices)`` must hold already (the caller checks
    them). Rows strictly increase exactly when every position ``j`` with
    ``indices[j] <= indices[j - 1]`` is the start of a non-empty row: the pass over the indices
    counts such positions, the pass over the rows counts those at row starts, and the two counts
    agree only then. With sorted rows, the first and last index of each row bound the range.
    Three simple loops rather than one fused loop: each vectorises (the fused one does not).
    """
    drops = _drops(indices)
    ok_ptr, in_range, at_starts = _row_starts(indptr, indices, n_cols)
    if ok_ptr and in_range and drops == at_starts:
        return -1, OK
    return first_problem(indptr, indices, n_cols)


@nb.njit(parallel=True, nogil=True, cache=True)
def column_counts(indices, n_cols, n_chunks):
    """Stored entries per column, ``np.bincount(indices, minlength=n_cols)``, and how many
    indices fall outside ``[0, n_cols)`` (not counted): ``(counts int64, n_bad)``.

    The indices are cut into ``n_chunks`` contiguous chunks counted in parallel, each into its
    own int32 slab (the caller keeps each chunk below 2**31 entries), then the slabs are summed.
    The count is branch-free: an index outside the range adds 0 to column 0.
    """
    nnz = indices.shape[0]
    slabs = np.zeros((n_chunks, n_cols), np.int32)
    bad = np.zeros(n_chunks, np.int64)
    for c in nb.prange(n_chunks):
        slab = slabs[c]
        n_bad = 0
        for j in range(nnz * c // n_chunks, nnz * (c + 1) // n_chunks):
            i = indices[j]
            ok = (i >= 0) & (i < n_cols)
            slab[i if ok else 0] += np.int32(ok)
            n_bad += np.int64(not ok)
        bad[c] = n_bad
    counts = np.zeros(n_cols, np.int64)
    for c in range(n_chunks):
        for i in range(n_cols):
            counts[i] += slabs[c, i]
    return counts, bad.sum()
