"""Closed-form baselines: popularity, ItemKNN (cosine with shrinkage) and EASE (Steck, WWW 2019).

They are models like the others (``build_model``, ``scores(x)``, ``state_dict`` in ``best.pt``)
but have no gradient training: ``fit(train_csr, device=...)`` computes their weights from the
binary training matrix X (n_users x n_items) once. Definitions, for a history row x:

* **popularity**: score(j) = n_j, the number of training users with item j (the same ranking
  for every user; fold-in items are excluded by the evaluation).
* **itemknn**: sim(i, j) = c_ij / (sqrt(n_i n_j) + shrink) with c = X^T X, sim(i, i) = 0;
  each item i keeps its ``neighbours`` most similar items j (ties: lower j first), and
  score(j) = sum_i x_i sim(i, j) over the kept pairs. Stored as two (n_items, k) tensors
  (neighbour index and similarity), applied as a sparse product.
* **ease**: B = argmin ||X - XB||^2 + lambda ||B||^2 subject to diag(B) = 0, i.e.
  P = (X^T X + lambda I)^-1, B_ij = -P_ij / P_jj, B_jj = 0; score = x B. Solved by a Cholesky
  factorisation in ``fit_dtype`` on the device; stored in float32.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor

from .base import BaseModel
from .config import ModelConfig
from .layers import Rows, SparseRows

# host memory for one block of similarity rows in ItemKNN (float64 entries)
_KNN_BLOCK_ENTRIES = 1 << 23


def binary_csr(train) -> sp.csr_matrix:
    """The training matrix as a canonical binary float64 CSR (duplicates summed, then 1)."""
    x = sp.csr_matrix(train, dtype=np.float64, copy=True)
    x.sum_duplicates()
    x.eliminate_zeros()
    x.data[:] = 1.0
    return x


def _nonzeros(x: Rows) -> tuple[Tensor, Tensor, Tensor, int]:
    """(row, col, value) of the nonzeros of a batch, and its number of rows."""
    if isinstance(x, SparseRows):
        return x.row.long(), x.col.long(), x.values, x.n_rows
    row, col = torch.nonzero(x, as_tuple=True)
    return row, col, x[row, col], x.shape[0]


class ClosedFormModel(BaseModel):
    """A baseline whose weights are buffers computed by :meth:`fit`; no ``loss``."""

    def _rows(self, x) -> Rows:
        from .layers import as_rows

        ref = next(self.buffers())
        return as_rows(x, n_items=self.cfg.n_items, dtype=torch.float32, device=ref.device)

    def loss(self, x, *, beta=1.0):
        raise TypeError(f"model {self.cfg.model!r} is fitted in closed form and has no training "
                        f"loss; fit it with evcf_fast.train.fit (or `evcf train`)")

    def fit(self, train, *, device="cpu") -> ClosedFormModel:
        """Compute the weights from the training matrix (scipy CSR, n_users x n_items)."""
        if train.shape[1] != self.cfg.n_items:
            raise ValueError(f"train has {train.shape[1]} items, the model n_items="
                             f"{self.cfg.n_items}")
        self._fit(binary_csr(train), torch.device(device))
        return self

    def _fit(self, x: sp.csr_matrix, device: torch.device) -> None:
        raise NotImplementedError

    def _forward(self, x: Rows, *, training: bool):
        return self._scores(x), None

    def _scores(self, x: Rows) -> Tensor:
        raise NotImplementedError


class Popularity(ClosedFormModel):
    """Every user gets the items ranked by their number of training users."""

    model_name = "popularity"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.register_buffer("item_counts", torch.zeros(cfg.n_items))

    def _fit(self, x, device):
        counts = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()
        self.item_counts = torch.from_numpy(counts.astype(np.float32)).to(device)

    def _scores(self, x):
        n_rows = x.n_rows if isinstance(x, SparseRows) else x.shape[0]
        return self.item_counts.unsqueeze(0).expand(n_rows, -1).clone()


def knn_neighbours(x: sp.csr_matrix, *, k: int, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    """ItemKNN's kept pairs: neighbour indices (n_items, k) int64 and similarities float64.

    Computed in blocks of item rows (c = X^T X block by block, never all of it at once);
    the ``k`` largest similarities of each row, ties towards the lower item index.
    """
    n_items = x.shape[1]
    xt = x.T.tocsr()
    counts = np.asarray(x.sum(axis=0)).ravel()
    block = max(1, _KNN_BLOCK_ENTRIES // max(n_items, 1))
    index = np.zeros((n_items, k), np.int64)
    value = np.zeros((n_items, k), np.float64)
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        co = (xt[start:stop] @ x).toarray()
        # sqrt of the exact integer product, as the definition reads: equal similarities
        # stay equal (and tie-break by index) instead of differing in the last bit
        denom = np.sqrt(counts[start:stop, None] * counts[None, :]) + shrink
        sim = np.divide(co, denom, out=np.zeros_like(co), where=denom > 0)
        rows = np.arange(stop - start)
        sim[rows, start + rows] = -np.inf        # never one's own neighbour
        order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        index[start:stop] = order
        value[start:stop] = np.take_along_axis(sim, order, axis=1)
    value[~np.isfinite(value)] = 0.0              # only when k >= n_items: the item itself
    return index, value


class ItemKNN(ClosedFormModel):
    """Item-based nearest neighbours with shrunk cosine similarity (see the module docstring)."""

    model_name = "itemknn"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.k = min(cfg.neighbours, cfg.n_items)
        self.register_buffer("neighbour_index", torch.zeros(cfg.n_items, self.k, dtype=torch.long))
        self.register_buffer("neighbour_sim", torch.zeros(cfg.n_items, self.k))

    def _fit(self, x, device):
        index, value = knn_neighbours(x, k=self.k, shrink=self.cfg.shrink)
        self.neighbour_index = torch.from_numpy(index).to(device)
        self.neighbour_sim = torch.from_numpy(value.astype(np.float32)).to(device)

    def _scores(self, x):
        row, col, val, n_rows = _nonzeros(x)
        out = torch.zeros(n_rows, self.cfg.n_items, device=val.device, dtype=torch.float32)
        cols = self.neighbour_index[col]                              # (nnz, k)
        vals = self.neighbour_sim[col] * val.float().unsqueeze(1)     # (nnz, k)
        rows = row.unsqueeze(1).expand_as(cols)
        out.index_put_((rows.reshape(-1), cols.reshape(-1)), vals.reshape(-1), accumulate=True)
        return out


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA's free memory, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def ease_memory_bytes(n_items: int, dtype: str) -> int:
    """Peak memory of EASE's solve: about three n_items x n_items matrices of ``dtype``."""
    return 3 * n_items * n_items * (8 if dtype == "float64" else 4)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


