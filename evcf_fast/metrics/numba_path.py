"""The Numba backend: host scores in row blocks through the fused kernels of
:mod:`evcf_fast.kernels.ranking`.

The public verbs (:mod:`evcf_fast.metrics`) validate their options and turn the scores into
:class:`~.inputs._ScoreBlocks`; the engines here validate the CSR matrices against the scores'
shape, run the kernels block by block and report NaN rows. ``evaluate`` and ``topk`` walk the
blocks with the same loop (:func:`_run_blocks`): a block of a file is mapped only while its
kernel runs, so peak memory is one chunk whatever the file size.

numba (through the kernels) and tqdm are imported on first use, not at import, so that
``import evcf_fast.metrics`` stays cheap.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .conventions import Conventions, beyond_args, check_empty_users, finish, gains
from .inputs import (
    _check_csr,
    _check_has_items,
    _empty_csr,
    _HostCSR,
    _nan_error,
    _ScoreBlocks,
    numba_threads,
)
from .spec import MetricSpec, _accuracy, _check_ks, _kernel_args, _tables

# args(block, ex_ptr, ex_idx, start, stop, nan_rows) -> the arguments of a kernel call that
# fills rows [start, stop) of its output
_BlockArgs = Callable[[np.ndarray, np.ndarray, np.ndarray, int, int, np.ndarray], tuple]


def _exclude(exclude, blocks: _ScoreBlocks) -> _HostCSR:
    return (_empty_csr(blocks.shape[0]) if exclude is None
            else _check_csr(exclude, name="exclude", shape=blocks.shape))


def _run_blocks(blocks: _ScoreBlocks, ex: _HostCSR, kernel, args: _BlockArgs, *,
                nan_policy: str, batch_size: int | None, n_threads: int | None,
                progress: bool) -> None:
    """Call ``kernel(*args(...))`` on every row block of the scores, then raise on NaN rows if
    asked to. The kernel's machine code for these argument types is loaded (or compiled, with a
    note on stderr) before the progress bar starts, so compile time is not in its rate."""
    from .._jit import ensure_compiled
    from .._progress import progress as bar

    n_rows = blocks.shape[0]
    nan_rows = np.zeros(n_rows, np.uint8)
    step = batch_size or blocks.default_batch(progress)
    if n_rows:
        with blocks.block(0, 1) as block:
            ensure_compiled(kernel, *args(block, *ex.rows(0, 1), 0, 1, nan_rows[0:1]))
            del block
    with numba_threads(n_threads), bar(total=n_rows, desc="evaluate", unit="user",
                                       enabled=progress) as pbar:
        for start in range(0, n_rows, step):
            stop = min(start + step, n_rows)
            ex_ptr, ex_idx = ex.rows(start, stop)
            with blocks.block(start, stop) as block:
                kernel(*args(block, ex_ptr, ex_idx, start, stop, nan_rows[start:stop]))
                del block  # lets a file chunk be unmapped on exit
            pbar.update(stop - start)
    n_nan = int(nan_rows.sum())
    if n_nan and nan_policy == "raise":
        raise _nan_error(n_nan, n_rows, int(np.argmax(nan_rows)))


def evaluate_numba(blocks: _ScoreBlocks, heldout, exclude, specs: tuple[MetricSpec, ...], *,
                   conv: Conventions, train, nan_policy: str, batch_size: int | None,
                   n_threads: int | None, progress: bool):
    """Per-user metric arrays, held-out counts and aggregate values: the engine of
    ``evaluate(backend="numba")``. The default conventions run the fused default kernel (with
    the beyond-accuracy sums in the same pass); anything else the general one
    (:mod:`evcf_fast.kernels.conventions`).

    Returns ``(per_user, n_heldout, aggregate)``; see :func:`evcf_fast.metrics.evaluate`.
    """
    from ..kernels import conventions as kconv
    from ..kernels import ranking

    n_rows, n_items = blocks.shape
    ho = _check_csr(heldout, name="heldout", shape=blocks.shape)
    ex = _exclude(exclude, blocks)
    _check_ks(specs, n_items)
    _check_has_items(int(ho.indptr[-1] - ho.indptr[0]))
    n_heldout, acc, ks, codes, beyond, discount, idcg = _prepare(specs, ho, conv, train, n_items)
    out = np.empty((n_rows, len(acc)), np.float64)
    tables, pop_out, info_out, len_out = beyond.outputs(n_rows, n_items, _slabs())
    if conv.default_kernel and (codes.size == 0 or int(codes.max()) <= ranking.MAP):
        dispatcher = ranking.topk_metrics

        def args(block, ex_ptr, ex_idx, start, stop, nan_rows):
            ho_ptr, ho_idx = ho.rows(start, stop)
            return (block, ex_ptr, ex_idx, ho_ptr, ho_idx, ks, codes, conv.recall_mode,
                    discount, idcg, beyond.bks, tables, beyond.with_pop,
                    conv.empty_users == "zero", pop_out[start:stop],
                    info_out[start:stop], len_out[start:stop], out[start:stop], nan_rows)
    else:
        gain = gains(heldout, ho.indices, conv.relevance)
        cumd = np.concatenate([[0.0], idcg])
        max_ho = int(n_heldout.max()) if n_rows else 0
        dispatcher = kconv.topk_metrics_ext

        def args(block, ex_ptr, ex_idx, start, stop, nan_rows):
            ho_ptr, ho_idx = ho.rows(start, stop)
            return (block, ex_ptr, ex_idx, ho_ptr, ho_idx, gain, ks, codes, conv.recall_mode,
                    conv.map_mode, conv.tie_mode, conv.relevance != "binary", discount, idcg,
                    cumd, max_ho, beyond.bks, tables, beyond.with_pop,
                    conv.empty_users == "zero", pop_out[start:stop],
                    info_out[start:stop], len_out[start:stop], out[start:stop], nan_rows)

    _run_blocks(blocks, ex, dispatcher, args, nan_policy=nan_policy, batch_size=batch_size,
                n_threads=n_threads, progress=progress)
    per_user = {str(s): np.ascontiguousarray(out[:, q]) for q, s in enumerate(acc)}
    per_user, aggregate = finish(per_user, n_heldout, conv, beyond, tables, pop_out, info_out,
                                 len_out)
    return _ordered(per_user, specs), n_heldout, aggregate


def _prepare(specs, ho: _HostCSR, conv: Conventions, train, n_items: int):
    """What both engines compute before their kernel: held-out counts (checked against the
    empty-users rule), the accuracy specs and their kernel codes, the beyond-accuracy inputs and
    the discount/IDCG tables up to the largest cut-off."""
    n_heldout = ho.counts()
    check_empty_users(conv, n_heldout)
    acc = _accuracy(specs)
    ks, codes = _kernel_args(specs)
    beyond = beyond_args(specs, train, n_items)
    discount, idcg = _tables(int(max(ks.max() if ks.size else 1,
                                     beyond.bks.max() if beyond.bks.size else 1)))
    return n_heldout, acc, ks, codes, beyond, discount, idcg


def _slabs() -> int:
    """Per-thread count slabs: one per thread of Numba's pool (``get_thread_id`` < this)."""
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def _ordered(per_user: dict[str, np.ndarray], specs) -> dict[str, np.ndarray]:
    """Per-user arrays in the order the metrics were asked for."""
    return {str(s): per_user[str(s)] for s in specs if str(s) in per_user}


