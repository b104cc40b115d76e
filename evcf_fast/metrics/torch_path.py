"""The torch backend of :func:`evcf_fast.metrics.evaluate`: masked top-K and metrics on the device.

Same definitions as :mod:`evcf_fast.metrics` (Liang et al., WWW 2018; vae_cf semantics), for
score tensors on a GPU, inside training loops, or forced on the CPU with ``backend="torch"``.
It also holds :class:`DeviceCSR`, the row structure of a CSR matrix uploaded once to a device.

This is the only file of the package that imports torch at import time; the package reaches it
lazily (``evcf_fast.metrics.DeviceCSR`` and ``evaluate(..., backend="torch")`` import it on first
use). It validates through :mod:`.inputs` and reads the registry and tables of :mod:`.spec`, so
both backends reject the same inputs with the same messages.

How the tie rule (equal scores: the lower item index ranks first) is made exact. ``torch.topk``
returns the K largest values, but when several items tie at the K-th value it keeps an
unspecified subset of them, and its order among equal values is unspecified too. So, per block:

1. excluded items (and NaN under ``nan_policy="neg_inf"``) are set to -inf and ``torch.topk``
   takes the K largest;
2. a row is recomputed exactly when its K-th value v is shared by more items than fit (more than
   K items score >= v) or when v is -inf (then excluded items and genuine -inf items, which must
   rank before them, look alike): the winners are every item scoring above v plus the
   lowest-index non-excluded items scoring exactly v, found with a cumulative count;
3. the K winners are sorted by item index, then stably by score (descending).

So every row is exact, on every device; detecting step 2 costs one comparison pass over the
block. There is no remaining case where the torch and Numba paths may rank differently; the
float64 metric sums may differ in the last bits because the reductions add in another order.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .inputs import _check_csr, _check_has_items, _host_scores, _nan_error
from .spec import METRICS, _accuracy, _check_ks, _tables

NDCG, RECALL, PRECISION, HITRATE, MRR, MAP, RPREC, F1 = (METRICS[name].code for name in (
    "ndcg", "recall", "precision", "hitrate", "mrr", "map", "rprec", "f1"))

# the torch path works on blocks of at most this many scores (a few bytes of temporaries each)
_BLOCK_SCORES = 1 << 26


class DeviceCSR:
    """The row structure of a CSR matrix on a torch device, uploaded once.

    ``crow`` (int64, n_rows + 1, starting at 0) and ``col`` (int32 or int64, sorted within rows)
    are tensors on ``device``; values are not kept (binary relevance). A training loop builds
    one per evaluation part and slices row blocks with :meth:`rows`, which costs no transfer.

    Use :meth:`from_scipy` to build one.
    """

    __slots__ = ("crow", "col", "shape", "_crow_host")

    def __init__(self, crow: torch.Tensor, col: torch.Tensor, shape: tuple[int, int],
                 crow_host: np.ndarray):
        self.crow = crow
        self.col = col
        self.shape = (int(shape[0]), int(shape[1]))
        self._crow_host = crow_host  # host copy of crow: slicing never waits for the device

    @classmethod
    def from_scipy(cls, csr, device="cpu") -> DeviceCSR:
        """Upload a scipy CSR matrix/array (sorted, duplicate-free rows) to ``device``.

        Raises
        ------
        TypeError
            Not a scipy sparse CSR, or index arrays that are not int32/int64.
        ValueError
            Unsorted or duplicate column indices, or indices outside the matrix.
        """
        if not sp.issparse(csr):
            raise TypeError(f"csr must be a scipy.sparse CSR matrix/array, got "
                            f"{type(csr).__name__}")
        return cls._from_host(_check_csr(csr, name="csr", shape=tuple(csr.shape)), csr.shape,
                              device)

    @classmethod
    def _from_host(cls, host, shape, device) -> DeviceCSR:
        """Upload validated host arrays (``inputs._HostCSR``)."""
        crow = host.indptr - host.indptr[0]
        col = host.indices[host.indptr[0]:host.indptr[-1]]
        device = torch.device(device)
        # np.require(..., "W") copies read-only inputs (memory-mapped datasets): torch cannot
        # wrap a non-writable buffer safely, and the upload copies to the device anyway.
        return cls(torch.from_numpy(np.require(crow, requirements=["C", "W"])).to(device),
                   torch.from_numpy(np.require(col, requirements=["C", "W"])).to(device),
                   tuple(shape), np.ascontiguousarray(crow))

    @property
    def device(self) -> torch.device:
        return self.crow.device

    @property
    def nnz(self) -> int:
        return int(self._crow_host[-1])

    def __repr__(self) -> str:
        return (f"DeviceCSR(shape={self.shape}, nnz={self.nnz}, device={self.device}, "
                f"col_dtype={self.col.dtype})")

    def rows(self, start: int, stop: int) -> DeviceCSR:
        """Rows [start, stop) as a DeviceCSR that shares this one's column tensor."""
        n = self.shape[0]
        if not 0 <= start <= stop <= n:
            raise ValueError(f"row block [{start}, {stop}) is outside [0, {n}]")
        lo, hi = int(self._crow_host[start]), int(self._crow_host[stop])
        crow_host = self._crow_host[start:stop + 1] - lo
        crow = self.crow[start:stop + 1] - lo
        return DeviceCSR(crow, self.col[lo:hi], (stop - start, self.shape[1]), crow_host)

    def counts(self) -> torch.Tensor:
        """Stored entries per row (int64, on the device)."""
        return self.crow[1:] - self.crow[:-1]

    def row_indices(self) -> torch.Tensor:
        """The row of every stored entry (int64, length nnz, on the device)."""
        return torch.repeat_interleave(torch.arange(self.shape[0], device=self.device),
                                       self.counts(), output_size=self.nnz)

    def to_dense_mask(self) -> torch.Tensor:
        """A bool tensor of the matrix's shape, True at stored entries."""
        mask = torch.zeros(self.shape, dtype=torch.bool, device=self.device)
        if self.nnz:
            mask[self.row_indices(), self.col.long()] = True
        return mask


