"""Every model of issue 4 against a straightforward dense re-implementation of PAPER_SPEC 2.

The oracle below is written from the spec, not from the library: the authors' ``NonLinear``
(two matrices and a sigmoid gate, or tanh), ``F.normalize`` then inverted dropout on a dense
batch, ``log_Normal_diag`` / ``log_Bernoulli`` (clamped sigmoid) / ``log_Softmax`` and the
VampPrior as the authors' (B, K, d) expansion with a max-shifted log-sum-exp, all in float64.
The model gets the same weights (the oracle reads W and V back out of the fused tensors), the
same dropout masks and the same noise (``layers.dropout`` and ``layers.standard_normal`` are
replaced), and must give the same loss, nll, kl and every parameter gradient, from dense and
from CSR input: relative error <= 1e-5 for a float32 model, <= 1e-10 for a float64 one.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from evcf_fast.models import ModelConfig, build_model, layers

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")

B, D, H, Z1, Z2, K = 6, 40, 8, 5, 3, 4

# ------------------------------------------------------------------------------------------------
# the oracle (float64, dense, from PAPER_SPEC section 2)


def nonlinear(h, P, name, act):
    """Authors' NonLinear: gated -> (Wh+b) * sigmoid(Vh+c) (no tanh); else tanh or affine."""
    w, b = P[f"{name}.weight"], P[f"{name}.bias"]
    if act == "glu":
        n = w.shape[1] // 2
        return (h @ w[:, :n] + b[:n]) * torch.sigmoid(h @ w[:, n:] + b[n:])
    out = h @ w + b
    return torch.tanh(out) if act == "tanh" else out


def heads(h, P, name, clip):
    """Mean head Linear; log-variance head Linear + Hardtanh(clip)."""
    w, b = P[f"{name}.weight"], P[f"{name}.bias"]
    n = w.shape[1] // 2
    mu, logvar = h @ w[:, :n] + b[:n], h @ w[:, n:] + b[n:]
    return mu, (logvar if clip is None else F.hardtanh(logvar, *clip))


def log_normal_diag(z, mu, logvar):
    return (-0.5 * (logvar + (z - mu) ** 2 / torch.exp(logvar))).sum(1)


def log_normal_standard(z):
    return (-0.5 * z ** 2).sum(1)


def log_vamp(z, mu_k, lv_k):
    a = log_normal_diag_expand(z, mu_k, lv_k) - math.log(mu_k.shape[0])
    a_max = a.max(1).values
    return a_max + torch.log(torch.exp(a - a_max[:, None]).sum(1))


def log_normal_diag_expand(z, mu_k, lv_k):
    return (-0.5 * (lv_k[None] + (z[:, None] - mu_k[None]) ** 2 / torch.exp(lv_k[None]))).sum(2)


def log_lik(x, logits, kind):
    if kind == "bernoulli":
        p = torch.clamp(torch.sigmoid(logits), 1e-5, 1 - 1e-5)
        return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(1)
    return (F.log_softmax(logits, 1) * x).sum(1)


