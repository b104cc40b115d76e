"""The model contract shared by every model (Kim & Suh, RecSys 2019; Liang et al., WWW 2018).

``loss(x, beta=...)`` is the training objective -log p(x|z) + beta * KL averaged over the batch;
``scores(x)`` the evaluation-time decoder output (no dropout, every latent at its mean);
``prepare_eval()`` caches the VampPrior's pseudo-input encodings for evaluation passes.
A subclass provides ``_forward(rows, training)`` (logits and whatever its KL needs) and
``_kl(latents, training)``; the VampPrior models also ``_encode_top`` (the q(z|x) or q(z2|x)
network applied to already processed rows). ``HierarchicalVampModel`` holds the KL shared by the
two-latent models (H+Vamp and its one-hidden-layer variant).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_float, must_be, type_name
from .config import ModelConfig
from .layers import Rows, as_rows, dropout_rows, normalize_rows
from .likelihood import LOG_LIKELIHOODS
from .priors import log_normal_diag, vamp_log_prior


class BaseModel(nn.Module):
    """Common machinery; not used directly (see ``build_model``)."""

    model_name: str = ""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(must_be("cfg", "a ModelConfig", type_name(cfg)))
        if cfg.model != self.model_name:
            raise ValueError(f"{type(self).__name__} needs cfg.model={self.model_name!r}, got "
                             f"{cfg.model!r}; build_model(cfg) picks the class")
        self.cfg = cfg
        self._log_lik = LOG_LIKELIHOODS[cfg.likelihood]

    # -- subclass hooks ---------------------------------------------------------------------------

    def _forward(self, x: Rows, *, training: bool):  # -> (logits (B, D), latents)
        raise NotImplementedError

    def _kl(self, latents, *, training: bool) -> Tensor:  # -> (B,)
        raise NotImplementedError

    def _penalty(self) -> Tensor | None:
        return None

    # -- public API -------------------------------------------------------------------------------

    def _rows(self, x) -> Rows:
        p = next(self.parameters())
        return as_rows(x, n_items=self.cfg.n_items, dtype=p.dtype, device=p.device)

    def loss(self, x, *, beta: float | Tensor = 1.0) -> tuple[Tensor, dict[str, Tensor]]:
        """Training objective, mean over the batch of -log p(x|z) + beta * KL.

        Parameters
        ----------
        x : Tensor
            Raw binary interactions of B users: dense (B, n_items) or sparse CSR of that size,
            dtype and device of the model.
        beta : float or 0-dim Tensor
            KL weight (a tensor keeps it out of a captured graph's constants).

        Returns
        -------
        loss : Tensor
            Scalar; dropout and sampling follow ``self.training``.
        stats : dict of str to Tensor
            Detached scalars: "nll" (mean -log p(x|z)), "kl" (mean KL term: one-sample
            Monte-Carlo or analytic, per ``cfg.kl``; 0 for Mult-DAE), and "l2" (Mult-DAE penalty,
            already added to the loss) when present.
        """
        if not isinstance(beta, Tensor):
            check_float(beta, "beta", minimum=0)
        rows = self._rows(x)
        logits, latents = self._forward(rows, training=self.training)
        nll = -self._log_lik(logits, rows).mean()
        kl = self._kl(latents, training=self.training).mean()
        loss = nll + beta * kl
        stats = {"nll": nll.detach(), "kl": kl.detach()}
        penalty = self._penalty()
        if penalty is not None:
            loss = loss + penalty
            stats["l2"] = penalty.detach()
        return loss, stats

    @torch.no_grad()
    def scores(self, x) -> Tensor:
        """Ranking scores (B, n_items) in evaluation semantics, whatever ``self.training`` says.

        No dropout, every latent at its posterior mean. The scores are the decoder logits for
        both likelihoods: the authors rank Bernoulli models by sigmoid probabilities, which is the
        same ranking (sigmoid is strictly increasing), but float32 sigmoids saturate to exactly
        1.0 above a logit of about 17 and would turn distinct scores into ties at the top.
        """
        logits, _ = self._forward(self._rows(x), training=False)
        return logits

    def prepare_eval(self) -> None:
        """Cache evaluation-time constants (a no-op for models without a VampPrior)."""

    def tensor_splits(self) -> dict[str, int]:
        """Parameters that fuse several of the authors' tensors along their last dimension.

        Maps parameter name -> number of equal chunks (2 for a GLU layer's W|V and b|c, and for
        the mean|log-variance heads). Per-tensor optimiser statistics, such as AdamNormGrad's
        gradient norm, must be taken per chunk to reproduce the authors' optimiser exactly.
        """
        out = {}
        for mod_name, mod in self.named_modules():
            chunks = getattr(mod, "n_chunks", 1)
            if chunks > 1:
                for p_name, _ in mod.named_parameters(recurse=False):
                    out[f"{mod_name}.{p_name}" if mod_name else p_name] = chunks
        return out


class VampPriorModel(BaseModel):
    """A ``BaseModel`` whose top latent has the VampPrior (PAPER_SPEC 2.5).

    The pseudo-inputs are ``u_k = hardtanh(pseudoinputs[k], 0, 1)`` (the authors' identity-matmul
    layer without the matmul), optionally L2-normalised, dropped out in training when
    ``cfg.pseudoinput_dropout``, and encoded by ``_encode_top``.
    """

    def _init_pseudoinputs(self) -> None:
        cfg = self.cfg
        self.pseudoinputs = nn.Parameter(torch.empty(cfg.n_components, cfg.n_items))
        with torch.no_grad():
            self.pseudoinputs.normal_(cfg.pseudoinputs_mean, cfg.pseudoinputs_std)
        self._eval_cache = None

    def _encode_top(self, x: Rows, *, training: bool) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _components(self, *, training: bool) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        u = F.hardtanh(self.pseudoinputs, 0.0, 1.0)                         # (K, D)
        if cfg.normalize_pseudoinputs:
            u = normalize_rows(u)
        u = dropout_rows(u, cfg.dropout, training=training and cfg.pseudoinput_dropout)
        return self._encode_top(u, training=training)

    def _cache_key(self):
        return tuple((p.data_ptr(), p._version) for p in self.parameters())

    def prior_components(self, *, training: bool | None = None) -> tuple[Tensor, Tensor]:
        """Encoder outputs (mu_k, logvar_k), each (K, latent), of the K pseudo-inputs.

        In evaluation mode with gradients off they come from a cache, refreshed when any
        parameter changes in place and dropped by ``train()``.
        """
        training = self.training if training is None else training
        if training or torch.is_grad_enabled():
            return self._components(training=training)
        key = self._cache_key()
        if self._eval_cache is None or self._eval_cache[0] != key:
            self._eval_cache = (key, self._components(training=False))
        return self._eval_cache[1]

    def log_prior(self, z: Tensor, *, training: bool) -> Tensor:
        """VampPrior log p(z) per row (constant -0.5 log 2 pi per dimension dropped)."""
        mu, logvar = self.prior_components(training=training)
        return vamp_log_prior(z, mu, logvar)

    def prepare_eval(self) -> None:
        """Compute and cache the pseudo-inputs' encoder outputs for evaluation passes."""
        with torch.no_grad():
            self._eval_cache = (self._cache_key(), self._components(training=False))

    def train(self, mode: bool = True):
        self._eval_cache = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._eval_cache = None
        return super()._apply(fn, *args, **kwargs)


class HierarchicalVampModel(VampPriorModel):
    """A ``VampPriorModel`` with two stochastic layers: z1 (bottom) and z2 (top, VampPrior).

    ``_forward`` returns the latents ``(z1, z1_mu, z1_lv, z2, z2_mu, z2_lv, pz1_mu, pz1_lv)``:
    the samples, the posteriors q(z1|x, z2) and q(z2|x), and the conditional prior p(z1|z2).
    """

    def _kl(self, latents, *, training: bool) -> Tensor:
        """One-sample KL: log q(z1|x,z2) + log q(z2|x) - log p(z1|z2) - log p(z2), (B,)."""
        z1, z1_mu, z1_lv, z2, z2_mu, z2_lv, pz1_mu, pz1_lv = latents
        return (log_normal_diag(z1, z1_mu, z1_lv) + log_normal_diag(z2, z2_mu, z2_lv)
                - log_normal_diag(z1, pz1_mu, pz1_lv) - self.log_prior(z2, training=training))