def _as_device_csr(x, *, name: str, shape: tuple[int, int], device) -> DeviceCSR:
    if isinstance(x, DeviceCSR):
        if x.device != device:
            raise ValueError(f"{name} is a DeviceCSR on {x.device} but the scores are on "
                             f"{device}; build it with DeviceCSR.from_scipy(..., {str(device)!r})")
        if x.shape != shape:
            raise ValueError(f"{name} has shape {x.shape}, expected {shape} to match scores")
        return x
    # one validator for every path: same checks, same messages
    return DeviceCSR._from_host(_check_csr(x, name=name, shape=shape), shape, device)


def _tensor_blocks(scores):
    """(shape, device, iterator factory) for a tensor or for host scores (array, path, memmap)."""
    if isinstance(scores, torch.Tensor):
        if scores.ndim != 2:
            raise ValueError(f"scores must be 2-D (n_users, n_items), got shape "
                             f"{tuple(scores.shape)}")
        if not scores.is_floating_point():
            raise TypeError(f"scores must be a floating-point tensor, got {scores.dtype}")
        if scores.shape[0] == 0 or scores.shape[1] == 0:
            raise ValueError(f"scores is empty: shape {tuple(scores.shape)}")
        scores = scores.detach()

        def block(start, stop):
            return _Plain(scores[start:stop])

        return tuple(scores.shape), scores.device, block
    blocks = _host_scores(scores)

    def host_block(start, stop):
        return _FromHost(blocks, start, stop)

    return blocks.shape, torch.device("cpu"), host_block


class _Plain:
    def __init__(self, t):
        self.t = t

    def __enter__(self):
        return self.t

    def __exit__(self, *exc):
        return False


