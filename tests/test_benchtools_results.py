"""Loading and validating pytest-benchmark result files (evcf_fast.benchtools.results, metadata).

Files are synthetic documents of pytest-benchmark's JSON shape written in each test.
"""

import json
import subprocess

import numpy as np
import pytest

from evcf_fast.benchtools import metadata, results
from evcf_fast.benchtools._synthetic import synthetic_benchmark, synthetic_run, write_run
from evcf_fast.errors import DataFormatError


def _doc(**kw):
    rounds = [1e-3, 2e-3, 3e-3, 4e-3]
    return synthetic_run([
        synthetic_benchmark("bench/t.py::test_ours[20]", rounds, group="g", params={"k": 20},
                            extra_info={"n_users": 10}),
        synthetic_benchmark("bench/t.py::test_ndcg_numpy_reference[20]", rounds, group="g",
                            params={"k": 20}),
        synthetic_benchmark("bench/c.py::test_calibration_memcopy", rounds, group="calibration"),
    ], **kw)


def test_load_round_trip(tmp_path):
    path = write_run(tmp_path / "0007_abc_20260101.json", _doc(commit="a" * 40, dirty=True))
    run = results.load_run(path)
    assert run.run_id == "0007" and run.label == "0007 aaaaaaaa+"
    assert run.commit == "a" * 40 and run.dirty is True and run.version == "5.3.1"
    b = run.benchmarks["bench/t.py::test_ours[20]"]
    assert b.name == "test_ours[20]" and b.base_name == "test_ours" and b.params == {"k": 20}
    assert b.median == pytest.approx(np.median([1e-3, 2e-3, 3e-3, 4e-3])) and b.rounds == 4
    np.testing.assert_array_equal(b.data, [1e-3, 2e-3, 3e-3, 4e-3])
    assert b.extra_info == {"n_users": 10}
    assert [x.role for x in run.benchmarks.values()] == ["ours", "baseline", "calibration"]
    assert [x.tracked for x in run.benchmarks.values()] == [True, False, False]


@pytest.mark.parametrize("name, extra, role, tracked", [
    ("test_topk", {}, "ours", True),
    ("test_topk_baseline", {}, "baseline", False),
    ("test_ref_topk", {}, "baseline", False),
    ("test_preference", {}, "ours", True),            # "ref" only as a whole word
    ("test_topk", {"role": "baseline"}, "baseline", False),
    ("test_topk", {"baseline_for": "test_fast"}, "baseline", False),
    ("test_reference_impl", {"role": "ours"}, "ours", True),  # extra_info wins over the name
    ("test_topk", {"track": False}, "ours", False),
])
def test_roles(tmp_path, name, extra, role, tracked):
    doc = synthetic_run([synthetic_benchmark(f"b.py::{name}", [1.0], group="g",
                                             extra_info=extra)])
    b = next(iter(results.parse_run(doc, path="x.json").benchmarks.values()))
    assert (b.role, b.tracked) == (role, tracked)


def test_file_without_rounds_or_metadata_loads(tmp_path):
    doc = synthetic_run([synthetic_benchmark("b.py::test_a", [1.0, 2.0], save_data=False)],
                        metadata=False)
    run = results.load_run(write_run(tmp_path / "run.json", doc))
    assert run.benchmarks["b.py::test_a"].data is None and run.metadata == {}
    assert run.commit == "0" * 40 and run.run_id == "run"  # from pytest-benchmark's commit_info


def _mutate(fn):
    doc = _doc()
    fn(doc)
    return doc