def oracle(cfg, P, x, *, masks, eps, training, beta):
    """Loss, nll, kl (batch means) and logits of cfg's model with parameters P on dense x.

    masks: {"x": [M1, M2], "pseudo": Mp} dense 0/1 keep masks; eps: {"z"|"z1"|"z2": noise}.
    """
    act = "glu" if cfg.gated else "tanh"
    p, L, clip = cfg.dropout, cfg.num_layers, cfg.logvar_clip
    xn = F.normalize(x, dim=1)

    def drop(t, m):
        return t * m / (1 - p) if training else t

    def sample(mu, logvar, key):
        return mu + torch.exp(0.5 * logvar) * eps[key] if training else mu

    def pseudo_inputs():
        u = F.hardtanh(P["pseudoinputs"], 0.0, 1.0)
        if cfg.normalize_pseudoinputs:
            u = F.normalize(u, dim=1)
        return drop(u, masks["pseudo"]) if cfg.pseudoinput_dropout else u

    if cfg.model in ("multvae", "vamp"):
        def q_z(h):
            h = nonlinear(h, P, "encoder_in", act)
            for i in range(L - 1):
                h = nonlinear(h, P, f"encoder.{i}", act)
            return heads(h, P, "q_z", clip)

        mu, logvar = q_z(drop(xn, masks["x"][0]))
        z = sample(mu, logvar, "z")
        h = z
        for i in range(L):
            h = nonlinear(h, P, f"decoder.{i}", act)
        logits = nonlinear(h, P, "decoder_out", None)
        if cfg.model == "vamp":
            mu_k, lv_k = q_z(pseudo_inputs())
            kl = log_normal_diag(z, mu, logvar) - log_vamp(z, mu_k, lv_k)
        elif cfg.kl == "analytic":
            kl = 0.5 * (torch.exp(logvar) + mu ** 2 - 1 - logvar).sum(1)
        else:
            kl = log_normal_diag(z, mu, logvar) - log_normal_standard(z)
    elif cfg.model == "multdae":
        h = nonlinear(drop(xn, masks["x"][0]), P, "encoder_in", act)
        for i in range(2 * L - 2):
            h = nonlinear(h, P, f"hidden.{i}", act)
        logits = nonlinear(h, P, "decoder_out", None)
        kl = torch.zeros(x.shape[0], dtype=x.dtype)
    elif cfg.model == "hvamp":
        def q_z2(h):
            h = nonlinear(h, P, "q_z2_in", act)
            for i in range(L - 1):
                h = nonlinear(h, P, f"q_z2_layers.{i}", act)
            return heads(h, P, "q_z2", clip)

        def joint(h, name):
            for i in range(max(L - 1, 1)):
                h = nonlinear(h, P, f"{name}.{i}", act)
            return h

        z2_mu, z2_lv = q_z2(drop(xn, masks["x"][0]))
        z2 = sample(z2_mu, z2_lv, "z2")
        h = torch.cat([nonlinear(drop(xn, masks["x"][1]), P, "q_z1_x", act),
                       nonlinear(z2, P, "q_z1_z2", act)], 1)
        z1_mu, z1_lv = heads(joint(h, "q_z1_joint"), P, "q_z1", clip)
        z1 = sample(z1_mu, z1_lv, "z1")
        h = z2
        for i in range(L):
            h = nonlinear(h, P, f"p_z1_layers.{i}", act)
        pz1_mu, pz1_lv = heads(h, P, "p_z1", clip)
        h = torch.cat([nonlinear(z1, P, "p_x_z1", act), nonlinear(z2, P, "p_x_z2", act)], 1)
        logits = nonlinear(joint(h, "p_x_joint"), P, "decoder_out", None)
        mu_k, lv_k = q_z2(pseudo_inputs())
        kl = -(log_normal_diag(z1, pz1_mu, pz1_lv) + log_vamp(z2, mu_k, lv_k)
               - log_normal_diag(z1, z1_mu, z1_lv) - log_normal_diag(z2, z2_mu, z2_lv))
    elif cfg.model == "hvamp1":
        def q_z2(h):
            return heads(nonlinear(h, P, "q_z2_in", act), P, "q_z2", clip)

        z2_mu, z2_lv = q_z2(drop(xn, masks["x"][0]))
        z2 = sample(z2_mu, z2_lv, "z2")
        h = torch.cat([drop(xn, masks["x"][1]), z2], 1)
        z1_mu, z1_lv = heads(nonlinear(h, P, "q_z1_in", act), P, "q_z1", clip)
        z1 = sample(z1_mu, z1_lv, "z1")
        pz1_mu, pz1_lv = heads(nonlinear(z2, P, "p_z1_in", act), P, "p_z1", clip)
        h = nonlinear(torch.cat([z1, z2], 1), P, "p_x_in", act)
        logits = nonlinear(h, P, "decoder_out", None)
        mu_k, lv_k = q_z2(pseudo_inputs())
        kl = -(log_normal_diag(z1, pz1_mu, pz1_lv) + log_vamp(z2, mu_k, lv_k)
               - log_normal_diag(z1, z1_mu, z1_lv) - log_normal_diag(z2, z2_mu, z2_lv))
    else:  # pragma: no cover
        raise AssertionError(cfg.model)
    nll = -log_lik(x, logits, cfg.likelihood).mean()
    kl = kl.mean()
    loss = nll + beta * kl
    if cfg.dae_l2:
        loss = loss + cfg.dae_l2 * sum((w ** 2).sum() for n, w in P.items()
                                       if n.endswith(".weight"))
    return loss, nll, kl, logits


