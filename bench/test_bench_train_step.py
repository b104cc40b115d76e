"""One training step (forward + backward + Adam step) on the CPU at ML-20M shape, sparse (CSR)
versus dense first layers, for Mult-VAE and H+Vamp (Gated) (issue 4; PAPER_SPEC 7).

Full size: batch 500, D = 20,108 items, ~73 nonzeros per row (popularity-skewed), H = 600,
z = 200, K = 1000 pseudo-inputs. Quick mode (--benchmark-disable): D = 2,000, batch 64, K = 50.
The dense variant is the same model fed the densified batch, so the pair isolates the first
layers (two GLU layers for H+Vamp); the pseudo-input pass is dense in both. The optimizer is
fused Adam in both.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from evcf_fast.models import ModelConfig, build_model

pytestmark = pytest.mark.benchmark(group="train-step")

MODELS = {
    "multvae": dict(model="multvae"),
    "hvamp-gated": dict(model="hvamp", num_layers=2, gated=True),
}


@pytest.fixture(scope="module")
def shape(bench_quick):
    if bench_quick:
        return dict(batch=64, n_items=2_000, nnz_per_row=73, n_components=50)
    return dict(batch=500, n_items=20_108, nnz_per_row=73, n_components=1000)


@pytest.fixture(scope="module")
def batch(shape):
    """A CSR batch whose columns follow a Zipf-like popularity, as real interaction rows do."""
    g = torch.Generator().manual_seed(0)
    n, d, k = shape["batch"], shape["n_items"], shape["nnz_per_row"]
    popularity = 1.0 / torch.arange(1, d + 1, dtype=torch.float64) ** 0.8
    cols = torch.multinomial(popularity.expand(n, d), k, replacement=False, generator=g)
    cols = cols.sort(dim=1).values.reshape(-1)
    crow = torch.arange(0, n * k + 1, k, dtype=torch.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = torch.sparse_csr_tensor(crow, cols, torch.ones(n * k), size=(n, d))
    return x


def make_adam(params):
    """Fused Adam where this torch has it for the device (CPU since 2.4; 10x the for-loop)."""
    try:
        return torch.optim.Adam(params, lr=1e-3, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=1e-3, foreach=True)


def make_step(model, opt, x):
    def step():
        loss, _ = model.loss(x, beta=0.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


@pytest.mark.parametrize("layout", ["sparse", "dense"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_train_step(benchmark, bench_quick, shape, batch, name, layout):
    cfg = ModelConfig(n_items=shape["n_items"], n_components=shape["n_components"],
                      **MODELS[name])
    torch.manual_seed(0)
    model = build_model(cfg)
    x = batch if layout == "sparse" else batch.to_dense()
    # the two layouts compute the same function: check on the untrained weights (eval mode)
    model.eval()
    with torch.no_grad():
        ref = model.loss(batch, beta=0.2)[0]
        got = model.loss(x, beta=0.2)[0]
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-4)
    model.train()
    opt = make_adam(list(model.parameters()))
    before = model.decoder_out.weight.detach().clone()
    step = make_step(model, opt, x)
    rounds = 1 if bench_quick else 5
    loss = benchmark.pedantic(step, rounds=rounds, warmup_rounds=0 if bench_quick else 1,
                              iterations=1)
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.decoder_out.weight)  # the step updated the model
    if layout == "dense":  # the authors' dense first layer: the in-run baseline of "sparse"
        benchmark.extra_info.update(role="baseline",
                                    baseline_for=f"test_train_step[{name}-sparse]")
    benchmark.extra_info.update(model=name, layout=layout, threads=torch.get_num_threads(),
                                **shape, hidden_size=cfg.hidden_size,
                                latent_size=cfg.latent_size)