def topk_numba(blocks: _ScoreBlocks, exclude, *, k: int, nan_policy: str,
               batch_size: int | None, n_threads: int | None) -> np.ndarray:
    """int64 (n_users, k) top-k item indices, -1 padded: the engine of :func:`~.topk`."""
    from ..kernels import ranking

    ex = _exclude(exclude, blocks)
    out = np.empty((blocks.shape[0], k), np.int64)

    def args(block, ex_ptr, ex_idx, start, stop, nan_rows):
        return block, ex_ptr, ex_idx, k, out[start:stop], nan_rows

    _run_blocks(blocks, ex, ranking.masked_topk, args, nan_policy=nan_policy,
                batch_size=batch_size, n_threads=n_threads, progress=False)
    return out


def evaluate_topk_numba(top: np.ndarray, ho: _HostCSR, ex: _HostCSR, heldout,
                        specs: tuple[MetricSpec, ...], *, conv: Conventions, train,
                        n_items: int, n_threads: int | None):
    """Per-user metric arrays and aggregate values of validated top-K lists: the engine of
    ``evaluate_topk``. Returns ``(per_user, aggregate)``."""
    from .._jit import ensure_compiled
    from ..kernels import conventions as kconv

    n_heldout, acc, ks, codes, beyond, discount, idcg = _prepare(specs, ho, conv, train, n_items)
    cumd = np.concatenate([[0.0], idcg])
    gain = gains(heldout, ho.indices, conv.relevance)
    n_rows = top.shape[0]
    out = np.empty((n_rows, len(acc)), np.float64)
    tables, pop_out, info_out, len_out = beyond.outputs(n_rows, n_items, _slabs())
    args = (top, ex.indptr, ex.indices, ho.indptr, ho.indices, gain, ks, codes,
            conv.recall_mode, conv.map_mode, conv.relevance != "binary", discount, idcg, cumd,
            int(n_heldout.max()) if n_rows else 0, beyond.bks, tables, beyond.with_pop,
            conv.empty_users == "zero", pop_out, info_out, len_out, out)
    ensure_compiled(kconv.topk_metrics_from_topk_ext, *args)
    with numba_threads(n_threads):
        kconv.topk_metrics_from_topk_ext(*args)
    per_user = {str(s): np.ascontiguousarray(out[:, q]) for q, s in enumerate(acc)}
    per_user, aggregate = finish(per_user, n_heldout, conv, beyond, tables, pop_out, info_out,
                                 len_out)
    return _ordered(per_user, specs), aggregate
