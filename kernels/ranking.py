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
dense mask:

1. threshold: the maxima of 64 runs of 16 consecutive scores spread over the row (fetched
   ahead, while the previous row is processed) give a threshold that about ``_OVERSHOOT * K``
   scores beat;
2. pass 1 streams the row once, branch-free and vectorised: one bit per score that beats the
   threshold (or is NaN), 64 bits per word; the bits of the excluded items are then cleared
   (the exclude list is never searched per item);
3. pass 2 visits only the set bits, on the row now in cache, and appends those scores to a
   candidate buffer (if it fills up, a quickselect keeps the best K and raises the threshold);
   meanwhile the next row is prefetched, so that its pass 1 finds it in cache;
4. every item left out of the buffer is beaten by at least K candidates, so the rank of a
   held-out item is 1 + the number of candidates that beat it: the top-K list itself is never
   selected or sorted. If the sample was unlucky (fewer than K candidates) the row, now in
   cache, is scanned again with a lower threshold and finally with none: exact either way.

Beyond-accuracy sums (coverage, popularity, novelty, Gini, entropy) take the top k of the same
candidates (:func:`_split`: a value search by vectorised counts, no sort) in the same pass.

The parallel drivers split the rows into tasks of ``_ROWS_PER_TASK`` (``prange``); each row's
result depends on that row alone, so results are identical for any block size or thread count.
"""

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_JIT = dict(nogil=True, cache=True)

# metric codes shared with evcf_fast.metrics (its registry maps names to these)
NDCG = 0
RECALL = 1
PRECISION = 2
HITRATE = 3
MRR = 4
MAP = 5

_BLOCK = 64  # scores per mask word (one bit each in a uint64; `>> 6` below assumes 64)
_SAMPLE_RUNS = 64  # the sample that sets the first threshold: runs spread over the row ...
_SAMPLE_RUN = 16  # ... of this many consecutive items (a multiple of 4)
_SAMPLE = _SAMPLE_RUNS * _SAMPLE_RUN
_OVERSHOOT = 1.5  # the sampled threshold aims at about _OVERSHOOT * K survivors ...
_FALLBACK = 3  # ... and the fallback threshold at _FALLBACK times as many
_SAMPLE_PREFETCH = 4  # cache lines of the row requested per sampled run
_STREAM_AHEAD = 4096  # bytes: how far ahead pass 1 requests the row
_PREFETCH_LINES = 4  # cache lines of the next row requested per non-zero mask word
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


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the CPU to fetch ``arr[idx]`` into L2 (LLVM ``prefetch``); no effect on results."""

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(2), i32(1)])  # read, keep in L2, data cache
        return context.get_dummy_value()

    return types.none(arr, idx), codegen


def _load_vector(context, builder, aryty, ary, idx, count):
    """``count`` consecutive elements of a 1-d array from ``idx`` as one LLVM vector."""
    arr = context.make_array(aryty)(context, builder, ary)
    ptr = cgutils.get_item_pointer(context, builder, aryty, arr, [idx], wraparound=False)
    vty = ir.VectorType(context.get_value_type(aryty.dtype), count)
    return builder.load(builder.bitcast(ptr, vty.as_pointer()), align=aryty.dtype.bitwidth // 8)


def _splat(builder, value, count):
    vty = ir.VectorType(value.type, count)
    one = builder.insert_element(ir.Constant(vty, ir.Undefined), value, ir.IntType(32)(0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), count), [0] * count)
    return builder.shuffle_vector(one, ir.Constant(vty, ir.Undefined), zeros)


@intrinsic
def _above_bits(typingctx, arr, idx, thr):
    """uint64 whose bit t says ``not arr[idx + t] <= thr`` (above it, or NaN), t < 64: one
    vector compare whose mask is the word (``thr`` has the array's dtype)."""

    def codegen(context, builder, signature, args):
        vec = _load_vector(context, builder, signature.args[0], args[0], args[1], _BLOCK)
        bits = builder.fcmp_unordered(">", vec, _splat(builder, args[2], _BLOCK))
        return builder.bitcast(bits, ir.IntType(_BLOCK))

    return types.uint64(arr, idx, thr), codegen


