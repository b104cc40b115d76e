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
* These are the defaults. Other peers' conventions (MAP and Recall denominators, users without
  held-out items, tie orders and tie-averaged NDCG, graded relevance) are options of
  :func:`evaluate`; R-precision, F1 and the beyond-accuracy metrics (coverage, average
  popularity, novelty, Gini index, entropy of the top-k lists) are in the registry; see
  :mod:`.conventions` and the README's table of peers.

Layout (each file imports only files above it in this list, never the other way):

* :mod:`.spec`: metric names and registry, :class:`MetricSpec`, cut-off checks, IDCG tables;
* :mod:`.inputs`: validation of CSR matrices, score sources (arrays, files, tensors), options;
* :mod:`.conventions`: the convention options, graded gains, training popularity and the
  finishing of per-user and aggregate values shared by every path;
* :mod:`.result`: :class:`EvaluationResult`;
* :mod:`.numba_path`: the Numba backend; :mod:`.torch_path`: the torch backend and
  :class:`DeviceCSR` (imported on first use: ``import evcf_fast.metrics`` never imports torch);
* :mod:`.topk_file`: top-K lists from Parquet;
* this file: the verbs :func:`evaluate`, :func:`topk`, :func:`evaluate_topk`, :func:`warmup`.

Example
-------
>>> res = evaluate(scores, heldout, exclude=fold_in)            # doctest: +SKIP
>>> print(res)                                                  # doctest: +SKIP
metric        mean    stderr
ndcg@100   0.42318   0.00231
...
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Iterable

import numpy as np

from .._checks import check_choice, check_int, must_be
from .conventions import Conventions, ItemPopularity

# "# re-export": names that code outside the package imported from the former single-file
# module, kept importable from here; new code imports them from the file that defines them
from .inputs import (
    _check_batch,
    _check_csr,
    _check_has_items,
    _check_threads,
    _check_topk_array,
    _empty_csr,
    _host_scores,
    _is_tensor,
    _nan_error,  # noqa: F401  (re-export)
    _topk_lists,
    numba_threads,
)
from .numba_path import evaluate_numba as _evaluate_numba
from .numba_path import evaluate_topk_numba, topk_numba
from .result import EvaluationResult
from .spec import (
    BACKENDS,
    METRICS,
    NAN_POLICIES,
    RECALL_DENOMINATORS,  # noqa: F401  (re-export)
    TIE_RULE,  # noqa: F401  (re-export)
    MetricSpec,
    _check_ks,
    _tables,  # noqa: F401  (re-export)
    parse_metrics,
)

# DeviceCSR and the torch engines are also importable from here, lazily: see __getattr__
__all__ = [
    "METRICS", "MetricSpec", "parse_metrics", "EvaluationResult", "evaluate", "evaluate_topk",
    "topk", "numba_threads", "warmup", "ItemPopularity",
]

# names of the torch path reachable as evcf_fast.metrics.NAME; importing them eagerly would
# import torch for every user of the Numba path
_LAZY = ("DeviceCSR", "evaluate_torch", "masked_topk_torch")


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(".torch_path", __name__), name)
    raise AttributeError(f"module 'evcf_fast.metrics' has no attribute {name!r}")


