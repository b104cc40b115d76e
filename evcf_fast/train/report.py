"""What the trainer says: the start summary, budget checks, one line per epoch, ``--dry-run``.

Everything goes to stderr (stdout carries the final summary). The start summary names the model
class and its parameter count, the device and thread counts, the dataset, the run folder and the
resolved configuration, with the fields that differ from the config classes' defaults marked
``*``. :func:`budget_warnings` says when the epoch budget cannot do what the schedule expects
(beta never reaching its cap, early stopping never starting). Per-epoch lines are tqdm-safe on a
terminal and plain (one flushed line each) elsewhere, e.g. under ``nohup``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from .config import TrainConfig


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def config_lines(model_config, train_config: TrainConfig) -> list[str]:
    """The resolved configs as ``field=value`` lines; ``*`` marks a value that differs from the
    config classes' own default (``evcf presets NAME`` shows what a preset sets), and those come
    first."""
    import textwrap

    from ..models.config import ModelConfig

    reference = {"model": ModelConfig(model=model_config.model, n_items=model_config.n_items),
                 "train": TrainConfig()}
    lines = []
    for title, cfg, ref in (("model", model_config, reference["model"]),
                            ("training", train_config, reference["train"])):
        fields = [f.name for f in dataclasses.fields(cfg) if f.init]
        changed = [n for n in fields if getattr(cfg, n) != getattr(ref, n)]
        words = [f"*{n}={_fmt(getattr(cfg, n))}" for n in changed]
        words += [f"{n}={_fmt(getattr(cfg, n))}" for n in fields if n not in changed]
        head = f"{title} config ({len(changed)} * = not the default): "
        lines += textwrap.wrap(" ".join(words), width=100, initial_indent=head,
                               subsequent_indent="    ", break_on_hyphens=False)
    return lines


def budget_warnings(train_config: TrainConfig, *, steps_per_epoch: int) -> list[str]:
    """Notes on an epoch budget too short for the schedule (empty when all is well)."""
    cfg, notes = train_config, []
    if cfg.beta_schedule == "epoch" and cfg.warmup > cfg.epochs:
        reached = cfg.max_beta * min(1.0, cfg.epochs / cfg.warmup) if cfg.warmup else cfg.max_beta
        notes.append(f"--epochs {cfg.epochs} is below the beta warm-up (warmup={cfg.warmup} "
                     f"epochs): beta reaches only {reached:.4g} of max_beta {cfg.max_beta:g}"
                     + (", and early stopping never starts (patience counts from epoch "
                        f"{cfg.warmup})" if cfg.patience is not None else "")
                     + "; lower --set warmup=N or raise --epochs")
    if cfg.beta_schedule == "step" and cfg.total_anneal_steps > 0:
        steps = cfg.epochs * steps_per_epoch
        needed = cfg.anneal_cap * cfg.total_anneal_steps
        if steps < needed:
            reached = min(cfg.anneal_cap, steps / cfg.total_anneal_steps)
            notes.append(f"the Liang anneal cannot reach its cap within the budget: "
                         f"{cfg.epochs} epochs x {steps_per_epoch} steps = {steps:,} steps, beta "
                         f"= min({cfg.anneal_cap:g}, step/{cfg.total_anneal_steps:,}) ends at "
                         f"{reached:.4g}; lower --set total_anneal_steps=N to anneal within the "
                         f"run")
    return notes


def thread_line(device) -> str:
    """Torch and Numba thread counts with the CPU advice (README, Install)."""
    import torch

    parts = [f"torch {torch.get_num_threads()} thread(s)"]
    from .._jit import start_numba_threads

    parts.append(f"Numba {start_numba_threads()}")
    omp = os.environ.get("OMP_NUM_THREADS")
    line = "threads: " + ", ".join(parts) + f" (OMP_NUM_THREADS={omp or 'unset'}"
    if getattr(device, "type", "cpu") == "cpu" and not omp:
        line += "; on a busy machine OMP_NUM_THREADS=1 is often several times faster"
    return line + ")"


def start_lines(model_config, train_config: TrainConfig, *, model, device, data, data_path,
                run_dir, resumed_epoch: int | None) -> list[str]:
    """The start summary of a run (also what ``--dry-run`` prints)."""
    n_params = sum(p.numel() for p in model.parameters())
    n_train = int(data.train.shape[0])
    steps = -(-n_train // train_config.batch_size)
    fold_in, _ = data.part("validation")
    test_fold_in, _ = data.part("test")
    where = str(data_path) if data_path else "(in memory)"
    run = ("none (in memory)" if run_dir is None
           else f"{run_dir} (" + ("new" if resumed_epoch is None
                                  else f"resumed after epoch {resumed_epoch}") + ")")
    lines = [f"model: {type(model).__name__} ({model_config.model}), {n_params:,} parameters, "
             f"device {device}",
             thread_line(device),
             f"data: {where}: {n_train:,} training users ({steps:,} steps of "
             f"{train_config.batch_size} per epoch), {fold_in.shape[0]:,} validation and "
             f"{test_fold_in.shape[0]:,} test users, {data.n_items:,} items, "
             f"{int(data.train.nnz):,} training interactions",
             f"run folder: {run}",
             *config_lines(model_config, train_config)]
    lines += [f"note: {w}" for w in budget_warnings(train_config, steps_per_epoch=steps)]
    return lines


def dry_run(run, *, data=None, preset=None, overrides=None, resume: bool = False) -> str:
    """What ``evcf train --dry-run`` prints: the resolved run, built but neither trained nor saved.

    Builds the configs as ``evcf train`` would (:func:`~.run_folder.resolve_configs`) and the model
    on the resolved device; writes nothing.
    """
    from pathlib import Path

    from ..data.dataset import SplitDataset
    from ..models import build_model
    from .evaluation import resolve_device
    from .run_folder import resolve_configs

    data_dir, model_cfg, train_cfg = resolve_configs(run, data=data, preset=preset,
                                                     overrides=overrides, resume=resume)
    ds = SplitDataset.load(data_dir)
    device = resolve_device(train_cfg.device)
    model = build_model(model_cfg)
    resumed = None
    if resume:
        from . import checkpoint as ckpt

        last = Path(run) / ckpt.LAST
        resumed = int(ckpt.load_checkpoint(last)["epoch"]) if last.exists() else 0
    lines = ["dry run: nothing is trained or written", "",
             *start_lines(model_cfg, train_cfg, model=model, device=device, data=ds,
                          data_path=data_dir, run_dir=Path(run), resumed_epoch=resumed)]
    return "\n".join(lines)


def print_start(lines: list[str]) -> None:
    print("\n".join(lines), file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


class EpochPrinter:
    """One line per epoch with elapsed time and an estimate to the epoch budget.

    ``bars``: progress bars are on (lines go through ``tqdm.write`` so they do not break the
    bar); otherwise each line is a plain, flushed ``print`` (readable under ``nohup``). The rate
    is measured from the epochs of this process only, so a resumed run's estimate is honest.
    """

    def __init__(self, train_config: TrainConfig, *, bars: bool, start_epoch: int = 0):
        self.config, self.bars = train_config, bars
        self.start_epoch = start_epoch
        self.t0 = time.perf_counter()
        self.spent = 0.0  # training + validation seconds of this process's epochs

    def line(self, record: dict, *, elapsed: float | None = None) -> str:
        cfg = self.config
        key = f"val_{cfg.val_metric}"
        self.spent += record["seconds"]
        elapsed = time.perf_counter() - self.t0 if elapsed is None else elapsed
        done = record["epoch"] - self.start_epoch
        left = cfg.epochs - record["epoch"]
        eta = f", <= {_clock(left * self.spent / done)} to epoch {cfg.epochs}" if left and done \
            else ""
        return (f"epoch {record['epoch']:>4}/{cfg.epochs}  beta {record['beta']:.4g}  "
                f"loss {record['loss']:.3f} (nll {record['nll']:.3f}, kl {record['kl']:.3f})  "
                f"{cfg.val_metric} {record[key]:.5f}{' *' if record['best'] else '  '}  "
                f"{record['seconds']:.2f}s  elapsed {_clock(elapsed)}{eta}")

    def __call__(self, record: dict) -> None:
        text = self.line(record)
        if self.bars:
            from tqdm.auto import tqdm

            tqdm.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
