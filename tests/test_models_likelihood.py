"""Per-user log-likelihoods of evcf_fast.models.likelihood (issue 4), dense and CSR.

Oracle: the authors' utils/distributions.py formulas in float64, on the densified rows:
log_Softmax = sum x * log_softmax(l); log_Bernoulli with p = clamp(sigmoid(l), 1e-5, 1 - 1e-5).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evcf_fast.models.layers import as_rows
from evcf_fast.models.likelihood import bernoulli_log_lik, multinomial_log_lik

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta")


def oracle_multinomial(logits, x):
    lg = logits.astype(np.float64)
    lse = np.log(np.exp(lg - lg.max(1, keepdims=True)).sum(1)) + lg.max(1)
    return (x * (lg - lse[:, None])).sum(1)


def oracle_bernoulli(logits, x):
    p = np.clip(1 / (1 + np.exp(-logits.astype(np.float64))), 1e-5, 1 - 1e-5)
    return (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(1)


def torch_bernoulli(logits, x):
    p = torch.clamp(torch.sigmoid(logits), 1e-5, 1 - 1e-5)
    return (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(1)


def make(n, d, density, seed, scale):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, d, generator=g) < density).double()
    logits = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    return x, logits


FUNCS = {"multinomial": (multinomial_log_lik, oracle_multinomial),
         "bernoulli": (bernoulli_log_lik, oracle_bernoulli)}


@pytest.mark.parametrize("kind", sorted(FUNCS))
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), d=st.integers(1, 40), density=st.floats(0, 1),
       seed=st.integers(0, 9999), scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_log_lik_dense_and_sparse_match_oracle(kind, n, d, density, seed, scale):
    fn, oracle = FUNCS[kind]
    x, logits = make(n, d, density, seed, scale)
    ref = oracle(logits.numpy(), x.numpy())
    rows = as_rows(x.to_sparse_csr(), n_items=d, dtype=x.dtype, device=x.device)
    np.testing.assert_allclose(fn(logits, x).numpy(), ref, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(fn(logits, rows).numpy(), ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("kind", sorted(FUNCS))
@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_log_lik_gradients_sparse_equal_dense_reference(kind, scale):
    """Gradients w.r.t. the logits (clamp semantics included) equal the direct formula's."""
    x, logits = make(5, 30, 0.3, 11, scale)
    ref_fn = torch_bernoulli if kind == "bernoulli" else (
        lambda lg, xx: (torch.log_softmax(lg, 1) * xx).sum(1))
    fn = FUNCS[kind][0]
    w = torch.randn(5, dtype=torch.float64)
    a = logits.clone().requires_grad_(True)
    (ref_fn(a, x) * w).sum().backward()
    for inp in (x, as_rows(x.to_sparse_csr(), n_items=30, dtype=x.dtype, device=x.device)):
        b = logits.clone().requires_grad_(True)
        (fn(b, inp) * w).sum().backward()
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-10, atol=1e-12)


def test_bernoulli_clamp_hand_case():
    """Saturated logits hit the authors' clamp: log(1e-5) for a missed certain item."""
    logits = torch.tensor([[50.0, -50.0, 0.0]], dtype=torch.float64)
    x = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    expect = math.log(1e-5) + math.log(1 - 1e-5) + math.log(0.5)
    assert bernoulli_log_lik(logits, x).item() == pytest.approx(expect, rel=1e-12)


def test_multinomial_hand_case():
    logits = torch.log(torch.tensor([[1.0, 2.0, 5.0]], dtype=torch.float64))
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    expect = math.log(1 / 8) + math.log(5 / 8)
    assert multinomial_log_lik(logits, x).item() == pytest.approx(expect, rel=1e-12)


def test_bernoulli_float32_stays_close_to_float64():
    x, logits = make(8, 500, 0.05, 3, 8.0)
    ref = oracle_bernoulli(logits.numpy(), x.numpy())
    rows = as_rows(x.float().to_sparse_csr(), n_items=500, dtype=torch.float32,
                   device=x.device)
    got = bernoulli_log_lik(logits.float(), rows).double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_bernoulli_ranking_by_logits_keeps_order_that_float32_sigmoid_loses():
    """Models score by logits: same order as the authors' sigmoid probabilities, without the
    float32 saturation that makes large logits tie at p == 1.0."""
    logits = torch.tensor([[18.0, 20.0, 25.0, -3.0]])
    assert torch.unique(torch.sigmoid(logits)[0, :3]).numel() == 1      # float32 sigmoid ties
    by_logit = torch.argsort(logits[0], descending=True)
    by_prob64 = torch.argsort(torch.sigmoid(logits[0].double()), descending=True)
    assert torch.equal(by_logit, by_prob64)


@pytest.mark.parametrize("kind", sorted(FUNCS))
def test_half_precision_logits_are_upcast(kind):
    x, logits = make(4, 30, 0.3, 5, 3.0)
    fn = FUNCS[kind][0]
    got = fn(logits.to(torch.bfloat16), x.float())
    assert got.dtype == torch.float32
    ref = FUNCS[kind][1](logits.to(torch.bfloat16).double().numpy(), x.numpy())
    np.testing.assert_allclose(got.double().numpy(), ref, rtol=1e-5)