def evaluate(scores, heldout, *, exclude=None,
             metrics: str | Iterable[str | MetricSpec] = ("ndcg@100", "recall@20", "recall@50"),
             recall_denominator: str = "min", map_denominator: str = "min",
             empty_users: str = "skip", ties: str = "lower_first", relevance: str = "binary",
             train=None, nan_policy: str = "raise",
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
        Recall@k (and the recall inside F1@k) divides hits by min(k, n_heldout) (vae_cf,
        default) or by n_heldout.
    map_denominator : {"min", "heldout", "hits"}
        MAP@k divides the sum of precisions at hit ranks by min(k, n_heldout) (vae_cf, RecBole;
        default), n_heldout (ranx ``map@k``, trec_eval ``map_cut``) or the number of hits within
        k (torchmetrics ``RetrievalMAP``).
    empty_users : {"skip", "zero", "raise"}
        Users without held-out items: NaN and left out of the means (default), every accuracy
        metric 0 and counted in the means, or a ValueError (torchmetrics'
        ``empty_target_action``).
    ties : {"lower_first", "higher_first", "average"}
        Equal scores rank the lower item index first (default), the higher index first
        (trec_eval's order), or NDCG takes its expected value over all orders of tied items
        (scikit-learn ``ndcg_score``, torchmetrics; other metrics keep lower_first).
    relevance : {"binary", "linear", "exponential"}
        NDCG gains: 1 per held-out item (default), the held-out matrix's stored value (ranx,
        trec_eval) or 2^value - 1; values must then be finite and > 0.
    train : scipy.sparse CSR of shape (n_train_users, n_items), or ItemPopularity, optional
        The training interactions: item popularity for ``avgpop@k`` and ``novelty@k``. A CSR
        is counted on every call; ``ItemPopularity.of(train)`` counts it once for many calls.
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
    conv = Conventions.check(recall_denominator=recall_denominator,
                             map_denominator=map_denominator, empty_users=empty_users, ties=ties,
                             relevance=relevance)
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    check_choice(backend, "backend", BACKENDS)
    batch_size = _check_batch(batch_size)
    n_threads = _check_threads(n_threads)
    use_torch = backend == "torch" or (
        backend == "auto" and _is_tensor(scores)
        and (scores.device.type != "cpu"
             or str(scores.dtype) not in ("torch.float32", "torch.float64")))
    if use_torch:
        from .torch_path import evaluate_torch

        per_user, n_heldout, aggregate = evaluate_torch(
            scores, heldout, exclude=exclude, specs=specs, conv=conv, train=train,
            nan_policy=nan_policy, batch_size=batch_size, progress=progress)
    else:
        per_user, n_heldout, aggregate = _evaluate_numba(
            _host_scores(scores), heldout, exclude, specs, conv=conv, train=train,
            nan_policy=nan_policy, batch_size=batch_size, n_threads=n_threads, progress=progress)
    return EvaluationResult(metrics=specs, per_user=per_user, n_heldout=n_heldout,
                            aggregate=aggregate, **dataclasses.asdict(conv))


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
    check_choice(nan_policy, "nan_policy", NAN_POLICIES)
    batch_size = _check_batch(batch_size)
    n_threads = _check_threads(n_threads)
    blocks = _host_scores(scores)
    n_items = blocks.shape[1]
    k = check_int(k, "k")
    if not 1 <= k <= n_items:
        raise ValueError(must_be("k", f"in [1, n_items={n_items}]", f"k={k}"))
    return topk_numba(blocks, exclude, k=k, nan_policy=nan_policy, batch_size=batch_size,
                      n_threads=n_threads)


def evaluate_topk(topk, heldout, *, exclude=None,
                  metrics: str | Iterable[str | MetricSpec] = ("ndcg@100", "recall@20",
                                                               "recall@50"),
                  recall_denominator: str = "min", map_denominator: str = "min",
                  empty_users: str = "skip", relevance: str = "binary", train=None,
                  n_items: int | None = None, n_threads: int | None = None) -> EvaluationResult:
    """Ranking metrics from precomputed top-K lists instead of scores.

    Parameters
    ----------
    topk : ndarray of shape (n_users, width), integer
        Item indices per user, best first, distinct within a row; a row shorter than ``width``
        is padded at its end with -1. Items in ``exclude`` are dropped from the lists (the
        items after them move up), so the lists may include them.
    heldout, exclude : scipy.sparse CSR (or CPU DeviceCSR) of shape (n_users, n_items)
    metrics, recall_denominator, map_denominator, empty_users, relevance, train, n_threads :
        as in :func:`evaluate` (the lists fix the order, so there is no ``ties`` option)
    n_items : int, optional
        Catalogue size; default ``heldout.shape[1]``. Cut-offs must be <= n_items; a cut-off
        beyond ``width`` sees a shorter list.

    Returns
    -------
    EvaluationResult
    """
    specs = parse_metrics(metrics)
    conv = Conventions.check(recall_denominator=recall_denominator,
                             map_denominator=map_denominator, empty_users=empty_users,
                             relevance=relevance)
    n_threads = _check_threads(n_threads)
    _check_topk_array(topk)
    hshape = getattr(heldout, "shape", None)
    if n_items is None:
        if hshape is None or len(hshape) != 2:
            raise TypeError(f"heldout must be a scipy.sparse CSR matrix/array or a DeviceCSR, "
                            f"got {type(heldout).__name__}")
        n_items = int(hshape[1])
    shape = (topk.shape[0], int(n_items))
    _check_ks(specs, n_items)
    top = _topk_lists(topk, n_items)
    ho = _check_csr(heldout, name="heldout", shape=shape)
    ex = _empty_csr(shape[0]) if exclude is None else _check_csr(exclude, name="exclude",
                                                                 shape=shape)
    _check_has_items(int(ho.indptr[-1] - ho.indptr[0]))
    per_user, aggregate = evaluate_topk_numba(top, ho, ex, heldout, specs, conv=conv,
                                              train=train, n_items=int(n_items),
                                              n_threads=n_threads)
    return EvaluationResult(metrics=specs, per_user=per_user, n_heldout=ho.counts(),
                            aggregate=aggregate, **dataclasses.asdict(conv))


def warmup() -> None:
    """Compile (or load from Numba's cache) the kernels for the common argument types.

    Call it once where compilation time is cheap (an image build, a job's setup): with
    ``cache=True`` the machine code is written next to the package (or to Numba's user cache),
    so later processes load it instead of compiling. Covers float32 and float64 scores, in
    memory and read-only (memory-mapped files), with int32 or int64 CSR indices, and the
    read-only (memory-mapped) int32 CSR arrays of a dataset loaded with ``SplitDataset.load``.
    Calls compile only the signatures they need; this compiles all of them (``evcf warmup``).
    """
    import scipy.sparse as sp

    for dtype in (np.float32, np.float64):
        for index_dtype, read_only in ((np.int32, False), (np.int64, False), (np.int32, True)):
            held = sp.csr_matrix((np.ones(2), np.array([0, 1]), np.array([0, 1, 2])),
                                 shape=(2, 3))
            held.indices = held.indices.astype(index_dtype)
            held.indptr = held.indptr.astype(np.int64)
            if read_only:
                held.indices, held.indptr = _read_only(held.indices), _read_only(held.indptr)
            scores = np.zeros((2, 3), dtype)
            for s in (scores, _read_only(scores)):
                evaluate(s, held, exclude=held, metrics=("ndcg@1",))
                topk(s, k=1, exclude=held)
            evaluate_topk(np.zeros((2, 1), np.int64), held, exclude=held, metrics=("ndcg@1",))
            ItemPopularity.of(held)  # the training popularity count of avgpop and novelty


def _read_only(a: np.ndarray) -> np.ndarray:
    view = a.view()
    view.setflags(write=False)
    return view
