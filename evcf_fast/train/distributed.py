"""Distributed training on ``torch.distributed``: ranks, sharded batches, gradient all-reduce,
gathered evaluation (issue 10).

A run launched by ``torchrun`` (or ``evcf train --nproc-per-node N``) has ``W`` processes; the
training loop (:mod:`evcf_fast.train.loop`) talks to them through a *context*:
:class:`LocalContext` for one process (every hook is the identity, so a single-process run is
unchanged) and :class:`DistContext` for ``W`` ranks. The semantics, stated once:

* **Batches.** Every rank holds the same training CSR (memory-mapped on the CPU: zero copy; on a
  GPU, uploaded once per device) and draws the same permutation per epoch from the run's seed.
  Global batch ``i`` is the same users, in the same order, as in a single-process run; it is cut
  into ``W`` contiguous shards whose sizes differ by at most one (the first ``n mod W`` ranks take
  one more user, :func:`split_range`); this holds for a ``batch_size`` that ``W`` does not divide
  and for the epoch's last partial batch alike. A rank whose shard is empty (a last batch of
  fewer than ``W`` users) runs the step on the batch's last user with weight 0: it draws the same
  noise and joins the all-reduce, and contributes nothing.
* **Gradients.** Rank ``r`` back-propagates ``(n_r / n) * loss_r`` (its share of the batch mean)
  and the gradients are summed over the ranks by an all-reduce (in place, per tensor), so the update
  is that of the mean loss over the global batch, for Adam and AdamNormGrad alike (the optimizer
  then runs identically on every rank); per-step losses are summed the same way, once an epoch.
* **Noise.** Each rank draws the dropout masks and reparameterisation noise of the *whole global
  batch*, from the same generator state, and keeps its rows' slice; the pseudo-input dropout mask
  is drawn identically on every rank. A ``W``-rank run therefore draws exactly what the
  single-process run draws, and its trajectory depends on ``W`` only through floating-point
  reduction order (the extra draws cost ``B x latent`` normals and one uniform per nonzero of the
  batch per layer: small next to the forward pass). Dense model input (``input="dense"``) is not
  supported in distributed runs.
* **Evaluation.** The validation and test users are split across ranks in whole scoring blocks of
  ``eval_batch_size`` users (the blocks of a single-process evaluation), and the per-user metric
  arrays are gathered in user order: metrics, standard errors and the early-stopping decision are
  bit-identical to a single-process evaluation of the same weights, on every rank.
* **Faults.** Rank 0 writes the run folder (atomically); a run restarted by ``torchrun
  --max-restarts`` resumes from its ``last.pt`` (the CLI checks ``TORCHELASTIC_RESTART_COUNT``).
  Since the trajectory does not depend on ``W``, a run may resume on another world size. Setup
  errors (world size larger than the training or validation users, ranks disagreeing on the
  dataset or configs, a run folder that cannot be used) are agreed on by all ranks before anything
  is written, and raise the same error everywhere; every collective has a bounded timeout.

Joining the process group (torchrun's environment) and the one-machine launcher live in
:mod:`evcf_fast.train.launch`.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .._checks import must_be
from ..errors import IncompatibleDatasetError
from .batches import DeviceRows, EpochBatches, gather_rows
from .evaluation import EvalPart, evaluate_part


def split_range(n: int, parts: int, index: int) -> tuple[int, int]:
    """``[start, stop)`` of part ``index`` when ``n`` items are cut into ``parts`` contiguous parts.

    The first ``n % parts`` parts have one item more than the others.
    """
    base, extra = divmod(n, parts)
    start = index * base + min(index, extra)
    return start, start + base + (index < extra)


@dataclass(frozen=True)
class Share:
    """A rank's part of one global batch (what the noise hook and the loss weight need)."""

    weight: float       # n_local / n_global (0 for an empty shard's stand-in row)
    n_global: int       # users in the global batch
    row_offset: int     # first global-batch row of this rank
    n_local: int        # rows this rank computes
    nnz_global: int     # nonzeros of the global batch
    nnz_offset: int     # first global-batch nonzero of this rank
    nnz_local: int


