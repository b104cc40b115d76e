"""evcf_fast: sparse data, exact ranking metrics and VampPrior/GLU VAEs for collaborative filtering.

Public names are imported lazily so that ``import evcf_fast`` does not pull in torch or numba
until they are needed.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    # data (Polars ingestion, strong-generalization split, dataset on disk, synthetic data)
    "read_interactions": "evcf_fast.data.readers",
    "prepare": "evcf_fast.data.pipeline",
    "strong_generalization_split": "evcf_fast.data.split",
    "SplitDataset": "evcf_fast.data.dataset",
    "SplitConfig": "evcf_fast.data.config",
    "make_synthetic": "evcf_fast.data.synthetic",
    # metrics
    "evaluate": "evcf_fast.metrics",
    "EvaluationResult": "evcf_fast.metrics",
    "ComparisonReport": "evcf_fast.compare",
    # models
    "MultVAE": "evcf_fast.models",
    "MultDAE": "evcf_fast.models",
    "VampVAE": "evcf_fast.models",
    "HVampVAE": "evcf_fast.models",
    "HVamp1VAE": "evcf_fast.models",
    "ModelConfig": "evcf_fast.models",
    "build_model": "evcf_fast.models",
    # training
    "TrainConfig": "evcf_fast.train",
    "fit": "evcf_fast.train",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'evcf_fast' has no attribute {name!r}")


def __dir__():
    return __all__
