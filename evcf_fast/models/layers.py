"""Layers of the EVCF models (Kim & Suh, RecSys 2019; authors' utils/nn.py ``NonLinear``).

* ``Rows``/``as_rows``: a validated input batch, dense (B, D) or CSR, and the input processing of
  PAPER_SPEC 2.1 (L2 row normalisation, then inverted dropout) acting on the nonzero values of a
  CSR batch. Zeros stay zeros under both, so the sparse path is exactly the dense computation.
* ``Dense``: ``act(x @ W + b)`` with act tanh, GLU (``(xW+b) * sigmoid(xV+c)``, fused into one
  matmul of width 2H with ``W|V`` side by side, no tanh when gated as in the authors' code) or none.
  The first layer of every x branch is a ``Dense`` fed with ``Rows``: a CSR batch goes through
  ``embedding_bag`` (sum of the weight rows of the nonzero columns, scaled by the values), which
  is a sparse x dense product whose backward scatters into the touched weight rows only.
* ``GaussianHead``: mean and log-variance heads (one fused matmul); the log-variance is clipped
  by a hardtanh (authors: [-12, 4]).

Weights are stored as (in_features, out_features), the transpose of ``nn.Linear``: a nonzero
input column then reads one contiguous weight row, which is what makes the sparse first layer
cheap (``embedding_bag`` layout), and the dense path is the same GEMM (``addmm``).

Randomness goes through ``dropout`` and ``standard_normal`` of this module so that tests can
replace them to feed identical masks and noise to a reference implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ------------------------------------------------------------------------------------------------
# randomness (replaced in tests)


def dropout(t: Tensor, p: float) -> Tensor:
    """Inverted dropout in training mode: zero each entry with probability p, scale by 1/(1-p)."""
    return F.dropout(t, p, training=True)


def standard_normal(like: Tensor) -> Tensor:
    """N(0, 1) noise shaped like ``like``."""
    return torch.randn_like(like)


def reparameterize(mu: Tensor, logvar: Tensor, *, sample: bool) -> Tensor:
    """z = mu + exp(logvar / 2) * eps when sampling (training), else the mean (authors' eval)."""
    if not sample:
        return mu
    return mu + torch.exp(0.5 * logvar) * standard_normal(mu)


# ------------------------------------------------------------------------------------------------
# input batches


@dataclass(frozen=True)
class SparseRows:
    """A CSR batch split into its parts; ``row`` is the row id of every nonzero.

    ``crow`` (B+1,) and ``col`` (nnz,) are int32 or int64 of one dtype, ``values`` (nnz,) float.
    Build one with ``SparseRows.from_csr`` from index tensors (no sparse tensor object needed,
    which suits ``torch.compile`` and CUDA graphs); models accept it wherever they accept x.
    """

    crow: Tensor
    col: Tensor
    values: Tensor
    row: Tensor
    n_rows: int
    n_cols: int

    @classmethod
    def from_csr(cls, crow: Tensor, col: Tensor, values: Tensor, *, n_cols: int) -> SparseRows:
        """Rows from CSR parts; the caller guarantees a valid CSR structure (not re-checked)."""
        n_rows = crow.shape[0] - 1
        # output_size avoids a device sync on CUDA
        row = torch.repeat_interleave(torch.arange(n_rows, device=crow.device, dtype=crow.dtype),
                                      crow[1:] - crow[:-1], output_size=col.shape[0])
        return cls(crow, col, values, row, int(n_rows), int(n_cols))

    def with_values(self, values: Tensor) -> SparseRows:
        return SparseRows(self.crow, self.col, values, self.row, self.n_rows, self.n_cols)

    def to_dense(self) -> Tensor:
        out = self.values.new_zeros(self.n_rows, self.n_cols)
        out[self.row, self.col] = self.values
        return out


Rows = Tensor | SparseRows


def as_rows(x, *, n_items: int, dtype: torch.dtype, device: torch.device) -> Rows:
    """Validate a batch of raw interaction rows and return it as a dense tensor or ``SparseRows``.

    Parameters
    ----------
    x : Tensor or SparseRows
        Dense (B, n_items) float tensor, a ``torch.sparse_csr_tensor`` of size (B, n_items)
        with int32/int64 indices and float values, or ``SparseRows`` of those parts.
    n_items : int
        Expected number of columns.
    dtype, device
        Those of the model's parameters; x must match them (no silent copies or casts).
    """
    if isinstance(x, SparseRows):
        shape, x_dtype, x_device = (x.n_rows, x.n_cols), x.values.dtype, x.values.device
    elif isinstance(x, Tensor):
        if x.layout not in (torch.strided, torch.sparse_csr):
            raise TypeError(f"x must be a dense tensor or a sparse CSR tensor, got layout "
                            f"{x.layout}; convert with .to_sparse_csr()")
        shape, x_dtype, x_device = tuple(x.shape), x.dtype, x.device
    else:
        raise TypeError(f"x must be a torch.Tensor (dense or sparse CSR) or SparseRows, got "
                        f"{type(x).__name__}")
    if len(shape) != 2 or shape[1] != n_items:
        raise ValueError(f"x has shape {shape}, expected (batch, n_items={n_items})")
    if shape[0] < 1:
        raise ValueError("x has no rows, expected a batch of at least 1 row")
    if x_dtype != dtype:
        raise TypeError(f"x has dtype {x_dtype}, expected {dtype} to match the model parameters")
    if x_device != device:
        raise ValueError(f"x is on {x_device}, expected {device} like the model parameters")
    if isinstance(x, SparseRows) or x.layout == torch.strided:
        return x
    return SparseRows.from_csr(x.crow_indices(), x.col_indices(), x.values(), n_cols=shape[1])


def normalize_rows(rows: Rows) -> Rows:
    """L2 row normalisation, x / max(||x||_2, 1e-12) (``F.normalize(x, dim=1)``)."""
    if isinstance(rows, Tensor):
        return F.normalize(rows, dim=1)
    v = rows.values
    sq = v.new_zeros(rows.n_rows).index_add_(0, rows.row, v * v)
    norm = torch.sqrt(sq).clamp_min(1e-12)
    return rows.with_values(v / norm[rows.row])


def dropout_rows(rows: Rows, p: float, *, training: bool) -> Rows:
    """Input dropout; on a CSR batch it draws the mask for the nonzero values only."""
    if not training or p == 0.0:
        return rows
    if isinstance(rows, Tensor):
        return dropout(rows, p)
    return rows.with_values(dropout(rows.values, p))


# ------------------------------------------------------------------------------------------------
# layers


def init_weight_(weight: Tensor, *, fan_in: int, fan_out: int, scheme: str) -> None:
    """Initialise a (fan_in, k * fan_out) weight as k side-by-side ``nn.Linear`` weights."""
    with torch.no_grad():
        if scheme == "he":  # authors' he_init: N(0, sqrt(2 / fan_in))
            weight.normal_(0.0, math.sqrt(2.0 / fan_in))
        else:  # Glorot uniform (TF xavier_initializer, Liang et al.)
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-bound, bound)