FULL = Share(1.0, 0, 0, 0, 0, 0, 0)   # the single-process share: weight 1, no noise slicing


class LocalContext:
    """One process: every hook is the identity (the single-process trainer, unchanged)."""

    rank = 0
    world_size = 1
    is_main = True
    distributed = False

    def train_rows(self, csr, device) -> DeviceRows:
        return DeviceRows(csr, device)

    def epoch_batches(self, rows, *, batch_size: int, generator):
        """``(x, share)`` per step: the whole batch, weight 1."""
        return _WithShare(EpochBatches.shuffled(rows, batch_size=batch_size, generator=generator))

    def noise(self, share: Share):
        return contextlib.nullcontext()

    def reduce_gradients(self, model) -> None:
        pass

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def eval_part(self, fold_in, heldout, device, *, batch_size: int):
        return EvalPart(fold_in, heldout, device)

    def evaluate(self, model, part, *, metrics, batch_size: int, dense: bool = False):
        return evaluate_part(model, part, metrics=metrics, batch_size=batch_size, dense=dense)

    def agree(self, fn, *args, **kwargs):
        """Run a setup step (on every rank, with a common verdict when distributed)."""
        return fn(*args, **kwargs)

    def check_setup(self, data, *, configs: dict, train_config) -> None:
        pass

    def sync_parameters(self, model) -> None:
        pass

    def barrier(self) -> None:
        pass


class _WithShare:
    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for x, _rows in self.batches:
            yield x, FULL


