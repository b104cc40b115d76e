"""Input validation for every metrics path: CSR matrices, score sources, top-K lists, options.

The kernels assume their array contract (:mod:`evcf_fast.kernels.ranking`) and check nothing, so
everything a caller passes is checked here, once, with one message per mistake: both backends
call the same validators and therefore reject the same inputs with the same words. Score sources
become :class:`_ScoreBlocks`, row blocks that are either slices of an in-memory array or chunks of
a ``.npy`` file mapped one at a time, so a file larger than memory can be evaluated.

Nothing here imports torch or numba at import time: a tensor can only exist if torch is already
imported, and a :class:`DeviceCSR` only if the torch path is, so both are recognised through
``sys.modules`` instead of an import (which also keeps this file below the torch path).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_int, must_be

# rows per kernel call for files: about this many bytes of scores mapped at a time
_FILE_BLOCK_BYTES = 64 << 20
# rows per kernel call for in-memory scores when a progress bar needs updates
_PROGRESS_BLOCK_ROWS = 4096
# where DeviceCSR lives; looked up in sys.modules, never imported from here
_TORCH_PATH = "evcf_fast.metrics.torch_path"


def _torch():
    """The torch module if it is already imported (so a tensor can exist), else None."""
    return sys.modules.get("torch")


def _is_tensor(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _is_device_csr(x) -> bool:
    mod = sys.modules.get(_TORCH_PATH)
    return mod is not None and isinstance(x, mod.DeviceCSR)


# -------------------------------------------------------------------------------------------
# CSR matrices (heldout, exclude)


@dataclass(frozen=True)
class _HostCSR:
    """Validated CSR arrays for the kernels: int64 indptr, int32/int64 sorted indices."""

    indptr: np.ndarray
    indices: np.ndarray

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return self.indptr[start:stop + 1], self.indices

    def counts(self) -> np.ndarray:
        return np.diff(self.indptr)


def _check_csr(x, *, name: str, shape: tuple[int, int]) -> _HostCSR:
    """Validate a scipy CSR (or a CPU DeviceCSR) and return its arrays; never copies indices."""
    if _is_device_csr(x):
        if x.device.type != "cpu":
            raise ValueError(f"{name} is a DeviceCSR on {x.device} but the scores are in host "
                             f"memory; pass a CPU DeviceCSR or a scipy CSR, or use CUDA scores")
        if tuple(x.shape) != shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {shape} to match "
                             f"scores")
        return _HostCSR(x.crow.numpy(), x.col.numpy())
    import scipy.sparse as sp  # here, not at import: `evcf --help` stays free of scipy

    if not sp.issparse(x):
        raise TypeError(f"{name} must be a scipy.sparse CSR matrix/array or a DeviceCSR, got "
                        f"{type(x).__name__}")
    if x.format != "csr":
        raise TypeError(f"{name} is {x.format.upper()}, expected CSR; convert it once with "
                        f"{name}.tocsr() before evaluating")
    if tuple(x.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {shape} to match scores")
    indptr, indices = x.indptr, x.indices
    if indptr.dtype.kind != "i" or indices.dtype not in (np.int32, np.int64):
        raise TypeError(f"{name} index arrays must be int32 or int64, got indptr "
                        f"{indptr.dtype} and indices {indices.dtype}")
    if indices.shape[0] and (int(indices.min()) < 0 or int(indices.max()) >= shape[1]):
        raise ValueError(f"{name} has column indices outside [0, {shape[1]}); the CSR is "
                         f"corrupt")
    if not _canonical(x):
        raise ValueError(f"{name} has unsorted or duplicate column indices within rows; call "
                         f"{name}.sum_duplicates() once (it sorts and merges) before evaluating")
    # int64 row pointers: an O(n_users) conversion at most; indices are used as they are
    return _HostCSR(np.asarray(indptr, dtype=np.int64), np.asarray(indices))


def _canonical(x) -> bool:
    """Rows sorted and duplicate-free. scipy's cached flag when it can compute it; its check
    rejects mixed index dtypes (int64 indptr with int32 indices), so those are checked here."""
    try:
        return bool(x.has_canonical_format)
    except (TypeError, ValueError):
        pass
    indptr = np.asarray(x.indptr, dtype=np.int64)
    step = np.diff(np.asarray(x.indices, dtype=np.int64))
    inside = np.ones(step.shape[0], bool)
    starts = indptr[1:-1]
    inside[starts[(starts > 0) & (starts <= step.shape[0])] - 1] = False
    return bool((step[inside] > 0).all())


def _empty_csr(n_rows: int) -> _HostCSR:
    return _HostCSR(np.zeros(n_rows + 1, np.int64), np.zeros(0, np.int32))


def _check_has_items(n_stored: int) -> None:
    """Reject a held-out matrix without entries: every user would be skipped, every mean NaN."""
    if n_stored == 0:
        raise ValueError("heldout has no items: every user would be skipped")


# -------------------------------------------------------------------------------------------
# scores


class _ScoreBlocks:
    """Row blocks of a score matrix in host memory: an array, or a .npy file mapped in chunks."""

    def __init__(self, array: np.ndarray | None = None, *, path: Path | None = None,
                 offset: int = 0, shape=None, dtype=None):
        self.array = array
        self.path = path
        self.offset = offset
        self.shape = tuple(array.shape) if array is not None else tuple(shape)
        self.dtype = np.dtype(array.dtype if array is not None else dtype)

    def default_batch(self, progress: bool) -> int:
        n_rows, n_items = self.shape
        if self.path is not None:
            return max(1, _FILE_BLOCK_BYTES // max(1, n_items * self.dtype.itemsize))
        return _PROGRESS_BLOCK_ROWS if progress else max(1, n_rows)

    @contextlib.contextmanager
    def block(self, start: int, stop: int):
        """Yield rows [start, stop) as a C-order array; a file's chunk is unmapped afterwards."""
        if self.path is None:
            yield self.array[start:stop]
            return
        n_items = self.shape[1]
        row_bytes = n_items * self.dtype.itemsize
        lo = self.offset + start * row_bytes
        hi = self.offset + stop * row_bytes
        base = lo - lo % mmap.ALLOCATIONGRANULARITY
        try:
            with open(self.path, "rb") as f:
                mm = mmap.mmap(f.fileno(), hi - base, access=mmap.ACCESS_READ, offset=base)
        except (OSError, ValueError) as exc:  # e.g. the file was truncated or removed meanwhile
            raise ValueError(f"scores file {str(self.path)!r}: rows {start}..{stop} cannot be "
                             f"read ({exc}); is the file truncated?") from None
        try:
            if hasattr(mm, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
                mm.madvise(mmap.MADV_SEQUENTIAL)
            arr = np.frombuffer(mm, dtype=self.dtype, count=(stop - start) * n_items,
                                offset=lo - base).reshape(stop - start, n_items)
            yield arr
            del arr
        finally:
            # unmapping drops the chunk's pages from this process: peak RSS stays ~ one chunk
            with contextlib.suppress(BufferError):
                mm.close()


def _check_score_array(a: np.ndarray, *, what: str = "scores") -> np.ndarray:
    if a.ndim != 2:
        raise ValueError(f"{what} must be 2-D (n_users, n_items), got shape {a.shape}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{what} must be float32 or float64, got {a.dtype}; convert once with "
                        f".astype(np.float32)")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{what} is empty: shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous (row-major); pass "
                         f"np.ascontiguousarray({what}) (one copy)")
    return a


