"""Layers of evcf_fast.models (issue 4): input batches, sparse-input layer, fused GLU, heads.

Oracles are float64 NumPy/PyTorch computations written here from PAPER_SPEC 2.1 (the authors'
``NonLinear``: ``(Wx+b) * sigmoid(Vx+c)`` with two separate matrices, tanh otherwise).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from evcf_fast.models import layers
from evcf_fast.models.layers import (
    Dense,
    GaussianHead,
    SparseRows,
    as_rows,
    dropout_rows,
    normalize_rows,
)

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def random_binary(n_rows, n_cols, density, seed, dtype=torch.float32, empty_row=True):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n_rows, n_cols, generator=g) < density).to(dtype)
    if empty_row and n_rows > 1:
        x[1] = 0  # a user without interactions must not break anything
    return x


def rows_of(x, dtype=None):
    return as_rows(x, n_items=x.shape[1], dtype=dtype or x.dtype, device=x.device)


# -- as_rows -----------------------------------------------------------------------------------


def test_as_rows_sparse_parts_match_csr():
    x = random_binary(5, 11, 0.3, 0)
    r = rows_of(x.to_sparse_csr())
    assert isinstance(r, SparseRows)
    assert (r.n_rows, r.n_cols) == (5, 11)
    expect_row, expect_col = torch.nonzero(x, as_tuple=True)
    assert torch.equal(r.row, expect_row) and torch.equal(r.col, expect_col)
    assert torch.equal(r.to_dense(), x)


def test_sparse_rows_from_csr_parts_equals_csr_tensor():
    x = random_binary(5, 11, 0.3, 2)
    c = x.to_sparse_csr()
    a = SparseRows.from_csr(c.crow_indices(), c.col_indices(), c.values(), n_cols=11)
    b = rows_of(c)
    for f in ("crow", "col", "values", "row", "n_rows", "n_cols"):
        assert torch.equal(torch.as_tensor(getattr(a, f)), torch.as_tensor(getattr(b, f)))
    assert as_rows(a, n_items=11, dtype=torch.float32, device=torch.device("cpu")) is a


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(n_items=12), ValueError, r"x has shape \(5, 11\), expected \(batch, n_items=12\)"),
    (dict(dtype=torch.float64), TypeError, "x has dtype torch.float32, expected torch.float64"),
])
def test_as_rows_checks_sparse_rows(kwargs, exc, match):
    c = random_binary(5, 11, 0.3, 2).to_sparse_csr()
    rows = SparseRows.from_csr(c.crow_indices(), c.col_indices(), c.values(), n_cols=11)
    args = dict(n_items=11, dtype=torch.float32, device=torch.device("cpu"))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        as_rows(rows, **args)


def test_as_rows_dense_passthrough():
    x = random_binary(3, 7, 0.5, 1)
    assert rows_of(x) is x


@pytest.mark.parametrize("bad, exc, match", [
    (np.zeros((2, 4), dtype=np.float32), TypeError, "x must be a torch.Tensor .* or SparseRows"),
    (torch.zeros(2, 4).to_sparse_coo(), TypeError, "dense tensor or a sparse CSR tensor"),
    (torch.zeros(2, 5), ValueError, r"expected \(batch, n_items=4\)"),
    (torch.zeros(4), ValueError, r"expected \(batch, n_items=4\)"),
    (torch.zeros(0, 4), ValueError, "x has no rows"),
    (torch.zeros(2, 4, dtype=torch.float64), TypeError, "expected torch.float32"),
    (torch.zeros(2, 4, device="meta"), ValueError, "x is on meta, expected cpu"),
])
def test_as_rows_rejects(bad, exc, match):
    with pytest.raises(exc, match=match):
        as_rows(bad, n_items=4, dtype=torch.float32, device=torch.device("cpu"))


# -- normalisation and dropout -------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(n_rows=st.integers(1, 6), n_cols=st.integers(1, 30), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 10_000))
def test_normalize_rows_sparse_equals_dense(n_rows, n_cols, density, seed):
    x = random_binary(n_rows, n_cols, density, seed, dtype=torch.float64)
    x = x * torch.rand(n_rows, n_cols, dtype=torch.float64)  # non-binary values too
    dense = normalize_rows(x)
    sparse = normalize_rows(rows_of(x.to_sparse_csr())).to_dense()
    norms = np.sqrt((x.numpy() ** 2).sum(1, keepdims=True))
    oracle = x.numpy() / np.maximum(norms, 1e-12)
    np.testing.assert_allclose(dense.numpy(), oracle, rtol=1e-12, atol=0)
    np.testing.assert_allclose(sparse.numpy(), oracle, rtol=1e-12, atol=0)


def test_dropout_rows_sparse_uses_dense_mask_at_nonzeros(monkeypatch):
    """With the dense mask M, the CSR path must drop exactly M at the nonzero positions."""
    x = random_binary(4, 9, 0.4, 3)
    mask = (torch.rand(4, 9, generator=torch.Generator().manual_seed(9)) < 0.5).float()
    rows_, cols_ = torch.nonzero(x, as_tuple=True)

    def fake_dropout(t, p):
        m = mask if t.dim() == 2 else mask[rows_, cols_]
        return t * m / (1 - p)

    monkeypatch.setattr(layers, "dropout", fake_dropout)
    dense = dropout_rows(x, 0.5, training=True)
    sparse = dropout_rows(rows_of(x.to_sparse_csr()), 0.5, training=True).to_dense()
    torch.testing.assert_close(dense, x * mask * 2, rtol=0, atol=0)
    torch.testing.assert_close(sparse, dense, rtol=0, atol=0)


def test_dropout_rows_real_masks_are_inverted_dropout():
    """Survivors are scaled by 1/(1-p); the kept fraction is Binomial(n, 1-p) (5-sigma bounds)."""
    torch.manual_seed(0)
    x = torch.ones(200, 100)
    r = dropout_rows(rows_of(x.to_sparse_csr()), 0.3, training=True)
    vals = r.values
    kept_vals = vals[vals != 0]
    torch.testing.assert_close(kept_vals, torch.full_like(kept_vals, 1 / 0.7))
    n = vals.numel()
    kept = (vals != 0).sum().item()
    assert abs(kept - 0.7 * n) < 5 * math.sqrt(n * 0.7 * 0.3)


def test_dropout_rows_is_identity_when_off():
    x = random_binary(3, 5, 0.5, 4)
    assert dropout_rows(x, 0.5, training=False) is x
    assert dropout_rows(x, 0.0, training=True) is x


# -- Dense (tanh / fused GLU / affine) ------------------------------------------------------------


def oracle_nonlinear(x, weight, bias, activation):
    """Authors' NonLinear in float64 NumPy: two separate Linear maps when gated."""
    x, weight, bias = (np.asarray(t, dtype=np.float64) for t in (x, weight, bias))
    if activation == "glu":
        h = weight.shape[1] // 2
        lin = x @ weight[:, :h] + bias[:h]
        gate = 1.0 / (1.0 + np.exp(-(x @ weight[:, h:] + bias[h:])))
        return lin * gate
    out = x @ weight + bias
    return np.tanh(out) if activation == "tanh" else out