class EASE(ClosedFormModel):
    """EASE (Steck, WWW 2019): a closed-form item-item linear model with a zero diagonal."""

    model_name = "ease"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.register_buffer("weight", torch.zeros(cfg.n_items, cfg.n_items))

    def _fit(self, x, device):
        cfg = self.cfg
        need, free = ease_memory_bytes(cfg.n_items, cfg.fit_dtype), available_bytes(device)
        if need > free:
            raise ValueError(
                f"ease with n_items={cfg.n_items} needs about {_gib(need)} on {device} (three "
                f"{cfg.n_items}^2 {cfg.fit_dtype} matrices), only {_gib(free)} is available; "
                f"use fit_dtype='float32' (half), another device, or fewer items")
        dtype = torch.float64 if cfg.fit_dtype == "float64" else torch.float32
        gram = (x.T @ x).toarray()                 # exact integer counts in float64
        g = torch.from_numpy(gram).to(device=device, dtype=dtype)
        del gram
        g.diagonal().add_(cfg.ease_lambda)
        chol, info = torch.linalg.cholesky_ex(g)
        if int(info) != 0:
            raise ValueError(f"ease: X^T X + lambda I is not positive definite in "
                             f"{cfg.fit_dtype} (lambda={cfg.ease_lambda}); raise ease_lambda or "
                             f"use fit_dtype='float64'")
        del g
        p = torch.cholesky_inverse(chol)
        del chol
        p.div_(-p.diagonal().clone().unsqueeze(0))  # B_ij = -P_ij / P_jj
        p.diagonal().zero_()
        self.weight = p.to(torch.float32)

    def _scores(self, x):
        if isinstance(x, SparseRows):
            return F.embedding_bag(x.col, self.weight, x.crow, mode="sum",
                                   per_sample_weights=x.values, include_last_offset=True)
        return x @ self.weight


__all__ = ["EASE", "ClosedFormModel", "ItemKNN", "Popularity", "knn_neighbours"]
