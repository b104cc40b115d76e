"""Vamp: Mult-VAE's encoder/decoder with a VampPrior on z (Kim & Suh, RecSys 2019, authors'
models/Vamp.py; Tomczak & Welling 2018; PAPER_SPEC 2.5-2.6).

Loss: -log p(x|z) + beta * [log q(z|x) - log p_lambda(z)], one sample; the pseudo-inputs go
through the same q(z|x) network (un-normalised and dropped out in training, as the authors').
"""

from __future__ import annotations

from torch import Tensor

from .base import VampPriorModel
from .config import ModelConfig
from .layers import Rows, dropout_rows, normalize_rows, reparameterize
from .multvae import build_one_latent_layers
from .priors import log_normal_diag


class VampVAE(VampPriorModel):
    """One stochastic layer z with the VampPrior; Bernoulli likelihood by default."""

    model_name = "vamp"

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        build_one_latent_layers(self, cfg)   # same layers (and parameter names) as Mult-VAE
        self._init_pseudoinputs()

    def _encode_top(self, x: Rows, *, training: bool) -> tuple[Tensor, Tensor]:
        return self.q_z(self.encoder(self.encoder_in(x)))

    def _forward(self, x: Rows, *, training: bool):
        x = dropout_rows(normalize_rows(x), self.cfg.dropout, training=training)
        mu, logvar = self._encode_top(x, training=training)
        z = reparameterize(mu, logvar, sample=training)
        return self.decoder_out(self.decoder(z)), (z, mu, logvar)

    def _kl(self, latents, *, training: bool) -> Tensor:
        z, mu, logvar = latents
        return log_normal_diag(z, mu, logvar) - self.log_prior(z, training=training)


__all__ = ["VampVAE"]
