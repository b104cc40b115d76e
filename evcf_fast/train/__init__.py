"""Training: EVCF's loop on device-resident sparse data (PAPER_SPEC section 3).

``fit(data, model_config=..., train_config=...)`` trains, early-stops on validation NDCG@100 and
evaluates the best checkpoint on the test users; ``TrainConfig`` holds the training settings and
:mod:`evcf_fast.train.presets` the authors' and Liang et al.'s recipes. Heavy modules are imported
lazily so that ``import evcf_fast.train`` stays cheap.

Modules: ``loop`` (Trainer and fit), ``evaluation`` (scoring a held-out part), ``run_folder`` (the
run directory, resume checks, configs from config.json), ``checkpoint`` (atomic .pt files, RNG
states), ``batches`` (device-resident CSR), ``config``, ``optim``, ``schedules``, ``presets``,
``inference`` (top-k from a trained run), ``plot``, ``zoo`` (``fit`` for every model: the
closed-form baselines' own short path, the loop for the rest), ``distributed`` (ranks of a
torch.distributed run: sharded batches, gradient all-reduce, gathered evaluation) and ``launch``
(joining the process group, the torchrun launcher).
"""

from __future__ import annotations

import importlib

from .config import TrainConfig

_LAZY = {
    "fit": "evcf_fast.train.zoo",
    "FitResult": "evcf_fast.train.loop",
    "Trainer": "evcf_fast.train.loop",
    "AdamNormGrad": "evcf_fast.train.optim",
    "PRESETS": "evcf_fast.train.presets",
    "load_model": "evcf_fast.train.checkpoint",
}

__all__ = ["TrainConfig", *sorted(_LAZY)]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'evcf_fast.train' has no attribute {name!r}")


def __dir__():
    return __all__
