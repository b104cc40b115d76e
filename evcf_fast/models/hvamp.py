"""H+Vamp: the hierarchical VampPrior VAE (Kim & Suh, RecSys 2019, authors' models/HVamp.py;
PAPER_SPEC 2.7). Intended for L >= 2 hidden layers; L = 1 builds what the authors' file builds.

q(z2|x):      drop(x) -> Dense(D->H) -> (L-1) x Dense(H->H) -> heads z2
q(z1|x, z2):  [drop'(x) -> Dense(D->H) ; z2 -> Dense(z2->H)] -> Dense(2H->H) -> (L-2) x -> heads z1
p(z1|z2):     Dense(z2->H) -> (L-1) x Dense(H->H) -> heads z1
p(x|z1, z2):  [Dense(z1->H) ; Dense(z2->H)] -> Dense(2H->H) -> (L-2) x -> affine H->D
p(z2):        VampPrior through q(z2|x).
The two x branches draw independent dropout masks; both first layers read CSR batches directly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import HierarchicalVampModel
from .config import ModelConfig
from .layers import Dense, GaussianHead, Rows, dropout_rows, normalize_rows, reparameterize, stack


class HVampVAE(HierarchicalVampModel):
    """Two stochastic layers z1 (bottom) and z2 (top, VampPrior)."""

    model_name = "hvamp"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        act = "glu" if cfg.gated else "tanh"
        D, H, L = cfg.n_items, cfg.hidden_size, cfg.num_layers
        z1, z2, clip, init = cfg.latent_size, cfg.latent2_size, cfg.logvar_clip, cfg.init
        # q(z2 | x)
        self.q_z2_in = Dense(D, H, activation=act, init=init)
        self.q_z2_layers = stack([H] * L, activation=act, init=init)
        self.q_z2 = GaussianHead(H, z2, logvar_clip=clip, init=init)
        # q(z1 | x, z2)
        self.q_z1_x = Dense(D, H, activation=act, init=init)
        self.q_z1_z2 = Dense(z2, H, activation=act, init=init)
        self.q_z1_joint = stack([2 * H] + [H] * max(L - 1, 1), activation=act, init=init)
        self.q_z1 = GaussianHead(H, z1, logvar_clip=clip, init=init)
        # p(z1 | z2)
        self.p_z1_layers = stack([z2] + [H] * L, activation=act, init=init)
        self.p_z1 = GaussianHead(H, z1, logvar_clip=clip, init=init)
        # p(x | z1, z2)
        self.p_x_z1 = Dense(z1, H, activation=act, init=init)
        self.p_x_z2 = Dense(z2, H, activation=act, init=init)
        self.p_x_joint = stack([2 * H] + [H] * max(L - 1, 1), activation=act, init=init)
        self.decoder_out = Dense(H, D, activation=None, init=init)
        self._init_pseudoinputs()

    def _encode_top(self, x: Rows, *, training: bool) -> tuple[Tensor, Tensor]:
        return self.q_z2(self.q_z2_layers(self.q_z2_in(x)))

    def _forward(self, x: Rows, *, training: bool):
        p = self.cfg.dropout
        xn = normalize_rows(x)
        z2_mu, z2_lv = self._encode_top(dropout_rows(xn, p, training=training), training=training)
        z2 = reparameterize(z2_mu, z2_lv, sample=training)
        h = torch.cat([self.q_z1_x(dropout_rows(xn, p, training=training)), self.q_z1_z2(z2)], 1)
        z1_mu, z1_lv = self.q_z1(self.q_z1_joint(h))
        z1 = reparameterize(z1_mu, z1_lv, sample=training)
        pz1_mu, pz1_lv = self.p_z1(self.p_z1_layers(z2))
        h = torch.cat([self.p_x_z1(z1), self.p_x_z2(z2)], 1)
        logits = self.decoder_out(self.p_x_joint(h))
        return logits, (z1, z1_mu, z1_lv, z2, z2_mu, z2_lv, pz1_mu, pz1_lv)


__all__ = ["HVampVAE"]
