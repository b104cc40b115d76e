"""The torch path of evaluate() (backend="torch", CPU tensors here; CUDA where available).

Checked against the float64 oracle of tests/test_metrics_oracle.py on the same cases as the
Numba kernel, ties and -inf included: the torch path repairs torch.topk's arbitrary choice among
tied values, so it is exact everywhere, not only on tie-free data.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_oracle import ALL_METRICS, assert_close, csr, oracle

torch = pytest.importorskip("torch")

from evcf_fast.metrics import DeviceCSR, EvaluationResult, evaluate  # noqa: E402
from evcf_fast.metrics.torch_path import masked_topk_torch  # noqa: E402

CUDA = torch.cuda.is_available()


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 30),
       st.sampled_from(["continuous", "ties", "inf"]), st.sampled_from(["min", "heldout"]))
def test_torch_path_matches_oracle(seed, n_users, n_items, kind, denominator):
    rng = np.random.default_rng(seed)
    if kind == "continuous":
        s = rng.standard_normal((n_users, n_items))
    elif kind == "ties":
        s = rng.integers(0, 3, (n_users, n_items)).astype(np.float64)
    else:
        s = rng.choice([-np.inf, np.inf, 0.0, 1.0], (n_users, n_items))
    p_ex = rng.choice([0.0, 0.4, 1.0])
    ex = [np.flatnonzero(rng.random(n_items) < p_ex).tolist() for _ in range(n_users)]
    ho = [np.flatnonzero(rng.random(n_items) < 0.4).tolist() for _ in range(n_users)]
    if not any(ho):
        ho[0] = [n_items - 1]
    metrics = list(dict.fromkeys(f"{m}@{rng.integers(1, n_items + 1)}" for m in ALL_METRICS))
    res = evaluate(torch.from_numpy(s), csr(ho, n_items), exclude=csr(ex, n_items),
                   metrics=metrics, recall_denominator=denominator, backend="torch")
    assert_close(res.per_user, oracle(s, ho, ex, metrics, recall_denominator=denominator))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_path_large_rows_with_ties_and_blocks(dtype):
    rng = np.random.default_rng(4)
    n_users, n_items = 30, 3000
    s = rng.integers(0, 6, (n_users, n_items)).astype(np.float64)
    s[:5, :] = -np.inf  # whole rows of -inf: excluded items must not take their places
    ex = [rng.choice(n_items, 60, replace=False).tolist() for _ in range(n_users)]
    ho = [rng.choice(n_items, 15, replace=False).tolist() for _ in range(n_users)]
    metrics = ("ndcg@100", "recall@20", "recall@50", "map@100", "mrr@30", "precision@5")
    want = oracle(s, ho, ex, metrics)
    for batch in (7, None):
        res = evaluate(torch.from_numpy(s).to(dtype), csr(ho, n_items),
                       exclude=csr(ex, n_items), metrics=metrics, backend="torch",
                       batch_size=batch)
        assert_close(res.per_user, want)


def test_half_precision_cpu_tensor_goes_to_torch_path():
    s = torch.tensor([[0.5, 0.25, 1.0], [1.0, 1.0, 1.0]], dtype=torch.bfloat16)
    res = evaluate(s, csr([[2], [1]], 3), metrics=("mrr@3",))  # backend="auto"
    np.testing.assert_allclose(res.per_user["mrr@3"], [1.0, 0.5])


def test_torch_backend_on_numpy_and_npy_path(tmp_path):
    rng = np.random.default_rng(2)
    s = rng.standard_normal((20, 50)).astype(np.float32)
    ho = [rng.choice(50, 5, replace=False).tolist() for _ in range(20)]
    np.save(tmp_path / "s.npy", s)
    want = oracle(s, ho, None, ("ndcg@10", "recall@5"))
    for src in (s, tmp_path / "s.npy"):
        res = evaluate(src, csr(ho, 50), metrics=("ndcg@10", "recall@5"), backend="torch",
                       batch_size=6)
        assert_close(res.per_user, want)


def test_torch_nan_policy():
    s = torch.tensor([[1.0, float("nan"), 0.0], [1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"scores contain NaN in 1 of 2 rows \(first: row 0\)"):
        evaluate(s, csr([[1], [0]], 3), metrics=("ndcg@2",), backend="torch")
    res = evaluate(s, csr([[1], [0]], 3), metrics=("mrr@3",), backend="torch",
                   nan_policy="neg_inf")
    np.testing.assert_allclose(res.per_user["mrr@3"], [1 / 3, 1 / 3])
    # NaN at an excluded item does not count
    res = evaluate(s, csr([[0], [0]], 3), exclude=csr([[1], []], 3), metrics=("mrr@3",),
                   backend="torch")
    np.testing.assert_allclose(res.per_user["mrr@3"], [1.0, 1 / 3])


def test_masked_topk_torch_is_exact_with_ties_and_exclusion():
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0], [-float("inf")] * 5])
    ex = DeviceCSR.from_scipy(csr([[0], [1, 3]], 5))
    xm = x.clone()
    xm[ex.row_indices(), ex.col.long()] = -float("inf")
    items, valid = masked_topk_torch(xm, ex, 4)
    assert items[0].tolist() == [1, 2, 3, 4] and valid[0].all()
    assert items[1, :3].tolist() == [0, 2, 4] and valid[1].tolist() == [True] * 3 + [False]


def test_device_csr_roundtrip_rows_and_errors():
    m = csr([[1, 3], [], [0, 2, 4]], 5)
    d = DeviceCSR.from_scipy(m, "cpu")
    assert d.shape == (3, 5) and d.nnz == 5 and d.device.type == "cpu"
    assert d.col.dtype == torch.int32 and d.crow.dtype == torch.int64
    assert "DeviceCSR(shape=(3, 5), nnz=5" in repr(d)
    blk = d.rows(1, 3)
    assert blk.shape == (2, 5) and blk.crow.tolist() == [0, 0, 3]
    assert blk.to_dense_mask().tolist() == [[False] * 5, [True, False, True, False, True]]
    d64 = DeviceCSR.from_scipy(csr([[1]], 5, index_dtype=np.int64))
    assert d64.col.dtype == torch.int64
    with pytest.raises(ValueError, match=r"row block \[2, 5\) is outside \[0, 3\]"):
        d.rows(2, 5)
    with pytest.raises(TypeError, match="csr must be a scipy.sparse CSR matrix/array"):
        DeviceCSR.from_scipy(m.toarray())
    with pytest.raises(TypeError, match="csr is CSC, expected CSR"):
        DeviceCSR.from_scipy(m.tocsc())
    bad = sp.csr_matrix((np.ones(2), np.array([3, 1]), np.array([0, 2])), shape=(1, 5))
    with pytest.raises(ValueError, match="csr has unsorted or duplicate column indices"):
        DeviceCSR.from_scipy(bad)


def test_device_csr_blocks_like_a_training_loop():
    """Trainer usage: CPU score blocks with DeviceCSR row blocks (Numba path and torch path),
    concatenated, equal the one-shot evaluation."""
    rng = np.random.default_rng(5)
    s = rng.standard_normal((23, 40)).astype(np.float32)
    ho = [rng.choice(40, 4, replace=False).tolist() for _ in range(23)]
    ex = [rng.choice(40, 6, replace=False).tolist() for _ in range(23)]
    held, fold = DeviceCSR.from_scipy(csr(ho, 40)), DeviceCSR.from_scipy(csr(ex, 40))
    want = oracle(s, ho, ex, ("ndcg@10", "recall@5"))
    for backend in ("auto", "torch"):
        parts = [evaluate(torch.from_numpy(s[a:b]), held.rows(a, b), exclude=fold.rows(a, b),
                          metrics=("ndcg@10", "recall@5"), backend=backend)
                 for a, b in ((0, 10), (10, 20), (20, 23))]
        assert_close(EvaluationResult.concat(parts).per_user, want)


def test_torch_path_input_errors():
    h = csr([[0], [1]], 3)
    with pytest.raises(TypeError, match="scores must be a floating-point tensor, got torch.int64"):
        evaluate(torch.zeros((2, 3), dtype=torch.int64), h, metrics=("ndcg@1",))
    with pytest.raises(ValueError, match=r"scores must be 2-D"):
        evaluate(torch.zeros(3), h, metrics=("ndcg@1",), backend="torch")
    with pytest.raises(ValueError, match=r"scores is empty"):
        evaluate(torch.zeros((0, 3)), csr([], 3), metrics=("ndcg@1",), backend="torch")
    with pytest.raises(ValueError, match=r"heldout has shape \(2, 3\), expected \(2, 4\)"):
        evaluate(torch.zeros((2, 4)), h, metrics=("ndcg@1",), backend="torch")
    with pytest.raises(ValueError, match=r"heldout has shape \(2, 3\), expected \(2, 4\)"):
        evaluate(torch.zeros((2, 4)), DeviceCSR.from_scipy(h), metrics=("ndcg@1",),
                 backend="torch")
    with pytest.raises(TypeError, match="exclude is COO, expected CSR"):
        evaluate(torch.zeros((2, 3)), h, exclude=h.tocoo(), metrics=("ndcg@1",),
                 backend="torch")
    with pytest.raises(TypeError, match="heldout must be a scipy.sparse CSR matrix/array or a "
                                        "DeviceCSR"):
        evaluate(torch.zeros((2, 3)), [[0]], metrics=("ndcg@1",), backend="torch")
    with pytest.raises(ValueError, match=r"k must be in \[1, n_items=3\]"):
        evaluate(torch.zeros((2, 3)), h, metrics=("ndcg@4",), backend="torch")
    with pytest.raises(ValueError, match="heldout has no items"):
        evaluate(torch.zeros((2, 3)), csr([[], []], 3), metrics=("ndcg@1",), backend="torch")
    with pytest.raises(ValueError, match="scores must be C-contiguous"):
        evaluate(torch.zeros((3, 2)).T, h, metrics=("ndcg@1",), backend="numba")


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_cuda_matches_numba_and_rejects_mixed_devices():
    rng = np.random.default_rng(8)
    s = rng.integers(0, 7, (300, 2500)).astype(np.float32)  # ties everywhere
    ho = [rng.choice(2500, 12, replace=False).tolist() for _ in range(300)]
    ex = [rng.choice(2500, 50, replace=False).tolist() for _ in range(300)]
    metrics = ("ndcg@100", "recall@20", "recall@50", "map@50", "mrr@10")
    cpu = evaluate(s, csr(ho, 2500), exclude=csr(ex, 2500), metrics=metrics)
    x = torch.from_numpy(s).cuda()
    gpu = evaluate(x, DeviceCSR.from_scipy(csr(ho, 2500), "cuda"),
                   exclude=DeviceCSR.from_scipy(csr(ex, 2500), "cuda"), metrics=metrics)
    assert_close(gpu.per_user, cpu.per_user)
    gpu2 = evaluate(x, csr(ho, 2500), exclude=csr(ex, 2500), metrics=metrics)  # uploads
    assert_close(gpu2.per_user, cpu.per_user)
    with pytest.raises(ValueError, match="heldout is a DeviceCSR on cpu but the scores are on"):
        evaluate(x, DeviceCSR.from_scipy(csr(ho, 2500)), metrics=metrics)
    with pytest.raises(ValueError, match="the numba backend needs host memory"):
        evaluate(x, csr(ho, 2500), metrics=metrics, backend="numba")
    with pytest.raises(ValueError, match="heldout is a DeviceCSR on cuda"):
        evaluate(s, DeviceCSR.from_scipy(csr(ho, 2500), "cuda"), metrics=metrics)


def test_device_csr_from_read_only_arrays_copies_without_warning():
    """Memory-mapped datasets are read-only; uploading them must neither warn nor alias them."""
    import warnings

    indices = np.array([0, 2, 1], dtype=np.int32)
    indices.flags.writeable = False
    csr = sp.csr_matrix((np.ones(3, np.float32), indices, np.array([0, 2, 3])), shape=(2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dev = DeviceCSR.from_scipy(csr, "cpu")
    assert dev.col.tolist() == [0, 2, 1] and dev.crow.tolist() == [0, 2, 3]
