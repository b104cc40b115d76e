"""The run folder: what a run writes, and how a run is resumed from it.

A run directory holds

* ``config.json``: the model and train configs (plain dicts), the dataset fingerprint and the
  dataset directory (``"data"``, None for an in-memory dataset);
* ``log.jsonl`` / ``log.csv`` (and ``tensorboard/``): one record per epoch, appended
  (:mod:`evcf_fast.train.logs`);
* ``last.pt`` / ``best.pt``: the checkpoints (:mod:`evcf_fast.train.checkpoint`);
* ``test.json``: the best weights' test metrics and their epoch; ``test_per_user.parquet``: the
  per-user test values (for paired tests between runs).

Resuming continues ``last.pt`` exactly. It needs the same dataset (fingerprint), the same model
config and the same train config up to :data:`RESUMABLE_CHANGES`. :func:`resolve_configs` rebuilds
a run's configs from ``config.json`` for ``evcf train --resume``. Every file is written atomically,
so a killed process leaves the previous version in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from pathlib import Path

from .._io import MARKER, atomic_file, check_output, describe_path, read_json, written_by_us
from ..errors import IncompatibleDatasetError, RunFolderBusyError
from . import checkpoint as ckpt
from .config import TrainConfig
from .evaluation import resolve_device

CONFIG = "config.json"
LOG = "log.jsonl"
TEST = "test.json"
TEST_PER_USER = "test_per_user.parquet"

# TrainConfig fields that may change when a run is resumed: they do not change the trajectory,
# except flush_denormal, which changes only values below 1.2e-38 (so that a run started before
# the field existed resumes, with it on)
RESUMABLE_CHANGES = ("epochs", "eval_batch_size", "test_metrics", "checkpoint_every", "patience",
                     "max_steps", "flush_denormal")


# -- reading a run folder --------------------------------------------------------------------------

def run_data_dir(run, data=None) -> str:
    """The dataset directory of a run: ``data`` when given, else the one in its config.json."""
    if data is not None:
        return str(data)
    cfg_path = Path(run) / CONFIG
    if not cfg_path.exists():
        raise FileNotFoundError(f"{str(cfg_path)!r} not found; is {str(run)!r} a run directory "
                                f"written by `evcf train`? (or pass --data DIR)")
    stored = read_json(cfg_path, what="run config").get("data")
    if not stored:
        raise ValueError(f"{cfg_path} records no dataset directory; pass --data DIR")
    return stored


def stored_configs(run) -> tuple[dict, dict] | None:
    """The ``(model_config, train_config)`` plain dicts of a run's config.json; None without one.

    Rebuild them with ``ModelConfig.from_dict`` and ``TrainConfig.from_dict``.
    """
    path = Path(run) / CONFIG
    if not path.exists():
        return None
    stored = read_json(path, what="run config")
    for key in ("model_config", "train_config"):
        if not isinstance(stored.get(key), dict):
            raise ValueError(f"run config {str(path)!r} has no {key!r} object; the file is "
                             f"damaged (it is written by `evcf train`)")
    return stored["model_config"], stored["train_config"]


def resolve_configs(run, *, data=None, preset: str | None = None, overrides: dict | None = None,
                    resume: bool = False):
    """The dataset directory and configs of a training run (what ``evcf train`` passes to fit).

    A new run (or a resumed one given a ``preset``) builds its configs from the preset and
    ``overrides`` for the dataset's item count. A resumed run continues with the configs in its
    config.json, with ``overrides`` on top (for example more epochs), and reads its dataset
    directory from there when ``data`` is None.

    Parameters
    ----------
    run : str or Path
        The run directory.
    data : str or Path, optional
        The prepared split directory; optional when resuming a run that records one.
    preset : str, optional
        A name from :data:`evcf_fast.train.presets.PRESETS`.
    overrides : dict, optional
        ModelConfig/TrainConfig field values (routed by ``presets.split_overrides``).
    resume : bool
        Whether the run is resumed.

    Returns
    -------
    (str, ModelConfig, TrainConfig)
    """
    from ..data.dataset import SplitDataset
    from ..models import ModelConfig
    from .presets import resolve, split_overrides

    stored = stored_configs(run) if resume else None
    if data is None and stored is None:
        raise ValueError("--data DIR is required (a split prepared by `evcf prepare`)"
                         + ("; no run to resume in " + str(run) if resume else ""))
    data_dir = run_data_dir(run, data)
    ds = SplitDataset.load(data_dir)
    if stored is not None and preset is None:
        # continue with the run's own configs; explicit overrides still apply (e.g. more epochs)
        model_over, train_over = split_overrides(dict(overrides or {}))
        model_cfg = dataclasses.replace(ModelConfig.from_dict(stored[0]), **model_over)
        train_cfg = dataclasses.replace(TrainConfig.from_dict(stored[1]), **train_over)
        return data_dir, model_cfg, train_cfg
    model_cfg, train_cfg = resolve(n_items=ds.n_items, preset=preset, overrides=overrides)
    return data_dir, model_cfg, train_cfg


# -- one writer per run folder ------------------------------------------------------------------

LOCK = ".lock"


@contextlib.contextmanager
def run_folder_lock(run_dir: Path | None):
    """Hold ``run_dir``'s lock while a run writes it: a second ``evcf train`` (or a sweep trial)
    on the same folder is refused instead of both interleaving their checkpoints and logs.

    The lock is ``fcntl.flock`` on ``RUN/.lock``, which the kernel releases when its process
    ends in any way (kill -9 included), so there is never a stale lock to clear by hand; the
    file holds the holder's PID and host for the message. Where ``fcntl`` is missing (Windows)
    no lock is taken. ``None`` (a run without a folder) locks nothing.

    Raises
    ------
    RunFolderBusyError
        Another process holds the lock.
    """
    if run_dir is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    run_dir = Path(run_dir)
    check_run_dir(run_dir)   # the lock file goes only into a new, empty or run folder
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    acquired = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            acquired = True
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            who = (f"process {holder[0]} on {holder[1]}" if len(holder) >= 2
                   else "another process")
            raise RunFolderBusyError(
                f"run directory {str(run_dir)!r} is being written by {who} (it holds "
                f"{str(run_dir / LOCK)!r}); wait for that run to end or stop it, then resume "
                f"with --resume") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)   # closing releases the lock
        # a run that failed before writing anything leaves no trace: the lock file goes, and
        # the folder if this call made it (a folder with a run in it keeps its lock file, so
        # that a process waiting on it never locks a file that is being removed)
        with contextlib.suppress(OSError):
            if acquired and os.listdir(run_dir) == [LOCK]:
                os.unlink(run_dir / LOCK)
                if created:
                    os.rmdir(run_dir)


# -- resuming ------------------------------------------------------------------------------------

def check_resume_configs(saved: dict, *, model_config, train_config: TrainConfig, path) -> None:
    """A resumed run must use the checkpoint's model config and trajectory-relevant settings.

    Raises
    ------
    IncompatibleDatasetError
        Another model or item count, or a changed model/train field other than
        :data:`RESUMABLE_CHANGES`.
    """
    old_m, new_m = saved["model_config"], model_config.to_dict()
    if old_m.get("model") != new_m.get("model") or old_m.get("n_items") != new_m.get("n_items"):
        raise IncompatibleDatasetError(
            f"{path}: checkpoint is for model {old_m.get('model')!r} with "
            f"n_items={old_m.get('n_items')}, got model {new_m.get('model')!r} with "
            f"n_items={new_m.get('n_items')}")
    diff = sorted(k for k in set(old_m) | set(new_m) if old_m.get(k) != new_m.get(k))
    if diff:
        raise IncompatibleDatasetError(f"{path}: model config differs from the checkpoint in "
                                       f"{diff}; resume with the same model settings")
    old_t, new_t = saved["train_config"], train_config.to_dict()
    diff = sorted(k for k in set(old_t) | set(new_t)
                  if old_t.get(k) != new_t.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
        raise IncompatibleDatasetError(
            f"{path}: train config differs from the checkpoint in {diff}; only "
            f"{list(RESUMABLE_CHANGES)} may change when resuming")


def open_run(run_dir: Path | None, data, *, model_config, train_config: TrainConfig,
             resume: bool) -> dict | None:
    """Check the run directory before training; return the checked last.pt payload to resume.

    Returns
    -------
    dict or None
        The ``last.pt`` payload (on the run's device) when ``resume``, else None.

    Raises
    ------
    ValueError
        ``resume`` without a run directory.
    FileNotFoundError, FileExistsError
        ``resume`` without a last.pt; a new run in a directory that already holds one.
    IncompatibleDatasetError
        The checkpoint is for another dataset, model or trajectory (:func:`check_resume_configs`).
    """
    if not resume:
        if run_dir is not None and (run_dir / ckpt.LAST).exists():
            raise FileExistsError(f"run directory {str(run_dir)!r} already holds a checkpoint; "
                                  f"add --resume to continue it (resume=True in fit) or choose "
                                  f"another --out")
        if run_dir is not None:
            check_run_dir(run_dir)
        return None
    if run_dir is None:
        raise ValueError("--resume needs the run directory --out (fit: resume=True needs out)")
    last_path = run_dir / ckpt.LAST
    if not last_path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint {str(last_path)!r} to continue; "
                                f"start a new run without --resume")
    saved = ckpt.load_checkpoint(last_path, map_location=resolve_device(train_config.device),
                                 required=ckpt.LAST_KEYS)
    ckpt.check_fingerprint(saved["dataset"], ckpt.dataset_fingerprint(data), path=last_path)
    check_resume_configs(saved, model_config=model_config, train_config=train_config,
                         path=last_path)
    return saved


def check_run_dir(run_dir: Path) -> None:
    """A new run may write into a missing or empty folder, or a run folder of ours; check first.

    Raises
    ------
    FileExistsError
        ``run_dir`` holds files that evcf_fast did not write (they could be overwritten).
    NotADirectoryError, PermissionError
        ``run_dir`` is a file, or cannot be created or written.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise NotADirectoryError(f"--out {str(run_dir)!r} is a file, expected a run directory")
    if run_dir.is_dir():
        if (any(p.name != LOCK for p in run_dir.iterdir())
                and written_by_us(run_dir) != "run"):
            raise FileExistsError(
                f"refusing to write a run into --out {str(run_dir)!r}: expected a new or empty "
                f"folder or a run folder of evcf_fast, found {describe_path(run_dir)}; choose "
                f"another --out")
        if not os.access(run_dir, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write run directory {str(run_dir)!r}: not writable")
    else:
        check_output(run_dir, overwrite=False, what="--out")


def resumed_best_state(run_dir: Path, *, best_epoch: int, epoch: int, map_location) -> dict | None:
    """The best.pt weights a resumed run continues with; None before any best epoch.

    A best.pt from a later epoch than last.pt (killed between the two writes) is accepted: the
    deterministic replay of that epoch rewrites it identically.
    """
    if best_epoch <= 0:
        return None
    best = ckpt.load_checkpoint(run_dir / ckpt.BEST, map_location=map_location)
    if int(best["epoch"]) != best_epoch and int(best["epoch"]) <= epoch:
        raise IncompatibleDatasetError(
            f"{run_dir / ckpt.BEST}: holds epoch {best['epoch']} but {run_dir / ckpt.LAST} "
            f"records best epoch {best_epoch}")
    return best["model_state"]


# -- writing -------------------------------------------------------------------------------------

def write_config(run_dir: Path, configs: dict, *, data_path: str | None) -> None:
    """Create the run directory and write config.json (configs, fingerprint, dataset path)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / MARKER).exists():
        (run_dir / MARKER).write_text("run\n")
    with atomic_file(run_dir / CONFIG) as tmp:
        tmp.write_text(json.dumps({**configs, "data": data_path}, indent=2) + "\n")


def write_log(path, history: list) -> None:
    """The per-epoch history as JSON lines, rewritten atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in history))


