"""KL schedules and the early-stopping rule against their definitions (PAPER_SPEC 3.3, 3.4)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evcf_fast.train.schedules import (
    EarlyStopping,
    beta_epoch,
    beta_step,
    early_stopping_update,
)


def test_beta_epoch_hand_values():
    """max_beta 0.3, warm-up 100: 0.003 at epoch 1, 0.15 at 50, 0.3 from epoch 100 on."""
    assert beta_epoch(1, max_beta=0.3, warmup=100) == pytest.approx(0.003, rel=1e-15)
    assert beta_epoch(50, max_beta=0.3, warmup=100) == pytest.approx(0.15, rel=1e-15)
    assert beta_epoch(100, max_beta=0.3, warmup=100) == 0.3
    assert beta_epoch(101, max_beta=0.3, warmup=100) == 0.3
    assert beta_epoch(400, max_beta=0.3, warmup=100) == 0.3


@given(epoch=st.integers(1, 1000), max_beta=st.floats(0, 10), warmup=st.integers(0, 500))
def test_beta_epoch_matches_authors_code(epoch, max_beta, warmup):
    """Bit-identical to the authors' utils/training.py branch structure."""
    if warmup == 0:
        expected = max_beta
    else:
        expected = max_beta * epoch / warmup
        if expected > max_beta:
            expected = max_beta
    assert beta_epoch(epoch, max_beta=max_beta, warmup=warmup) == expected


def test_beta_epoch_rejects_epoch_zero():
    with pytest.raises(ValueError, match="epoch must be >= 1"):
        beta_epoch(0, max_beta=1.0, warmup=10)


def test_beta_step_hand_values():
    """Liang: min(0.2, step / 200,000); the first update (step 0) has beta 0."""
    assert beta_step(0, anneal_cap=0.2, total_anneal_steps=200_000) == 0.0
    assert beta_step(20_000, anneal_cap=0.2, total_anneal_steps=200_000) == pytest.approx(0.1)
    assert beta_step(40_000, anneal_cap=0.2, total_anneal_steps=200_000) == pytest.approx(0.2)
    assert beta_step(10**7, anneal_cap=0.2, total_anneal_steps=200_000) == 0.2
    assert beta_step(5, anneal_cap=0.7, total_anneal_steps=0) == 0.7


@given(step=st.integers(0, 10**6), cap=st.floats(0, 1), total=st.integers(1, 10**6))
def test_beta_step_formula(step, cap, total):
    assert beta_step(step, anneal_cap=cap, total_anneal_steps=total) == min(cap, step / total)


def test_beta_step_rejects_negative_step():
    with pytest.raises(ValueError, match="step must be >= 0"):
        beta_step(-1, anneal_cap=0.2, total_anneal_steps=10)


def _authors_loop(metrics, *, warmup, patience):
    """Literal transcription of EVCF utils/perform_experiment.py's early-stopping block.

    Returns (last epoch run, best epoch, best value).
    """
    best, e, best_epoch, last = 0.0, 0, 0, 0
    for epoch, value in enumerate(metrics, start=1):
        last = epoch
        if value > best:
            e = 0
            best = value
            best_epoch = epoch
        else:
            e += 1
            if epoch < warmup:
                e = 0
            if e > patience:
                break
    return last, best_epoch, best


def _ours(metrics, *, warmup, patience):
    state, last = EarlyStopping(), 0
    for epoch, value in enumerate(metrics, start=1):
        last = epoch
        state, _, stop = early_stopping_update(state, epoch=epoch, metric=value, warmup=warmup,
                                               patience=patience)
        if stop:
            break
    return last, state.best_epoch, state.best


def test_early_stopping_scripted_sequence():
    """warm-up 4, patience 2: the counter is held at 0 before epoch 4, so the stop is at 6.

    epoch:   1    2    3        4    5    6
    metric: .10  .30  .20      .20  .25  .29
    e:       0    0    0 (held) 1    2    3 > 2: stop
    """
    metrics = [0.10, 0.30, 0.20, 0.20, 0.25, 0.29, 0.10, 0.50]
    assert _ours(metrics, warmup=4, patience=2) == (6, 2, 0.30)
    # without the warm-up hold the counter reaches 3 at epoch 5
    assert _ours(metrics, warmup=0, patience=2) == (5, 2, 0.30)
    # improvement resets the counter; no patience never stops
    assert _ours(metrics, warmup=0, patience=None) == (8, 8, 0.50)


def test_early_stopping_earliest_stop_is_150_with_authors_defaults():
    """PAPER_SPEC 3.4: warm-up 100, patience 50, a metric that never improves after epoch 1."""
    metrics = [0.1] + [0.05] * 399
    assert _ours(metrics, warmup=100, patience=50) == (150, 1, 0.1)


def test_early_stopping_flags():
    state, improved, stop = early_stopping_update(EarlyStopping(), epoch=1, metric=0.2, warmup=0,
                                                  patience=0)
    assert (improved, stop, state.best_epoch, state.bad_epochs) == (True, False, 1, 0)
    state, improved, stop = early_stopping_update(state, epoch=2, metric=0.2, warmup=0,
                                                  patience=0)
    assert (improved, stop, state.bad_epochs) == (False, True, 1)  # equal is not better


@settings(max_examples=300)
@given(metrics=st.lists(st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.35, 0.4]), max_size=60),
       warmup=st.integers(0, 20), patience=st.integers(0, 10))
def test_early_stopping_equals_authors_loop(metrics, warmup, patience):
    """Random metric sequences with many ties: same stop epoch, best epoch and value."""
    assert _ours(metrics, warmup=warmup, patience=patience) == \
        _authors_loop(metrics, warmup=warmup, patience=patience)