def _vector_max(count):
    """An intrinsic ``f(arr, idx)``: the float64 maximum of ``arr[idx : idx + count]``, NaN
    counted as -inf (one vector load; NaN lanes are replaced, then halves are compared until
    one lane is left)."""

    @intrinsic
    def vector_max(typingctx, arr, idx):
        def codegen(context, builder, signature, args):
            vec = _load_vector(context, builder, signature.args[0], args[0], args[1], count)
            elt = vec.type.element
            nan = builder.fcmp_unordered("uno", vec, vec)
            vec = builder.select(nan, _splat(builder, ir.Constant(elt, NEG_INF), count), vec)
            width = count
            while width > 1:
                width //= 2
                undef = ir.Constant(vec.type, ir.Undefined)
                lo = builder.shuffle_vector(vec, undef, ir.Constant(
                    ir.VectorType(ir.IntType(32), width), list(range(width))))
                hi = builder.shuffle_vector(vec, undef, ir.Constant(
                    ir.VectorType(ir.IntType(32), width), list(range(width, 2 * width))))
                vec = builder.select(builder.fcmp_ordered(">", lo, hi), lo, hi)
            x = builder.extract_element(vec, ir.IntType(32)(0))
            return x if elt == ir.DoubleType() else builder.fpext(x, ir.DoubleType())

        return types.float64(arr, idx), codegen

    return vector_max


_run_max = _vector_max(_SAMPLE_RUN)  # one sampled run
_max8 = _vector_max(8)


def _compress_store(context, builder, vec, aryty, ary, idx, mask):
    """Store the lanes of the 8-lane ``vec`` selected by ``mask`` at ``ary[idx:]``, in order
    (LLVM ``masked.compressstore``: one instruction with AVX-512)."""
    arr = context.make_array(aryty)(context, builder, ary)
    ptr = cgutils.get_item_pointer(context, builder, aryty, arr, [idx], wraparound=False)
    kind = "f" if isinstance(aryty.dtype, types.Float) else "i"
    fnty = ir.FunctionType(ir.VoidType(), [vec.type, ptr.type, mask.type])
    fn = cgutils.get_or_insert_function(
        builder.module, fnty, f"llvm.masked.compressstore.v8{kind}{aryty.dtype.bitwidth}")
    builder.call(fn, [vec, ptr, mask])


def _popcount8(builder, mask):
    """The number of set lanes of an 8-lane mask, as int64."""
    return builder.ctpop(builder.zext(builder.bitcast(mask, ir.IntType(8)), ir.IntType(64)))


@intrinsic
def _take_above8(typingctx, xs, ids, t, lo, out, a):
    """Store those of ids[t : t + 8] whose xs (float64) is above lo at out[a:], in order,
    and return how many (a masked compress-store: one instruction with AVX-512)."""

    def codegen(context, builder, signature, args):
        vx = _load_vector(context, builder, signature.args[0], args[0], args[2], 8)
        vi = _load_vector(context, builder, signature.args[1], args[1], args[2], 8)
        mask = builder.fcmp_ordered(">", vx, _splat(builder, args[3], 8))
        _compress_store(context, builder, vi, signature.args[4], args[4], args[5], mask)
        return _popcount8(builder, mask)

    sig = types.int64(xs, ids, t, lo, out, a)
    ok = (xs.dtype == types.float64 and ids.dtype == out.dtype == types.int64
          and lo == types.float64)
    return (sig, codegen) if ok else None


@intrinsic
def _take_range8(typingctx, xs, ids, t, lo, hi, out_x, out_i, n):
    """Store those of xs/ids[t : t + 8] (float64 / int64) whose score lies in (lo, hi] at
    out_x/out_i[n:], in order, and return how many (two masked compress-stores)."""

    def codegen(context, builder, signature, args):
        vx = _load_vector(context, builder, signature.args[0], args[0], args[2], 8)
        vi = _load_vector(context, builder, signature.args[1], args[1], args[2], 8)
        mask = builder.and_(builder.fcmp_ordered(">", vx, _splat(builder, args[3], 8)),
                            builder.fcmp_ordered("<=", vx, _splat(builder, args[4], 8)))
        _compress_store(context, builder, vx, signature.args[5], args[5], args[7], mask)
        _compress_store(context, builder, vi, signature.args[6], args[6], args[7], mask)
        return _popcount8(builder, mask)

    sig = types.int64(xs, ids, t, lo, hi, out_x, out_i, n)
    ok = (xs.dtype == out_x.dtype == types.float64 and ids.dtype == out_i.dtype == types.int64
          and lo == hi == types.float64)
    return (sig, codegen) if ok else None