def _npy_blocks(path: Path) -> _ScoreBlocks:
    if path.suffix != ".npy":
        raise ValueError(f"scores path {str(path)!r} must be a .npy file")
    try:
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"scores file {str(path)!r} does not exist") from None
    except (ValueError, EOFError) as exc:
        raise ValueError(f"scores file {str(path)!r} is not a readable .npy array: {exc}") from None
    try:
        _check_score_array(mm, what=f"scores file {str(path)!r}")
        return _ScoreBlocks(path=path, offset=int(mm.offset), shape=mm.shape, dtype=mm.dtype)
    finally:
        del mm


def _file_backing(a: np.ndarray) -> tuple[Path, int] | None:
    """(file, byte offset) when ``a`` is a C-contiguous 2-D block of a read-only or shared
    np.memmap (found through its public ``base`` chain), else None."""
    if a.ndim != 2 or not a.flags.c_contiguous:
        return None
    root = a
    while root is not None and not isinstance(root.base, mmap.mmap):
        root = root.base if isinstance(root.base, np.ndarray) else None
    if not isinstance(root, np.memmap) or not root.filename or root.mode not in ("r", "r+"):
        return None  # "c" (copy-on-write) mappings may differ from the file
    delta = a.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return Path(root.filename), int(root.offset) + int(delta)


