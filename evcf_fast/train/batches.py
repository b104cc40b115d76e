"""Device-resident CSR rows and shuffled mini-batches gathered on the device.

The authors densify the whole training matrix on the host and copy a dense 200 x D block to the
GPU every step (PAPER_SPEC section 6, item 12). Here the CSR (int64 ``crow``/``col``) is uploaded
once; each epoch draws one permutation with a dedicated ``torch.Generator`` on the device and
gathers the permuted CSR with vectorised ops (row lengths, cumsum, repeat_interleave). The batch
boundaries (``batch_size + 1`` offsets per epoch) are the only host transfer of the epoch; every
batch is then a zero-copy slice turned into a ``torch.sparse_csr_tensor`` of values 1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch


def gather_rows(crow: torch.Tensor, col: torch.Tensor, rows: torch.Tensor, *,
                nnz: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``rows`` of a CSR matrix, in that order, as a new CSR (crow, col).

    Parameters
    ----------
    crow : Tensor of shape (n_rows + 1,), int64
    col : Tensor of shape (nnz,), int64
    rows : Tensor of shape (B,), int64, on the same device
        Row indices; repeats are allowed.
    nnz : int, optional
        Total nonzeros of the selected rows when the caller knows it; otherwise it is read back
        from the device (one synchronisation).

    Returns
    -------
    (Tensor, Tensor)
        ``crow`` of shape (B + 1,) and ``col`` of shape (nnz,), int64.
    """
    starts = crow[rows]
    lengths = crow[rows + 1] - starts
    new_crow = torch.zeros(rows.numel() + 1, dtype=torch.int64, device=crow.device)
    torch.cumsum(lengths, 0, out=new_crow[1:])
    if nnz is None:
        nnz = int(new_crow[-1])
    # source position of output element j in row r: starts[r] + (j - new_crow[r])
    shift = torch.repeat_interleave(starts - new_crow[:-1], lengths, output_size=nnz)
    src = torch.arange(nnz, dtype=torch.int64, device=crow.device)
    src += shift
    return new_crow, col[src]


def _writable_int64(a) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    return a if a.flags.writeable else a.copy()


class DeviceRows:
    """A binary CSR matrix resident on a torch device, handing out row blocks as sparse tensors.

    Parameters
    ----------
    csr : scipy.sparse CSR matrix/array
        Binary interactions (the values are not read: every stored entry is a 1).
    device : str or torch.device
    """

    def __init__(self, csr, device):
        if not sp.issparse(csr) or csr.format != "csr":
            raise TypeError(f"csr must be a scipy.sparse CSR matrix, got {type(csr).__name__}")
        self.device = torch.device(device)
        self.shape = (int(csr.shape[0]), int(csr.shape[1]))
        # own host copy of the offsets (block slicing); the input may be a read-only memmap
        self.indptr = np.array(csr.indptr, dtype=np.int64)
        self.crow = torch.from_numpy(self.indptr).to(self.device)
        self.col = torch.from_numpy(_writable_int64(csr.indices)).to(self.device)
        self.nnz = int(self.indptr[-1])
        self._ones = torch.ones(0, device=self.device)

    @property
    def n_rows(self) -> int:
        return self.shape[0]

    def ones(self, n: int) -> torch.Tensor:
        """A length-``n`` view of a shared buffer of ones (CSR values)."""
        if self._ones.numel() < n:
            self._ones = torch.ones(max(n, 2 * self._ones.numel()), device=self.device)
        return self._ones[:n]

    def as_tensor(self, crow, col, n_rows) -> torch.Tensor:
        """Wrap (crow, col) as a (n_rows, n_cols) float32 sparse CSR tensor of ones."""
        with warnings.catch_warnings():  # torch's "sparse CSR support is in beta" notice
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(crow, col, self.ones(col.numel()),
                                           size=(n_rows, self.shape[1]), check_invariants=False)

    def block(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` as a sparse CSR tensor (no host round trip: offsets are cached)."""
        if not 0 <= start <= stop <= self.n_rows:
            raise ValueError(f"row block {start}:{stop} is outside [0, {self.n_rows}]")
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return self.as_tensor(self.crow[start:stop + 1] - lo, self.col[lo:hi], stop - start)

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """Rows ``rows`` (device int64 tensor) as a sparse CSR tensor; one synchronisation."""
        crow, col = gather_rows(self.crow, self.col, rows)
        return self.as_tensor(crow, col, rows.numel())


@dataclass(frozen=True)
class EpochBatches:
    """One epoch's shuffled mini-batches: a permuted CSR and its batch boundaries.

    Iterating yields ``(x, rows)``: the batch as a sparse CSR tensor and the original row ids.
    """

    rows: DeviceRows
    perm: torch.Tensor         # (n_rows,) permutation of the training rows
    crow: torch.Tensor         # permuted CSR row pointer
    col: torch.Tensor          # permuted CSR column indices
    bounds: tuple[int, ...]    # host copy of crow at every batch start and at the end
    batch_size: int

    @classmethod
    def shuffled(cls, rows: DeviceRows, *, batch_size: int, generator: torch.Generator | None
                 ) -> EpochBatches:
        """Draw a permutation with ``generator`` (None: identity order) and gather it."""
        n = rows.n_rows
        if generator is None:
            perm = torch.arange(n, device=rows.device)
        else:
            perm = torch.randperm(n, generator=generator, device=rows.device)
        new_crow, new_col = gather_rows(rows.crow, rows.col, perm, nnz=rows.nnz)
        starts = list(range(0, n, batch_size)) + [n]
        bounds = tuple(new_crow[starts].tolist())  # the epoch's only device-to-host transfer
        return cls(rows, perm, new_crow, new_col, bounds, batch_size)

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def __iter__(self):
        n, b = self.rows.n_rows, self.batch_size
        for i in range(len(self)):
            start, stop = i * b, min((i + 1) * b, n)
            lo, hi = self.bounds[i], self.bounds[i + 1]
            crow = self.crow[start:stop + 1] - lo
            yield self.rows.as_tensor(crow, self.col[lo:hi], stop - start), self.perm[start:stop]
