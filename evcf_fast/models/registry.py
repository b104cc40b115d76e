"""The model registry: model name -> class, and ``build_model``. Imports torch."""

from __future__ import annotations

from .base import BaseModel
from .baselines import EASE, ItemKNN, Popularity
from .config import MODEL_NAMES, ModelConfig
from .hvamp import HVampVAE
from .hvamp1 import HVamp1VAE
from .multdae import MultDAE
from .multvae import MultVAE
from .vamp import VampVAE

MODELS: dict[str, type[BaseModel]] = {
    "multvae": MultVAE,
    "multdae": MultDAE,
    "vamp": VampVAE,
    "hvamp": HVampVAE,
    "hvamp1": HVamp1VAE,
    "popularity": Popularity,
    "itemknn": ItemKNN,
    "ease": EASE,
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