def _host_scores(scores) -> _ScoreBlocks:
    """Scores for the Numba path: ndarray, np.memmap, .npy path or CPU tensor (no copies)."""
    if isinstance(scores, (str, os.PathLike)):
        return _npy_blocks(Path(scores))
    backing = _file_backing(scores) if isinstance(scores, np.ndarray) else None
    if backing is not None:
        # rows of a mapped file (np.load(..., mmap_mode="r") or a row slice of it): read them
        # through our own chunk mappings, so that their pages do not pile up in this
        # process's RSS as they would through the caller's mapping
        _check_score_array(scores)
        return _ScoreBlocks(path=backing[0], offset=backing[1], shape=scores.shape,
                            dtype=scores.dtype)
    if _is_tensor(scores):
        if scores.device.type != "cpu":
            raise ValueError(f"scores are on {scores.device}; the numba backend needs host "
                             f"memory: use backend='torch' (or 'auto'), or move them with .cpu()")
        if not scores.is_contiguous():
            raise ValueError("scores must be C-contiguous (row-major); pass scores.contiguous() "
                             "(one copy)")
        scores = scores.detach()
        if str(scores.dtype) not in ("torch.float32", "torch.float64"):
            raise TypeError(f"scores must be float32 or float64 for the numba backend, got "
                            f"{scores.dtype}; use backend='torch' or convert with .float()")
        return _ScoreBlocks(_check_score_array(scores.numpy()))
    if isinstance(scores, np.ndarray):
        return _ScoreBlocks(_check_score_array(np.asarray(scores)))
    raise TypeError(f"scores must be a numpy array, a .npy path, or a torch tensor, got "
                    f"{type(scores).__name__}")


def _nan_error(n_nan: int, n_rows: int, first: int) -> ValueError:
    return ValueError(f"scores contain NaN in {n_nan} of {n_rows} rows (first: row {first}); "
                      f"fix the model, or pass nan_policy='neg_inf' to rank NaN as -inf")


# -------------------------------------------------------------------------------------------
# top-K lists (evaluate_topk)


def _check_topk_array(topk) -> None:
    """The container of precomputed top-K lists: a non-empty 2-D integer ndarray."""
    if not isinstance(topk, np.ndarray):
        raise TypeError(f"topk must be a numpy array, got {type(topk).__name__}")
    if topk.ndim != 2:
        raise ValueError(f"topk must be 2-D (n_users, width), got shape {topk.shape}")
    if topk.dtype.kind not in "iu":
        raise TypeError(f"topk must hold integer item indices, got {topk.dtype}")
    if topk.shape[0] == 0 or topk.shape[1] == 0:
        raise ValueError(f"topk is empty: shape {topk.shape}")


def _topk_lists(topk: np.ndarray, n_items: int) -> np.ndarray:
    """The lists as C-order int64 after checking their items: in range, -1 padding last, and
    distinct within a row (the kernel counts a repeated item as two hits)."""
    top = np.ascontiguousarray(topk, dtype=np.int64)
    if int(top.max()) >= n_items or int(top.min()) < -1:
        raise ValueError(f"topk holds item indices outside [0, {n_items}) (besides -1 padding)")
    pad = top < 0
    if (pad[:, :-1] & ~pad[:, 1:]).any():
        raise ValueError("topk has -1 padding before an item; padding must come last in a row")
    # paddings become distinct negatives so that only real items can collide after sorting
    srt = np.sort(np.where(pad, -1 - np.arange(top.shape[1]), top), axis=1)
    if (srt[:, 1:] == srt[:, :-1]).any():
        row = int(np.argmax((srt[:, 1:] == srt[:, :-1]).any(axis=1)))
        raise ValueError(f"topk repeats an item within row {row}; items must be distinct")
    return top


# -------------------------------------------------------------------------------------------
# options and threads


def _check_batch(batch_size) -> int | None:
    return check_int(batch_size, "batch_size", minimum=1, allow_none=True)


def _check_threads(n_threads) -> int | None:
    if n_threads is None:
        return None  # before importing numba: most calls never set a thread count
    import numba

    n_threads = check_int(n_threads, "n_threads", allow_none=True)
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n_threads <= limit:
        # the bound is Numba's, so the message names where it comes from
        raise ValueError(must_be("n_threads", f"in [1, {limit}] (NUMBA_NUM_THREADS)",
                                 n_threads))
    return n_threads


@contextlib.contextmanager
def numba_threads(n_threads: int | None):
    """Run the block with ``n_threads`` Numba threads, restoring the previous count after.

    ``None`` leaves the setting alone. Numba's thread count is per calling thread, so this
    never affects other Python threads.
    """
    if n_threads is None:
        yield
        return
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)
