"""Fit any model of the zoo: the closed-form baselines here, the gradient-trained VAEs in ``loop``.

A closed-form baseline (popularity, ItemKNN, EASE; :mod:`evcf_fast.models.baselines`) is fitted
once on the training matrix, scored on the validation users (its one "epoch", so sweeps and
studies read it like a trained run) and its weights evaluated on the test users. Its run
directory is a normal one: ``config.json``, ``log.jsonl`` (one record, training-loss fields
NaN), ``best.pt`` (what ``evcf evaluate --run`` and ``evcf recommend`` load) and ``test.json``.
A closed-form fit is cheap and deterministic, so ``resume`` simply fits again.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import checkpoint as ckpt
from . import run_folder
from .config import TrainConfig
from .evaluation import EvalPart, check_cutoffs, check_parts, evaluate_part, resolve_device
from .loop import FitResult, _as_dataset
from .loop import fit as fit_gradient


def fit(data, *, model_config, train_config: TrainConfig, out=None, resume: bool = False,
        progress: bool = True, evaluate_test: bool = True, on_epoch=None,
        **loop_options) -> FitResult:
    """Train ``model_config``'s model on ``data``; see :func:`evcf_fast.train.loop.fit`.

    Closed-form baselines go through :func:`fit_closed_form` (the training fields of
    ``train_config`` other than ``device``, ``val_metric``, ``test_metrics`` and
    ``eval_batch_size`` do not apply to them), every other model through the training loop.
    ``loop_options`` (e.g. ``epoch_lines``) are options of the training loop only.
    """
    common = dict(model_config=model_config, train_config=train_config, out=out, resume=resume,
                  progress=progress, evaluate_test=evaluate_test, on_epoch=on_epoch)
    if model_config.is_closed_form:
        return fit_closed_form(data, **common)
    return fit_gradient(data, **common, **loop_options)


def fit_closed_form(data, *, model_config, train_config: TrainConfig, out=None,
                    resume: bool = False, progress: bool = True, evaluate_test: bool = True,
                    on_epoch=None) -> FitResult:
    """Fit a closed-form baseline, validate it, evaluate it on the test users, write the run."""
    from ..errors import IncompatibleDatasetError

    data, data_path = _as_dataset(data)
    cfg = train_config
    if model_config.n_items != data.n_items:
        raise IncompatibleDatasetError(f"model has n_items={model_config.n_items} but the "
                                       f"dataset has {data.n_items} items")
    check_parts(data, evaluate_test=evaluate_test)  # in the training loop's order
    check_cutoffs((cfg.val_metric, *cfg.test_metrics), data.n_items)
    run_dir = Path(out) if out is not None else None
    with run_folder.run_folder_lock(run_dir):   # one writer per run folder, as in loop.fit
        return _fit_closed_form_locked(data, data_path, run_dir, model_config=model_config,
                                       train_config=cfg, resume=resume, progress=progress,
                                       evaluate_test=evaluate_test, on_epoch=on_epoch)


def _fit_closed_form_locked(data, data_path, run_dir, *, model_config, train_config, resume,
                            progress, evaluate_test, on_epoch) -> FitResult:
    """:func:`fit_closed_form` once the run folder's lock is held."""
    from ..models import build_model

    cfg = train_config
    if run_dir is not None and not resume and (run_dir / ckpt.BEST).exists():
        raise FileExistsError(f"run directory {str(run_dir)!r} already holds a checkpoint; add "
                              f"--resume to refit it (resume=True in fit) or choose another --out")
    if resume and run_dir is None:
        raise ValueError("resume=True needs the run directory (out / --out)")
    device = resolve_device(cfg.device)
    fingerprint = ckpt.dataset_fingerprint(data)
    configs = {"model_config": model_config.to_dict(), "train_config": cfg.to_dict(),
               "dataset": fingerprint}
    if run_dir is not None:
        run_folder.write_config(run_dir, configs, data_path=data_path)

    t0 = time.perf_counter()
    model = build_model(model_config).to(device)
    model.fit(data.train, device=device)
    model.eval()
    t1 = time.perf_counter()
    val = evaluate_part(model, EvalPart(*data.part("validation"), device),
                        metrics=(cfg.val_metric,), batch_size=cfg.eval_batch_size)
    metric = float(val.mean[cfg.val_metric])
    t2 = time.perf_counter()
    nan = float("nan")
    record = {"epoch": 1, "step": 0, "beta": 0.0, "loss": nan, "nll": nan, "kl": nan,
              f"val_{cfg.val_metric}": metric, "best": True, "best_epoch": 1, "bad_epochs": 0,
              "train_seconds": t1 - t0, "val_seconds": t2 - t1, "seconds": t2 - t0}
    if progress:
        import sys

        print(f"{model_config.model}: fitted in {t1 - t0:.2f}s, {cfg.val_metric} "
              f"{metric:.5f} (validation)", file=sys.stderr)
    if run_dir is not None:
        ckpt.save_checkpoint(run_dir / ckpt.BEST, {
            **configs, "kind": "best", "epoch": 1, "metric": {cfg.val_metric: metric},
            "model_state": model.state_dict()})
        run_folder.write_log(run_dir / run_folder.LOG, [record])
    if on_epoch is not None:
        on_epoch(record)
    test = None
    if evaluate_test:
        test = evaluate_part(model, EvalPart(*data.part("test"), device),
                             metrics=cfg.test_metrics, batch_size=cfg.eval_batch_size)
        if run_dir is not None:
            run_folder.write_test(run_dir, test, best_epoch=1)
    return FitResult(model=model, history=[record], best_epoch=1, best_metric=metric,
                     epochs_run=1, stopped_early=False, test=test, run_dir=run_dir)