@nb.njit(**_JIT)
def _max(xs, m):
    """float64 maximum of xs[:m] (m >= 1), NaN counted as -inf: eight elements per step."""
    x = NEG_INF
    t = 0
    while t + 8 <= m:
        v = _max8(xs, t)
        x = v if v > x else x
        t += 8
    for t in range(t, m):
        v = np.float64(xs[t])
        x = v if v > x else x
    return x


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
def _run_maxima(row, runmax):
    """Maxima of ``_SAMPLE_RUNS`` runs of ``_SAMPLE_RUN`` consecutive scores (NaN as -inf).

    The runs are spread evenly over the row, so that item ids sorted by popularity do not bias
    the sample, and are consecutive, so that the sample touches few cache lines.
    """
    n = row.shape[0]
    span = n - _SAMPLE_RUN
    line = 64 // row.itemsize
    for b in range(_SAMPLE_RUNS):
        for q in range(_SAMPLE_PREFETCH):  # the row's head for pass 1, while memory idles
            _prefetch(row, min((b * _SAMPLE_PREFETCH + q) * line, n - 1))
        runmax[b] = _run_max(row, (b * span) // (_SAMPLE_RUNS - 1))


@nb.njit(**_JIT)
def _prefetch_sample(row):
    """Start fetching the cache lines that :func:`_run_maxima` will read: the sample's misses
    then overlap with the work on the previous row instead of stalling this one."""
    n = row.shape[0]
    if n < 2 * _SAMPLE:
        return
    span = n - _SAMPLE_RUN
    for b in range(_SAMPLE_RUNS):
        j0 = (b * span) // (_SAMPLE_RUNS - 1)
        _prefetch(row, j0)
        _prefetch(row, j0 + _SAMPLE_RUN - 1)


@nb.njit(**_JIT)
def _rth_largest(values, r, top):
    """The r-th largest of ``values`` (1 <= r <= len(values)); ``top[:r]`` is left holding the
    r largest in descending order."""
    filled = 0
    for b in range(values.shape[0]):
        x = values[b]
        if filled < r:
            q = filled
            filled += 1
        elif x > top[r - 1]:
            q = r - 1
        else:
            continue
        # insertion into the descending list top[:filled]
        while q > 0 and top[q - 1] < x:
            top[q] = top[q - 1]
            q -= 1
        top[q] = x
    return top[r - 1]


@nb.njit(**_JIT)
def _extract(row, masks, summ, start, q, sm, m, limit, cs, ci, nxt, cursor):
    """Append the items of the set bits of the non-zero mask words (found through ``summ``) to
    cs/ci, from summary word q with remaining bits sm, until done or m > limit.

    Kept free of calls, so that its loops stay in registers; the caller compacts the buffer
    between calls. NaN values are appended as they are and reported (the caller then redoes the
    row carefully). Meanwhile the next row ``nxt`` is prefetched, a few lines per word.
    Returns (m, q, sm, cursor, has_nan); q == len(summ) when done.
    """
    n_summ = summ.shape[0]
    line = 64 // nxt.itemsize
    last_next = nxt.shape[0] - 1
    last = row.shape[0] - 1
    bad = False
    while q < n_summ:
        while sm:
            if m > limit:
                return m, q, sm, cursor, bad
            w = (q << 6) + np.int64(_cttz(sm))
            sm &= sm - np.uint64(1)
            for _ in range(_PREFETCH_LINES):
                _prefetch(nxt, min(cursor, last_next))
                cursor += line
            mask = masks[w]
            base = start + w * _BLOCK
            # the word's first bit without a branch (most words hold one bit: a loop's exit
            # would mispredict on every word that holds two); a word whose bits all went to
            # the exclusions writes a slot from a clamped index that the next word overwrites
            one = mask != 0
            t = min(base + np.int64(_cttz(mask)), last)
            mask &= mask - np.uint64(1)
            x = np.float64(row[t])
            bad |= (x != x) & one
            cs[m] = x
            ci[m] = t
            m += np.int64(one)
            while mask:
                t = base + np.int64(_cttz(mask))
                mask &= mask - np.uint64(1)
                x = np.float64(row[t])
                bad |= x != x
                cs[m] = x
                ci[m] = t
                m += 1
        q += 1
        if q < n_summ:
            sm = summ[q]
    return m, q, sm, cursor, bad


@nb.njit(inline="always", **_JIT)
def _take(row, mask, base, m, thr, has_nan, k, cs, ci):
    """Append the items base + bit for the set bits of ``mask`` that beat the threshold (NaN
    bits only flag the row); compact the buffer when full. Returns (m, thr, has_nan)."""
    while mask:
        t = base + np.int64(_cttz(mask))
        mask &= mask - np.uint64(1)
        x = np.float64(row[t])
        if x != x:
            has_nan = True
            continue
        if not x > thr:  # the threshold rose after a compaction within this block
            continue
        cs[m] = x
        ci[m] = t
        m += 1
        if m == cs.shape[0]:  # keep the best k and raise the threshold to the k-th best
            _select(cs, ci, m, k)
            m = k
            thr = cs[k - 1]
    return m, thr, has_nan


@nb.njit(**_JIT)
def _scan(row, ex, thr, have_thr, k, cs, ci, tb, masks, summ, nxt, careful):
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
            while p < ne and ex[p] < j:
                p += 1
            if p < ne and ex[p] == j:
                j += 1
                continue
            x = np.float64(row[j])
            if x != x:
                has_nan = True
                x = NEG_INF
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
    # pass 1, streamed from memory and free of branches: a bit per score that beats the
    # threshold or is NaN (NaN fails every comparison), _BLOCK bits per word
    start = j
    n_words = (n - start + _BLOCK - 1) // _BLOCK
    n_full = start + ((n - start) // _BLOCK) * _BLOCK
    # (and a summary bitmap, one bit per non-zero word, kept in a register meanwhile)
    w = 0
    sw = np.uint64(0)
    ahead = _STREAM_AHEAD // row.itemsize
    line = 64 // row.itemsize
    while j < n_full:
        # the hardware prefetcher stops at 4 KiB page boundaries: request ahead of it
        for q in range(0, _BLOCK, line):
            _prefetch(row, min(j + ahead + q, n - 1))
        mask = _above_bits(row, j, thr_n)
        masks[w] = mask
        sw |= np.uint64(mask != 0) << np.uint64(w & 63)
        if (w & 63) == 63:
            summ[w >> 6] = sw
            sw = np.uint64(0)
        w += 1
        j += _BLOCK
    if j < n:
        mask = np.uint64(0)
        for t in range(n - j):
            mask |= np.uint64(not (row[j + t] <= thr_n)) << np.uint64(t)
        masks[w] = mask
        summ[w >> 6] = sw | (np.uint64(mask != 0) << np.uint64(w & 63))  # the last word
    elif w & 63:
        summ[w >> 6] = sw
    # excluded items leave the candidates by clearing their bits: no per-candidate lookup (a
    # word cleared to zero keeps its summary bit: pass 2 then finds nothing in it)
    for q in range(p, ne):
        e = ex[q] - start
        masks[e >> 6] &= ~(np.uint64(1) << np.uint64(e & 63))
    # pass 2, on the row now in cache: visit the set bits only, finding the non-zero words
    # through the summary (a test per word would mispredict about once in two words)
    n_summ = (n_words + 63) >> 6
    if careful:
        # meanwhile the memory bus would idle: fetch the next row, a few lines per visited word
        line = 64 // nxt.itemsize
        cursor = 0
        n_next = nxt.shape[0]
        for q in range(n_summ):
            sm = summ[q]
            while sm:
                w = (q << 6) + np.int64(_cttz(sm))
                sm &= sm - np.uint64(1)
                for _ in range(_PREFETCH_LINES):
                    if cursor < n_next:
                        _prefetch(nxt, cursor)
                        cursor += line
                m, thr, has_nan = _take(row, masks[w], start + w * _BLOCK, m, thr, has_nan, k,
                                        cs, ci)
        return m, has_nan
    # fast path: plain loops in a call-free function; compactions happen between its calls
    # (a candidate appended after one may not beat the raised threshold: harmless, it is a
    # genuine non-excluded item)
    q = 0
    sm = summ[0] if n_summ else np.uint64(0)
    cursor = 0
    # room for one more word (_BLOCK items) below the limit; sampling implies cap >= 4 k + 64,
    # so a compaction always has m > k items to choose from
    limit = cs.shape[0] - _BLOCK - 1
    while True:
        m, q, sm, cursor, bad = _extract(row, masks, summ[:n_summ], start, q, sm, m, limit, cs,
                                         ci, nxt, cursor)
        has_nan |= bad
        if q >= n_summ:
            return m, has_nan
        _select(cs, ci, m, k)
        m = k


@nb.njit(**_JIT)
def _candidates(row, ex, k, cs, ci, top, tb, masks, summ, nxt):
    """Candidates for the top k of one row (see :func:`_scan`).

    Returns (k_eff, m, floor, has_floor, has_nan): k_eff = min(k, number of non-excluded
    items); cs/ci[:m] with m >= k_eff satisfy the postcondition of :func:`_scan`; when
    has_floor, every candidate scores strictly above ``floor`` and nothing else can rank in the
    top k_eff.
    """
    n = row.shape[0]
    k_eff = min(k, n - ex.shape[0])
    if k_eff <= 0:  # every item is excluded, so no score counts (not even a NaN)
        return 0, 0, NEG_INF, False, False
    # a threshold that about _OVERSHOOT * k_eff scores beat: the r-th largest run maximum, which
    # is at most the r-th largest sampled score (exclusions are ignored: a threshold only has to
    # be good, the scan checks that it was low enough)
    r = int(np.ceil(_OVERSHOOT * k_eff * _SAMPLE / n))
    if n >= 2 * _SAMPLE and 2 * r <= _SAMPLE_RUNS:
        runmax = top[:_SAMPLE_RUNS]
        _run_maxima(row, runmax)
        thr = _rth_largest(runmax, r, top[_SAMPLE_RUNS:])
        m, has_nan = _scan(row, ex, thr, True, k_eff, cs, ci, tb, masks, summ, nxt, False)
        if has_nan:  # NaN got into the buffer: redo the row with the careful pass
            m, has_nan = _scan(row, ex, thr, True, k_eff, cs, ci, tb, masks, summ, nxt, True)
        if m >= k_eff:
            return k_eff, m, thr, True, has_nan
        # unlucky sample: the row is in cache now, retry lower before giving up on thresholds
        thr = _rth_largest(runmax, min(_FALLBACK * r, _SAMPLE_RUNS), top[_SAMPLE_RUNS:])
        m, has_nan = _scan(row, ex, thr, True, k_eff, cs, ci, tb, masks, summ, nxt, True)
        if m >= k_eff:
            return k_eff, m, thr, True, has_nan
    m, has_nan = _scan(row, ex, NEG_INF, False, k_eff, cs, ci, tb, masks, summ, nxt, True)
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
        x = np.float64(row[h])
        if x != x:
            x = NEG_INF
        if has_floor and not x > floor:  # below every candidate (most held-out items)
            continue
        while p < ne and ex[p] < h:  # (p only moves forward: skipped items need no lookup)
            p += 1
        if p < ne and ex[p] == h:
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
# the top-k sets of the beyond-accuracy metrics


_SMALL = 16  # candidates left in the range when the value search of _split stops
_STEPS = 48  # at most this many steps of that search
_EULER_GAMMA = 0.5772156649015329


@nb.njit(**_JIT)
def _count_above(cs, m, v):
    """How many of cs[:m] are > v (a vectorised pass)."""
    c = 0
    for t in range(m):
        c += np.int64(cs[t] > v)
    return c


@nb.njit(**_JIT)
def _split(cs, ci, m, kb, floor, has_floor, sel, buf, ties, kth):
    """The best kb (1 <= kb <= m) of the candidates cs/ci[:m] (higher score, then lower index),
    found without moving them: returns (a, need), a + need = kb, with the items sel[:a] and
    ties[:need] (scores buf[:need]). With ``kth``, buf/ties[need - 1] is the kb-th best
    (need >= 1). When ``has_floor`` every candidate scores above ``floor``.

    A value search narrows a range (lo, hi] that holds the kb-th best score, each step one
    vectorised count of the scores above a pivot. The candidates are the top of a row, so
    their scores above lo look like an exponential tail, count(> x) ~ m exp(-(x - lo) / beta)
    with beta estimated from the maximum ((hi - lo) / (ln m + 0.577), the expected maximum of
    m such scores): the pivots follow that model (a Newton step on log count from the measured
    end of the range) until both ends have been measured, then interpolate linearly between
    them. The model is only a guess: a pivot outside the range falls back to its midpoint, so
    the result is exact whatever the scores. Mostly the search ends with exactly kb scores above
    lo: one branch-free pass then takes them (a = kb). Otherwise (at most _SMALL candidates
    left in the range, ties at the cut, or ``kth``) one pass takes the items above hi and
    copies the range's candidates out, and a quickselect with the tie rule picks the best need
    of them. Infinite scores leave no range to search: the quickselect then runs over all m.
    """
    # pad the scores to whole steps of 16 with -inf (above no bound) where the buffer has room:
    # the vector loops below then have no remainder to branch on
    mp = (m + 15) & ~15
    if mp <= cs.shape[0]:
        for t in range(m, mp):
            cs[t] = NEG_INF
    else:
        mp = m
    hi = _max(cs, mp)
    if has_floor:
        lo = floor
    else:
        lo = np.inf
        for t in range(m):
            x = cs[t]
            lo = x if x < lo else lo
        lo = np.nextafter(lo, NEG_INF)
    simple = not (lo > NEG_INF and hi < np.inf)
    c_lo = m  # invariant: count(> lo) = c_lo >= kb > c_hi = count(> hi)
    c_hi = 0
    if not simple:
        beta = (hi - lo) / (np.log(m) + _EULER_GAMMA)
        target = kb + 0.5
        lo_measured = True  # count(> lo) is known exactly (and hi's is 0, but the maximum is
        hi_measured = False  # an outlier of the tail: no point to interpolate from)
        halve = False
        stalled = False  # the last step split nothing off the range
        for step in range(_STEPS):
            if (c_lo - c_hi <= _SMALL) if (kth or stalled) else (c_lo == kb):
                break
            if halve:
                piv = lo + (hi - lo) * 0.5
            elif lo_measured and hi_measured:
                frac = (c_lo - target) / (c_lo - c_hi)
                piv = lo + (hi - lo) * min(max(frac, 1.0 / 16), 15.0 / 16)
            elif step == 0:
                piv = lo + beta * np.log(c_lo / target)
            elif lo_measured:  # ln(c / t) ~ 2 (c - t) / (c + t) near the cut
                piv = lo + beta * 2.0 * (c_lo - target) / (c_lo + target)
            else:
                piv = hi - beta * 2.0 * (target - c_hi) / (target + c_hi)
            if not (lo < piv < hi):
                piv = lo + (hi - lo) * 0.5
                if not (lo < piv < hi):  # adjacent floating-point values: nothing to split
                    break
            c = _count_above(cs, mp, piv)
            before = c_lo - c_hi
            # selects, not branches: which side the pivot falls is a coin toss per step
            up = c >= kb
            lo = piv if up else lo
            c_lo = c if up else c_lo
            hi = hi if up else piv
            c_hi = c_hi if up else c
            lo_measured |= up
            hi_measured |= not up
            halve = lo_measured & hi_measured & (2 * (c_lo - c_hi) > before)
            # a tie group at the cut never splits: stop once a step gains nothing on a small
            # range (each further step could only halve the gap down to adjacent floats)
            stalled = c_lo - c_hi == before
    a = 0
    if not simple and c_lo == kb and not kth:
        t = 0
        while t + 8 <= mp:
            a += _take_above8(cs, ci, t, lo, sel, a)
            t += 8
        for t in range(t, mp):
            sel[a] = ci[t]
            a += np.int64(cs[t] > lo)
        return a, 0
    n = 0
    if simple:
        for t in range(m):
            buf[n] = cs[t]
            ties[n] = ci[t]
            n += 1
    else:
        t = 0
        while t + 8 <= mp:
            a += _take_above8(cs, ci, t, hi, sel, a)
            n += _take_range8(cs, ci, t, lo, hi, buf, ties, n)
            t += 8
        for t in range(t, mp):
            x = cs[t]
            item = ci[t]
            sel[a] = item
            a += np.int64(x > hi)
            buf[n] = x
            ties[n] = item
            n += np.int64((x > lo) & (x <= hi))
    need = kb - a
    if need < n or kth:
        _select(buf, ties, n, need)
    return a, need


# The beyond-accuracy tables hold one record per item in each thread's slab (the dtype
# ``ITEM_TABLE`` of evcf_fast.metrics.conventions, 16 bytes): ``count``, the number of top-k
# lists of this thread's rows that hold the item (int32); ``pop``, its training popularity in
# users (int32); ``info``, its self-information (float64). One record per item means one cache
# line per listed item: with three separate arrays an item cost up to three misses, as the
# tables leave L1 (and partly L2) while each row streams through.


@nb.njit(inline="always", **_JIT)
def _list_sums(items, n, tab, with_pop, counted):
    """Add the items[:n] of a top-k list to their counts in ``tab`` (a slab of item records;
    when ``counted``) and return the sums of their popularity and self-information (0 when no
    list metric was asked: ``with_pop`` false). Popularity sums are integers, exact in int64;
    self-information is summed in four interleaved partial sums (a single running sum would
    wait four cycles per item on the previous addition)."""
    ps = 0
    i0 = i1 = i2 = i3 = 0.0
    if with_pop:
        t = 0
        while t + 4 <= n:
            r0 = tab[items[t]]
            r1 = tab[items[t + 1]]
            r2 = tab[items[t + 2]]
            r3 = tab[items[t + 3]]
            ps += np.int64(r0.pop) + np.int64(r1.pop) + np.int64(r2.pop) + np.int64(r3.pop)
            i0 += r0.info
            i1 += r1.info
            i2 += r2.info
            i3 += r3.info
            t += 4
        for t in range(t, n):
            r0 = tab[items[t]]
            ps += r0.pop
            i0 += r0.info
    if counted:
        for t in range(n):
            tab[items[t]].count += 1
    return np.float64(ps), (i0 + i1) + (i2 + i3)


@nb.njit(**_JIT)
def _beyond_row(ci, cs, m, k_eff, floor, has_floor, ordered, bks, tables, with_pop, counted,
                pop_out, info_out, len_out, sel, buf, ties):
    """Beyond-accuracy sums of one row for each cut-off bks[b], from the candidates cs/ci[:m]
    (the postcondition of :func:`.ranking._scan`), or from a list ci[:m] that is already best
    first when ``ordered``. ``tables[b]`` (this thread's slab of item records) counts the row's
    items when ``counted``. The top kb candidates are found by :func:`_split`, without sorting
    them.
    """
    for b in range(bks.shape[0]):
        kb = min(bks[b], k_eff)
        if ordered or kb == m:  # the list, or every candidate
            ps, ins = _list_sums(ci, kb, tables[b], with_pop, counted)
        elif kb > 0:
            a, need = _split(cs, ci, m, kb, floor, has_floor, sel, buf, ties, False)
            ps, ins = _list_sums(sel, a, tables[b], with_pop, counted)
            ps2, ins2 = _list_sums(ties, need, tables[b], with_pop, counted)
            ps += ps2
            ins += ins2
        else:
            ps = 0.0
            ins = 0.0
        pop_out[b] = ps
        info_out[b] = ins
        len_out[b] = kb


# ---------------------------------------------------------------------------------------------
# parallel drivers


@nb.njit(**_JIT)
def _row_scratch(scores, k):
    """Per-task work buffers of ``_candidates`` for rows of ``scores`` and a cut-off ``k``.

    Allocated once per parallel task (not per row): candidate scores and ids (``cap`` entries,
    room for the threshold pass to overshoot k), the sample of the threshold estimate, one
    score of the row's dtype, and the bit masks with their one-bit-per-word summary.
    """
    n_items = scores.shape[1]
    cap = min(n_items, max(4 * k + 64, 256))
    masks = np.empty((n_items + _BLOCK - 1) // _BLOCK, np.uint64)
    return (np.empty(cap, np.float64), np.empty(cap, np.int64),
            np.empty(2 * _SAMPLE_RUNS, np.float64), np.empty(1, scores.dtype), masks,
            np.empty((masks.shape[0] + 63) // 64, np.uint64))




@nb.njit(parallel=True, **_JIT)
def topk_metrics(scores, excl_indptr, excl_indices, ho_indptr, ho_indices, ks, codes,
                 recall_mode, discount, idcg, bks, tables, with_pop, count_empty, pop_out,
                 info_out, len_out, out, nan_rows):
    """Fused masked top-K, ranking metrics and beyond-accuracy sums for a block of rows (see the
    module docstring).

    Parameters
    ----------
    scores : float32 or float64 array of shape (n_rows, n_items), C-order
    excl_indptr, excl_indices : CSR of the items to exclude (fold-in items) for these rows
    ho_indptr, ho_indices : CSR of the held-out items for these rows
    ks, codes : int64 arrays of equal length, cut-off and metric code per output column (may be
        empty when only beyond-accuracy sums are asked)
    recall_mode : int, 0 for hits / min(k, n_ho), 1 for hits / n_ho
    discount, idcg : float64 arrays of length max(ks, bks)
    bks, tables, with_pop, count_empty, pop_out, info_out, len_out : the beyond-accuracy sums
        of :func:`_beyond_row` (``bks`` int64, strictly decreasing, may be empty; ``tables``
        item records (n_threads, len(bks), n_items), one slab per Numba thread, counts
        zeroed by the caller, popularity and self-information filled in when ``with_pop``, that
        is when a list metric is asked); the counts are added to for the rows with held-out
        items (every row when ``count_empty``); the others, (n_rows, len(bks)), are written
    out : float64 array of shape (n_rows, len(ks)), written
    nan_rows : uint8 array of shape (n_rows,), written: 1 where the row holds a NaN score
    """
    n_rows, n_items = scores.shape
    k_acc = ks.max() if ks.shape[0] else 1
    k_b = bks.max() if bks.shape[0] else 1
    k = min(max(k_acc, k_b), n_items)
    n_tasks = (n_rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        cs, ci, top, tb, masks, summ = _row_scratch(scores, k)
        ranks = np.empty(k, np.int64)
        n_split = cs.shape[0] if bks.shape[0] else 0
        sel = np.empty(n_split, np.int64)
        buf = np.empty(n_split, np.float64)
        ties = np.empty(n_split, np.int64)
        for u in range(task * _ROWS_PER_TASK, min(n_rows, (task + 1) * _ROWS_PER_TASK)):
            row = scores[u]
            nxt = scores[min(u + 1, n_rows - 1)]
            _prefetch_sample(nxt)
            ex = excl_indices[excl_indptr[u]:excl_indptr[u + 1]]
            ho = ho_indices[ho_indptr[u]:ho_indptr[u + 1]]
            k_eff, m, floor, has_floor, has_nan = _candidates(row, ex, k, cs, ci, top, tb, masks,
                                                              summ, nxt)
            nan_rows[u] = has_nan
            nh = 0
            if ho.shape[0] > 0 and k_eff > 0:
                nh = _hit_ranks(row, ex, ho, cs, ci, m, k_eff, floor, has_floor, ranks)
            _metrics_row(ranks, nh, ho.shape[0], ks, codes, recall_mode, discount, idcg, out[u])
            if bks.shape[0]:
                _beyond_row(ci, cs, m, k_eff, floor, has_floor, False, bks,
                            tables[nb.get_thread_id()], with_pop,
                            count_empty or ho.shape[0] > 0, pop_out[u], info_out[u], len_out[u],
                            sel, buf, ties)


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
    n_tasks = (n_rows + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in nb.prange(n_tasks):
        cs, ci, top, tb, masks, summ = _row_scratch(scores, kk)
        for u in range(task * _ROWS_PER_TASK, min(n_rows, (task + 1) * _ROWS_PER_TASK)):
            row = scores[u]
            nxt = scores[min(u + 1, n_rows - 1)]
            _prefetch_sample(nxt)
            ex = excl_indices[excl_indptr[u]:excl_indptr[u + 1]]
            k_eff, m, floor, has_floor, has_nan = _candidates(row, ex, kk, cs, ci, top, tb, masks,
                                                              summ, nxt)
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
