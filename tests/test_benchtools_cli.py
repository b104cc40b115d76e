"""`evcf bench compare|report|run` end to end: exit codes, defaults, error messages."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from evcf_fast.benchtools._synthetic import synthetic_benchmark, synthetic_run, write_run
from evcf_fast.cli import bench as bench_cli
from evcf_fast.cli import main

CAL = "bench/test_bench_calibration.py::test_calibration_memcopy"
OURS = "bench/test_bench_metrics.py::test_ndcg"


def _save(store, run_id, *, day, ours=1e-3, machine=1.0, seed=0):
    rng = np.random.default_rng(seed)
    noise = lambda: np.exp(rng.uniform(-0.03, 0.03, size=20))  # noqa: E731
    doc = synthetic_run([
        synthetic_benchmark(CAL, 0.02 * machine * noise(), group="calibration"),
        synthetic_benchmark(OURS, ours * machine * noise(), group="metrics"),
    ], datetime=f"2026-01-{day:02d}T00:00:00+00:00")
    return write_run(store / "Linux-CPython-3.11-64bit" / f"{run_id}_abc_2026.json", doc)


@pytest.fixture
def store(tmp_path):
    return tmp_path / ".benchmarks"


def test_compare_defaults_to_the_two_newest_runs(store, capsys):
    _save(store, "0001", day=1, ours=5e-3, seed=1)      # oldest: 5x slower, must be ignored
    _save(store, "0003", day=3, seed=3)
    _save(store, "0002", day=2, seed=2)
    assert main(["bench", "compare", "--storage", str(store)]) == 0
    out = capsys.readouterr().out
    assert "baseline:  0002 " in out and "candidate: 0003 " in out
    assert "no regression: none of 1 tracked benchmark(s)" in out


def test_compare_regression_exits_1_and_names_it(store, capsys):
    _save(store, "0001", day=1, seed=1)
    _save(store, "0002", day=2, ours=2e-3, seed=2)
    assert main(["bench", "compare", "0001", "0002", "--storage", str(store)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION: 1 tracked benchmark(s) slower than 1.15x beyond noise" in out
    assert "  test_bench_metrics.py::test_ndcg: 2." in out
    # a generous threshold lets it pass
    assert main(["bench", "compare", "0001", "0002", "--storage", str(store),
                 "--threshold", "1.5"]) == 0


def test_compare_calibration_switch_and_markdown(store, capsys):
    _save(store, "0001", day=1, seed=1)
    _save(store, "0002", day=2, machine=1.3, seed=2)   # uniformly slower machine
    assert main(["bench", "compare", "--storage", str(store), "--markdown"]) == 0
    assert "| benchmark | baseline | candidate |" in capsys.readouterr().out
    assert main(["bench", "compare", "--storage", str(store), "--no-calibration"]) == 1


def test_compare_one_run_given_uses_the_newest_as_candidate(store, capsys):
    _save(store, "0001", day=1, seed=1)
    _save(store, "0002", day=2, seed=2)
    _save(store, "0003", day=3, seed=3)
    assert main(["bench", "compare", "0001", "--storage", str(store)]) == 0
    out = capsys.readouterr().out
    assert "baseline:  0001 " in out and "candidate: 0003 " in out
    assert main(["bench", "compare", "0003", "--storage", str(store)]) == 2
    assert "need a second run to compare with '0003'" in capsys.readouterr().err


def test_compare_errors_exit_2_with_a_clear_message(store, capsys):
    assert main(["bench", "compare", "--storage", str(store)]) == 2
    assert "benchmark storage" in capsys.readouterr().err
    _save(store, "0001", day=1)
    assert main(["bench", "compare", "--storage", str(store)]) == 2
    assert "need two saved runs to compare, found 1" in capsys.readouterr().err
    bad = store / "Linux-CPython-3.11-64bit" / "0002_bad.json"
    bad.write_text("{not json")
    assert main(["bench", "compare", "--storage", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evcf bench: error: ") and "0002_bad.json:1: not valid JSON" in err
    bad.write_text(json.dumps({"version": "5.3.1", "datetime": "x"}))
    assert main(["bench", "compare", "0001", str(bad), "--storage", str(store)]) == 2
    assert "0002_bad.json: missing key 'benchmarks' at top level" in capsys.readouterr().err
    assert main(["bench", "compare", "0001", "0001", "--confidence", "2",
                 "--storage", str(store)]) == 2
    assert r"confidence must be in (0, 1), got 2.0" in capsys.readouterr().err


def test_report_command(store, tmp_path, capsys):
    _save(store, "0001", day=1, seed=1)
    _save(store, "0002", day=2, seed=2)
    out = tmp_path / "rep"
    assert main(["bench", "report", "--storage", str(store), "--out", str(out)]) == 0
    assert "(2 run(s))" in capsys.readouterr().out
    assert (out / "report.md").is_file() and (out / "history.png").is_file()
    assert main(["bench", "report", "0001", "--storage", str(store), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["bench", "report", "0001", "--storage", str(store), "--out", str(out),
                 "--overwrite"]) == 0


def test_pytest_command_line():
    full = bench_cli.pytest_command(bench_dir=Path("bench"), storage=Path(".b"), quick=False,
                                    keyword="calibration", extra="-x --benchmark-min-rounds=7")
    assert full[:3] == [sys.executable, "-m", "pytest"]
    assert {"--benchmark-storage=.b", "--benchmark-autosave", "--benchmark-save-data"} <= set(full)
    assert full[-4:] == ["-k", "calibration", "-x", "--benchmark-min-rounds=7"]
    quick = bench_cli.pytest_command(bench_dir=Path("bench"), storage=Path(".b"), quick=True,
                                     keyword=None)
    assert "--benchmark-disable" in quick and "--benchmark-autosave" not in quick


def test_run_missing_bench_dir(tmp_path, capsys):
    assert main(["bench", "run", "--bench-dir", str(tmp_path / "nope")]) == 2
    assert "benchmark folder" in capsys.readouterr().err


def test_run_saves_a_loadable_result_with_metadata(tmp_path, monkeypatch, capsys):
    """A real pytest-benchmark session through `evcf bench run`, with bench/conftest.py's hook."""
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "bench" / "conftest.py", bench)
    (bench / "test_bench_tiny.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.benchmark(group='tiny')\n"
        "def test_sum(benchmark, bench_quick):\n"
        "    assert benchmark.pedantic(sum, args=(range(100),), rounds=5) == 4950\n"
        "    benchmark.extra_info['n'] = 100\n")
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "run", "--storage", "store", "--pytest-args=-q"]) == 0
    assert "saved store" in capsys.readouterr().out
    from evcf_fast.benchtools.results import list_runs

    (run,) = list_runs(tmp_path / "store")
    (b,) = run.benchmarks.values()
    assert b.name == "test_sum" and b.rounds == 5 and b.data.shape == (5,)
    assert b.extra_info == {"n": 100} and b.group == "tiny"
    assert run.metadata["schema"] == 1 and run.metadata["quick"] is False
    assert "numba" in run.metadata["versions"] and "torch_intra_op" in run.metadata["threads"]
    assert main(["bench", "run", "--quick"]) == 0  # quick mode saves nothing
    assert len(list_runs(tmp_path / "store")) == 1
