"""Gaussian log-densities and the VampPrior mixture (Tomczak & Welling, AISTATS 2018; as used by
Kim & Suh, RecSys 2019, authors' utils/distributions.py and models/*.py ``log_p_z``).

As in the authors' code every log-density drops the -0.5 * log(2 pi) per dimension; it cancels in
the Monte-Carlo KL estimate log q(z|x) - log p(z), which is all these are used for.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _f32(*ts: Tensor) -> tuple[Tensor, ...]:
    # under autocast the heads emit bf16/fp16; the log-densities cancel in the KL: use fp32
    return tuple(t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in ts)


def log_normal_diag(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Row sums of -0.5 * (logvar + (z - mu)^2 / exp(logvar)); shapes (B, d) -> (B,)."""
    z, mu, logvar = _f32(z, mu, logvar)
    return -0.5 * (logvar + (z - mu).pow(2) * torch.exp(-logvar)).sum(dim=-1)


def log_standard_normal(z: Tensor) -> Tensor:
    """Row sums of -0.5 * z^2; (B, d) -> (B,)."""
    (z,) = _f32(z)
    return -0.5 * z.pow(2).sum(dim=-1)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """Closed-form KL(N(mu, diag exp(logvar)) || N(0, I)) per row (Liang et al.); (B, d) -> (B,)."""
    mu, logvar = _f32(mu, logvar)
    return 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar).sum(dim=-1)


def vamp_log_prior(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """VampPrior log-density log (1/K) sum_k N(z; mu_k, diag exp(logvar_k)), constant dropped.

    Parameters
    ----------
    z : Tensor of shape (B, d)
        Points to evaluate.
    mu, logvar : Tensor of shape (K, d)
        Encoder outputs of the K pseudo-inputs.

    Returns
    -------
    Tensor of shape (B,), dtype of z (float32 for half-precision z)

    Notes
    -----
    The quadratic forms Q[b, k] = sum_j (z_bj - mu_kj)^2 exp(-logvar_kj) come from matrix
    products, z^2 @ P^T - 2 z @ (mu P)^T + sum_j mu^2 P with P = exp(-logvar), so that no
    (B, K, d) tensor is formed. With logvar near the -12 clip the three terms are ~1e5 times
    larger than Q and cancel: float32 loses about 1e-2 relative accuracy (shifting z and mu by a
    common reference does not help, the components and the batch differ by O(1)). The products
    therefore run in float64, which keeps the result as exact as the float32 inputs allow; they
    are O(B K d), small next to the first layer and the decoder. Autocast leaves float64 alone.
    """
    n_components = mu.shape[0]
    with torch.autocast(device_type=z.device.type, enabled=False):
        z64, mu64, lv64 = z.double(), mu.double(), logvar.double()
        prec = torch.exp(-lv64)                                            # (K, d)
        quad = ((z64 * z64) @ prec.T - 2.0 * (z64 @ (mu64 * prec).T)
                + (mu64 * mu64 * prec).sum(dim=1))                         # (B, K)
        a = -0.5 * (lv64.sum(dim=1) + quad) - math.log(n_components)
        return torch.logsumexp(a, dim=1).to(_f32(z)[0].dtype)
