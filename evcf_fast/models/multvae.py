"""Mult-VAE (Liang et al., WWW 2018, dawenl/vae_cf) as the EVCF baseline (Kim & Suh, RecSys 2019,
authors' models/Baseline.py; PAPER_SPEC 2.3).

Encoder: normalise, dropout, Dense(D -> H) then (L - 1) x Dense(H -> H), heads to z.
Decoder: Dense(z -> H), (L - 1) x Dense(H -> H), affine H -> D. Prior N(0, I). KL: one-sample
Monte-Carlo (authors) or analytic (Liang). ``gated`` turns every hidden layer into a GLU.
"""

from __future__ import annotations

from torch import Tensor, nn

from .base import BaseModel
from .config import ModelConfig
from .layers import Dense, GaussianHead, Rows, dropout_rows, normalize_rows, reparameterize, stack
from .priors import kl_standard_normal, log_normal_diag, log_standard_normal


def build_one_latent_layers(model: nn.Module, cfg: ModelConfig) -> None:
    """The [D - H x L - z - H x L - D] layers shared by Mult-VAE and Vamp (PAPER_SPEC 2.3, 2.6)."""
    act = "glu" if cfg.gated else "tanh"
    H, z, L = cfg.hidden_size, cfg.latent_size, cfg.num_layers
    model.encoder_in = Dense(cfg.n_items, H, activation=act, init=cfg.init)
    model.encoder = stack([H] * L, activation=act, init=cfg.init)
    model.q_z = GaussianHead(H, z, logvar_clip=cfg.logvar_clip, init=cfg.init)
    model.decoder = stack([z] + [H] * L, activation=act, init=cfg.init)
    model.decoder_out = Dense(H, cfg.n_items, activation=None, init=cfg.init)


class MultVAE(BaseModel):
    """Mult-VAE [D - H x L - z - H x L - D] with a standard normal prior; see ``ModelConfig``."""

    model_name = "multvae"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        build_one_latent_layers(self, cfg)

    def encode(self, x: Rows, *, training: bool) -> tuple[Tensor, Tensor]:
        """q(z|x) parameters (mu, logvar) of raw rows (normalised and dropped out here)."""
        x = dropout_rows(normalize_rows(x), self.cfg.dropout, training=training)
        return self.q_z(self.encoder(self.encoder_in(x)))

    def _forward(self, x: Rows, *, training: bool):
        mu, logvar = self.encode(x, training=training)
        z = reparameterize(mu, logvar, sample=training)
        return self.decoder_out(self.decoder(z)), (z, mu, logvar)

    def _kl(self, latents, *, training: bool) -> Tensor:
        z, mu, logvar = latents
        if self.cfg.kl == "analytic":
            return kl_standard_normal(mu, logvar)
        return log_normal_diag(z, mu, logvar) - log_standard_normal(z)


__all__ = ["MultVAE"]
