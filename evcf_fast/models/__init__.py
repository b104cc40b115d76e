"""Models of Kim & Suh, RecSys 2019 ("Enhancing VAEs for Collaborative Filtering: Flexible Priors &
Gating Mechanisms") and Liang et al., WWW 2018 (Mult-VAE, Mult-DAE).

Example::

    cfg = ModelConfig(model="hvamp", n_items=20108, num_layers=2, gated=True)
    model = build_model(cfg)
    loss, stats = model.loss(x, beta=0.3)   # x: raw rows, dense (B, D), torch sparse CSR,
                                            # or SparseRows.from_csr(crow, col, values, n_cols=D)
    scores = model.scores(x)                # (B, D) in evaluation semantics
"""

from __future__ import annotations

import importlib

# ModelConfig is light (no torch): the CLI builds its --help from MODEL_NAMES without torch.
from .config import MODEL_NAMES, ModelConfig

# public name -> module; imported on first use so that ``import evcf_fast.models`` (and the CLI)
# does not load torch until a model is really built
_LAZY = {
    "BaseModel": "base",
    "EASE": "baselines",
    "ItemKNN": "baselines",
    "Popularity": "baselines",
    "VampPriorModel": "base",
    "HVampVAE": "hvamp",
    "HVamp1VAE": "hvamp1",
    "SparseRows": "layers",
    "MultDAE": "multdae",
    "MultVAE": "multvae",
    "VampVAE": "vamp",
    "MODELS": "registry",
    "build_model": "registry",
}

__all__ = ["EASE", "BaseModel", "HVamp1VAE", "HVampVAE", "ItemKNN", "MODELS", "MODEL_NAMES",
           "ModelConfig", "MultDAE", "MultVAE", "Popularity", "SparseRows", "VampPriorModel",
           "VampVAE", "build_model"]


def __getattr__(name: str):
    if name in _LAZY:
        try:
            module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        except ModuleNotFoundError as exc:
            if exc.name != "torch":
                raise
            raise ImportError(f"evcf_fast.models.{name} needs PyTorch, which is not installed: "
                              f"pip install 'evcf_fast[train]' (see the README for a CPU-only "
                              f"torch)") from None
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
