"""One contract, run against every model of issue 4 (implicit's RecommenderBaseTestMixin style).

Shapes, evaluation determinism, finite losses, learning a two-block dataset (in-block items
outscore out-of-block ones afterwards), state_dict round trips, the evaluation cache of the
VampPrior and the error paths of ``loss``/``scores``.
"""

from __future__ import annotations

import io
import math

import pytest
import torch

from evcf_fast.models import ModelConfig, build_model

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")

D = 30
MODELS = [
    dict(model="multvae"),
    dict(model="multvae", gated=True, kl="analytic"),
    dict(model="multdae", dae_l2=1e-4),
    dict(model="vamp"),
    dict(model="hvamp", num_layers=2, gated=True),
    dict(model="hvamp1", gated=True),
]


def ids(c):
    return "-".join(str(v) if k == "model" else f"{k}={v}" for k, v in c.items())


def make_model(case, seed=0, **extra):
    torch.manual_seed(seed)
    kw = dict(n_items=D, hidden_size=16, latent_size=4, latent2_size=3, n_components=5)
    kw.update(case)
    kw.update(extra)
    return build_model(ModelConfig(**kw))


def two_blocks(n_users=64, seed=0):
    """Users 0..n/2-1 like items 0..14, the others items 15..29 (each pair with p = 0.6)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n_users, D)
    half = n_users // 2
    x[:half, :15] = (torch.rand(half, 15, generator=g) < 0.6).float()
    x[half:, 15:] = (torch.rand(n_users - half, 15, generator=g) < 0.6).float()
    x[:half, 0] = 1
    x[half:, 15] = 1  # nobody is empty
    return x


@pytest.mark.parametrize("case", MODELS, ids=ids)
def test_shapes_and_finite_loss(case):
    model = make_model(case)
    x = two_blocks(8)
    for xin in (x, x.to_sparse_csr()):
        loss, stats = model.loss(xin, beta=0.2)
        assert loss.shape == () and torch.isfinite(loss) and loss.requires_grad
        assert {"nll", "kl"} <= set(stats)
        for v in stats.values():
            assert v.shape == () and not v.requires_grad and torch.isfinite(v)
        scores = model.scores(xin)
        assert scores.shape == (8, D) and not scores.requires_grad
        assert torch.isfinite(scores).all()


@pytest.mark.parametrize("case", MODELS, ids=ids)
def test_eval_is_deterministic_and_training_is_not(case):
    model = make_model(case)
    x = two_blocks(8).to_sparse_csr()
    model.eval()
    with torch.no_grad():
        a, b = model.loss(x)[0], model.loss(x)[0]
    assert torch.equal(a, b)
    assert torch.equal(model.scores(x), model.scores(x))
    model.train()
    with torch.no_grad():
        c, d = model.loss(x)[0], model.loss(x)[0]
    assert not torch.equal(c, d)  # dropout and sampling in training mode


@pytest.mark.parametrize("case", MODELS, ids=ids)
def test_learns_two_blocks(case):
    """Loss drops and each group's unseen in-block items outrank the other block afterwards."""
    model = make_model(case, seed=1)
    x = two_blocks(64, seed=1)
    xs = x.to_sparse_csr()

    def eval_loss():
        model.eval()
        with torch.no_grad():
            out = model.loss(xs, beta=0.2)[0].item()
        model.train()
        return out

    before = eval_loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(2)
    for _ in range(150):
        idx = torch.randperm(64, generator=gen)[:32]
        loss, _ = model.loss(x[idx].to_sparse_csr(), beta=0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < before - 0.1 * abs(before)
    # fold-in: two items of block A (and two of block B) -> the rest of that block should win
    probe = torch.zeros(2, D)
    probe[0, [1, 2]] = 1
    probe[1, [16, 17]] = 1
    s = model.scores(probe.to_sparse_csr())
    assert s[0, 3:15].mean() > s[0, 15:].mean()
    assert s[1, 18:].mean() > s[1, :15].mean()


@pytest.mark.parametrize("case", MODELS, ids=ids)
def test_state_dict_round_trip(case):
    model = make_model(case, seed=2)
    x = two_blocks(6).to_sparse_csr()
    buf = io.BytesIO()
    torch.save({"state": model.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["state"]
    other = make_model(case, seed=3)
    assert not torch.equal(other.scores(x), model.scores(x))
    other.load_state_dict(state)
    assert torch.equal(other.scores(x), model.scores(x))
    model.eval()
    other.eval()
    with torch.no_grad():
        assert torch.equal(other.loss(x)[0], model.loss(x)[0])


@pytest.mark.parametrize("case", [c for c in MODELS if c["model"] in ("vamp", "hvamp", "hvamp1")],
                         ids=ids)
def test_eval_cache_is_used_and_invalidated(case):
    model = make_model(case, seed=4)
    x = two_blocks(6).to_sparse_csr()
    calls = []
    original = model._components

    def counting(*, training):
        calls.append(training)
        return original(training=training)

    model._components = counting
    model.eval()
    model.prepare_eval()
    with torch.no_grad():
        first = model.loss(x)[0]
        second = model.loss(x)[0]
    assert calls == [False] and torch.equal(first, second)  # once per pass
    with torch.no_grad():  # an optimizer step changes parameters in place
        model.pseudoinputs.add_(0.3)
        third = model.loss(x)[0]
    assert len(calls) == 2 and not torch.equal(third, first)
    model.train()
    assert model._eval_cache is None
    model.eval()
    with torch.no_grad():  # without prepare_eval the first evaluation fills the cache
        model.loss(x)
        model.loss(x)
    assert len(calls) == 3
    # with gradients enabled the prior is recomputed and differentiable
    loss, _ = model.loss(x)
    loss.backward()
    assert model.pseudoinputs.grad is not None and len(calls) == 4


def test_prepare_eval_is_a_noop_without_vampprior():
    model = make_model(dict(model="multvae"))
    assert model.prepare_eval() is None


def test_tensor_splits_lists_fused_tensors():
    plain = make_model(dict(model="multvae"))
    assert plain.tensor_splits() == {"q_z.weight": 2, "q_z.bias": 2}
    gated = make_model(dict(model="hvamp1", gated=True))
    splits = gated.tensor_splits()
    assert splits["q_z1_in.weight"] == 2 and splits["q_z2_in.bias"] == 2
    assert "decoder_out.weight" not in splits and "pseudoinputs" not in splits
    names = dict(gated.named_parameters())
    for name, chunks in splits.items():
        assert names[name].shape[-1] % chunks == 0


def test_parameter_count_matches_paper_spec_table():
    """PAPER_SPEC 2.9: Mult-VAE L=1 plain on ML-20M has 24.5M parameters, gated 36.7M."""
    for gated, expect in ((False, 24.5e6), (True, 36.7e6)):
        cfg = ModelConfig(model="multvae", n_items=20108, gated=gated)
        with torch.device("meta"):
            model = build_model(cfg)
        n = sum(p.numel() for p in model.parameters())
        assert abs(n - expect) < 0.05e6


@pytest.mark.parametrize("beta, exc, match", [
    ("0.3", TypeError, "beta must be a float, got str"),
    (True, TypeError, "beta must be a float, got bool"),
    (-0.1, ValueError, "beta must be finite and >= 0, got -0.1"),
    (math.nan, ValueError, "beta must be finite and >= 0, got nan"),
])
def test_loss_rejects_bad_beta(beta, exc, match):
    model = make_model(dict(model="multvae"))
    with pytest.raises(exc, match=match):
        model.loss(two_blocks(4), beta=beta)


def test_loss_accepts_tensor_beta():
    model = make_model(dict(model="multvae"))
    x = two_blocks(4)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.loss(x, beta=torch.tensor(0.5))[0],
                                   model.loss(x, beta=0.5)[0])


@pytest.mark.parametrize("case", MODELS, ids=ids)
def test_sparse_rows_input_equals_csr_input(case):
    from evcf_fast.models.layers import SparseRows

    model = make_model(case).eval()
    c = two_blocks(6).to_sparse_csr()
    rows = SparseRows.from_csr(c.crow_indices(), c.col_indices(), c.values(), n_cols=D)
    assert torch.equal(model.scores(rows), model.scores(c))
    with torch.no_grad():
        assert torch.equal(model.loss(rows)[0], model.loss(c)[0])


@pytest.mark.parametrize("case", MODELS, ids=ids)
def test_bf16_autocast_loss_is_close_to_float32(case):
    """Mixed precision: matmuls in bf16, likelihood and log-densities upcast to float32."""
    model = make_model(case).eval()
    x = two_blocks(8).to_sparse_csr()
    with torch.no_grad():
        ref = model.loss(x, beta=0.3)[0]
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            loss, stats = model.loss(x, beta=0.3)
    assert loss.dtype == torch.float32 and stats["nll"].dtype == torch.float32
    assert abs(loss.item() - ref.item()) < 0.05 * abs(ref.item())


def test_model_rejects_bad_batches():
    model = make_model(dict(model="vamp"))
    with pytest.raises(ValueError, match=r"expected \(batch, n_items=30\)"):
        model.loss(torch.zeros(3, 31))
    with pytest.raises(TypeError, match="expected torch.float32"):
        model.scores(torch.zeros(3, D, dtype=torch.float64))
    with pytest.raises(TypeError, match="dense tensor or a sparse CSR tensor"):
        model.scores(torch.zeros(3, D).to_sparse_coo())
