"""Fixed calibration workloads, timed in every benchmark session (group ``"calibration"``).

A shared machine can be uniformly slower today (another tenant, a throttled CPU, a cheaper VM).
Timing two fixed, library-independent workloads in the same session as the real benchmarks gives
a per-run speed factor; ``evcf bench compare`` divides each benchmark's candidate/baseline ratio by
the calibration ratio so that such a slowdown cancels. One workload is bound by memory bandwidth
(a large ``np.copyto``), the other by floating-point throughput (a float32 matmul through BLAS), the
two resources our kernels live on.

The idea follows the "normalise by a reference workload measured in the same run" practice of
airspeed velocity's machine-relative comparisons and of SPEC's reference machine, simplified to a
geometric mean of two ratios (see :mod:`evcf_fast.benchtools.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Benchmarks in this pytest-benchmark group are the calibration of a run (never tracked themselves).
CALIBRATION_GROUP = "calibration"

MEMCOPY_BYTES = 256 * 2**20   # full size: 256 MiB, far beyond any cache
MATMUL_N = 1024               # full size: 1024^3 float32 multiply-adds (~2.1 GFLOP)


@dataclass(frozen=True, kw_only=True)
class MemcopyWorkload:
    """Two float64 buffers of ``n_bytes`` each; :meth:`run` copies one into the other."""

    src: np.ndarray
    dst: np.ndarray

    @property
    def n_bytes(self) -> int:
        return int(self.src.nbytes)

    def run(self) -> np.ndarray:
        np.copyto(self.dst, self.src)
        return self.dst


@dataclass(frozen=True, kw_only=True)
class MatmulWorkload:
    """Two ``n x n`` float32 matrices; :meth:`run` multiplies them into a preallocated output."""

    a: np.ndarray
    b: np.ndarray
    out: np.ndarray

    @property
    def n(self) -> int:
        return int(self.a.shape[0])

    def run(self) -> np.ndarray:
        return np.matmul(self.a, self.b, out=self.out)


def make_memcopy(*, n_bytes: int = MEMCOPY_BYTES, seed: int = 0) -> MemcopyWorkload:
    """Build the memory-copy workload (buffers are touched here, outside any timing).

    Parameters
    ----------
    n_bytes : int
        Size of each buffer in bytes, a positive multiple of 8.
    seed : int
        Seed of the source contents.

    Returns
    -------
    MemcopyWorkload
    """
    if n_bytes < 8 or n_bytes % 8:
        raise ValueError(f"n_bytes must be a positive multiple of 8, got {n_bytes}")
    src = np.random.default_rng(seed).random(n_bytes // 8)
    dst = np.zeros_like(src)  # zeros_like writes every page, so no first-touch faults are timed
    return MemcopyWorkload(src=src, dst=dst)


def make_matmul(*, n: int = MATMUL_N, seed: int = 0) -> MatmulWorkload:
    """Build the float32 ``n x n`` matmul workload.

    Parameters
    ----------
    n : int
        Matrix side, at least 1.
    seed : int
        Seed of the operands.

    Returns
    -------
    MatmulWorkload
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return MatmulWorkload(a=a, b=b, out=np.zeros((n, n), dtype=np.float32))
