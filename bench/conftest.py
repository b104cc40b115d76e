"""Shared fixtures for the benchmark suite (collected only by `make bench` / `make bench-quick`).

`bench_quick` is true under `--benchmark-disable` (the CI quick mode): every benchmark then runs
once at a reduced size, with its assertions, so the code stays alive without timing claims.

Conventions for benchmark authors (see README.md, "Tracking performance across commits"):

* build inputs in fixtures (module or session scope) and warm up JIT code before timing;
* put context in ``benchmark.extra_info`` (sizes, k, dtype, device): ``compare`` warns when it
  differs between two runs;
* mark an in-run reference implementation with ``benchmark.extra_info["role"] = "baseline"``
  (optionally ``"baseline_for": "test_name"``) and give it the same ``group`` as ours;
* the calibration workloads (group ``"calibration"``) run first in every session; machine,
  library versions, thread settings and the git state are added to the saved JSON by the hook
  below.

The references the benchmarks time and check against (the pandas notebook split, the vae_cf
metrics) are the tests' own, in tests/reference.py: that folder is put on ``sys.path`` here.
"""

import sys
from pathlib import Path

import pytest

TESTS_DIR = str(Path(__file__).resolve().parents[1] / "tests")
if TESTS_DIR not in sys.path:
    sys.path.append(TESTS_DIR)


@pytest.fixture(scope="session")
def bench_quick(request) -> bool:
    return bool(request.config.getoption("benchmark_disable", default=False))


def pytest_collection_modifyitems(session, config, items):
    # Calibration first: it then sees the machine in the same state as the benchmarks after it.
    def is_calibration(item) -> bool:
        marker = item.get_closest_marker("benchmark")
        return marker is not None and marker.kwargs.get("group") == "calibration"

    items.sort(key=lambda item: not is_calibration(item))  # stable: keeps the rest in order


def pytest_benchmark_update_json(config, benchmarks, output_json):
    from evcf_fast.benchtools.metadata import METADATA_KEY, collect_metadata

    output_json[METADATA_KEY] = collect_metadata(
        cwd=config.rootpath, quick=bool(config.getoption("benchmark_disable", default=False)))
