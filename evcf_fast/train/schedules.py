"""KL-weight schedules and the early-stopping rule, as pure functions.

* EVCF per-epoch warm-up [EVCF utils/training.py]: ``beta_t = max_beta * min(1, t / warmup)`` for
  epochs t = 1, 2, ...; ``warmup = 0`` means a constant ``max_beta`` (PAPER_SPEC 3.3).
* Liang et al. per-step annealing [LIANG-NB]: ``beta = min(anneal_cap, step / total_anneal_steps)``
  where ``step`` counts the updates already made (0 for the first one).
* Early stopping [EVCF utils/perform_experiment.py, PAPER_SPEC 3.4]: the best metric starts at 0; a
  strictly better value resets the counter e to 0, otherwise e += 1 but e is forced back to 0 while
  the epoch is below ``warmup``; training stops once e > patience.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


def beta_epoch(epoch: int, *, max_beta: float, warmup: int) -> float:
    """EVCF per-epoch KL weight.

    Parameters
    ----------
    epoch : int
        1-based epoch number.
    max_beta : float
        Weight reached at epoch ``warmup`` and kept afterwards.
    warmup : int
        Warm-up length in epochs; 0 means a constant ``max_beta``.

    Returns
    -------
    float
    """
    if epoch < 1:
        raise ValueError(f"epoch must be >= 1 (epochs are 1-based), got {epoch}")
    if warmup == 0:
        return float(max_beta)
    # same operation order as the authors (max_beta * epoch / warmup, then capped) so the float
    # is bit-identical to theirs
    return float(min(max_beta * epoch / warmup, max_beta))


def beta_step(step: int, *, anneal_cap: float, total_anneal_steps: int) -> float:
    """Liang et al. per-step KL weight.

    Parameters
    ----------
    step : int
        Number of optimizer updates made before this one (0-based).
    anneal_cap : float
        Upper bound of beta.
    total_anneal_steps : int
        Steps to reach ``anneal_cap`` (linear from 0); 0 means a constant ``anneal_cap``.

    Returns
    -------
    float
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if total_anneal_steps == 0:
        return float(anneal_cap)
    return float(min(anneal_cap, step / total_anneal_steps))


@dataclass(frozen=True, kw_only=True)
class EarlyStopping:
    """State of the authors' early-stopping rule.

    ``best`` starts at 0.0 as in the authors' code, so a run whose metric never exceeds 0 never
    records a best epoch (``best_epoch`` stays 0).
    """

    best: float = 0.0       # best validation metric so far
    best_epoch: int = 0     # epoch that reached it (0: none yet)
    bad_epochs: int = 0     # the counter e


def early_stopping_update(state: EarlyStopping, *, epoch: int, metric: float, warmup: int,
                          patience: int | None) -> tuple[EarlyStopping, bool, bool]:
    """One epoch of the authors' early-stopping rule.

    Parameters
    ----------
    state : EarlyStopping
        State after the previous epoch.
    epoch : int
        1-based epoch number just finished.
    metric : float
        Its validation metric (larger is better).
    warmup : int
        The counter is forced to 0 while ``epoch < warmup``.
    patience : int or None
        Stop once the counter exceeds it; None never stops early.

    Returns
    -------
    (EarlyStopping, bool, bool)
        The new state, whether this epoch is the new best, whether to stop now.
    """
    if metric > state.best:
        return replace(state, best=float(metric), best_epoch=epoch, bad_epochs=0), True, False
    bad = 0 if epoch < warmup else state.bad_epochs + 1
    stop = patience is not None and bad > patience
    return replace(state, bad_epochs=bad), False, stop
