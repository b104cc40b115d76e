"""Fitting the closed-form baselines (issue 12) against the direct NumPy float64 implementations
of their definitions, in the same run.

Full size: an ml-1m-shaped matrix (4,834 users x 3,497 items, ~96 items per user with a
Zipf-like popularity). Quick mode (--benchmark-disable): 600 x 400. EASE: our Cholesky solve in
float64 and float32 (torch, CPU) against ``np.linalg.inv`` of the float64 Gram matrix; ItemKNN
(k = 100, shrink 10): our blocked sparse similarity with a stable top-k against the dense
float64 similarity matrix and a full ``argsort``. The results are checked against the reference
before timing.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from evcf_fast.models import ModelConfig, build_model
from evcf_fast.models.baselines import knn_neighbours

pytestmark = pytest.mark.benchmark(group="baselines")
ROUNDS = 3  # seconds per fit at full size: a few rounds, no warm-up (nothing to compile)


def timed(benchmark, bench_quick, fn, *args, **kwargs):
    return benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=1 if bench_quick else ROUNDS,
                              iterations=1, warmup_rounds=0)


@pytest.fixture(scope="module")
def train(bench_quick):
    users, items, per_user = (600, 400, 30) if bench_quick else (4_834, 3_497, 96)
    rng = np.random.default_rng(0)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    rows = [np.sort(rng.choice(items, size=per_user, replace=False, p=popularity))
            for _ in range(users)]
    indptr = np.arange(0, users * per_user + 1, per_user)
    return sp.csr_matrix((np.ones(users * per_user), np.concatenate(rows), indptr),
                         shape=(users, items))


def ease_reference(x, lam):
    g = (x.T @ x).toarray() + lam * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def knn_reference(x, k, shrink):
    c = (x.T @ x).toarray()
    n = np.diag(c).copy()
    sim = c / (np.sqrt(np.outer(n, n)) + shrink)
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sim, order, axis=1)


@pytest.mark.parametrize("impl", ["ours-float64", "ours-float32", "numpy-inv-float64"])
def test_fit_ease(benchmark, bench_quick, train, impl):
    lam = 500.0
    ref = ease_reference(train, lam)
    benchmark.extra_info.update(n_users=train.shape[0], n_items=train.shape[1], impl=impl)
    if impl.startswith("numpy"):
        benchmark.extra_info.update(role="baseline")
        out = timed(benchmark, bench_quick, ease_reference, train, lam)
        np.testing.assert_allclose(out, ref)
        return
    dtype = impl.split("-")[1]
    cfg = ModelConfig(model="ease", n_items=train.shape[1], ease_lambda=lam, fit_dtype=dtype)
    model = timed(benchmark, bench_quick, lambda: build_model(cfg).fit(train))
    tol = 1e-6 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(model.weight.numpy(), ref, atol=tol, rtol=tol)


@pytest.mark.parametrize("impl", ["ours", "numpy-dense-float64"])
def test_fit_itemknn(benchmark, bench_quick, train, impl):
    k, shrink = 100, 10.0
    ref_index, ref_value = knn_reference(train, k, shrink)
    benchmark.extra_info.update(n_users=train.shape[0], n_items=train.shape[1], k=k, impl=impl)
    if impl.startswith("numpy"):
        benchmark.extra_info.update(role="baseline")
        index, value = timed(benchmark, bench_quick, knn_reference, train, k, shrink)
    else:
        index, value = timed(benchmark, bench_quick, knn_neighbours, train, k=k, shrink=shrink)
    np.testing.assert_array_equal(index, ref_index)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
