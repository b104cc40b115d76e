"""The training loop: EVCF's procedure (PAPER_SPEC section 3) on device-resident sparse data.

Per epoch: shuffle the training users on the device, one optimizer step per mini-batch with the
KL weight of the configured schedule, then NDCG@100 on the validation users (eval mode, fold-in
rows as input, fold-in items excluded) through the metric engine's torch path, and the authors'
early-stopping rule (:mod:`evcf_fast.train.schedules`). The best checkpoint is evaluated once on
the test users (NDCG@100/20/10, Recall@50/20/10/5/1, means and standard errors) [EVCF
utils/perform_experiment.py].

Differences from the authors' loop, all deliberate: the per-step losses stay on the device and are
read back once per epoch (a NaN/inf loss raises :class:`~evcf_fast.errors.NonFiniteLossError` at
the end of that epoch, before anything is written, so the last good checkpoint survives); the
validation loss is not computed (it is a diagnostic only in the authors' code); a run can be
resumed exactly from its last checkpoint.

Scoring a held-out part lives in :mod:`evcf_fast.train.evaluation`, the run directory and the
resume checks in :mod:`evcf_fast.train.run_folder`; :func:`fit` reads top to bottom: data, run
folder, trainer, epochs with their checkpoints, test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._progress import progress as progress_bar
from ..errors import IncompatibleDatasetError, NonFiniteLossError
from . import checkpoint as ckpt
from . import distributed, logs, report, run_folder
from .config import TrainConfig
from .evaluation import check_cutoffs, check_parts, resolve_device
from .optim import make_optimizer
from .schedules import EarlyStopping, beta_epoch, beta_step, early_stopping_update


@contextlib.contextmanager
def _matmul_precision(tf32: bool):
    """TF32 matmuls for the block, restoring the previous global setting afterwards."""
    if not tf32:
        yield
        return
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's and python's global generators, as the authors do."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


@contextlib.contextmanager
def flushed_denormals(enabled: bool):
    """Run the block with denormal floats flushed to zero (``torch.set_flush_denormal``) and
    leave the flag off afterwards (torch has no getter for it, so "off" is what it is left at).

    Why: a VampPrior's log-sum-exp over its components and the gates of a gated layer produce
    denormal floats, which x86 CPUs process many times slower; more of them appear as an
    H+Vamp (Gated) run trains, and on ml-1m a step took 1.7x (H+Vamp) to 2.4x (Vamp) as long
    with them as without them. Flushing changes only values below 1.2e-38 (float32). Only the
    training steps run inside, so validation scores are the ones ``evcf evaluate --run`` gets.
    """
    if not enabled or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


class Trainer:
    """Model, optimizer, device data and loop state of one run (``fit`` drives it).

    Parameters
    ----------
    model_config : ModelConfig
    train_config : TrainConfig
    data : SplitDataset-like
        ``train`` (scipy CSR), ``part("validation")``, ``n_items``, ``meta``.
    progress : bool
        Show a progress bar per epoch and a summary line per epoch on stderr.
    dist : LocalContext or DistContext, optional
        The ranks this run is spread over (:mod:`evcf_fast.train.distributed`); default: one
        process.
    """

    def __init__(self, model_config, train_config: TrainConfig, data, *, progress: bool = True,
                 dist=None):
        from .._jit import start_numba_threads
        from ..models import build_model

        start_numba_threads()  # before any kernel: it would otherwise change torch's threads
        cfg = train_config
        if model_config.is_closed_form:
            raise ValueError(f"model {model_config.model!r} is fitted in closed form, not by this "
                             f"loop; use evcf_fast.train.fit (evcf_fast.train.zoo)")
        if model_config.n_items != data.n_items:
            raise IncompatibleDatasetError(f"model has n_items={model_config.n_items} but the "
                                           f"dataset has {data.n_items} items")
        self.device = resolve_device(cfg.device)
        if self.device.type != "cuda":
            for flag in ("bf16", "tf32"):
                if getattr(cfg, flag):
                    raise ValueError(f"{flag} needs a CUDA device, got device="
                                     f"'{self.device.type}'; drop --{flag} on the CPU")
        check_cutoffs((cfg.val_metric, *cfg.test_metrics), data.n_items)
        n_train = int(data.train.shape[0])
        if cfg.batch_size > n_train:
            raise ValueError(f"batch_size={cfg.batch_size} is larger than the number of training "
                             f"users ({n_train}); choose --batch-size <= {n_train}")
        self.dist = dist if dist is not None else distributed.LocalContext()
        self.model_config, self.config, self.show = model_config, cfg, progress
        self.fingerprint = ckpt.dataset_fingerprint(data)
        self.dist.check_setup(data, configs=self.configs(), train_config=cfg)
        seed_everything(cfg.seed)
        self.model = build_model(model_config).to(self.device)
        self.dist.sync_parameters(self.model)
        self.optimizer = make_optimizer(cfg.optimizer, self.model, lr=cfg.lr,
                                        weight_decay=cfg.weight_decay, device=self.device,
                                        fused=cfg.fused)
        self.shuffle = torch.Generator(device=self.device)
        self.shuffle.manual_seed(cfg.seed)
        self.train_rows = self.dist.train_rows(data.train, self.device)
        self.val = self.dist.eval_part(*data.part("validation"), self.device,
                                       batch_size=cfg.eval_batch_size)
        self.epoch = 0        # epochs completed
        self.step = 0         # optimizer updates made
        self.stopping = EarlyStopping()
        self.history: list[dict] = []
        self.best_state: dict | None = None
        self.stopped = False

    # -- one epoch -----------------------------------------------------------------------------

    def beta(self, epoch: int, step: int) -> float:
        cfg = self.config
        if cfg.beta_schedule == "epoch":
            return beta_epoch(epoch, max_beta=cfg.max_beta, warmup=cfg.warmup)
        return beta_step(step, anneal_cap=cfg.anneal_cap,
                         total_anneal_steps=cfg.total_anneal_steps)

    def train_epoch(self) -> dict:
        """Run one epoch of updates; return its mean loss/nll/kl, last beta and step count.

        Raises
        ------
        NonFiniteLossError
            If any step's loss was NaN or infinite (checked once, at the end of the epoch).
        """
        cfg, model, opt = self.config, self.model, self.optimizer
        epoch = self.epoch + 1
        model.train()
        dist = self.dist
        batches = dist.epoch_batches(self.train_rows, batch_size=cfg.batch_size,
                                     generator=self.shuffle)
        # per-step (loss, nll, kl) kept on the device: no host round trip per step; a rank
        # records its share of the batch mean (weight n_rank / n_batch), summed over the ranks
        trace = torch.empty((len(batches), 3), dtype=torch.float64, device=self.device)
        autocast = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16,
                                  enabled=cfg.bf16)
        beta = 0.0
        bar = progress_bar(batches, total=len(batches), desc=f"epoch {epoch}/{cfg.epochs}",
                           unit="batch", enabled=self.show)
        first_step = self.step
        n_steps = len(batches)
        with flushed_denormals(cfg.flush_denormal and self.device.type == "cpu"):
            for i, (x, share) in enumerate(bar):
                if cfg.max_steps is not None and self.step >= cfg.max_steps:
                    n_steps = i   # the step cap ends this epoch early (every rank at one step)
                    break
                beta = self.beta(epoch, self.step)
                with autocast, dist.noise(share):
                    loss, stats = model.loss(x.to_dense() if cfg.input == "dense" else x,
                                             beta=beta)
                opt.zero_grad(set_to_none=True)
                (loss if share.weight == 1.0 else loss * share.weight).backward()
                dist.reduce_gradients(model)
                opt.step()
                trace[i, 0] = loss.detach() * share.weight
                trace[i, 1] = stats["nll"] * share.weight
                trace[i, 2] = stats["kl"] * share.weight
                self.step += 1
        values = dist.all_sum(trace[:n_steps])
        finite = torch.isfinite(values).all(dim=1)
        means = values.mean(dim=0).tolist()  # the epoch's synchronisation point
        if not all(math.isfinite(v) for v in means):
            bad_rows = (~finite).nonzero()
            bad = int(bad_rows[0, 0]) if bad_rows.numel() else n_steps - 1
            raise NonFiniteLossError(
                f"non-finite training loss at epoch {epoch}, step {first_step + bad + 1} "
                f"(batch {bad + 1} of {len(batches)}: loss={values[bad, 0].item()}, "
                f"nll={values[bad, 1].item()}, kl={values[bad, 2].item()}); try a lower lr")
        return {"beta": beta, "loss": means[0], "nll": means[1], "kl": means[2],
                "steps": n_steps}

    def validate(self) -> float:
        """Validation metric (``config.val_metric``) of the current weights."""
        metric = self.config.val_metric
        res = self.dist.evaluate(self.model, self.val, metrics=(metric,),
                                 batch_size=self.config.eval_batch_size,
                                 dense=self.config.input == "dense")
        return float(res.mean[metric])

    def run_epoch(self) -> dict:
        """Train one epoch, validate, apply early stopping; return the epoch's log record."""
        t0 = time.perf_counter()
        rec = self.train_epoch()
        t1 = time.perf_counter()
        metric = self.validate()
        t2 = time.perf_counter()
        self.epoch += 1
        cfg = self.config
        self.stopping, improved, stop = early_stopping_update(
            self.stopping, epoch=self.epoch, metric=metric, warmup=cfg.warmup,
            patience=cfg.patience)
        if improved:
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.stopped = stop
        record = {"epoch": self.epoch, "step": self.step, "beta": rec["beta"],
                  "loss": rec["loss"], "nll": rec["nll"], "kl": rec["kl"],
                  f"val_{cfg.val_metric}": metric, "best": improved,
                  "best_epoch": self.stopping.best_epoch, "bad_epochs": self.stopping.bad_epochs,
                  "train_seconds": t1 - t0, "val_seconds": t2 - t1, "seconds": t2 - t0}
        self.history.append(record)
        return record

    # -- checkpoints ---------------------------------------------------------------------------

    def configs(self) -> dict:
        """The configs and dataset fingerprint every checkpoint and config.json record."""
        return {"model_config": self.model_config.to_dict(),
                "train_config": self.config.to_dict(), "dataset": self.fingerprint}

    def last_payload(self) -> dict:
        return {**self.configs(), "kind": "last", "epoch": self.epoch, "step": self.step,
                "model_state": self.model.state_dict(),
                "optimizer_state": self.optimizer.state_dict(),
                "early_stopping": dataclasses.asdict(self.stopping),
                "history": self.history, "stopped": self.stopped,
                "rng": ckpt.capture_rng(self.shuffle)}

    def best_payload(self) -> dict:
        return {**self.configs(), "kind": "best", "epoch": self.stopping.best_epoch,
                "metric": {self.config.val_metric: self.stopping.best},
                "model_state": self.best_state}

    def load_last(self, payload: dict) -> None:
        """Restore the state saved by :meth:`last_payload` (configs already checked)."""
        self.model.load_state_dict(payload["model_state"])
        self.optimizer.load_state_dict(payload["optimizer_state"])
        self.epoch, self.step = int(payload["epoch"]), int(payload["step"])
        self.stopping = EarlyStopping(**payload["early_stopping"])
        self.history = list(payload["history"])
        self.stopped = bool(payload["stopped"])
        ckpt.restore_rng(payload["rng"], self.shuffle)


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns.

    ``model`` holds the best validation weights (eval mode); ``test`` is their EvaluationResult on
    the test users, None when ``evaluate_test`` was false.
    """

    model: torch.nn.Module
    history: list
    best_epoch: int
    best_metric: float
    epochs_run: int
    stopped_early: bool
    test: object
    run_dir: Path | None

    def summary(self) -> str:
        first = self.history[0] if self.history else {}
        metric = next((k[4:] for k in first if k.startswith("val_")), "metric")
        lines = [f"epochs run: {self.epochs_run}" + (" (early stop)" if self.stopped_early else ""),
                 f"best epoch: {self.best_epoch} (by validation {metric}: "
                 f"{self.best_metric:.5f})"]
        if self.test is not None:
            lines += [f"test users, best epoch's weights ({self.test.n_users} users):",
                      self.test.table()]
        return "\n".join(lines)


def fit(data, *, model_config, train_config: TrainConfig, out=None, resume: bool = False,
        progress: bool = True, evaluate_test: bool = True, on_epoch=None,
        epoch_lines: bool | None = None, dist=None) -> FitResult:
    """Train a model with EVCF's procedure and evaluate its best checkpoint on the test users.

    Parameters
    ----------
    data : SplitDataset, str or Path
        The strong-generalization split (a path is loaded with ``SplitDataset.load``).
    model_config : ModelConfig
        Its ``n_items`` must equal the dataset's.
    train_config : TrainConfig
    out : str or Path, optional
        Run directory for ``config.json``, ``log.jsonl``, ``last.pt``, ``best.pt``, ``test.json``;
        None trains in memory only.
    resume : bool
        Continue the run in ``out`` from ``last.pt`` exactly (same weights, log and RNG streams as
        an uninterrupted run). Only
        :data:`~evcf_fast.train.run_folder.RESUMABLE_CHANGES` of the train config may differ.
    progress : bool
        The start summary (configuration, model, device, data, run folder), a progress bar per
        epoch when stderr is a terminal, and a one-line summary per epoch (stderr).
    epoch_lines : bool, optional
        The per-epoch lines alone (plain lines when stderr is not a terminal); default:
        ``progress``. ``evcf train --quiet`` keeps them.
    evaluate_test : bool
        Evaluate the best weights on the test part at the end.
    on_epoch : callable, optional
        Called with each epoch's log record after its checkpoint is written.
    dist : LocalContext or DistContext, optional
        The ranks of a distributed run (:mod:`evcf_fast.train.distributed`: batch, noise and
        evaluation semantics); None: the initialised default process group when there is one
        (under torchrun), else one process. Rank 0 writes the run folder and shows progress.

    Returns
    -------
    FitResult

    Raises
    ------
    NonFiniteLossError
        A NaN/inf training loss; the files in ``out`` still hold the last good epoch.
    IncompatibleDatasetError
        ``resume`` with a checkpoint for another model, item count, dataset or trajectory.
    FileExistsError, FileNotFoundError
        ``out`` already holds a run (without ``resume``), or has none to resume.
    """
    dist = distributed.current(dist)
    data, data_path = dist.agree(_as_dataset, data)
    check_parts(data, evaluate_test=evaluate_test)
    run_dir = Path(out) if out is not None else None
    with contextlib.ExitStack() as held:
        # one writer per run folder: rank 0 holds its lock from before the checkpoint is read
        # until the last file is written
        dist.agree(_hold_lock, held, run_dir if dist.is_main else None)
        return _fit_locked(data, data_path, run_dir, dist=dist, model_config=model_config,
                           train_config=train_config, resume=resume, progress=progress,
                           evaluate_test=evaluate_test, on_epoch=on_epoch,
                           epoch_lines=epoch_lines)


def _hold_lock(held: contextlib.ExitStack, run_dir: Path | None) -> None:
    held.enter_context(run_folder.run_folder_lock(run_dir))


def _fit_locked(data, data_path, run_dir, *, dist, model_config, train_config, resume,
                progress, evaluate_test, on_epoch, epoch_lines) -> FitResult:
    """:func:`fit` once the run folder's lock is held."""
    saved = dist.agree(run_folder.open_run, run_dir, data, model_config=model_config,
                       train_config=train_config, resume=resume)
    cfg = train_config
    progress = progress and dist.is_main  # one rank speaks for the group
    trainer = Trainer(model_config, cfg, data, progress=progress and report.stderr_is_terminal(),
                      dist=dist)
    writes = run_dir is not None and dist.is_main
    with _matmul_precision(cfg.tf32):
        if saved is not None:
            trainer.load_last(saved)
            trainer.best_state = run_folder.resumed_best_state(
                run_dir, best_epoch=trainer.stopping.best_epoch, epoch=trainer.epoch,
                map_location=trainer.device)
            # a longer budget or patience can revive a run that had stopped
            trainer.stopped = trainer.stopped and _would_stop(trainer)
            del saved
        if progress:
            report.print_start(report.start_lines(
                model_config, cfg, model=trainer.model, device=trainer.device, data=data,
                data_path=data_path, run_dir=run_dir,
                resumed_epoch=trainer.epoch if resume else None))
        run_log = None
        if writes:
            run_folder.write_config(run_dir, trainer.configs(), data_path=data_path)
            run_log = logs.RunLog(run_dir, trainer.history)
        print_epoch = report.EpochPrinter(cfg, bars=trainer.show, start_epoch=trainer.epoch)

        best_dirty = False
        while trainer.epoch < cfg.epochs and not trainer.stopped and not _capped(trainer):
            record = trainer.run_epoch()
            best_dirty |= record["best"]
            if dist.is_main and (progress if epoch_lines is None else epoch_lines):
                print_epoch(record)
            last_epoch = trainer.epoch == cfg.epochs or trainer.stopped or _capped(trainer)
            if writes and (trainer.epoch % cfg.checkpoint_every == 0 or last_epoch):
                run_folder.save_checkpoints(run_dir, last=trainer.last_payload(),
                                            best=trainer.best_payload() if best_dirty else None)
                best_dirty = False
            if run_log is not None:
                run_log.append(record)
            if on_epoch is not None:
                on_epoch(record)
        if run_log is not None:
            run_log.close()

        model = trainer.model
        if trainer.best_state is not None:
            model.load_state_dict(trainer.best_state)
        model.eval()
        test = None
        if evaluate_test:
            part = dist.eval_part(*data.part("test"), trainer.device,
                                  batch_size=cfg.eval_batch_size)
            test = dist.evaluate(model, part, metrics=cfg.test_metrics,
                                 batch_size=cfg.eval_batch_size, dense=cfg.input == "dense")
            if writes:
                run_folder.write_test(run_dir, test, best_epoch=trainer.stopping.best_epoch,
                                      metric=cfg.val_metric, best_metric=trainer.stopping.best,
                                      user_ids=getattr(data, "test_user_ids", None))
    return FitResult(model=model, history=list(trainer.history),
                     best_epoch=trainer.stopping.best_epoch, best_metric=trainer.stopping.best,
                     epochs_run=trainer.epoch, stopped_early=trainer.stopped, test=test,
                     run_dir=run_dir)


def _as_dataset(data):
    """``(dataset, its resolved directory)``; a dataset object comes back with None."""
    if not isinstance(data, (str, Path)):
        return data, None
    from ..data.dataset import SplitDataset

    return SplitDataset.load(data), str(Path(data).resolve())


def _capped(trainer: Trainer) -> bool:
    return trainer.config.max_steps is not None and trainer.step >= trainer.config.max_steps


def _would_stop(trainer: Trainer) -> bool:
    patience = trainer.config.patience
    return patience is not None and trainer.stopping.bad_epochs > patience



