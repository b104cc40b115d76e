"""Checkpoints: atomic ``torch.save`` files loadable with ``torch.load(weights_only=True)``.

A run directory holds

* ``last.pt``: everything needed to continue a killed run exactly: model and optimizer state,
  the model and train configs (``dataclasses.asdict`` as plain dicts), epoch, global step,
  early-stopping state, the per-epoch history, every RNG state (torch CPU and CUDA, numpy,
  python, the batch-shuffle generator) as tensors, library versions and a dataset fingerprint;
* ``best.pt``: the weights with the best validation metric, its configs and fingerprint (what
  ``evcf evaluate --run`` and ``evcf recommend`` load);
* ``config.json``, ``log.jsonl``, ``test.json`` (written by :mod:`evcf_fast.train.run_folder`).

Configs are stored as plain dicts, RNG states as tensors, so nothing needs unpickling of arbitrary
classes (nanoGPT stores ``model_args`` the same way; STYLE.md 10.6).
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
from pathlib import Path

import numpy as np
import torch

from .._io import atomic_file
from ..errors import IncompatibleDatasetError

CHECKPOINT_FORMAT = "evcf_fast.checkpoint"
CHECKPOINT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"
#: What each kind of checkpoint must hold (key -> type); checked on load so that a damaged or
#: forged file is reported by name instead of failing later with a bare KeyError.
COMMON_KEYS = {"model_config": dict, "train_config": dict, "dataset": dict, "epoch": int,
               "model_state": dict}
LAST_KEYS = {**COMMON_KEYS, "step": int, "optimizer_state": dict, "early_stopping": dict,
             "history": list, "stopped": bool, "rng": dict}
BEST_KEYS = COMMON_KEYS
_SAVE_ADDED_META = ("format_version", "n_items", "matrices", "checksums")


def library_versions() -> dict:
    """Versions of the libraries that shape the numbers (recorded in every checkpoint)."""
    import scipy

    from .. import __version__

    # str(): torch.__version__ is a TorchVersion, which weights_only loading rejects
    return {"evcf_fast": str(__version__), "torch": str(torch.__version__),
            "numpy": str(np.__version__), "scipy": str(scipy.__version__),
            "python": platform.python_version(), "cuda": str(torch.version.cuda or "")}


def dataset_fingerprint(data) -> dict:
    """n_items, training nnz and users, and a hash of the dataset metadata.

    Parameters
    ----------
    data : SplitDataset-like
        Needs ``train`` (scipy CSR), ``n_items`` and ``meta`` (dict).
    """
    # keys that SplitDataset.save adds are left out, so a dataset hashes the same in memory and
    # after a save/load round trip
    meta = {k: v for k, v in (getattr(data, "meta", None) or {}).items()
            if k not in _SAVE_ADDED_META}
    meta = json.dumps(meta, sort_keys=True, default=str)
    return {"n_items": int(data.n_items), "n_train_users": int(data.train.shape[0]),
            "train_nnz": int(data.train.nnz),
            "meta_sha256": hashlib.sha256(meta.encode()).hexdigest()}


def check_fingerprint(saved: dict, current: dict, *, path) -> None:
    """Raise IncompatibleDatasetError when a checkpoint was written for other data."""
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, dataset {v!r}" for k, v in current.items()
             if saved.get(k) != v]
    if diffs:
        raise IncompatibleDatasetError(f"{path}: checkpoint was written for another dataset ("
                                       + "; ".join(diffs) + ")")


# -- RNG states ----------------------------------------------------------------------------------

def capture_rng(shuffle: torch.Generator) -> dict:
    """Every RNG state the training loop depends on, as tensors and plain scalars."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state = {
        "torch_cpu": torch.get_rng_state(),
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": int(py_version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss": py_gauss},
        "shuffle": shuffle.get_state(),
        "shuffle_device": str(shuffle.device),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state_all()
        # the generator this process draws from (a distributed rank's own GPU)
        state["torch_cuda_current"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict, shuffle: torch.Generator) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch_cpu"])
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
        if "torch_cuda_current" in state:
            torch.cuda.set_rng_state(state["torch_cuda_current"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss"]))
    if torch.device(state["shuffle_device"]).type != shuffle.device.type:
        raise IncompatibleDatasetError(
            f"checkpoint's batch-shuffle generator lives on {state['shuffle_device']}, this run "
            f"uses {shuffle.device}; resume on the same device type to continue exactly")
    shuffle.set_state(state["shuffle"])


# -- save / load ---------------------------------------------------------------------------------

def save_checkpoint(path, payload: dict) -> None:
    """Write ``payload`` atomically (a killed process leaves the previous file intact)."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
               "versions": library_versions(), **payload}
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path, *, map_location="cpu", required: dict | None = None) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IncompatibleDatasetError
        If the file is not an evcf_fast checkpoint, has another format version, or lacks one of
        the ``required`` keys (key -> type; default :data:`COMMON_KEYS`) or has it with
        another type.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file or foreign pickle: say which file and why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise IncompatibleDatasetError(f"{path}: not a loadable evcf_fast checkpoint ({first})") \
            from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise IncompatibleDatasetError(f"{path}: not an evcf_fast checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise IncompatibleDatasetError(
            f"{path}: checkpoint format version {payload.get('version')!r}, expected "
            f"{CHECKPOINT_VERSION}; retrain with this evcf_fast version")
    required = COMMON_KEYS if required is None else required
    missing = sorted(k for k in required if k not in payload)
    wrong = sorted(f"{k} ({type(payload[k]).__name__}, expected {t.__name__})"
                   for k, t in required.items() if k in payload
                   and not (isinstance(payload[k], t) and not (t is int and
                                                               isinstance(payload[k], bool))))
    if missing or wrong:
        raise IncompatibleDatasetError(
            f"{path}: damaged checkpoint: " + "; ".join(
                ([f"missing {missing}"] if missing else []) +
                ([f"wrong types: {', '.join(wrong)}"] if wrong else []))
            + "; resume from another copy or start a new run")
    return payload


def model_config_from_dict(d: dict):
    """Rebuild a ``ModelConfig`` from its stored plain dict (``ModelConfig.from_dict``)."""
    from ..models import ModelConfig

    return ModelConfig.from_dict(d)


def load_model(run, *, device="cpu", which: str = BEST):
    """Rebuild the model stored in a run directory (or a checkpoint file) in eval mode.

    Parameters
    ----------
    run : str or Path
        Run directory (``best.pt`` is read by default) or a checkpoint file.
    device : str or torch.device
    which : str
        File name inside the run directory ("best.pt" or "last.pt").

    Returns
    -------
    (torch.nn.Module, dict)
        The model and the checkpoint payload (without the weights).
    """
    from ..models import build_model

    path = Path(run)
    if path.is_dir():
        path = path / which
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint {str(path)!r}; is this a run directory written "
                                f"by `evcf train`?")
    payload = load_checkpoint(path, map_location=device)
    model = build_model(model_config_from_dict(payload["model_config"])).to(device)
    model.load_state_dict(payload.pop("model_state"))
    model.eval()
    payload.pop("optimizer_state", None)
    return model, payload
