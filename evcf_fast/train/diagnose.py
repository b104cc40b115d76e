"""What a trained VAE's latent layers and VampPrior do with the data (``evcf diagnose``).

Issue 12 asks why H+Vamp (Gated) loses to Mult-VAE on ml-1m. The usual suspects are measured
on a set of users, in evaluation semantics (no dropout):

* **KL per latent layer**, nats per user: the top layer against its prior by Monte Carlo
  (VampPrior; ``n_samples`` draws from q) or in closed form (N(0, I)); the bottom layer z1 of the
  two-layer models in closed form against p(z1|z2) with z2 at its posterior mean.
* **Active units** (Burda et al., 2016): the latent dimensions whose posterior mean varies over
  users, Var_x E_q[z_j] > 0.01. A unit that does not vary carries no information about x.
* **Pseudo-input statistics**: how much mass the K pseudo-inputs hold next to real users, how
  close each is to its nearest training user (cosine), and how many mixture components the users'
  posteriors actually use (the exponential of the entropy of the mean responsibility, and the
  number of components that are some user's most responsible one).
* **Reconstruction on seen and unseen users**: -log p(x|z) per interaction on training users and
  on held-out users' fold-in rows; a model that memorises its training users reconstructs them
  much better than users it has not seen.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

#: Burda et al.'s threshold on Var_x E_q[z_j] for an active unit.
ACTIVE_UNIT_THRESHOLD = 0.01


def _layers(model, latents) -> dict[str, tuple]:
    """Per latent layer: (posterior mu, logvar, prior) with prior "normal", "vamp" or (mu, lv)."""
    name = model.cfg.model
    if name in ("multvae",):
        _, mu, lv = latents
        return {"z": (mu, lv, "normal")}
    if name == "vamp":
        _, mu, lv = latents
        return {"z": (mu, lv, "vamp")}
    if name in ("hvamp", "hvamp1"):
        _, z1_mu, z1_lv, _, z2_mu, z2_lv, pz1_mu, pz1_lv = latents
        return {"z2": (z2_mu, z2_lv, "vamp"), "z1": (z1_mu, z1_lv, (pz1_mu, pz1_lv))}
    return {}


def gaussian_kl(mu: Tensor, logvar: Tensor, prior_mu: Tensor | None = None,
                prior_logvar: Tensor | None = None) -> Tensor:
    """KL(N(mu, e^logvar) || N(prior_mu, e^prior_logvar)) per unit, (B, d); N(0, I) by default."""
    if prior_mu is None:
        prior_mu, prior_logvar = torch.zeros_like(mu), torch.zeros_like(logvar)
    return 0.5 * (prior_logvar - logvar
                  + (torch.exp(logvar) + (mu - prior_mu) ** 2) * torch.exp(-prior_logvar) - 1.0)


def _vamp_kl(model, mu: Tensor, lv: Tensor, n_samples: int, gen: torch.Generator) -> Tensor:
    """Monte-Carlo KL(q(z|x) || VampPrior) per user, (B,), from ``n_samples`` draws of q."""
    from ..models.priors import log_normal_diag

    total = torch.zeros(mu.shape[0], dtype=torch.float64)
    for _ in range(n_samples):
        eps = torch.randn(mu.shape, generator=gen, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * lv) * eps
        total += (log_normal_diag(z, mu, lv) - model.log_prior(z, training=False)).double()
    return total / n_samples


def _responsibilities(mu: Tensor, prior_mu: Tensor, prior_lv: Tensor) -> Tensor:
    """Posterior of the mixture component given each user's posterior mean, (B, K)."""
    from ..models.priors import log_normal_diag

    logp = torch.stack([log_normal_diag(mu, prior_mu[k].expand_as(mu), prior_lv[k].expand_as(mu))
                        for k in range(prior_mu.shape[0])], dim=1).double()
    return torch.softmax(logp, dim=1)


def pseudoinput_stats(model, train: sp.csr_matrix, top_mu: Tensor) -> dict:
    """Mass, saturation, nearest-user cosine and component usage of a VampPrior's pseudo-inputs.

    ``top_mu`` holds the posterior means of the top latent for the diagnosed users.
    """
    import torch.nn.functional as F

    u = F.hardtanh(model.pseudoinputs.detach().double(), 0.0, 1.0).numpy()        # (K, D)
    k = u.shape[0]
    x = sp.csr_matrix(train, dtype=np.float64)
    x_norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel()).clip(1e-12)
    u_norm = np.linalg.norm(u, axis=1).clip(1e-12)
    cos = np.asarray((x @ u.T)) / x_norm[:, None] / u_norm[None, :]                 # (users, K)
    prior_mu, prior_lv = (t.detach() for t in model.prior_components(training=False))
    resp = _responsibilities(top_mu, prior_mu, prior_lv).numpy()
    mean_resp = resp.mean(axis=0)
    entropy = -float(np.sum(mean_resp * np.log(np.clip(mean_resp, 1e-300, None))))
    return {
        "n_components": k,
        "mass_mean": float(u.sum(axis=1).mean()),
        "user_mass_mean": float(np.diff(x.indptr).mean()),
        "fraction_zero": float(np.mean(u == 0.0)),
        "fraction_one": float(np.mean(u == 1.0)),
        "nearest_user_cosine_median": float(np.median(cos.max(axis=0))),
        "effective_components": math.exp(entropy),
        "components_most_responsible": int(np.unique(resp.argmax(axis=1)).size),
        "prior_variance_mean": float(torch.exp(prior_lv).mean()),
    }


