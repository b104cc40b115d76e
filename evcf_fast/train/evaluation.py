"""Scoring a model over a held-out part, block by block on its device (PAPER_SPEC section 4).

The fold-in rows are the input, the model is in eval mode (no dropout, latents at their means),
the fold-in items are excluded from the ranking, and the metrics come from the metric engine's
torch path. Used by the training loop (validation, test) and by :mod:`evcf_fast.train.inference`.
"""

from __future__ import annotations

import numpy as np
import torch

from .batches import DeviceRows


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> cuda when available, else cpu; ``"cuda"`` without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device='cuda' requested but CUDA is not available (torch "
                         f"{torch.__version__}); use device='cpu' (--device cpu)")
    return torch.device(device)


class EvalPart:
    """A held-out part (fold-in and held-out CSR) prepared on the device once."""

    def __init__(self, fold_in, heldout, device):
        from ..metrics.torch_path import DeviceCSR

        self.fold_in = DeviceRows(fold_in, device)
        self.fold_in_dev = DeviceCSR.from_scipy(fold_in, device)
        self.heldout_dev = DeviceCSR.from_scipy(heldout, device)
        self.n_users = int(fold_in.shape[0])


@torch.no_grad()
def score_blocks(model, rows: DeviceRows, *, batch_size: int, dense: bool = False):
    """Yield ``(start, stop, scores)`` for consecutive row blocks of ``rows`` (eval mode)."""
    model.eval()
    if hasattr(model, "prepare_eval"):
        model.prepare_eval()
    for start in range(0, rows.n_rows, batch_size):
        stop = min(start + batch_size, rows.n_rows)
        x = rows.block(start, stop)
        yield start, stop, model.scores(x.to_dense() if dense else x).float()


def evaluate_part(model, part: EvalPart, *, metrics, batch_size: int, dense: bool = False):
    """Metrics of ``model`` on a prepared part, evaluated block by block on its device.

    Returns
    -------
    EvaluationResult
        Concatenated over the blocks (per-user values in row order).
    """
    from ..metrics import EvaluationResult, evaluate, parse_metrics

    specs = parse_metrics(tuple(metrics))
    results = []
    for start, stop, scores in score_blocks(model, part.fold_in, batch_size=batch_size,
                                            dense=dense):
        heldout = part.heldout_dev.rows(start, stop)
        if heldout.nnz == 0:  # a block of users without targets: all skipped (NaN), no error
            nan = np.full(stop - start, np.nan)
            results.append(EvaluationResult(metrics=specs, per_user={str(s): nan.copy()
                                                                     for s in specs},
                                            n_heldout=np.zeros(stop - start, np.int64)))
            continue
        results.append(evaluate(scores, heldout, exclude=part.fold_in_dev.rows(start, stop),
                                metrics=specs))
    return EvaluationResult.concat(results)