def save_checkpoints(run_dir: Path, *, last: dict, best: dict | None,
                     history: list | None = None) -> None:
    """Write best.pt (when given), then last.pt, then (when ``history`` is given) log.jsonl.

    :func:`~evcf_fast.train.loop.fit` appends to the logs itself (:class:`~.logs.RunLog`).

    Best first: a kill between the two writes leaves a best.pt from the future, which the
    deterministic replay of that epoch rewrites identically (see :func:`resumed_best_state`).
    """
    if best is not None:
        ckpt.save_checkpoint(run_dir / ckpt.BEST, best)
    ckpt.save_checkpoint(run_dir / ckpt.LAST, last)
    if history is not None:
        write_log(run_dir / LOG, history)


def write_test(run_dir: Path, test, *, best_epoch: int, metric: str | None = None,
               best_metric: float | None = None, user_ids=None) -> None:
    """test.json (the best epoch, its validation metric and the EvaluationResult) and
    test_per_user.parquet (the per-user values, see :meth:`EvaluationResult.write_per_user`)."""
    head = {"best_epoch": best_epoch}
    if metric is not None:
        head.update(best_epoch_metric=f"validation {metric}", best_validation=best_metric)
    test.write_per_user(run_dir / TEST_PER_USER, user_ids=user_ids)
    with atomic_file(run_dir / TEST) as tmp:
        tmp.write_text(json.dumps({**head, **test.to_dict(),
                                   "per_user_file": TEST_PER_USER}, indent=2) + "\n")
