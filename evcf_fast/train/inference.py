"""Using a trained run: scores for a held-out part, and top-k recommendations.

The model is the run's ``best.pt`` (the best validation checkpoint); scoring follows the
evaluation protocol (PAPER_SPEC section 4): the fold-in row is the input, the model is in eval
mode, and the items of the history are excluded from recommendations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from .._checks import is_int, must_be
from ..errors import IncompatibleDatasetError
from . import checkpoint as ckpt
from .batches import DeviceRows
from .evaluation import resolve_device, score_blocks
from .run_folder import run_data_dir


def load_run(run, *, data=None, device="cpu"):
    """The run's best model, its dataset, and a check that they belong together.

    Returns
    -------
    (torch.nn.Module, SplitDataset, dict)
        Model in eval mode on ``device``, the dataset, the checkpoint payload (no weights).
    """
    from ..data.dataset import SplitDataset

    device = resolve_device(device)
    ds = SplitDataset.load(run_data_dir(run, data))
    model, payload = ckpt.load_model(run, device=device)
    ckpt.check_fingerprint(payload["dataset"], ckpt.dataset_fingerprint(ds),
                           path=Path(run) / ckpt.BEST)
    return model, ds, payload


def score_rows(model, rows_csr, *, device="cpu", batch_size: int = 2000) -> torch.Tensor:
    """Eval-mode scores (n_rows, n_items) float32 of ``model`` for binary input rows (CSR)."""
    rows = DeviceRows(rows_csr, resolve_device(device))
    out = torch.empty(rows.shape, dtype=torch.float32, device=rows.device)
    for start, stop, scores in score_blocks(model, rows, batch_size=batch_size):
        out[start:stop] = scores
    return out


def top_k(model, histories, *, k: int = 10, device="cpu", batch_size: int = 2000):
    """Top-k items for each history row, excluding the history's own items.

    Ties break towards the lower item index (a stable sort), so the output is deterministic.

    Parameters
    ----------
    model : torch.nn.Module
    histories : scipy.sparse CSR matrix (n, n_items)
        Binary histories (fold-in rows or ad-hoc item sets).
    k : int
        Number of items per row, 1 <= k; rows with fewer unseen items get fewer (padded with -1).

    Returns
    -------
    (ndarray, ndarray)
        Item column indices (n, k) int64, -1 for padding, and their scores (n, k) float32.
    """
    if not is_int(k) or k < 1:
        raise ValueError(must_be("k", "an int >= 1", repr(k)))
    k = int(k)
    n_items = histories.shape[1]
    k_eff = min(k, n_items)
    scores = score_rows(model, histories, device=device, batch_size=batch_size)
    mask = torch.from_numpy(histories.toarray() > 0).to(scores.device)
    scores = scores.masked_fill(mask, float("-inf"))
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k_eff]
    top_scores = torch.gather(scores, 1, order)
    items = order.cpu().numpy().astype(np.int64)
    vals = top_scores.cpu().numpy().astype(np.float32)
    items[~np.isfinite(vals)] = -1  # history items (or -inf scores) are never recommended
    if k_eff < k:
        items = np.pad(items, ((0, 0), (0, k - k_eff)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - k_eff)), constant_values=-np.inf)
    return items, vals


def user_histories(ds, user_ids) -> tuple[sp.csr_matrix, list[str]]:
    """History rows for raw user ids: the fold-in row of a validation/test user, or the whole row
    of a training user.

    Returns
    -------
    (scipy.sparse.csr_matrix, list of str)
        One row per requested user, and where each came from ("test fold-in", ...).
    """
    sources = [("test fold-in", ds.test_user_ids, ds.test_fold_in),
               ("validation fold-in", ds.validation_user_ids, ds.validation_fold_in),
               ("train", ds.train_user_ids, ds.train)]
    lookup = {}
    for name, ids, matrix in reversed(sources):  # held-out users win on (impossible) overlaps
        for row, uid in enumerate(np.asarray(ids).tolist()):
            lookup[str(uid)] = (name, matrix, row)
    rows, where = [], []
    for uid in user_ids:
        if str(uid) not in lookup:
            raise ValueError(f"user {uid!r} is not in the dataset (neither a training, validation "
                             f"nor test user)")
        name, matrix, row = lookup[str(uid)]
        rows.append(matrix[row])
        where.append(name)
    return sp.vstack(rows, format="csr"), where


def item_history(ds, item_ids) -> sp.csr_matrix:
    """A one-row binary history of raw item ids (an ad-hoc user)."""
    column = {str(i): c for c, i in enumerate(np.asarray(ds.item_ids).tolist())}
    unknown = [i for i in item_ids if str(i) not in column]
    if unknown:
        raise ValueError(f"unknown item id(s) {unknown[:10]}"
                         f"{' ...' if len(unknown) > 10 else ''}: not among the dataset's "
                         f"{len(column)} items")
    cols = sorted({column[str(i)] for i in item_ids})
    return sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols), np.int64), cols)),
                         shape=(1, len(column)))


def part_scores(run, *, part: str = "test", data=None, device="cpu", batch_size: int = 2000):
    """Scores of a run's best model for every user of a held-out part.

    Returns
    -------
    (torch.Tensor, scipy CSR, scipy CSR)
        Scores (n_users, n_items) float32 on ``device``, the part's fold-in and held-out rows.
    """
    model, ds, _ = load_run(run, data=data, device=device)
    fold_in, heldout = ds.part(part)
    if fold_in.shape[1] != model.cfg.n_items:
        raise IncompatibleDatasetError(f"model has {model.cfg.n_items} items, the dataset "
                                       f"{fold_in.shape[1]}")
    return score_rows(model, fold_in, device=device, batch_size=batch_size), fold_in, heldout