class _FromHost:
    """A host block as a CPU tensor without a copy (file chunks are read-only; never written)."""

    def __init__(self, blocks, start, stop):
        self.cm = blocks.block(start, stop)

    def __enter__(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "non-writable array": we only read
            return torch.from_numpy(self.cm.__enter__())

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc)


def evaluate_torch(scores, heldout, *, exclude, specs, conv, train, nan_policy: str,
                   batch_size: int | None, progress: bool):
    """Per-user metric arrays, held-out counts and aggregate values (the engine of
    ``evaluate(backend="torch")``).

    Returns ``(per_user, n_heldout, aggregate)`` like the Numba path; see
    :func:`evcf_fast.metrics.evaluate` for the parameters and errors.
    """
    from .._progress import progress as bar
    from .conventions import beyond_args, check_empty_users, finish, gains

    shape, device, block = _tensor_blocks(scores)
    n_rows, n_items = shape
    ho = _as_device_csr(heldout, name="heldout", shape=shape, device=device)
    ex = None if exclude is None else _as_device_csr(exclude, name="exclude", shape=shape,
                                                     device=device)
    _check_ks(specs, n_items)
    _check_has_items(ho.nnz)
    n_heldout = np.diff(ho._crow_host).astype(np.int64)
    check_empty_users(conv, n_heldout)
    acc = _accuracy(specs)
    ks = [s.k for s in acc]
    codes = [METRICS[s.name].code for s in acc]
    beyond = beyond_args(specs, train, n_items)
    k_top = min(max(ks + [int(k) for k in beyond.bks]), n_items)
    discount, idcg = (torch.from_numpy(t).to(device) for t in _tables(k_top))
    gain = None
    if conv.relevance != "binary":
        g = gains(heldout, np.asarray(getattr(heldout, "indices", ())), conv.relevance)
        gain = torch.from_numpy(g[heldout.indptr[0]:heldout.indptr[-1]]).to(device)
    step = batch_size or max(1, _BLOCK_SCORES // n_items)
    outs, nans, tops = [], [], []
    with bar(total=n_rows, desc="evaluate", unit="user", enabled=progress) as pbar:
        for start in range(0, n_rows, step):
            stop = min(start + step, n_rows)
            lo = int(ho._crow_host[start])
            hob = ho.rows(start, stop)
            with block(start, stop) as x:
                out, nan_rows, items = _block_metrics(
                    x, None if ex is None else ex.rows(start, stop), hob,
                    None if gain is None else gain[lo:lo + hob.nnz], k_top, ks, codes, conv,
                    discount, idcg)
                del x  # lets a file chunk be unmapped on exit
            outs.append(out.cpu())
            nans.append(nan_rows.cpu())
            if beyond.specs:
                tops.append(items.cpu())
            pbar.update(stop - start)
    out = torch.cat(outs).numpy()
    nan_rows = torch.cat(nans).numpy()
    n_nan = int(nan_rows.sum())
    if n_nan and nan_policy == "raise":
        raise _nan_error(n_nan, n_rows, int(np.argmax(nan_rows)))
    per_user = {str(s): np.ascontiguousarray(out[:, q]) for q, s in enumerate(acc)}
    counted = (n_heldout > 0) | (conv.empty_users == "zero")
    outputs = _lists(torch.cat(tops).numpy() if tops else None, beyond, counted, n_items)
    per_user, aggregate = finish(per_user, n_heldout, conv, beyond, *outputs)
    return {str(s): per_user[str(s)] for s in specs if str(s) in per_user}, n_heldout, aggregate


def _lists(items, beyond, counted, n_items):
    """The beyond-accuracy outputs of the Numba kernel from the (B, k) lists (-1 padded)."""
    tables, pop_out, info_out, len_out = beyond.outputs(len(counted), n_items, 1)
    if items is None:
        return tables, pop_out, info_out, len_out
    for b, k in enumerate(beyond.bks):
        ids = items[:, :min(int(k), items.shape[1])]
        ok = ids >= 0
        safe = np.where(ok, ids, 0)
        if beyond.pop.size:  # empty tables: no list metric asked
            pop_out[:, b] = np.where(ok, beyond.pop[safe], 0.0).sum(1)
            info_out[:, b] = np.where(ok, beyond.info[safe], 0.0).sum(1)
        len_out[:, b] = ok.sum(1)
        sel = ids[counted]
        tables["count"][0, b] = np.bincount(sel[sel >= 0], minlength=n_items)
    return tables, pop_out, info_out, len_out


def masked_topk_torch(xm: torch.Tensor, ex: DeviceCSR | None, k: int):
    """Exact masked top-k of a block: (items, valid), each (B, k), best first, tie rule applied.

    ``xm`` holds the scores with excluded items (and NaN) already set to -inf; ``ex`` is the
    block's exclude structure (or None). ``items`` is int64; where ``valid`` is false (fewer
    than k non-excluded items) it holds n_items.
    """
    n_rows, n = xm.shape
    dev = xm.device
    # one more than k: a tie between the k-th and the (k+1)-th value crosses the cut
    vals, idx = torch.topk(xm, min(k + 1, n), dim=1)
    v = vals[:, k - 1]
    fix = v == -math.inf  # excluded items hide among -inf values
    if vals.shape[1] > k:
        fix |= vals[:, k] == v
    idx = idx[:, :k]
    if bool(fix.any()):
        rows = fix.nonzero().squeeze(1)
        xr, vr = xm[rows], v[rows, None]
        gt = xr > vr
        eq = xr == vr
        n_avail = torch.full((rows.shape[0],), n, dtype=torch.int64, device=dev)
        if ex is not None and ex.nnz:
            excl = ex.to_dense_mask()[rows]
            eq &= ~excl
            n_avail -= ex.counts()[rows]
        need = torch.clamp(torch.clamp(n_avail, max=k) - gt.sum(1), min=0)
        sel = gt | (eq & (eq.cumsum(1) <= need[:, None]))
        pos = torch.arange(n, device=dev)
        key = torch.where(sel, n - pos, torch.zeros((), dtype=pos.dtype, device=dev))
        kv = torch.topk(key, k, dim=1).values  # selected items, lowest index first, 0 = none
        idx = idx.clone()
        idx[rows] = torch.where(kv > 0, n - kv, torch.full_like(kv, n))
    # order: by index, then stably by score descending (the padding n sorts last in both)
    idx = torch.sort(idx, dim=1).values
    valid = idx < n
    s = xm.gather(1, idx.clamp(max=n - 1)).masked_fill(~valid, -math.inf)
    order = torch.sort(s, dim=1, descending=True, stable=True).indices
    idx = idx.gather(1, order)
    return idx, idx < n


def _contains(csr: DeviceCSR, items: torch.Tensor):
    """(found, pos), each (B, k): whether items[b, j] is stored in row b of ``csr`` (binary
    search) and where (an index into ``csr.col``; meaningful where found)."""
    n = csr.shape[1]
    b = torch.arange(items.shape[0], device=items.device)[:, None]
    query = (b * n + items.clamp(max=n - 1)).reshape(-1)
    if csr.nnz == 0:
        z = torch.zeros(items.shape, dtype=torch.bool, device=items.device)
        return z, torch.zeros(items.shape, dtype=torch.int64, device=items.device)
    # rows ascending and columns sorted within rows: the keys row * n + col are sorted
    keys = csr.row_indices() * n + csr.col.long()
    pos = torch.searchsorted(keys, query).clamp(max=csr.nnz - 1)
    return (keys[pos] == query).reshape(items.shape), pos.reshape(items.shape)


def _flip(csr: DeviceCSR) -> DeviceCSR:
    """The CSR of the column-reversed matrix (item j becomes n - 1 - j), rows kept sorted."""
    if csr.nnz == 0:
        return csr
    rows = csr.row_indices()
    p = torch.arange(csr.nnz, device=csr.device)
    src = csr.crow[rows] + csr.crow[rows + 1] - 1 - p
    col = (csr.shape[1] - 1 - csr.col.long()[src]).to(csr.col.dtype)
    return DeviceCSR(csr.crow, col, csr.shape, csr._crow_host)


def _ranked(xm, ex, k_top, higher_first):
    """(items, valid) of the block under the tie order (higher index first by reversing the
    columns: the lower-index rule on the reversed matrix)."""
    if not higher_first:
        return masked_topk_torch(xm, ex, k_top)
    n = xm.shape[1]
    items, valid = masked_topk_torch(xm.flip(1), None if ex is None else _flip(ex), k_top)
    return torch.where(valid, n - 1 - items, items), valid


def _padded(ho: DeviceCSR, values: torch.Tensor, fill: float):
    """(B, max_ho) tensor of per-entry values of each row, ``fill`` after the row's end."""
    counts = ho.counts()
    width = max(1, int(counts.max()) if ho.shape[0] else 1)
    out = torch.full((ho.shape[0], width), fill, dtype=values.dtype, device=values.device)
    if ho.nnz:
        rows = ho.row_indices()
        out[rows, torch.arange(ho.nnz, device=rows.device) - ho.crow[rows]] = values
    return out


def _tie_averaged_dcg(xm, ex, ho, gain, ks):
    """(B, len(ks)) expected DCG@k over the orders of tied scores (see kernels/conventions)."""
    dev = xm.device
    n = xm.shape[1]
    srt = torch.sort(xm, dim=1).values
    rows = ho.row_indices()
    x = xm[rows, ho.col.long()]
    excluded = torch.zeros(ho.nnz, dtype=torch.bool, device=dev)
    n_ex = torch.zeros(ho.shape[0], dtype=torch.int64, device=dev)
    if ex is not None and ex.nnz:
        excluded = _member(ex, rows, ho.col.long())
        n_ex = ex.counts()
    hx = _padded(ho, x, -math.inf)  # padding: gain 0 below, whatever its counts
    below = torch.searchsorted(srt, hx, right=False)
    upto = torch.searchsorted(srt, hx, right=True)
    a = n - upto
    t = upto - below
    t = t - torch.where(hx == -math.inf, n_ex[:, None], torch.zeros_like(t))  # excluded -inf
    g = _padded(ho, gain * (~excluded), 0.0)
    cumd = torch.cat([torch.zeros(1, dtype=torch.float64, device=dev),
                      torch.cumsum(1.0 / torch.log2(torch.arange(2, n + 2, device=dev,
                                                                 dtype=torch.float64)), 0)])
    out = []
    for k in ks:
        hi = torch.clamp(a + t, min=0, max=k)
        lo = torch.clamp(a, min=0, max=k)
        share = (cumd[hi] - cumd[lo]) / torch.clamp(t, min=1)
        out.append((g * share).sum(1))
    return torch.stack(out, 1) if out else None


def _member(csr: DeviceCSR, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """Whether (rows[i], cols[i]) is stored in ``csr`` (binary search on row * n + col)."""
    if csr.nnz == 0:
        return torch.zeros(rows.shape, dtype=torch.bool, device=rows.device)
    n = csr.shape[1]
    keys = csr.row_indices() * n + csr.col.long()
    query = rows * n + cols
    pos = torch.searchsorted(keys, query).clamp(max=csr.nnz - 1)
    return keys[pos] == query


def _ideal(ho: DeviceCSR, gain, k_top, idcg):
    """(B, k_top) IDCG per cut-off: the shared table for binary gains, else per row."""
    if gain is None:
        return idcg[None, :].expand(ho.shape[0], -1)
    g = torch.sort(_padded(ho, gain, 0.0), dim=1, descending=True).values[:, :k_top]
    disc = 1.0 / torch.log2(torch.arange(2, g.shape[1] + 2, device=g.device,
                                         dtype=torch.float64))
    out = torch.cumsum(g * disc, 1)
    if out.shape[1] < k_top:
        out = torch.cat([out, out[:, -1:].expand(-1, k_top - out.shape[1])], 1)
    return out


def _block_metrics(x, ex: DeviceCSR | None, ho: DeviceCSR, gain, k_top, ks, codes, conv,
                   discount, idcg):
    """Metrics (B, len(ks)) float64, NaN-row flags (B,) and the lower-index-first top lists
    (B, k_top; -1 padded) of one block of scores."""
    xm = x.clone()
    if ex is not None and ex.nnz:
        xm[ex.row_indices(), ex.col.long()] = -math.inf
    nan = torch.isnan(xm)  # NaN at excluded items is already gone
    nan_rows = nan.any(1)
    if bool(nan_rows.any()):
        xm.masked_fill_(nan, -math.inf)  # NaN ranks as -inf (the caller raises if it must)
    del nan
    items0, valid0 = masked_topk_torch(xm, ex, k_top)
    items, valid = (items0, valid0) if conv.ties != "higher_first" else _ranked(xm, ex, k_top,
                                                                                True)
    found, pos = _contains(ho, items)
    hits = (found & valid).to(torch.float64)
    g = hits if gain is None else hits * gain[pos] if ho.nnz else hits
    n_ho = ho.counts().to(torch.float64)
    ideal = _ideal(ho, gain, k_top, idcg)
    avg = (_tie_averaged_dcg(xm, ex, ho, gain if gain is not None else
                             torch.ones(ho.nnz, dtype=torch.float64, device=x.device), ks)
           if conv.ties == "average" and NDCG in codes else None)
    ranks = torch.arange(1, k_top + 1, device=x.device, dtype=torch.float64)
    out = torch.empty((x.shape[0], len(ks)), dtype=torch.float64, device=x.device)
    for q, (k, code) in enumerate(zip(ks, codes)):
        h = hits[:, :min(k, k_top)]
        n_hits = h.sum(1)
        cut = torch.clamp(n_ho, max=k)
        recall = n_hits / (cut if conv.recall_mode == 0 else n_ho)
        if code == NDCG:
            idx = (torch.clamp(cut.long(), min=1) - 1)[:, None]
            dcg = avg[:, q] if avg is not None else (g[:, :h.shape[1]]
                                                     * discount[:h.shape[1]]).sum(1)
            val = dcg / ideal.gather(1, idx)[:, 0]
        elif code == RECALL:
            val = recall
        elif code == PRECISION:
            val = n_hits / k
        elif code == HITRATE:
            val = (n_hits > 0).to(torch.float64)
        elif code == MRR:
            first = h.argmax(1).to(torch.float64) + 1.0
            val = torch.where(n_hits > 0, 1.0 / first, torch.zeros_like(first))
        elif code == MAP:
            ap = (h.cumsum(1) / ranks[:h.shape[1]] * h).sum(1)
            den = (cut, n_ho, n_hits)[conv.map_mode]
            val = torch.where(den > 0, ap / den.clamp(min=1), torch.zeros_like(ap))
        elif code == RPREC:
            in_r = (ranks[None, :h.shape[1]] <= cut[:, None]).to(torch.float64)
            val = (h * in_r).sum(1) / n_ho
        else:  # F1
            p = n_hits / k
            val = torch.where(n_hits > 0, 2 * p * recall / (p + recall).clamp(min=1e-300),
                              torch.zeros_like(p))
        out[:, q] = torch.where(n_ho > 0, val, torch.full_like(val, math.nan))
    return out, nan_rows, torch.where(valid0, items0, torch.full_like(items0, -1))