# ------------------------------------------------------------------------------------------------
# shared noise


class SharedNoise:
    """Feeds the model the oracle's masks and noise through layers.dropout/standard_normal."""

    def __init__(self, masks, eps, x, *, hierarchical):
        self.hierarchical = hierarchical
        self.x_masks = list(masks["x"])
        self.pseudo = masks["pseudo"]
        self.eps = eps
        self.row, self.col = torch.nonzero(x, as_tuple=True)
        self.x_calls = self.pseudo_calls = 0

    def dropout(self, t, p):
        if t.dim() == 1:  # CSR values: the dense mask at the nonzeros
            m = self.x_masks[self.x_calls][self.row, self.col]
            self.x_calls += 1
        elif t.shape == self.pseudo.shape:
            m = self.pseudo
            self.pseudo_calls += 1
        else:
            m = self.x_masks[self.x_calls]
            self.x_calls += 1
        return t * m.to(t.dtype) / (1 - p)

    def standard_normal(self, like):
        key = {(B, Z1): "z1", (B, Z2): "z2"}[tuple(like.shape)] if self.hierarchical else "z"
        return self.eps[key].to(like.dtype)


def make_case(seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(B, D, generator=g) < 0.25).double()
    x[0, :3] = 1  # no empty row in the first user
    masks = {"x": [(torch.rand(B, D, generator=g) < 0.5).double() for _ in range(2)],
             "pseudo": (torch.rand(K, D, generator=g) < 0.5).double()}
    eps = {k: torch.randn(B, n, generator=g, dtype=torch.float64)
           for k, n in (("z", Z1), ("z1", Z1), ("z2", Z2))}
    return x, masks, eps


CASES = [
    dict(model="multvae"),
    dict(model="multvae", gated=True, num_layers=2),
    dict(model="multvae", likelihood="bernoulli"),
    dict(model="multvae", kl="analytic", logvar_clip=None, init="xavier"),
    dict(model="multdae"),
    dict(model="multdae", gated=True, num_layers=2, dae_l2=0.01),
    dict(model="vamp"),
    dict(model="vamp", gated=True, likelihood="multinomial"),
    dict(model="vamp", num_layers=2, normalize_pseudoinputs=True, pseudoinput_dropout=False),
    dict(model="hvamp", num_layers=2),
    dict(model="hvamp", num_layers=2, gated=True),
    dict(model="hvamp", num_layers=3, gated=True, likelihood="multinomial"),
    dict(model="hvamp", num_layers=1),
    dict(model="hvamp1"),
    dict(model="hvamp1", gated=True, likelihood="multinomial"),
]


def case_id(c):
    return "-".join(f"{k}={v}" if k != "model" else v for k, v in c.items())


def make_cfg(case):
    kw = dict(n_items=D, hidden_size=H, latent_size=Z1, latent2_size=Z2, n_components=K)
    kw.update(case)
    return ModelConfig(**kw)