@torch.no_grad()
def diagnose(model, *, train: sp.csr_matrix, heldout_fold_in: sp.csr_matrix,
             max_users: int = 2000, n_samples: int = 8, batch_size: int = 500,
             seed: int = 0) -> dict:
    """Latent, prior and reconstruction statistics of ``model`` (see the module docstring).

    Parameters
    ----------
    model : BaseModel
        A trained model (moved to the CPU and set to eval mode here).
    train : CSR matrix
        Training users' rows; the first ``max_users`` are diagnosed ("seen" users).
    heldout_fold_in : CSR matrix
        Held-out users' fold-in rows (validation or test); the first ``max_users`` ("unseen").
    n_samples : int
        Draws of q per user for the Monte-Carlo KL against a VampPrior.

    Returns
    -------
    dict
        ``layers``: per latent layer its size, KL (nats per user, mean over seen users), KL per
        unit, active units and posterior-mean variance per unit; ``nll_per_interaction`` for
        ``seen`` and ``unseen`` users and their ratio; ``parameters``; ``pseudoinputs`` for
        VampPrior models.
    """
    model = model.cpu().eval()
    gen = torch.Generator().manual_seed(seed)
    out = {"model": model.cfg.model, "likelihood": model.cfg.likelihood,
           "parameters": int(sum(p.numel() for p in model.parameters())),
           "layers": {}, "nll_per_interaction": {}}
    seen = train[:max_users]
    for part, rows in (("seen", seen), ("unseen", heldout_fold_in[:max_users])):
        nll, n_interactions, layer_parts = 0.0, 0, {}
        for a in range(0, rows.shape[0], batch_size):
            x = torch.from_numpy(rows[a:a + batch_size].toarray().astype(np.float32))
            logits, latents = model._forward(model._rows(x), training=False)
            nll -= float(model._log_lik(logits, x).double().sum())
            n_interactions += int(x.sum())
            if part != "seen":
                continue
            for name, (mu, lv, prior) in _layers(model, latents).items():
                if prior == "normal":
                    kl_units = gaussian_kl(mu, lv)
                    kl = kl_units.double().sum(dim=1)
                elif prior == "vamp":
                    kl_units = None
                    kl = _vamp_kl(model, mu, lv, n_samples, gen)
                else:
                    kl_units = gaussian_kl(mu, lv, *prior)
                    kl = kl_units.double().sum(dim=1)
                layer_parts.setdefault(name, []).append((mu, kl, kl_units))
        out["nll_per_interaction"][part] = nll / max(n_interactions, 1)
        for name, parts in layer_parts.items():
            mu = torch.cat([p[0] for p in parts]).double()
            variance = mu.var(dim=0, unbiased=False)
            layer = {"size": int(mu.shape[1]),
                     "kl": float(torch.cat([p[1] for p in parts]).mean()),
                     "active_units": int((variance > ACTIVE_UNIT_THRESHOLD).sum()),
                     "mean_variance": variance.tolist()}
            if parts[0][2] is not None:
                layer["kl_per_unit"] = torch.cat([p[2] for p in parts]).double().mean(0).tolist()
            out["layers"][name] = layer
            if name in ("z", "z2") and hasattr(model, "pseudoinputs"):
                out["pseudoinputs"] = pseudoinput_stats(model, seen, mu.float())
    nll = out["nll_per_interaction"]
    nll["unseen_over_seen"] = nll["unseen"] / nll["seen"] if nll["seen"] else float("nan")
    out["parameters_per_training_interaction"] = out["parameters"] / max(int(train.nnz), 1)
    return out


def describe(result: dict, *, title: str = "") -> list[str]:
    """The result in words: one line per finding, each saying what the number means."""
    lines = [f"{title}{result['model']}: {result['parameters']:,} parameters "
             f"({result['parameters_per_training_interaction']:.2f} per training interaction)"]
    for name, layer in result["layers"].items():
        lines.append(f"  latent {name}: KL {layer['kl']:.2f} nats per user; "
                     f"{layer['active_units']} of {layer['size']} units active "
                     f"(posterior mean varies over users: Var > {ACTIVE_UNIT_THRESHOLD})")
    nll = result["nll_per_interaction"]
    lines.append(f"  reconstruction -log p(x|z) ({result['likelihood']}) per interaction: "
                 f"{nll['seen']:.3f} on training "
                 f"users, {nll['unseen']:.3f} on held-out users' fold-in rows "
                 f"({nll['unseen_over_seen']:.2f}x: the larger, the more it memorised)")
    p = result.get("pseudoinputs")
    if p:
        lines.append(f"  pseudo-inputs: {p['n_components']} of mass {p['mass_mean']:.1f} each "
                     f"(a training user has {p['user_mass_mean']:.1f} items); "
                     f"{100 * p['fraction_zero']:.0f}% of entries at 0, "
                     f"{100 * p['fraction_one']:.0f}% at 1; nearest-user cosine median "
                     f"{p['nearest_user_cosine_median']:.2f}")
        lines.append(f"  mixture use: {p['effective_components']:.1f} effective components "
                     f"of {p['n_components']} (exp of the entropy of the mean responsibility); "
                     f"{p['components_most_responsible']} are some user's most responsible one")
    return lines


__all__ = ["ACTIVE_UNIT_THRESHOLD", "describe", "diagnose", "gaussian_kl", "pseudoinput_stats"]
