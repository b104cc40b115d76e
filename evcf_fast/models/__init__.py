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

from .base import BaseModel, VampPriorModel
from .config import MODEL_NAMES, ModelConfig
from .hvamp import HVampVAE
from .hvamp1 import HVamp1VAE
from .layers import SparseRows
from .multdae import MultDAE
from .multvae import MultVAE
from .vamp import VampVAE

MODELS: dict[str, type[BaseModel]] = {
    "multvae": MultVAE,
    "multdae": MultDAE,
    "vamp": VampVAE,
    "hvamp": HVampVAE,
    "hvamp1": HVamp1VAE,
}
assert set(MODELS) == set(MODEL_NAMES)  # internal invariant: registry and config agree


def build_model(cfg: ModelConfig) -> BaseModel:
    """Instantiate the model class that ``cfg.model`` names.

    Parameters
    ----------
    cfg : ModelConfig

    Returns
    -------
    BaseModel
        An ``nn.Module`` in training mode, float32 on the CPU (move it with ``.to``);
        ``model.cfg`` is ``cfg``.
    """
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg must be a ModelConfig, got {type(cfg).__name__}")
    return MODELS[cfg.model](cfg)


__all__ = ["BaseModel", "HVamp1VAE", "HVampVAE", "MODELS", "ModelConfig", "MultDAE", "MultVAE",
           "SparseRows", "VampPriorModel", "VampVAE", "build_model"]
