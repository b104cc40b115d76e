"""Calibration workloads timed in every session (group "calibration").

`evcf bench compare` divides each benchmark's candidate/baseline ratio by the geometric mean of
these workloads' ratios, so a uniformly slower machine cancels
(:mod:`evcf_fast.benchtools.calibration`). Fixed sizes: a 256 MiB ``np.copyto`` (memory bandwidth)
and a 1024^3 float32 matmul through NumPy's BLAS and through torch (compute).
"""

import numpy as np
import pytest

from evcf_fast.benchtools import calibration

pytestmark = pytest.mark.benchmark(group=calibration.CALIBRATION_GROUP)

ROUNDS = 15  # fixed, so every run stores the same number of rounds for the bootstrap


@pytest.fixture(scope="module")
def memcopy(bench_quick):
    return calibration.make_memcopy(n_bytes=(8 if bench_quick else 256) * 2**20)


@pytest.fixture(scope="module")
def matmul(bench_quick):
    return calibration.make_matmul(n=128 if bench_quick else calibration.MATMUL_N)


def test_calibration_memcopy(benchmark, memcopy):
    out = benchmark.pedantic(memcopy.run, rounds=ROUNDS, warmup_rounds=1)
    assert np.array_equal(out, memcopy.src)
    benchmark.extra_info.update(n_bytes=memcopy.n_bytes, dtype="float64")


def test_calibration_matmul_numpy(benchmark, matmul):
    out = benchmark.pedantic(matmul.run, rounds=ROUNDS, warmup_rounds=1)
    # float32 BLAS vs a float64 product: agreement to float32 accumulation error
    ref = matmul.a[:8].astype(np.float64) @ matmul.b.astype(np.float64)
    np.testing.assert_allclose(out[:8], ref, rtol=1e-3, atol=1e-3 * np.sqrt(matmul.n))
    benchmark.extra_info.update(n=matmul.n, dtype="float32", backend="numpy")


def test_calibration_matmul_torch(benchmark, matmul):
    torch = pytest.importorskip("torch")
    a, b = torch.from_numpy(matmul.a), torch.from_numpy(matmul.b)
    out = torch.empty_like(a)
    benchmark.pedantic(torch.mm, args=(a, b), kwargs={"out": out}, rounds=ROUNDS, warmup_rounds=1)
    ref = matmul.a[:8].astype(np.float64) @ matmul.b.astype(np.float64)
    np.testing.assert_allclose(out[:8].numpy(), ref, rtol=1e-3, atol=1e-3 * np.sqrt(matmul.n))
    benchmark.extra_info.update(n=matmul.n, dtype="float32", backend="torch",
                                torch_threads=torch.get_num_threads())
