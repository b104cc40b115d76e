"""H+Vamp with one hidden layer (Kim & Suh, RecSys 2019, authors' models/HVamp_1layer.py;
PAPER_SPEC 2.8).

q(z2|x):      drop(x) -> Dense(D->H) -> heads z2
q(z1|x, z2):  Dense(D+z2 -> H) over [drop'(x), z2] -> heads z1   (one weight; the x part reads
              CSR batches directly, the z2 part is a dense GEMM)
p(z1|z2):     Dense(z2->H) -> heads z1
p(x|z1, z2):  Dense(z1+z2 -> H) over [z1, z2] -> affine H->D
p(z2):        VampPrior through q(z2|x). Needs ``num_layers == 1``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import HierarchicalVampModel
from .config import ModelConfig
from .layers import Dense, GaussianHead, Rows, dropout_rows, normalize_rows, reparameterize


class HVamp1VAE(HierarchicalVampModel):
    """Two stochastic layers, one hidden layer per network."""

    model_name = "hvamp1"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        act = "glu" if cfg.gated else "tanh"
        D, H = cfg.n_items, cfg.hidden_size
        z1, z2, clip, init = cfg.latent_size, cfg.latent2_size, cfg.logvar_clip, cfg.init
        self.q_z2_in = Dense(D, H, activation=act, init=init)
        self.q_z2 = GaussianHead(H, z2, logvar_clip=clip, init=init)
        self.q_z1_in = Dense(D + z2, H, activation=act, init=init, n_dense=z2)
        self.q_z1 = GaussianHead(H, z1, logvar_clip=clip, init=init)
        self.p_z1_in = Dense(z2, H, activation=act, init=init)
        self.p_z1 = GaussianHead(H, z1, logvar_clip=clip, init=init)
        self.p_x_in = Dense(z1 + z2, H, activation=act, init=init)
        self.decoder_out = Dense(H, D, activation=None, init=init)
        self._init_pseudoinputs()

    def _encode_top(self, x: Rows, *, training: bool) -> tuple[Tensor, Tensor]:
        return self.q_z2(self.q_z2_in(x))

    def _forward(self, x: Rows, *, training: bool):
        p = self.cfg.dropout
        xn = normalize_rows(x)
        z2_mu, z2_lv = self._encode_top(dropout_rows(xn, p, training=training), training=training)
        z2 = reparameterize(z2_mu, z2_lv, sample=training)
        z1_mu, z1_lv = self.q_z1(self.q_z1_in(dropout_rows(xn, p, training=training), z2))
        z1 = reparameterize(z1_mu, z1_lv, sample=training)
        pz1_mu, pz1_lv = self.p_z1(self.p_z1_in(z2))
        logits = self.decoder_out(self.p_x_in(torch.cat([z1, z2], 1)))
        return logits, (z1, z1_mu, z1_lv, z2, z2_mu, z2_lv, pz1_mu, pz1_lv)


__all__ = ["HVamp1VAE"]