def init_bias_(bias: Tensor, *, fan_in: int, scheme: str) -> None:
    """PyTorch's default Linear bias init (authors) or N(0, 0.001) truncated at 2 std (Liang)."""
    with torch.no_grad():
        if scheme == "he":
            bound = 1.0 / math.sqrt(fan_in)
            bias.uniform_(-bound, bound)
        else:
            nn.init.trunc_normal_(bias, 0.0, 1e-3, -2e-3, 2e-3)


def _matmul(rows: Rows, weight: Tensor) -> Tensor:
    if isinstance(rows, Tensor):
        return rows @ weight
    # sum over the nonzeros of value * weight[col]: CSR x dense without materialising x
    return F.embedding_bag(rows.col, weight, rows.crow, mode="sum",
                           per_sample_weights=rows.values, include_last_offset=True)


class Dense(nn.Module):
    """``act(x @ W + b)``: tanh, fused GLU, or affine; the authors' ``NonLinear`` layer.

    Parameters
    ----------
    in_features, out_features : int
        Input and output widths.
    activation : {"tanh", "glu", None}
        "glu" stores W and V side by side in one (in_features, 2 * out_features) weight (and
        b, c in one bias) and computes ``(xW + b) * sigmoid(xV + c)`` from one matmul.
    init : {"he", "xavier"}
        See ``ModelConfig.init``.
    n_dense : int, optional
        For a first layer with an extra dense input (H+Vamp-1layer's ``[x, z2]`` concatenation):
        the last ``n_dense`` input rows of the weight multiply ``extra``, the first
        ``in_features - n_dense`` ones multiply the (possibly sparse) rows. One weight tensor, as
        the authors' single Linear over the concatenation.
    """

    def __init__(self, in_features: int, out_features: int, *, activation: str | None,
                 init: str = "he", n_dense: int = 0):
        super().__init__()
        if activation not in ("tanh", "glu", None):
            raise ValueError(f"unknown activation {activation!r}; expected 'tanh', 'glu' or None")
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.n_dense = n_dense
        width = 2 * out_features if activation == "glu" else out_features
        self.weight = nn.Parameter(torch.empty(in_features, width))
        self.bias = nn.Parameter(torch.empty(width))
        init_weight_(self.weight, fan_in=in_features, fan_out=out_features, scheme=init)
        init_bias_(self.bias, fan_in=in_features, scheme=init)

    @property
    def n_chunks(self) -> int:
        """Number of logical tensors fused along the last dimension (2 for GLU: W|V, b|c)."""
        return 2 if self.activation == "glu" else 1

    def forward(self, x: Rows, extra: Tensor | None = None) -> Tensor:
        if self.n_dense:
            w_rows = self.weight[: self.in_features - self.n_dense]  # contiguous row block
            pre = torch.addmm(self.bias, extra, self.weight[self.in_features - self.n_dense:])
            pre = pre + _matmul(x, w_rows)
        elif isinstance(x, Tensor):
            pre = torch.addmm(self.bias, x, self.weight)
        else:
            pre = _matmul(x, self.weight) + self.bias
        if self.activation == "glu":
            return F.glu(pre, dim=-1)  # first half * sigmoid(second half), fused
        if self.activation == "tanh":
            return torch.tanh(pre)
        return pre

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"activation={self.activation}" + (f", n_dense={self.n_dense}" if self.n_dense
                                                   else ""))