@pytest.mark.parametrize("activation", ["tanh", "glu", None])
@pytest.mark.parametrize("sparse", [False, True])
def test_dense_layer_matches_oracle(activation, sparse):
    torch.manual_seed(1)
    layer = Dense(13, 6, activation=activation).double()
    x = random_binary(5, 13, 0.4, 5, dtype=torch.float64) * 0.7
    inp = rows_of(x.to_sparse_csr()) if sparse else x
    out = layer(inp)
    assert out.shape == (5, 6)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    np.testing.assert_allclose(out.detach().numpy(), oracle_nonlinear(x, w, b, activation),
                               rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("activation", ["tanh", "glu"])
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_sparse_and_dense_first_layer_agree_with_gradients(activation, dtype, tol):
    torch.manual_seed(2)
    layer = Dense(40, 8, activation=activation).to(dtype)
    x = random_binary(6, 40, 0.2, 6, dtype=dtype)
    g_out = torch.randn(6, 8, dtype=dtype)
    grads = []
    for inp in (x, rows_of(x.to_sparse_csr())):
        layer.zero_grad()
        out = layer(inp)
        (out * g_out).sum().backward()
        grads.append((out.detach(), layer.weight.grad.clone(), layer.bias.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    # and the weight gradient is the float64 oracle x^T (dL/dpre)
    w = layer.weight.detach().double().numpy()
    b = layer.bias.detach().double().numpy()
    xx = x.double().numpy()
    pre = xx @ w + b
    go = g_out.double().numpy()
    if activation == "glu":
        h = w.shape[1] // 2
        s = 1 / (1 + np.exp(-pre[:, h:]))
        d_pre = np.concatenate([go * s, go * pre[:, :h] * s * (1 - s)], axis=1)
    else:
        d_pre = go * (1 - np.tanh(pre) ** 2)
    np.testing.assert_allclose(grads[1][1].double().numpy(), xx.T @ d_pre, rtol=tol * 10,
                               atol=tol)


@pytest.mark.parametrize("sparse", [False, True])
def test_dense_layer_with_extra_input_equals_linear_over_concatenation(sparse):
    """H+Vamp-1layer's q(z1|x, z2) layer: one weight over [x, z2], x part sparse-capable."""
    torch.manual_seed(3)
    layer = Dense(20 + 3, 5, activation="glu", n_dense=3).double()
    x = random_binary(4, 20, 0.3, 7, dtype=torch.float64)
    z2 = torch.randn(4, 3, dtype=torch.float64)
    inp = rows_of(x.to_sparse_csr()) if sparse else x
    out = layer(inp, z2)
    expect = oracle_nonlinear(torch.cat([x, z2], 1), layer.weight.detach(),
                              layer.bias.detach(), "glu")
    np.testing.assert_allclose(out.detach().numpy(), expect, rtol=1e-12, atol=1e-14)


def test_he_init_statistics():
    """He-normal weights N(0, sqrt(2/fan_in)) per half, PyTorch default uniform biases."""
    torch.manual_seed(4)
    layer = Dense(400, 300, activation="glu")
    assert layer.weight.shape == (400, 600) and layer.bias.shape == (600,)
    std = math.sqrt(2 / 400)
    n = layer.weight.numel() // 2
    for half in layer.weight.detach().chunk(2, dim=1):
        assert abs(half.mean().item()) < 5 * std / math.sqrt(n)
        assert abs(half.std().item() / std - 1) < 0.01
    bound = 1 / math.sqrt(400)
    assert layer.bias.abs().max().item() <= bound
    assert layer.bias.abs().max().item() > 0.9 * bound


def test_xavier_init_bounds():
    torch.manual_seed(5)
    layer = Dense(50, 30, activation="tanh", init="xavier")
    bound = math.sqrt(6 / (50 + 30))
    assert layer.weight.abs().max().item() <= bound
    assert layer.weight.abs().max().item() > 0.95 * bound
    assert layer.bias.abs().max().item() <= 2e-3


def test_dense_rejects_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        Dense(3, 4, activation="relu")


# -- heads --------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", [(-12.0, 4.0), (-0.1, 0.1), None])
def test_gaussian_head(clip):
    torch.manual_seed(6)
    head = GaussianHead(7, 3, logvar_clip=clip).double()
    h = torch.randn(5, 7, dtype=torch.float64) * 10
    mu, logvar = head(h)
    full = h.numpy() @ head.weight.detach().numpy() + head.bias.detach().numpy()
    np.testing.assert_allclose(mu.detach().numpy(), full[:, :3], rtol=1e-12)
    expect_lv = full[:, 3:] if clip is None else np.clip(full[:, 3:], *clip)
    np.testing.assert_allclose(logvar.detach().numpy(), expect_lv, rtol=1e-12)


def test_reparameterize_uses_noise_and_mean_in_eval(monkeypatch):
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    eps = torch.randn(4, 3)
    monkeypatch.setattr(layers, "standard_normal", lambda like: eps)
    torch.testing.assert_close(layers.reparameterize(mu, logvar, sample=True),
                               mu + torch.exp(0.5 * logvar) * eps)
    assert layers.reparameterize(mu, logvar, sample=False) is mu


def test_glu_matches_f_linear_layout():
    """The fused weight is W|V side by side: same output as two nn.Linear layers."""
    torch.manual_seed(7)
    layer = Dense(9, 4, activation="glu")
    lin, gate = torch.nn.Linear(9, 4), torch.nn.Linear(9, 4)
    with torch.no_grad():
        lin.weight.copy_(layer.weight[:, :4].T)
        gate.weight.copy_(layer.weight[:, 4:].T)
        lin.bias.copy_(layer.bias[:4])
        gate.bias.copy_(layer.bias[4:])
    x = torch.randn(3, 9)
    torch.testing.assert_close(layer(x), lin(x) * torch.sigmoid(gate(x)))
    torch.testing.assert_close(F.glu(torch.cat([lin(x), gate(x)], 1)), layer(x))
