"""Mult-DAE (Liang et al., WWW 2018, dawenl/vae_cf; PAPER_SPEC 2.4).

[D -> H x (L - 1) -> latent -> H x (L - 1) -> D]: every layer but the last is tanh (GLU when
gated), dropout on the L2-normalised input, multinomial likelihood by default, no KL. The
weight penalty ``dae_l2 * sum ||W||_F^2`` over the weight matrices (Liang: lam = 0.01 / batch,
times 2 to undo TensorFlow's l2_loss 1/2) is added to the loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import BaseModel
from .config import ModelConfig
from .layers import Dense, Rows, dropout_rows, normalize_rows, stack


class MultDAE(BaseModel):
    """Mult-DAE; with the defaults and ``latent_size=200`` it is Liang's [D - 200 - D]."""

    model_name = "multdae"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        act = "glu" if cfg.gated else "tanh"
        H, L = cfg.hidden_size, cfg.num_layers
        widths = [H] * (L - 1) + [cfg.latent_size] + [H] * (L - 1)
        self.encoder_in = Dense(cfg.n_items, widths[0], activation=act, init=cfg.init)
        self.hidden = stack(widths, activation=act, init=cfg.init)
        self.decoder_out = Dense(widths[-1], cfg.n_items, activation=None, init=cfg.init)

    def _forward(self, x: Rows, *, training: bool):
        x = dropout_rows(normalize_rows(x), self.cfg.dropout, training=training)
        return self.decoder_out(self.hidden(self.encoder_in(x))), None

    def _kl(self, latents, *, training: bool) -> Tensor:
        return torch.zeros((), device=self.decoder_out.bias.device,
                           dtype=self.decoder_out.bias.dtype)

    def _penalty(self) -> Tensor | None:
        if self.cfg.dae_l2 == 0:
            return None
        weights = [m.weight for m in self.modules() if isinstance(m, Dense)]
        return self.cfg.dae_l2 * sum(w.pow(2).sum() for w in weights)


__all__ = ["MultDAE"]
