"""Numba kernels of the synthetic-data generator and the Netflix-format writer.

Raw arrays in, raw arrays out (see ``synthetic.py`` for the model they implement). Sampling uses
Numba's own per-thread NumPy-compatible generator, seeded inside the kernel, and runs serially,
so a given seed always gives the same data.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(nogil=True, cache=True)


@nb.njit(**_JIT)
def _draw(cdf, a, b):
    """Index in [0, b - a) drawn from the normalised cumulative weights ``cdf[a:b]``."""
    x = np.random.random()
    j = np.searchsorted(cdf[a:b], x, side="right")
    return min(j, b - a - 1)


@nb.njit(**_JIT)
def sample_user_items(n_pos, n_neg, primary, secondary, cl_ptr, cl_items, cl_cdf, glob_cdf,
                      p_primary, p_secondary, seed):
    """Distinct items per user: ``n_pos[u]`` liked ones, then ``n_neg[u]`` disliked ones.

    A liked item comes from the user's primary cluster with probability ``p_primary``, from the
    secondary one with ``p_secondary``, else from global popularity; disliked items come from
    global popularity. Items are distinct within a user (rejection with a per-item marker, then
    a linear scan for pathological users). Each user's items come back sorted by item, with a
    parallel flag saying which ones are liked.

    Returns ``ptr`` (int64), ``items`` (int32) and ``liked`` (bool).
    """
    np.random.seed(seed)
    n_users = n_pos.shape[0]
    n_items = glob_cdf.shape[0]
    ptr = np.zeros(n_users + 1, np.int64)
    for u in range(n_users):
        ptr[u + 1] = ptr[u] + n_pos[u] + n_neg[u]
    items = np.empty(ptr[n_users], np.int32)
    liked = np.empty(ptr[n_users], np.bool_)
    mark = np.full(n_items, -1, np.int64)
    for u in range(n_users):
        q = ptr[u]
        m = n_pos[u] + n_neg[u]
        for t in range(m):
            pos = t < n_pos[u]
            item = -1
            for _ in range(64):
                x = np.random.random() if pos else 1.0
                if x < p_primary:
                    c = primary[u]
                    cand = cl_items[cl_ptr[c] + _draw(cl_cdf, cl_ptr[c], cl_ptr[c + 1])]
                elif x < p_primary + p_secondary:
                    c = secondary[u]
                    cand = cl_items[cl_ptr[c] + _draw(cl_cdf, cl_ptr[c], cl_ptr[c + 1])]
                else:
                    cand = _draw(glob_cdf, 0, n_items)
                if mark[cand] != u:
                    item = cand
                    break
            if item < 0:  # the user has most of its clusters already: take any unseen item
                start = np.random.randint(0, n_items)
                for k in range(n_items):
                    cand = (start + k) % n_items
                    if mark[cand] != u:
                        item = cand
                        break
            mark[item] = u
            items[q + t] = item
            liked[q + t] = pos
        order = np.argsort(items[q:q + m])
        items[q:q + m] = items[q:q + m][order]
        liked[q:q + m] = liked[q:q + m][order]
    return ptr, items, liked


@nb.njit(**_JIT)
def _put_uint(buf, pos, v):
    if v == 0:
        buf[pos] = 48
        return pos + 1
    n = 0
    t = v
    while t > 0:
        n += 1
        t //= 10
    for k in range(n - 1, -1, -1):
        buf[pos + k] = 48 + v % 10
        v //= 10
    return pos + n


@nb.njit(**_JIT)
def _civil_from_days(z):
    """(year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm)."""
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (1 if m <= 2 else 0), m, d


@nb.njit(**_JIT)
def format_netflix(movie_ids, gptr, users, ratings, days):
    """Netflix Prize text: per movie ``<id>:`` then ``<user>,<rating>,<YYYY-MM-DD>`` lines.

    Group ``g`` (movie ``movie_ids[g]``) owns rows ``gptr[g]:gptr[g + 1]``. Returns the bytes as
    a uint8 array and the byte offset where each group starts (int64, n_groups + 1).
    """
    n_groups = movie_ids.shape[0]
    n = users.shape[0]
    buf = np.empty(n_groups * 12 + n * 32, np.uint8)
    offsets = np.empty(n_groups + 1, np.int64)
    pos = 0
    for g in range(n_groups):
        offsets[g] = pos
        pos = _put_uint(buf, pos, movie_ids[g])
        buf[pos] = 58  # ':'
        buf[pos + 1] = 10
        pos += 2
        for r in range(gptr[g], gptr[g + 1]):
            pos = _put_uint(buf, pos, users[r])
            buf[pos] = 44
            pos = _put_uint(buf, pos + 1, ratings[r])
            buf[pos] = 44
            y, m, d = _civil_from_days(days[r])
            pos = _put_uint(buf, pos + 1, y)
            buf[pos] = 45
            buf[pos + 1] = 48 + m // 10
            buf[pos + 2] = 48 + m % 10
            buf[pos + 3] = 45
            buf[pos + 4] = 48 + d // 10
            buf[pos + 5] = 48 + d % 10
            buf[pos + 6] = 10
            pos += 7
    offsets[n_groups] = pos
    return buf[:pos], offsets