class DistContext(LocalContext):
    """``W`` ranks of an initialised default process group (see the module docstring).

    Build one with :func:`init_from_env` (what the CLI does under ``torchrun``), or from a process
    group you initialised yourself: ``DistContext()``.
    """

    distributed = True

    def __init__(self):
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("DistContext needs an initialised torch.distributed process group "
                               "(launch with torchrun, or call init_from_env())")
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.is_main = self.rank == 0
        self.backend = dist.get_backend()

    # -- setup -------------------------------------------------------------------------------

    def agree(self, fn, *args, **kwargs):
        """Run ``fn`` on every rank; if it fails anywhere, raise on every rank (no hang)."""
        import torch.distributed as dist

        try:
            value, error = fn(*args, **kwargs), None
        except Exception as exc:  # reported to every rank, re-raised below
            value, error = None, (type(exc), str(exc))
        errors = [None] * self.world_size
        dist.all_gather_object(errors, error)
        for rank, err in enumerate(errors):
            if err is not None:
                kind, message = err
                if not (isinstance(kind, type) and issubclass(kind, Exception)):
                    kind = RuntimeError
                prefix = "" if rank == self.rank else f"rank {rank}: "
                raise kind(prefix + message)
        return value

    def check_setup(self, data, *, configs: dict, train_config) -> None:
        """World size against the data, and every rank's dataset and configs against rank 0's.

        Raises (on every rank)
        ----------------------
        ValueError
            More ranks than training or validation users, or ``input="dense"``.
        IncompatibleDatasetError
            A rank whose dataset fingerprint or configs differ from rank 0's.
        """
        import torch.distributed as dist

        def sizes():
            n_train, n_val = int(data.train.shape[0]), int(data.part("validation")[0].shape[0])
            for what, n in (("training", n_train), ("validation", n_val)):
                if self.world_size > n:
                    raise ValueError(f"world size {self.world_size} is larger than the number of "
                                     f"{what} users ({n}); use at most {n} processes")
            if train_config.input != "sparse":
                raise ValueError(must_be("input", "'sparse' in a distributed run",
                                         repr(train_config.input)))

        self.agree(sizes)
        views = [None] * self.world_size
        dist.all_gather_object(views, configs)
        bad = []
        for rank, view in enumerate(views[1:], start=1):
            keys = sorted(k for k in set(view) | set(views[0]) if view.get(k) != views[0].get(k))
            if keys:
                bad.append(f"rank {rank} differs from rank 0 in {keys}")
        if bad:
            raise IncompatibleDatasetError("ranks disagree on the dataset or configs (fingerprint "
                                           "mismatch): " + "; ".join(bad)
                                           + "; give every rank the same --data and options")

    def sync_parameters(self, model) -> None:
        """Broadcast rank 0's parameters and buffers (every rank seeded alike; this makes sure)."""
        import torch.distributed as dist

        with torch.no_grad():
            for t in [*model.parameters(), *model.buffers()]:
                dist.broadcast(t.data, src=0)

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()

    # -- training ----------------------------------------------------------------------------

    def train_rows(self, csr, device):
        return SharedRows(csr, device)

    def epoch_batches(self, rows, *, batch_size: int, generator):
        return ShardedBatches(rows, batch_size=batch_size, generator=generator, rank=self.rank,
                              world_size=self.world_size)

    def noise(self, share: Share):
        return global_batch_noise(share)

    def reduce_gradients(self, model) -> None:
        """Sum the (weighted) gradients over the ranks, in place, one all-reduce per tensor.

        In place rather than through one flat buffer: at Netflix size a flat copy of the gradient
        would add ~0.3 GB per rank to the host peak (the 77M-parameter Netflix H+Vamp).
        """
        import torch.distributed as dist

        for p in model.parameters():
            if not p.requires_grad:
                continue
            if p.grad is None:   # unused this step here, maybe not on another rank
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    # -- evaluation --------------------------------------------------------------------------

    def eval_part(self, fold_in, heldout, device, *, batch_size: int):
        """This rank's whole scoring blocks of a held-out part (None when it has none)."""
        n = int(fold_in.shape[0])
        n_blocks = -(-n // batch_size)
        b0, b1 = split_range(n_blocks, self.world_size, self.rank)
        start, stop = b0 * batch_size, min(b1 * batch_size, n)
        if start >= stop:
            return None
        return EvalPart(fold_in[start:stop], heldout[start:stop], device)

    def evaluate(self, model, part, *, metrics, batch_size: int, dense: bool = False):
        """Every rank's per-user values gathered in user order: the single-process result."""
        import torch.distributed as dist

        from ..metrics import EvaluationResult

        local = None if part is None else evaluate_part(model, part, metrics=metrics,
                                                         batch_size=batch_size, dense=dense)
        parts = [None] * self.world_size
        dist.all_gather_object(parts, local)
        return EvaluationResult.concat([p for p in parts if p is not None])


# ------------------------------------------------------------------------------------------------
# sharded batches


class SharedRows(DeviceRows):
    """The training CSR of a distributed rank: on the CPU a zero-copy view of the dataset's memory
    map (every rank shares the page cache), on a GPU uploaded once to this rank's device."""

    def __init__(self, csr, device):  # noqa: D107 - DeviceRows documents the parameters
        self.device = torch.device(device)
        self.shape = (int(csr.shape[0]), int(csr.shape[1]))
        indptr = np.asarray(csr.indptr).astype(np.int64, copy=False)
        indices = np.asarray(csr.indices)
        self.indptr = indptr
        with warnings.catch_warnings():  # read-only memory maps: never written through
            warnings.simplefilter("ignore", UserWarning)
            crow, col = torch.from_numpy(indptr), torch.from_numpy(indices)
        self.crow, self.col = crow.to(self.device), col.to(self.device)
        self.nnz = int(indptr[-1])
        self._ones = torch.ones(0, device=self.device)


class ShardedBatches:
    """One epoch of a rank: the global permutation, cut into global batches and then into shards.

    Iterating yields ``(x, share)``: this rank's rows of the batch as a sparse CSR tensor and its
    :class:`Share`. The row and nonzero offsets of every shard are read back once per epoch.
    """

    def __init__(self, rows: DeviceRows, *, batch_size: int, generator, rank: int,
                 world_size: int):
        n = rows.n_rows
        self.rows, self.batch_size, self.rank, self.world = rows, batch_size, rank, world_size
        self.perm = torch.randperm(n, generator=generator, device=rows.device)
        lengths = rows.crow[self.perm + 1] - rows.crow[self.perm]
        cum = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
        torch.cumsum(lengths, 0, out=cum[1:])
        self.starts = list(range(0, n, batch_size))
        # for every batch: its start, this rank's first and last row, its end (global positions)
        positions = []
        for start in self.starts:
            nb = min(batch_size, n - start)
            lo, hi, _ = self._local(nb)
            positions += [start, start + lo, start + hi, start + nb]
        self.bounds = cum[torch.tensor(positions, device=rows.device)].tolist()

    def _local(self, nb: int) -> tuple[int, int, float]:
        """This rank's rows ``[lo, hi)`` of a batch of ``nb`` users and its loss weight."""
        lo, hi = split_range(nb, self.world, self.rank)
        if hi == lo:  # empty shard: compute the batch's last user, with weight 0
            return nb - 1, nb, 0.0
        return lo, hi, (hi - lo) / nb

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self):
        n = self.rows.n_rows
        for i, start in enumerate(self.starts):
            nb = min(self.batch_size, n - start)
            lo, hi, weight = self._local(nb)
            b_start, l_start, l_stop, b_stop = self.bounds[4 * i:4 * i + 4]
            rows = self.perm[start + lo:start + hi]
            crow, col = gather_rows(self.rows.crow, self.rows.col, rows, nnz=l_stop - l_start)
            x = self.rows.as_tensor(crow, col.to(torch.int64), hi - lo)
            yield x, Share(weight=weight, n_global=nb, row_offset=lo, n_local=hi - lo,
                           nnz_global=b_stop - b_start, nnz_offset=l_start - b_start,
                           nnz_local=l_stop - l_start)


