"""Paired significance kernels: Fisher's randomisation (sign-flip) test and a paired bootstrap.

Both work on the per-user differences of many (system vs baseline, metric) pairs at once, one
row per pair ("column" of the comparison table), so that every random draw is made once and
reused by all of them.

Array contract (enforced by ``evcf_fast.compare``, assumed here; nothing is validated):

* ``diffs``: float64, C-order, shape ``(n_cols, n_users)``, finite, ``n_users >= 1``: row ``c``
  holds the paired differences ``system - baseline`` of every user for one pair.
* ``tol``: float64, shape ``(n_cols,)``, >= 0 (see :func:`sign_flip_counts`).
* ``seed``: an int in ``[0, 2**64)``; ``n_permutations`` / ``n_resamples``: >= 1;
  ``n_users < 2**32`` for the bootstrap.

**Random streams.** Draw ``r`` (a permutation or a bootstrap resample) of a kernel reads its
own SplitMix64 sequence (Steele, Lea & Flood, "Fast splittable pseudorandom number generators",
OOPSLA 2014), all arithmetic on uint64, wrapping::

    key     = mix64(seed ^ TAG)                   # TAG: SIGN_FLIP_TAG or BOOTSTRAP_TAG
    start_r = mix64(key + r)
    word_t  = mix64(start_r + (t + 1) * GAMMA)    # t = 0, 1, 2, ...

with :func:`mix64` SplitMix64's output function. A draw depends on ``(seed, r)`` alone, never
on the thread that runs it or on how draws are split into tasks, so results are identical for
every thread count, and a few lines of pure Python on ints masked to 64 bits reproduce every
number exactly (``tests/test_compare.py`` does).

**Sign flips** (:func:`sign_flip_counts`). Bit ``j`` of ``word_t`` belongs to user
``64 t + j``: 1 keeps the user's difference, 0 flips its sign; bits past the last user are
cleared. With ``S`` the sum of the kept differences the statistic is
``|sum of signed differences| = |2 S - total|``. Sums are formed in a fixed order, so that
Python can repeat them bit for bit: users are taken in groups of 8 (``8 g .. 8 g + 7``); a
group's part is ``0.0`` plus its kept differences in increasing user order, and ``S`` is
``0.0`` plus the groups' parts in increasing group order. ``total`` is ``S`` with every bit set.
Each group's 256 possible parts are tabulated once per task and column and then looked up by
the group's byte of sign bits ("four Russians"; 8 users per addition), which is what makes
10,000 permutations of 100,000 users cheap.

**Bootstrap** (:func:`bootstrap_means`). Draw ``t`` of a resample (``n_users`` draws) picks
user ``floor(word_t * n_users / 2**64)``, the high half of the 128-bit product (Lemire, "Fast
random integer generation in an interval", 2019, without the rejection step: the relative bias,
below ``n_users / 2**64``, is ignored). With ``k_u`` how often user ``u`` was drawn, the
resample's mean is ``sum over u of k_u * diffs[c, u]``, divided by ``n_users``. Those sums are
dot products that LLVM vectorises (reassociated, fused multiply-adds), so their last bits may
differ between machines or Numba versions, never between runs or thread counts; Python repeats
the draws exactly and the means to rounding.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(nogil=True, cache=True)

GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64's increment (2**64 / golden ratio)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_BYTE = np.uint64(0xFF)

#: stream tags: for one seed, the randomisation test and the bootstrap never share draws
SIGN_FLIP_TAG = np.uint64(0x5349474E464C4950)  # b"SIGNFLIP"
BOOTSTRAP_TAG = np.uint64(0x424F4F5453545250)  # b"BOOTSTRP"

_MAX_PERMS_PER_TASK = 4096  # permutations of one task share its tables (see _perms_per_task)
_MIN_PERMS_PER_TASK = 256
_GROUPS_PER_BLOCK = 512  # groups of 8 users whose sign bytes a task holds at a time
_FUSED = 4  # groups looked up per pass over a task's permutations
_RESAMPLES_PER_TASK = 16  # bootstrap resamples per task: their uint8 counts stay in L2
_USERS_PER_BLOCK = 4096  # users whose differences all resamples of a task use before moving on


@nb.njit(inline="always", **_JIT)
def mix64(z):
    """SplitMix64's output function (a bijection of uint64; Stafford's "Mix13")."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(inline="always", **_JIT)
