"""Shared fixtures for the benchmark suite (collected only by `make bench` / `make bench-quick`).

`bench_quick` is true under `--benchmark-disable` (the CI quick mode): every benchmark then runs
once at a reduced size, with its assertions, so the code stays alive without timing claims.
"""

import pytest


@pytest.fixture(scope="session")
def bench_quick(request) -> bool:
    return bool(request.config.getoption("benchmark_disable", default=False))