@contextlib.contextmanager
def global_batch_noise(share: Share):
    """Draw the global batch's dropout masks and normal noise; keep this rank's slice.

    Rebinds :func:`evcf_fast.models.layers.dropout` and ``standard_normal`` (the models' only
    sources of randomness) for the block and restores them afterwards. A 1-D tensor is a CSR
    batch's nonzero values; a 2-D dropout input is the pseudo-inputs (the same draw on every rank).
    """
    from ..models import layers

    draw_dropout, draw_normal = layers.dropout, layers.standard_normal

    def dropout(t, p):
        if t.dim() != 1:
            return draw_dropout(t, p)
        if t.numel() != share.nnz_local:
            raise RuntimeError(f"dropout on {t.numel()} values, expected this rank's "
                               f"{share.nnz_local} batch nonzeros")
        mask = draw_dropout(torch.ones(share.nnz_global, dtype=t.dtype, device=t.device), p)
        return t * mask[share.nnz_offset:share.nnz_offset + share.nnz_local]

    def standard_normal(like):
        if like.dim() == 0 or like.shape[0] != share.n_local:
            raise RuntimeError(f"noise of shape {tuple(like.shape)}, expected {share.n_local} "
                               f"rows (this rank's share of the batch)")
        full = draw_normal(like.new_empty((share.n_global, *like.shape[1:])))
        return full[share.row_offset:share.row_offset + share.n_local]

    layers.dropout, layers.standard_normal = dropout, standard_normal
    try:
        yield
    finally:
        layers.dropout, layers.standard_normal = draw_dropout, draw_normal


# ------------------------------------------------------------------------------------------------
# process group


def current(dist=None) -> LocalContext:
    """``dist`` itself; else a DistContext of the initialised default process group, if any;
    else a LocalContext."""
    if dist is not None:
        return dist
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1:
        return DistContext()
    return LocalContext()
