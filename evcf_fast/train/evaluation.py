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


def check_cutoffs(metrics, n_items: int) -> None:
    """Every validation/test metric's cut-off fits the catalogue (before any training)."""
    from ..metrics import parse_metrics

    for spec in parse_metrics(tuple(metrics)):
        if spec.k > n_items:
            raise ValueError(f"metric {spec} needs at least {spec.k} items, the dataset has "
                             f"{n_items}; choose smaller cut-offs (val_metric, test_metrics)")


def check_parts(data, *, evaluate_test: bool) -> None:
    """Validation (and test) users with held-out items must exist before the first step."""
    parts = ("validation", "test") if evaluate_test else ("validation",)
    for name in parts:
        fold_in, heldout = data.part(name)
        n_users = int(fold_in.shape[0])
        with_targets = int((heldout.indptr[1:] > heldout.indptr[:-1]).sum())
        if with_targets == 0:
            raise ValueError(f"the dataset has no {name} users with held-out items (got "
                             f"{n_users} {name} users); training validates every epoch and tests "
                             f"the best one: prepare the split with --n-heldout >= 1")
