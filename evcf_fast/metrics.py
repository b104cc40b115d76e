"""Ranking metrics for the strong-generalization protocol: masked top-K, NDCG, Recall and friends.

Semantics follow Liang et al., "Variational Autoencoders for Collaborative Filtering" (WWW 2018;
dawenl/vae_cf ``NDCG_binary_at_k_batch`` and ``Recall_at_k_batch``), the evaluation used by
Kim & Suh, "Enhancing VAEs for Collaborative Filtering: Flexible Priors & Gating Mechanisms"
(RecSys 2019; psywaves/EVCF ``utils/evaluation.py``). What those references leave open is fixed
here and identical on every path (Numba kernel, chunked files, torch on CPU or GPU), for every
batch size and thread count.

Definitions, per user, with binary relevance (every stored entry of ``heldout`` is a relevant
item, whatever its value) and ``n_ho`` the user's number of held-out items:

* **ranking**: items sorted by score, highest first; **equal scores rank the lower item index
  first**; ``-inf`` ranks after every finite score; items in ``exclude`` (the fold-in items) never
  appear; if fewer than k items are not excluded, the list is shorter. NaN scores are an error
  (``nan_policy="raise"``) or rank as ``-inf`` (``nan_policy="neg_inf"``); only NaN at
  non-excluded items count.
* **NDCG@k** = DCG / IDCG with DCG = sum over hits at rank r <= k of 1 / log2(r + 1) and IDCG the
  same sum over ranks 1..min(n_ho, k) (never over the retrieved hits).
* **Recall@k** = hits@k / min(k, n_ho) (vae_cf's truncated recall, ``recall_denominator="min"``,
  the default) or hits@k / n_ho (``recall_denominator="heldout"``).
* **Precision@k** = hits@k / k; **HitRate@k** = 1 if hits@k > 0 else 0; **MRR@k** = 1 / rank of
  the first hit within k (0 if none); **MAP@k** = (sum over hit ranks r <= k of hits@r / r) /
  min(k, n_ho).
* A held-out item that is also excluded counts in ``n_ho`` but can never be hit, as in vae_cf
  (which masks fold-in items to -inf before ranking).
* Users without held-out items get NaN per-user values; they are left out of the means and
  counted in ``n_skipped``. Means weigh users equally; the standard error is the sample standard
  deviation (ddof=1) divided by sqrt(n_evaluated).

Example
-------
>>> res = evaluate(scores, heldout, exclude=fold_in)            # doctest: +SKIP
>>> print(res)                                                  # doctest: +SKIP
metric        mean    stderr
ndcg@100   0.42318   0.00231
...
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import mmap
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

# DeviceCSR (evcf_fast.metrics_torch) is also importable from here, lazily: see __getattr__
__all__ = [
    "METRICS", "MetricSpec", "parse_metrics", "EvaluationResult", "evaluate", "evaluate_topk",
    "topk", "numba_threads", "warmup",
]

RECALL_DENOMINATORS = ("min", "heldout")
NAN_POLICIES = ("raise", "neg_inf")
BACKENDS = ("auto", "numba", "torch")
TIE_RULE = "equal scores: lower item index ranks first"

# rows per kernel call for files: about this many bytes of scores mapped at a time
_FILE_BLOCK_BYTES = 64 << 20
# rows per kernel call for in-memory scores when a progress bar needs updates
_PROGRESS_BLOCK_ROWS = 4096


@dataclass(frozen=True)
class _MetricDef:
    code: int  # the kernel's metric code (evcf_fast.kernels.ranking)
    title: str
    definition: str


#: The metric registry: name -> definition. Metric strings are ``"name@k"``.
METRICS: dict[str, _MetricDef] = {
    "ndcg": _MetricDef(0, "NDCG", "DCG@k / IDCG over min(n_heldout, k), discount 1/log2(r+1)"),
    "recall": _MetricDef(1, "Recall", "hits@k / min(k, n_heldout) (or / n_heldout)"),
    "precision": _MetricDef(2, "Precision", "hits@k / k"),
    "hitrate": _MetricDef(3, "HitRate", "1 if hits@k > 0 else 0"),
    "mrr": _MetricDef(4, "MRR", "1 / rank of the first hit within k, 0 if none"),
    "map": _MetricDef(5, "MAP", "sum over hit ranks r <= k of precision@r / min(k, n_heldout)"),
}
_ALIASES = {"hit": "hitrate"}


def _known_names() -> list[str]:
    return sorted([*METRICS, *_ALIASES])


@dataclass(frozen=True, order=True)
class MetricSpec:
    """One metric at one cut-off, e.g. ``MetricSpec("ndcg", 100)``; ``str()`` gives ``"ndcg@100"``.

    Parameters
    ----------
    name : str
        A key of :data:`METRICS` (or the alias ``"hit"`` for ``"hitrate"``).
    k : int
        The cut-off, >= 1 (checked against ``n_items`` when evaluating).
    """

    name: str
    k: int

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(f"metric name must be a str, got {type(self.name).__name__}")
        name = _ALIASES.get(self.name.lower(), self.name.lower())
        if name not in METRICS:
            raise ValueError(f"unknown metric {self.name!r}; expected one of {_known_names()}")
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)):
            raise TypeError(f"cut-off k of {name!r} must be an int, got {type(self.k).__name__}")
        if self.k < 1:
            raise ValueError(f"cut-off k of {name!r} must be >= 1, got {self.k}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "k", int(self.k))

    def __str__(self) -> str:
        return f"{self.name}@{self.k}"

    @classmethod
    def parse(cls, text: str) -> MetricSpec:
        """Parse ``"name@k"`` (case-insensitive, surrounding spaces ignored)."""
        if not isinstance(text, str):
            raise TypeError(f"metrics must be strings like 'ndcg@100' or MetricSpec, got "
                            f"{type(text).__name__}")
        name, at, k = text.strip().partition("@")
        key = name.strip().lower()
        if key not in METRICS and key not in _ALIASES:
            raise ValueError(f"unknown metric {text!r}; expected one of {_known_names()} "
                             f"with a cut-off, e.g. 'ndcg@100'")
        if not at:
            raise ValueError(f"metric {text!r} needs a cut-off: write it as '{key}@k', e.g. "
                             f"'{key}@100'")
        try:
            k_int = int(k.strip())
        except ValueError:
            raise ValueError(f"metric {text!r} has cut-off {k.strip()!r}; expected a positive "
                             f"integer, e.g. 'ndcg@100'") from None
        return cls(name.strip(), k_int)


def parse_metrics(metrics: str | MetricSpec | Iterable[str | MetricSpec]) -> tuple[MetricSpec, ...]:
    """Parse metric strings once: ``"ndcg@100"`` or a sequence of them (duplicates dropped).

    Raises
    ------
    ValueError
        Unknown metric name (the message lists the known ones), missing or bad cut-off, or an
        empty sequence.
    """
    if isinstance(metrics, (str, MetricSpec)):
        metrics = (metrics,)
    specs: list[MetricSpec] = []
    for m in metrics:
        spec = m if isinstance(m, MetricSpec) else MetricSpec.parse(m)
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise ValueError("metrics is empty; expected at least one, e.g. ('ndcg@100',)")
    return tuple(specs)


# -------------------------------------------------------------------------------------------
# result


@dataclass(frozen=True, kw_only=True)
class EvaluationResult:
    """Per-user metric values with their means and standard errors.

    Attributes
    ----------
    metrics : tuple of MetricSpec
        The evaluated metrics, in the order asked for.
    per_user : dict of str to ndarray
        ``str(spec)`` -> float64 array of shape (n_users,), NaN for skipped users (no held-out
        items). Read-only.
    n_heldout : ndarray
        int64 number of held-out items per user.
    recall_denominator : str
        ``"min"`` or ``"heldout"`` (see the module docstring).
    mean, stderr : dict of str to float
        Over evaluated users only; ``stderr`` is NaN with fewer than two evaluated users.
    """

    metrics: tuple[MetricSpec, ...]
    per_user: dict[str, np.ndarray]
    n_heldout: np.ndarray
    recall_denominator: str = "min"
    mean: dict[str, float] = dataclasses.field(init=False)
    stderr: dict[str, float] = dataclasses.field(init=False)

    def __post_init__(self):
        evaluated = self.n_heldout > 0
        n = int(evaluated.sum())
        mean, stderr = {}, {}
        for name, values in self.per_user.items():
            values.setflags(write=False)
            v = values[evaluated]
            mean[name] = float(v.mean()) if n else math.nan
            stderr[name] = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        self.n_heldout.setflags(write=False)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "stderr", stderr)

    @property
    def n_users(self) -> int:
        """Users (rows) in the evaluation, skipped ones included."""
        return int(self.n_heldout.shape[0])

    @property
    def n_evaluated(self) -> int:
        """Users with at least one held-out item: the ones in the means."""
        return int((self.n_heldout > 0).sum())

    @property
    def n_skipped(self) -> int:
        """Users without held-out items (NaN per-user values, left out of the means)."""
        return self.n_users - self.n_evaluated

    @classmethod
    def concat(cls, results: Sequence[EvaluationResult]) -> EvaluationResult:
        """Combine results of consecutive user blocks into one (per-user arrays concatenated)."""
        results = list(results)
        if not results:
            raise ValueError("results is empty; expected at least one EvaluationResult")
        first = results[0]
        for r in results[1:]:
            if r.metrics != first.metrics or r.recall_denominator != first.recall_denominator:
                raise ValueError(
                    f"cannot concatenate results of different evaluations: metrics "
                    f"{[str(m) for m in first.metrics]} with recall_denominator="
                    f"{first.recall_denominator!r} vs {[str(m) for m in r.metrics]} with "
                    f"{r.recall_denominator!r}")
        per_user = {name: np.concatenate([r.per_user[name] for r in results])
                    for name in first.per_user}
        return cls(metrics=first.metrics, per_user=per_user,
                   n_heldout=np.concatenate([r.n_heldout for r in results]),
                   recall_denominator=first.recall_denominator)

    def table(self) -> str:
        """A readable table of means and standard errors plus the user counts."""
        width = max(len("metric"), *(len(str(m)) for m in self.metrics))
        lines = [f"{'metric':<{width}}  {'mean':>9}  {'stderr':>9}"]
        for m in self.metrics:
            name = str(m)
            lines.append(f"{name:<{width}}  {self.mean[name]:>9.5f}  {self.stderr[name]:>9.5f}")
        lines.append(f"{self.n_users} users: {self.n_evaluated} evaluated, {self.n_skipped} "
                     f"skipped (no held-out items)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict:
        """JSON-able summary: means, standard errors (NaN as None), counts and definitions."""
        def clean(x: float):
            return None if math.isnan(x) else x
        return {
            "metrics": {str(m): {"mean": clean(self.mean[str(m)]),
                                 "stderr": clean(self.stderr[str(m)])} for m in self.metrics},
            "n_users": self.n_users,
            "n_evaluated": self.n_evaluated,
            "n_skipped": self.n_skipped,
            "recall_denominator": self.recall_denominator,
            "tie_rule": TIE_RULE,
        }


# -------------------------------------------------------------------------------------------
# inputs


def __getattr__(name: str):
    # DeviceCSR lives with the torch path; importing it here would import torch for everyone
    if name == "DeviceCSR":
        from .metrics_torch import DeviceCSR

        return DeviceCSR
    raise AttributeError(f"module 'evcf_fast.metrics' has no attribute {name!r}")


def _torch():
    """The torch module if it is already imported (so a tensor can exist), else None."""
    return sys.modules.get("torch")


def _is_tensor(x) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def _is_device_csr(x) -> bool:
    mod = sys.modules.get("evcf_fast.metrics_torch")
    return mod is not None and isinstance(x, mod.DeviceCSR)


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
        with open(self.path, "rb") as f:
            mm = mmap.mmap(f.fileno(), hi - base, access=mmap.ACCESS_READ, offset=base)
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


def _check_choice(value, *, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def _check_threads(n_threads) -> int | None:
    if n_threads is None:
        return None
    import numba

    if isinstance(n_threads, bool) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(f"n_threads must be an int or None, got {type(n_threads).__name__}")
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n_threads <= limit:
        raise ValueError(f"n_threads must be in [1, {limit}] (NUMBA_NUM_THREADS), got "
                         f"{n_threads}")
    return int(n_threads)


def _check_batch(batch_size) -> int | None:
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"batch_size must be an int or None, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def _check_ks(specs: tuple[MetricSpec, ...], n_items: int) -> None:
    for s in specs:
        if s.k > n_items:
            raise ValueError(f"k must be in [1, n_items={n_items}], got {s} (k={s.k})")


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


def _tables(k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """discount[r] = 1 / log2(r + 2) and idcg[r] = discount[:r + 1].sum(), shared by all paths."""
    discount = 1.0 / np.log2(np.arange(2, k_max + 2, dtype=np.float64))
    return discount, np.cumsum(discount)


def _nan_error(n_nan: int, n_rows: int, first: int) -> ValueError:
    return ValueError(f"scores contain NaN in {n_nan} of {n_rows} rows (first: row {first}); "
                      f"fix the model, or pass nan_policy='neg_inf' to rank NaN as -inf")


# -------------------------------------------------------------------------------------------
# public API


def evaluate(scores, heldout, *, exclude=None,
             metrics: str | Iterable[str | MetricSpec] = ("ndcg@100", "recall@20", "recall@50"),
             recall_denominator: str = "min", nan_policy: str = "raise",
             batch_size: int | None = None, n_threads: int | None = None,
             progress: bool = False, backend: str = "auto") -> EvaluationResult:
    """Ranking metrics of a score matrix against held-out items, excluding fold-in items.

    Definitions and the tie rule are in the module docstring (vae_cf semantics; equal scores
    rank the lower item index first).

    Parameters
    ----------
    scores : ndarray, np.memmap, path to a .npy file, or torch.Tensor of shape (n_users, n_items)
        float32 or float64, C-order. A path (or a read-only np.memmap of a whole file) is read
        in chunks of about 64 MiB, so peak memory stays far below the file size. A CPU tensor
        is used without a copy; a CUDA tensor goes to the torch path.
    heldout : scipy.sparse CSR matrix/array or DeviceCSR, shape (n_users, n_items)
        The held-out (target) items per user; values are ignored, every stored entry counts.
        Rows must be sorted and duplicate-free (``sum_duplicates()`` once).
    exclude : same types as ``heldout``, optional
        Items never to recommend (the fold-in items); scored as if removed from the catalogue.
    metrics : str or sequence of str or MetricSpec
        Metric strings ``"name@k"`` with name in :data:`METRICS` (``hit`` is ``hitrate``) and
        ``1 <= k <= n_items``.
    recall_denominator : {"min", "heldout"}
        Recall@k divides hits by min(k, n_heldout) (vae_cf, default) or by n_heldout.
    nan_policy : {"raise", "neg_inf"}
        NaN scores (at non-excluded items) raise ValueError with the number of NaN rows, or
        rank as -inf.
    batch_size : int, optional
        Users per kernel call (default: all at once in memory, ~64 MiB chunks for files, 4096
        with a progress bar; the torch path caps blocks at ~64M scores). Results do not depend
        on it.
    n_threads : int, optional
        Numba threads for this call (restored afterwards); results do not depend on it.
    progress : bool
        Show a progress bar over users.
    backend : {"auto", "numba", "torch"}
        ``auto`` uses torch for CUDA tensors (or float16/bfloat16 ones) and the Numba kernel
        otherwise; ``torch`` forces the torch path (also on CPU), ``numba`` the kernel.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    TypeError
        Wrong types or dtypes (non-float scores, non-CSR or non-integer index arrays).
    ValueError
        Shape mismatch, empty inputs, k outside [1, n_items], unknown metric, unsorted CSR rows,
        NaN scores under ``nan_policy="raise"``, or a held-out matrix with no items at all.
    """
    specs = parse_metrics(metrics)
    _check_choice(recall_denominator, name="recall_denominator", choices=RECALL_DENOMINATORS)
    _check_choice(nan_policy, name="nan_policy", choices=NAN_POLICIES)
    _check_choice(backend, name="backend", choices=BACKENDS)
    batch_size = _check_batch(batch_size)
    n_threads = _check_threads(n_threads)
    use_torch = backend == "torch" or (
        backend == "auto" and _is_tensor(scores)
        and (scores.device.type != "cpu"
             or str(scores.dtype) not in ("torch.float32", "torch.float64")))
    if use_torch:
        from .metrics_torch import evaluate_torch

        per_user, n_heldout = evaluate_torch(
            scores, heldout, exclude=exclude, specs=specs,
            recall_mode=RECALL_DENOMINATORS.index(recall_denominator), nan_policy=nan_policy,
            batch_size=batch_size, progress=progress)
    else:
        per_user, n_heldout = _evaluate_numba(
            _host_scores(scores), heldout, exclude, specs,
            recall_mode=RECALL_DENOMINATORS.index(recall_denominator), nan_policy=nan_policy,
            batch_size=batch_size, n_threads=n_threads, progress=progress)
    return EvaluationResult(metrics=specs, per_user=per_user, n_heldout=n_heldout,
                            recall_denominator=recall_denominator)


def _evaluate_numba(blocks: _ScoreBlocks, heldout, exclude, specs, *, recall_mode, nan_policy,
                    batch_size, n_threads, progress):
    from ._progress import progress as bar
    from .kernels import ranking

    n_rows, n_items = blocks.shape
    ho = _check_csr(heldout, name="heldout", shape=blocks.shape)
    ex = _empty_csr(n_rows) if exclude is None else _check_csr(exclude, name="exclude",
                                                               shape=blocks.shape)
    _check_ks(specs, n_items)
    if ho.indptr[-1] == ho.indptr[0]:
        raise ValueError("heldout has no items: every user would be skipped")
    ks = np.array([s.k for s in specs], np.int64)
    codes = np.array([METRICS[s.name].code for s in specs], np.int64)
    discount, idcg = _tables(int(ks.max()))
    out = np.empty((n_rows, len(specs)), np.float64)
    nan_rows = np.zeros(n_rows, np.uint8)
    step = batch_size or blocks.default_batch(progress)
    with numba_threads(n_threads), bar(total=n_rows, desc="evaluate", unit="user",
                                       enabled=progress) as pbar:
        for start in range(0, n_rows, step):
            stop = min(start + step, n_rows)
            ex_ptr, ex_idx = ex.rows(start, stop)
            ho_ptr, ho_idx = ho.rows(start, stop)
            with blocks.block(start, stop) as block:
                ranking.topk_metrics(block, ex_ptr, ex_idx, ho_ptr, ho_idx, ks, codes,
                                     recall_mode, discount, idcg, out[start:stop],
                                     nan_rows[start:stop])
                del block  # lets a file chunk be unmapped on exit
            pbar.update(stop - start)
    n_nan = int(nan_rows.sum())
    if n_nan and nan_policy == "raise":
        raise _nan_error(n_nan, n_rows, int(np.argmax(nan_rows)))
    per_user = {str(s): np.ascontiguousarray(out[:, q]) for q, s in enumerate(specs)}
    return per_user, ho.counts()


def topk(scores, *, k: int, exclude=None, nan_policy: str = "raise",
         batch_size: int | None = None, n_threads: int | None = None) -> np.ndarray:
    """The top-k items of every user, best first, with the tie rule of :func:`evaluate`.

    Parameters
    ----------
    scores : as in :func:`evaluate` (host memory: ndarray, np.memmap, .npy path, CPU tensor)
    k : int
        1 <= k <= n_items.
    exclude : scipy.sparse CSR or CPU DeviceCSR, optional
        Items never to return.
    nan_policy, batch_size, n_threads : as in :func:`evaluate`

    Returns
    -------
    ndarray of shape (n_users, k), int64
        Item indices; rows with fewer than k non-excluded items are padded with -1.
    """
    from .kernels import ranking

    _check_choice(nan_policy, name="nan_policy", choices=NAN_POLICIES)
    batch_size = _check_batch(batch_size)
    n_threads = _check_threads(n_threads)
    blocks = _host_scores(scores)
    n_rows, n_items = blocks.shape
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if not 1 <= k <= n_items:
        raise ValueError(f"k must be in [1, n_items={n_items}], got k={k}")
    ex = _empty_csr(n_rows) if exclude is None else _check_csr(exclude, name="exclude",
                                                               shape=blocks.shape)
    out = np.empty((n_rows, int(k)), np.int64)
    nan_rows = np.zeros(n_rows, np.uint8)
    step = batch_size or blocks.default_batch(False)
    with numba_threads(n_threads):
        for start in range(0, n_rows, step):
            stop = min(start + step, n_rows)
            ex_ptr, ex_idx = ex.rows(start, stop)
            with blocks.block(start, stop) as block:
                ranking.masked_topk(block, ex_ptr, ex_idx, int(k), out[start:stop],
                                    nan_rows[start:stop])
                del block  # lets a file chunk be unmapped on exit
    n_nan = int(nan_rows.sum())
    if n_nan and nan_policy == "raise":
        raise _nan_error(n_nan, n_rows, int(np.argmax(nan_rows)))
    return out


def evaluate_topk(topk, heldout, *, exclude=None,
                  metrics: str | Iterable[str | MetricSpec] = ("ndcg@100", "recall@20",
                                                               "recall@50"),
                  recall_denominator: str = "min", n_items: int | None = None,
                  n_threads: int | None = None) -> EvaluationResult:
    """Ranking metrics from precomputed top-K lists instead of scores.

    Parameters
    ----------
    topk : ndarray of shape (n_users, width), integer
        Item indices per user, best first, distinct within a row; a row shorter than ``width``
        is padded at its end with -1. Items in ``exclude`` are dropped from the lists (the
        items after them move up), so the lists may include them.
    heldout, exclude : scipy.sparse CSR (or CPU DeviceCSR) of shape (n_users, n_items)
    metrics, recall_denominator, n_threads : as in :func:`evaluate`
    n_items : int, optional
        Catalogue size; default ``heldout.shape[1]``. Cut-offs must be <= n_items; a cut-off
        beyond ``width`` sees a shorter list.

    Returns
    -------
    EvaluationResult
    """
    from .kernels import ranking

    specs = parse_metrics(metrics)
    _check_choice(recall_denominator, name="recall_denominator", choices=RECALL_DENOMINATORS)
    n_threads = _check_threads(n_threads)
    if not isinstance(topk, np.ndarray):
        raise TypeError(f"topk must be a numpy array, got {type(topk).__name__}")
    if topk.ndim != 2:
        raise ValueError(f"topk must be 2-D (n_users, width), got shape {topk.shape}")
    if topk.dtype.kind not in "iu":
        raise TypeError(f"topk must hold integer item indices, got {topk.dtype}")
    if topk.shape[0] == 0 or topk.shape[1] == 0:
        raise ValueError(f"topk is empty: shape {topk.shape}")
    hshape = getattr(heldout, "shape", None)
    if n_items is None:
        if hshape is None or len(hshape) != 2:
            raise TypeError(f"heldout must be a scipy.sparse CSR matrix/array or a DeviceCSR, "
                            f"got {type(heldout).__name__}")
        n_items = int(hshape[1])
    shape = (topk.shape[0], int(n_items))
    _check_ks(specs, n_items)
    top = np.ascontiguousarray(topk, dtype=np.int64)
    if int(top.max()) >= n_items or int(top.min()) < -1:
        raise ValueError(f"topk holds item indices outside [0, {n_items}) (besides -1 padding)")
    pad = top < 0
    if (pad[:, :-1] & ~pad[:, 1:]).any():
        raise ValueError("topk has -1 padding before an item; padding must come last in a row")
    srt = np.sort(np.where(pad, -1 - np.arange(top.shape[1]), top), axis=1)
    if (srt[:, 1:] == srt[:, :-1]).any():
        row = int(np.argmax((srt[:, 1:] == srt[:, :-1]).any(axis=1)))
        raise ValueError(f"topk repeats an item within row {row}; items must be distinct")
    ho = _check_csr(heldout, name="heldout", shape=shape)
    ex = _empty_csr(shape[0]) if exclude is None else _check_csr(exclude, name="exclude",
                                                                 shape=shape)
    if ho.indptr[-1] == ho.indptr[0]:
        raise ValueError("heldout has no items: every user would be skipped")
    ks = np.array([s.k for s in specs], np.int64)
    codes = np.array([METRICS[s.name].code for s in specs], np.int64)
    discount, idcg = _tables(int(ks.max()))
    out = np.empty((shape[0], len(specs)), np.float64)
    with numba_threads(n_threads):
        ranking.topk_metrics_from_topk(top, ex.indptr, ex.indices, ho.indptr, ho.indices, ks,
                                       codes, RECALL_DENOMINATORS.index(recall_denominator),
                                       discount, idcg, out)
    per_user = {str(s): np.ascontiguousarray(out[:, q]) for q, s in enumerate(specs)}
    return EvaluationResult(metrics=specs, per_user=per_user, n_heldout=ho.counts(),
                            recall_denominator=recall_denominator)


def warmup() -> None:
    """Compile (or load from Numba's cache) the kernels for the common argument types.

    Call it once where compilation time is cheap (an image build, a job's setup): with
    ``cache=True`` the machine code is written next to the package (or to Numba's user cache),
    so later processes load it instead of compiling. Covers float32 and float64 scores, in
    memory and read-only (memory-mapped files), with int32 or int64 CSR indices.
    """
    for dtype in (np.float32, np.float64):
        for index_dtype in (np.int32, np.int64):
            held = sp.csr_matrix((np.ones(2), np.array([0, 1]), np.array([0, 1, 2])),
                                 shape=(2, 3))
            held.indices = held.indices.astype(index_dtype)
            held.indptr = held.indptr.astype(np.int64)
            scores = np.zeros((2, 3), dtype)
            for s in (scores, _read_only(scores)):
                evaluate(s, held, exclude=held, metrics=("ndcg@1",))
                topk(s, k=1, exclude=held)
            evaluate_topk(np.zeros((2, 1), np.int64), held, exclude=held, metrics=("ndcg@1",))


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.setflags(write=False)
    return view