@pytest.mark.parametrize("doc, match", [
    ([1, 2], "expected a pytest-benchmark JSON object at top level, got list"),
    (_mutate(lambda d: d.pop("benchmarks")), "missing key 'benchmarks' at top level"),
    (_mutate(lambda d: d.pop("version")), "missing key 'version' at top level"),
    (_mutate(lambda d: d.update(version="2.1.0")),
     r"unsupported pytest-benchmark version '2.1.0'; expected major version in \[3, 4, 5\]"),
    (_mutate(lambda d: d.update(version="6.0.0")), "unsupported pytest-benchmark version '6.0.0'"),
    (_mutate(lambda d: d["evcf_fast"].update(schema=2)),
     "unsupported evcf_fast metadata schema 2; expected 1"),
    (_mutate(lambda d: d.update(evcf_fast=[])), "'evcf_fast' must be an object, got list"),
    (_mutate(lambda d: d.update(benchmarks={})), "'benchmarks' must be a list, got dict"),
    (_mutate(lambda d: d["benchmarks"].append(3)), r"benchmarks\[3\] must be an object, got int"),
    (_mutate(lambda d: d["benchmarks"][1].pop("stats")), r"benchmarks\[1\] is missing key 'stats'"),
    (_mutate(lambda d: d["benchmarks"][0]["stats"].pop("median")),
     r"benchmarks\[0\] \('bench/t.py::test_ours\[20\]'\): stats is missing key 'median'"),
    (_mutate(lambda d: d["benchmarks"][0]["stats"].update(iqr="x")),
     r"stats.iqr must be a finite number >= 0, got 'x'"),
    (_mutate(lambda d: d["benchmarks"][0]["stats"].update(median=0.0)),
     "stats.median must be > 0, got 0.0"),
    (_mutate(lambda d: d["benchmarks"][0]["stats"].update(rounds=2.5)),
     "stats.rounds must be an integer >= 1, got 2.5"),
    (_mutate(lambda d: d["benchmarks"][0]["stats"].update(data=[1.0])),
     "stats.data must be a list of 4 finite times >= 0"),
    (_mutate(lambda d: d["benchmarks"][0].update(stats=[])), "stats must be an object, got list"),
    (_mutate(lambda d: d["benchmarks"][0].update(extra_info=[1])),
     "extra_info must be an object, got list"),
    (_mutate(lambda d: d["benchmarks"][0].update(extra_info={"role": "oracle"})),
     r"extra_info role must be one of \['ours', 'baseline'\], got 'oracle'"),
    (_mutate(lambda d: d["benchmarks"].append(d["benchmarks"][0])),
     r"benchmarks\[3\]: duplicate fullname 'bench/t.py::test_ours\[20\]'"),
])
def test_malformed_documents_name_the_file_and_the_problem(tmp_path, doc, match):
    path = write_run(tmp_path / "bad_run.json", doc)
    with pytest.raises(DataFormatError, match=match) as info:
        results.load_run(path)
    assert str(info.value).startswith(str(path) + ": ")


def test_invalid_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"version": "5.3.1",\n "benchmarks": [,]}')
    with pytest.raises(DataFormatError, match=r"broken.json:2: not valid JSON: Expecting value"):
        results.load_run(path)


def test_missing_file_and_storage(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmark result '.*nope.json' not found"):
        results.load_run(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="benchmark storage '.*empty' not found; save runs"):
        results.list_runs(tmp_path / "empty")


def test_list_and_resolve_runs(tmp_path):
    store = tmp_path / ".benchmarks"
    # file names and datetimes in different orders: the datetime decides
    write_run(store / "m1" / "0002_b.json", _doc(datetime="2026-03-01T00:00:00+00:00"))
    write_run(store / "m1" / "0001_a.json", _doc(datetime="2026-04-01T00:00:00+00:00"))
    write_run(store / "m2" / "0001_c.json", _doc(datetime="2026-02-01T00:00:00+00:00"))
    assert [r.path.name for r in results.list_runs(store)] == ["0001_c.json", "0002_b.json",
                                                               "0001_a.json"]
    assert results.resolve_run("0002", storage=store).path.name == "0002_b.json"
    direct = store / "m2" / "0001_c.json"
    assert results.resolve_run(str(direct), storage=tmp_path / "elsewhere").path == direct
    with pytest.raises(ValueError, match="run '0001' is ambiguous: it matches 2 files"):
        results.resolve_run("0001", storage=store)
    with pytest.raises(FileNotFoundError, match="no benchmark run '0009': not a file"):
        results.resolve_run("0009", storage=store)


def test_collect_metadata_shape(tmp_path):
    meta = metadata.collect_metadata(cwd=tmp_path, quick=True)
    assert meta["schema"] == metadata.METADATA_SCHEMA and meta["quick"] is True
    assert meta["versions"]["numpy"] == np.__version__
    assert set(meta["threads"]) >= {"env", "numba", "torch_intra_op"}
    assert meta["cpu"]["count"] >= 1 and meta["cpu"]["usable"] >= 1
    json.dumps(meta)  # must be serialisable into the result file


def test_git_state(tmp_path):
    assert metadata.git_state(tmp_path) == {"commit": None, "short": None, "branch": None,
                                            "dirty": None}
    try:
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, capture_output=True)
        git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
        (tmp_path / "f.txt").write_text("a")
        subprocess.run([*git, "add", "f.txt"], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-qm", "x"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available to build a scratch repository")
    state = metadata.git_state(tmp_path)
    assert len(state["commit"]) == 40 and state["short"] == state["commit"][:10]
    assert state["dirty"] is False
    (tmp_path / "f.txt").write_text("b")
    assert metadata.git_state(tmp_path)["dirty"] is True
