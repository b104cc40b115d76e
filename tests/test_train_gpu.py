"""The trainer on CUDA (run by tools/gpu_bench.sh through ``pytest -m gpu``; skipped elsewhere).

No polars here: the GPU machine does not have it, so the data is built with NumPy/SciPy.
CUDA kernels with atomic adds (embedding-bag backward, index_add) are not bit-reproducible run to
run, so CUDA-vs-CUDA comparisons use tolerances; exactness of resume is tested on the CPU.
"""

import numpy as np
import pytest
import torch
from _train_data import clustered_split, one_torch_thread  # noqa: F401 (autouse)

from evcf_fast.models import ModelConfig
from evcf_fast.train import TrainConfig, fit
from evcf_fast.train import checkpoint as ckpt
from evcf_fast.train.batches import DeviceRows, EpochBatches, gather_rows
from evcf_fast.train.evaluation import EvalPart, evaluate_part
from evcf_fast.train.optim import AdamNormGrad

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

N_ITEMS = 150


@pytest.fixture(scope="module")
def data():
    return clustered_split(n_items=N_ITEMS, n_train=600, n_heldout=80)


def _model(name):
    if name == "multvae":
        return ModelConfig(model="multvae", n_items=N_ITEMS, hidden_size=32, latent_size=8)
    return ModelConfig(model="hvamp", n_items=N_ITEMS, hidden_size=32, latent_size=8,
                       latent2_size=8, num_layers=2, gated=True, n_components=20)


@pytest.mark.parametrize("name", ["multvae", "hvamp-gated"])
@pytest.mark.parametrize("optimizer", ["adam", "adamnormgrad"])
@pytest.mark.parametrize("bf16", [False, True])
def test_fit_on_cuda(data, tmp_path, name, optimizer, bf16):
    cfg = TrainConfig(epochs=3, batch_size=100, device="cuda", optimizer=optimizer, lr=3e-3,
                      bf16=bf16, tf32=bf16, warmup=0, max_beta=0.2, eval_batch_size=50)
    before = torch.get_float32_matmul_precision()
    res = fit(data, model_config=_model(name), train_config=cfg, out=tmp_path / "run",
              progress=False)
    assert torch.get_float32_matmul_precision() == before  # TF32 setting restored
    assert next(res.model.parameters()).device.type == "cuda"
    assert all(np.isfinite(r["loss"]) for r in res.history)
    assert 0 < res.test.mean["ndcg@100"] <= 1
    # a CUDA checkpoint loads on the CPU and scores like the CUDA model
    model, _ = ckpt.load_model(tmp_path / "run", device="cpu")
    x = torch.from_numpy(data.test_fold_in[:10].toarray())
    torch.testing.assert_close(model.scores(x), res.model.scores(x.cuda()).cpu(), rtol=1e-4,
                               atol=1e-5)


def test_gather_on_cuda_equals_scipy(data):
    rows = DeviceRows(data.train, "cuda")
    idx = torch.tensor([5, 0, 599, 5, 17], device="cuda")
    crow, col = gather_rows(rows.crow, rows.col, idx)
    expected = data.train[idx.cpu().numpy()]
    np.testing.assert_array_equal(crow.cpu().numpy(), expected.indptr)
    np.testing.assert_array_equal(col.cpu().numpy(), expected.indices)
    g = torch.Generator(device="cuda").manual_seed(0)
    seen = []
    for x, ids in EpochBatches.shuffled(rows, batch_size=64, generator=g):
        assert x.device.type == "cuda"
        np.testing.assert_array_equal(x.to_dense().cpu().numpy(),
                                      data.train[ids.cpu().numpy()].toarray())
        seen += ids.tolist()
    assert sorted(seen) == list(range(600))


def test_adamnormgrad_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    theta = [rng.normal(size=(40, 30)).astype(np.float32), rng.normal(size=30).astype(np.float32)]
    grads = [[rng.normal(size=t.shape).astype(np.float32) for t in theta] for _ in range(5)]
    out = {}
    for dev in ("cpu", "cuda"):
        ps = [torch.nn.Parameter(torch.tensor(t, device=dev)) for t in theta]
        opt = AdamNormGrad(ps, lr=1e-3)
        for step in grads:
            for p, g in zip(ps, step):
                p.grad = torch.tensor(g, device=dev)
            opt.step()
        out[dev] = [p.detach().cpu() for p in ps]
    for a, b in zip(out["cpu"], out["cuda"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_validation_on_cuda_matches_cpu(data):
    res = fit(data, model_config=_model("hvamp-gated"), progress=False, evaluate_test=False,
              train_config=TrainConfig(epochs=1, batch_size=100, device="cuda",
                                       eval_batch_size=30))
    gpu = evaluate_part(res.model, EvalPart(*data.part("test"), "cuda"), metrics=("ndcg@100",),
                        batch_size=30)
    cpu_model = res.model.to("cpu")
    cpu = evaluate_part(cpu_model, EvalPart(*data.part("test"), "cpu"), metrics=("ndcg@100",),
                        batch_size=80)
    np.testing.assert_allclose(gpu.per_user["ndcg@100"], cpu.per_user["ndcg@100"], atol=1e-3)


def test_resume_on_cuda_continues(data, tmp_path):
    cfg = TrainConfig(epochs=4, batch_size=100, device="cuda", lr=3e-3, eval_batch_size=80)
    full = fit(data, model_config=_model("multvae"), train_config=cfg, out=tmp_path / "a",
               progress=False)

    def kill(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(data, model_config=_model("multvae"), train_config=cfg, out=tmp_path / "b",
            progress=False, on_epoch=kill)
    resumed = fit(data, model_config=_model("multvae"), train_config=cfg, out=tmp_path / "b",
                  resume=True, progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(full.history, resumed.history):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-3)