class GaussianHead(nn.Module):
    """Mean and log-variance heads on one hidden state: ``mu = hW + b``,
    ``logvar = hardtanh(hV + c, *clip)``; W|V fused in one (in, 2 * out) weight."""

    n_chunks = 2

    def __init__(self, in_features: int, out_features: int, *,
                 logvar_clip: tuple[float, float] | None, init: str = "he"):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.logvar_clip = logvar_clip
        self.weight = nn.Parameter(torch.empty(in_features, 2 * out_features))
        self.bias = nn.Parameter(torch.empty(2 * out_features))
        # xavier: Liang et al. have one (H, 2z) layer for both heads, hence fan_out = 2z
        init_weight_(self.weight, fan_in=in_features, fan_out=2 * out_features, scheme=init)
        init_bias_(self.bias, fan_in=in_features, scheme=init)

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        mu, logvar = torch.addmm(self.bias, h, self.weight).chunk(2, dim=-1)
        if self.logvar_clip is not None:
            logvar = F.hardtanh(logvar, *self.logvar_clip)
        return mu, logvar

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"logvar_clip={self.logvar_clip}")


def stack(sizes: list[int], *, activation: str | None, init: str) -> nn.Sequential:
    """Consecutive ``Dense`` layers of widths ``sizes[0] -> sizes[1] -> ...``, same activation."""
    return nn.Sequential(*[Dense(a, b, activation=activation, init=init)
                           for a, b in zip(sizes[:-1], sizes[1:])])