def rel_err(got, ref):
    got, ref = got.double(), ref.double()
    return ((got - ref).norm() / ref.norm().clamp_min(1e-30)).item()


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)],
                         ids=["f32", "f64"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_training_loss_and_gradients_equal_dense_oracle(case, dtype, tol, sparse, monkeypatch):
    cfg = make_cfg(case)
    torch.manual_seed(0)
    model = build_model(cfg).to(dtype)
    with torch.no_grad():  # move pseudo-inputs around so that the hardtanh clip matters
        if cfg.is_vamp:
            model.pseudoinputs.copy_(torch.rand(K, D) * 1.4 - 0.2)
    x, masks, eps = make_case(1)
    noise = SharedNoise(masks, eps, x, hierarchical=cfg.model in ("hvamp", "hvamp1"))
    monkeypatch.setattr(layers, "dropout", noise.dropout)
    monkeypatch.setattr(layers, "standard_normal", noise.standard_normal)
    beta = 0.3

    P = {n: p.detach().double().clone().requires_grad_(True) for n, p in model.named_parameters()}
    ref_loss, ref_nll, ref_kl, _ = oracle(cfg, P, x, masks=masks, eps=eps, training=True,
                                          beta=beta)
    ref_loss.backward()

    xin = x.to(dtype)
    xin = xin.to_sparse_csr() if sparse else xin
    loss, stats = model.loss(xin, beta=beta)
    loss.backward()

    n_x_masks = 2 if cfg.model in ("hvamp", "hvamp1") else 1
    assert noise.x_calls == n_x_masks  # independent masks on the two x branches
    assert noise.pseudo_calls == (1 if cfg.is_vamp and cfg.pseudoinput_dropout else 0)
    assert rel_err(loss.detach(), ref_loss.detach()) <= tol
    assert rel_err(stats["nll"], ref_nll.detach()) <= tol
    if cfg.model == "multdae":
        assert stats["kl"].item() == 0.0
    else:
        assert rel_err(stats["kl"], ref_kl.detach()) <= tol
    assert set(dict(model.named_parameters())) == set(P)
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert rel_err(param.grad, P[name].grad) <= tol, name


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
def test_eval_loss_and_scores_equal_dense_oracle(case, sparse, monkeypatch):
    """Evaluation: no dropout, every latent at its mean, the (cached) VampPrior at beta=1."""
    cfg = make_cfg(case)
    torch.manual_seed(0)
    model = build_model(cfg).double().eval()

    def no_randomness(*args):
        raise AssertionError("evaluation must not draw masks or noise")

    monkeypatch.setattr(layers, "dropout", no_randomness)
    monkeypatch.setattr(layers, "standard_normal", no_randomness)
    x, masks, eps = make_case(2)
    P = {n: p.detach().clone() for n, p in model.named_parameters()}
    ref_loss, ref_nll, ref_kl, ref_logits = oracle(cfg, P, x, masks=masks, eps=eps,
                                                   training=False, beta=1.0)
    xin = x.to_sparse_csr() if sparse else x
    model.prepare_eval()
    with torch.no_grad():
        loss, stats = model.loss(xin, beta=1.0)
    assert rel_err(loss, ref_loss) <= 1e-10
    assert rel_err(stats["nll"], ref_nll) <= 1e-10
    ref_scores = ref_logits  # Bernoulli models rank by logits too (same order as sigmoid)
    assert rel_err(model.scores(xin), ref_scores) <= 1e-10
    model.train()  # scores() is in evaluation semantics whatever the mode
    assert rel_err(model.scores(xin), ref_scores) <= 1e-10


@pytest.mark.parametrize("case", [c for c in CASES if c.get("gated")], ids=case_id)
def test_sparse_and_dense_inputs_give_identical_gradients(case, monkeypatch):
    """The CSR first layers and the dense ones agree to float32 rounding, mask for mask."""
    cfg = make_cfg(case)
    torch.manual_seed(3)
    model = build_model(cfg)
    x, masks, eps = make_case(4)
    grads = []
    for xin in (x.float(), x.float().to_sparse_csr()):
        noise = SharedNoise(masks, eps, x, hierarchical=cfg.model in ("hvamp", "hvamp1"))
        monkeypatch.setattr(layers, "dropout", noise.dropout)
        monkeypatch.setattr(layers, "standard_normal", noise.standard_normal)
        model.zero_grad()
        loss, _ = model.loss(xin, beta=0.7)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-6, atol=1e-6)
    for name in grads[0][1]:
        assert rel_err(grads[1][1][name], grads[0][1][name]) <= 1e-5, name