def _start(key, r):
    return mix64(key + np.uint64(r))


@nb.njit(inline="always", **_JIT)
def _word(start, t):
    return mix64(start + np.uint64(t + 1) * GAMMA)


# ---------------------------------------------------------------------------------------------
# randomisation test


@nb.njit(**_JIT)
def _observed_sums(diffs):
    """Per column: the sum of all differences, in the group order of the lookups."""
    m, n = diffs.shape
    total = np.zeros(m)
    for c in range(m):
        s = 0.0
        for g0 in range(0, n, 8):
            part = 0.0
            for u in range(g0, min(n, g0 + 8)):
                part += diffs[c, u]
            s += part
        total[c] = s
    return total


@nb.njit(inline="always", **_JIT)
def _fill_table(table, d, u0, n):
    """table[b] = 0.0 + the d[u0 + k] with bit k of b set, added in increasing k (users past n
    count as 0.0; their bits are never set)."""
    table[0] = 0.0
    size = 1
    for k in range(8):
        v = d[u0 + k] if u0 + k < n else 0.0
        for b in range(size):
            table[size + b] = table[b] + v
        size *= 2


@nb.njit(parallel=True, **_JIT)
def _sign_flip_counts(diffs, tol, n_permutations, seed, perms_per_task):
    m, n = diffs.shape
    n_groups = (n + 7) // 8
    last_byte = np.uint8((1 << (n - 8 * (n_groups - 1))) - 1)  # users of the last group
    total = _observed_sums(diffs)
    key = mix64(np.uint64(seed) ^ SIGN_FLIP_TAG)
    n_tasks = (n_permutations + perms_per_task - 1) // perms_per_task
    counts = np.zeros((n_tasks, m), np.int64)
    for task in nb.prange(n_tasks):
        p0 = task * perms_per_task
        n_p = min(perms_per_task, n_permutations - p0)
        kept = np.zeros((m, n_p))  # per column and permutation: S so far
        flips = np.empty((_GROUPS_PER_BLOCK, n_p), np.uint8)  # sign byte per group, permutation
        tables = np.empty((_FUSED, 256))
        starts = np.empty(n_p, np.uint64)
        for i in range(n_p):
            starts[i] = _start(key, p0 + i)
        for g0 in range(0, n_groups, _GROUPS_PER_BLOCK):  # a multiple of 8: whole words
            g1 = min(n_groups, g0 + _GROUPS_PER_BLOCK)
            for i in range(n_p):
                for w in range(g0 // 8, (g1 + 7) // 8):
                    word = _word(starts[i], w)
                    for k in range(min(8, g1 - 8 * w)):
                        flips[8 * w + k - g0, i] = np.uint8((word >> np.uint64(8 * k)) & _BYTE)
            if g1 == n_groups:
                for i in range(n_p):
                    flips[g1 - 1 - g0, i] &= last_byte
            for c in range(m):
                for g in range(g0, g1, _FUSED):
                    n_g = min(_FUSED, g1 - g)
                    for q in range(n_g):
                        _fill_table(tables[q], diffs[c], 8 * (g + q), n)
                    r = g - g0
                    if n_g == _FUSED:  # four lookups per permutation, added in group order
                        t0, t1, t2, t3 = tables[0], tables[1], tables[2], tables[3]
                        f0, f1, f2, f3 = flips[r], flips[r + 1], flips[r + 2], flips[r + 3]
                        acc = kept[c]
                        for i in range(n_p):
                            acc[i] = (((acc[i] + t0[f0[i]]) + t1[f1[i]]) + t2[f2[i]]) + t3[f3[i]]
                    else:
                        for q in range(n_g):
                            for i in range(n_p):
                                kept[c, i] += tables[q, flips[r + q, i]]
        for c in range(m):
            threshold = abs(total[c]) - tol[c]
            for i in range(n_p):
                if abs(2.0 * kept[c, i] - total[c]) >= threshold:
                    counts[task, c] += 1
    out = np.zeros(m, np.int64)
    for task in range(n_tasks):  # integer counts: the sum cannot depend on the task split
        for c in range(m):
            out[c] += counts[task, c]
    return out


def _perms_per_task(n_permutations: int) -> int:
    # a few tasks per thread for balance, each large enough to amortise its tables
    threads = nb.get_num_threads()
    want = -(-n_permutations // (2 * threads))
    return int(min(_MAX_PERMS_PER_TASK, max(_MIN_PERMS_PER_TASK, want)))


def sign_flip_counts(diffs, tol, n_permutations, seed):
    """Per column: how many of ``n_permutations`` random sign flips are at least as extreme.

    A permutation flips the sign of each user's difference independently with probability 1/2,
    the same flips for every column (see the module docstring for the stream and the exact
    summation order). It counts for column ``c`` when its statistic, the absolute sum of the
    signed differences, is ``>= |sum of the differences| - tol[c]``: ``tol`` keeps statistics
    that equal the observed one in exact arithmetic (flipped zero differences, ties among
    discrete metric values) from being lost to rounding; the caller passes a tiny multiple of
    ``sum |diffs[c]|``.

    The two-sided p-value is then ``(count + 1) / (n_permutations + 1)``: the observed
    assignment counts as one of the permutations, so that p is never 0 and the test keeps its
    level (Phipson & Smyth, "Permutation p-values should never be zero", 2010). That division is
    the caller's.

    Returns
    -------
    ndarray of shape (n_cols,), int64
    """
    return _sign_flip_counts(diffs, tol, np.int64(n_permutations), np.uint64(seed),
                             np.int64(_perms_per_task(int(n_permutations))))


# ---------------------------------------------------------------------------------------------
# bootstrap


@nb.njit(inline="always", **_JIT)
def _mulhi(word, n):
    """floor(word * n / 2**64) for n < 2**32: the high half of the 128-bit product, from two
    32 x 32 -> 64-bit products (no carry is lost: the sum stays below 2**64)."""
    return ((word >> _S32) * n + (((word & _LOW32) * n) >> _S32)) >> _S32


@nb.njit(fastmath={"reassoc", "contract"}, **_JIT)
def _dot_tile(w0, w1, w2, w3, d0, d1, d2, d3, sums, i0, c0):
    """sums[i0 + a, c0 + b] += w_a . d_b for a, b in 0..3: 16 vectorised dot products that
    share their loads (the summation order within a block is LLVM's)."""
    s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = 0.0
    s20 = s21 = s22 = s23 = s30 = s31 = s32 = s33 = 0.0
    for j in range(d0.shape[0]):
        x0 = d0[j]
        x1 = d1[j]
        x2 = d2[j]
        x3 = d3[j]
        a = w0[j]
        s00 += a * x0
        s01 += a * x1
        s02 += a * x2
        s03 += a * x3
        a = w1[j]
        s10 += a * x0
        s11 += a * x1
        s12 += a * x2
        s13 += a * x3
        a = w2[j]
        s20 += a * x0
        s21 += a * x1
        s22 += a * x2
        s23 += a * x3
        a = w3[j]
        s30 += a * x0
        s31 += a * x1
        s32 += a * x2
        s33 += a * x3
    sums[i0, c0] += s00
    sums[i0, c0 + 1] += s01
    sums[i0, c0 + 2] += s02
    sums[i0, c0 + 3] += s03
    sums[i0 + 1, c0] += s10
    sums[i0 + 1, c0 + 1] += s11
    sums[i0 + 1, c0 + 2] += s12
    sums[i0 + 1, c0 + 3] += s13
    sums[i0 + 2, c0] += s20
    sums[i0 + 2, c0 + 1] += s21
    sums[i0 + 2, c0 + 2] += s22
    sums[i0 + 2, c0 + 3] += s23
    sums[i0 + 3, c0] += s30
    sums[i0 + 3, c0 + 1] += s31
    sums[i0 + 3, c0 + 2] += s32
    sums[i0 + 3, c0 + 3] += s33


@nb.njit(parallel=True, **_JIT)
def _bootstrap_means(diffs, n_resamples, seed):
    m, n = diffs.shape
    key = mix64(np.uint64(seed) ^ BOOTSTRAP_TAG)
    n_u = np.uint64(n) & _LOW32  # < 2**32 (the contract), and LLVM now knows it: cheap products
    out = np.empty((n_resamples, m))
    n_tasks = (n_resamples + _RESAMPLES_PER_TASK - 1) // _RESAMPLES_PER_TASK
    overflow = np.zeros(n_tasks, np.int64)
    m4 = (m + 3) // 4 * 4
    for task in nb.prange(n_tasks):
        r0 = task * _RESAMPLES_PER_TASK
        n_r = min(_RESAMPLES_PER_TASK, n_resamples - r0)
        counts = np.zeros((n_r, n), np.uint8)  # how often each user was drawn
        drawn = np.empty(_USERS_PER_BLOCK, np.uint64)
        over = 0
        for i in range(n_r):
            start = _start(key, r0 + i)
            cnt = counts[i]
            for t0 in range(0, n, _USERS_PER_BLOCK):
                t1 = min(n, t0 + _USERS_PER_BLOCK)
                for t in range(t0, t1):  # a pure function of t: vectorised
                    drawn[t - t0] = _mulhi(_word(start, t), n_u)
                for j in range(t1 - t0):
                    k = np.int64(cnt[drawn[j]]) + 1
                    cnt[drawn[j]] = k  # wraps to 0 after 255 draws: flagged below
                    over |= k >> 8
        overflow[task] = over
        # sums = counts @ diffs.T in tiles of 4 resamples x 4 columns; missing resamples have
        # zero weights and missing columns zero differences (both discarded)
        weights = np.zeros((_RESAMPLES_PER_TASK, _USERS_PER_BLOCK))
        pad = np.zeros((4, _USERS_PER_BLOCK))
        sums = np.zeros((_RESAMPLES_PER_TASK, m4))
        for u0 in range(0, n, _USERS_PER_BLOCK):
            u1 = min(n, u0 + _USERS_PER_BLOCK)
            size = u1 - u0
            for i in range(n_r):
                for u in range(size):
                    weights[i, u] = np.float64(counts[i, u0 + u])
            for c0 in range(0, m, 4):
                d0 = diffs[c0, u0:u1]
                d1 = diffs[c0 + 1, u0:u1] if c0 + 1 < m else pad[1, :size]
                d2 = diffs[c0 + 2, u0:u1] if c0 + 2 < m else pad[2, :size]
                d3 = diffs[c0 + 3, u0:u1] if c0 + 3 < m else pad[3, :size]
                for i0 in range(0, n_r, 4):
                    _dot_tile(weights[i0, :size], weights[i0 + 1, :size],
                              weights[i0 + 2, :size], weights[i0 + 3, :size],
                              d0, d1, d2, d3, sums, i0, c0)
        for i in range(n_r):
            for c in range(m):
                out[r0 + i, c] = sums[i, c] / n
    return out, overflow.any()


def bootstrap_means(diffs, n_resamples, seed):
    """Means of ``n_resamples`` paired bootstrap resamples of the users, per column.

    A resample draws ``n_users`` users with replacement, the same users for every column, so
    columns stay paired (see the module docstring for the stream and the summation order).
    Percentile intervals are the caller's.

    Returns
    -------
    ndarray of shape (n_resamples, n_cols), float64

    Raises
    ------
    OverflowError
        If one resample drew a user 256 times (the counts are uint8; the chance is below
        ``n_users / 256!``).
    """
    out, overflow = _bootstrap_means(diffs, np.int64(n_resamples), np.uint64(seed))
    if overflow:
        raise OverflowError("a bootstrap resample drew one user 256 times; uint8 counts "
                            "overflowed (report this: it should never happen)")
    return out
