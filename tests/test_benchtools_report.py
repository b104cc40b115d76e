"""Markdown report and PNG plots (evcf_fast.benchtools.report) on synthetic runs."""

import numpy as np
import pytest

from evcf_fast.benchtools import report, results
from evcf_fast.benchtools._synthetic import synthetic_benchmark, synthetic_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(i, *, machine=1.0, ours=1e-3, datetime=None):
    """Group "metrics": ours[k=20,100], a NumPy reference per k, a torch baseline for k=100 only."""
    def b(name, median, group="metrics", params=None, **info):
        rounds = median * machine * np.array([0.98, 1.0, 1.02])
        return synthetic_benchmark(f"bench/m.py::{name}", rounds, group=group, params=params,
                                   extra_info=info)
    entries = [
        b("test_calibration_memcopy", 0.02, group="calibration"),
        b("test_calibration_matmul", 0.01, group="calibration"),
        b("test_ndcg[20]", ours, params={"k": 20}),
        b("test_ndcg[100]", 2 * ours, params={"k": 100}),
        b("test_ndcg_numpy_reference[20]", 4e-3, params={"k": 20}),
        b("test_ndcg_numpy_reference[100]", 8e-3, params={"k": 100}),
        b("test_topk_torch[100]", 3e-3, params={"k": 100}, role="baseline",
          baseline_for="test_ndcg"),
        b("test_other", 1e-3, role="ours"),  # not named by baseline_for
        b("test_parse", 5e-3, group="ingest"),  # a group without baselines
    ]
    dt = datetime or f"2026-01-0{i + 1}T00:00:00+00:00"
    return results.parse_run(synthetic_run(entries, datetime=dt, commit=f"{i}" * 40),
                             path=f"000{i}_x.json")


def test_baseline_pairs_follow_group_params_and_baseline_for():
    pairs = {(o.name, b.name) for o, b in report.baseline_pairs(_run(0))}
    assert pairs == {
        ("test_ndcg[20]", "test_ndcg_numpy_reference[20]"),
        ("test_ndcg[100]", "test_ndcg_numpy_reference[100]"),
        ("test_ndcg[100]", "test_topk_torch[100]"),
        ("test_other", "test_ndcg_numpy_reference[20]"),   # unparametrized: agrees with any k
        ("test_other", "test_ndcg_numpy_reference[100]"),
    }


def test_calibration_factors_hand_computed():
    runs = [_run(0), _run(1, machine=1.5), _run(2, machine=0.5)]
    assert report.calibration_factors(runs) == pytest.approx([1.0, 1.5, 0.5])
    no_cal = results.parse_run(synthetic_run([synthetic_benchmark("a.py::t", [1.0])]), path="x")
    assert report.calibration_factors([no_cal]) == [None]


def test_write_report(tmp_path):
    runs = [_run(0), _run(1, machine=1.3, ours=1.3e-3), _run(2, ours=2e-3)]
    files = report.write_report(runs, tmp_path / "rep")
    md = files.markdown.read_text()
    # latest run: ours 2 ms vs NumPy 4 ms at k=20 -> 2x; ours 4 ms at k=100 vs NumPy 8 ms -> 2x
    # and vs torch 3 ms -> 0.75x; test_other 1 ms vs 4 ms and 8 ms -> 4x and 8x
    assert "| metrics | test_ndcg[20] | ours | 2 ms | 40 us | 3 | " \
           "2.00x vs test_ndcg_numpy_reference[20] |" in md
    assert "| metrics | test_ndcg[100] | ours | 4 ms | 80 us | 3 | 2.00x vs " \
           "test_ndcg_numpy_reference[100]; 0.75x vs test_topk_torch[100] |" in md
    assert "| test_other | ours | 1 ms | 20 us | 3 | 4.00x vs test_ndcg_numpy_reference[20]; " \
           "8.00x vs test_ndcg_numpy_reference[100] |" in md
    assert "| metrics | test_ndcg_numpy_reference[20] | baseline | 4 ms | 80 us | 3 | - |" in md
    assert "| ingest | test_parse | ours | 5 ms |" in md and md.count("| 0003 ") == 0
    assert "| 0001 | 2026-01-02T00:00:00 | 1111111111 | no | 9 | 1.30 |" in md
    for png in (files.history_png, files.speedup_png):
        assert png.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(FileExistsError, match="already exists; pass overwrite"):
        report.write_report(runs, tmp_path / "rep")
    report.write_report(runs[:1], tmp_path / "rep", overwrite=True)
    assert "| 0001 |" not in (tmp_path / "rep" / "report.md").read_text()


def test_report_without_pairs_or_runs(tmp_path):
    lone = results.parse_run(synthetic_run([synthetic_benchmark("a.py::test_a", [1.0, 1.1])]),
                             path="0001_a.json")
    files = report.write_report([lone], tmp_path / "r")
    assert files.speedup_png.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError, match="no benchmark runs to report"):
        report.write_report([], tmp_path / "r2")


def test_parameter_that_separates_baselines_does_not_have_to_agree():
    """Sparse vs dense layouts of each model: pair by model, ignore the layout parameter."""
    entries = [
        synthetic_benchmark(f"bench/t.py::test_step[{layout}-{model}]", [1.0, 1.1],
                            group="train-step", params={"layout": layout, "name": model},
                            extra_info={"role": "baseline"} if layout == "dense" else {})
        for model in ("multvae", "hvamp") for layout in ("sparse", "dense")]
    run = results.parse_run(synthetic_run(entries), path="x.json")
    pairs = {(o.name, b.name) for o, b in report.baseline_pairs(run)}
    assert pairs == {("test_step[sparse-multvae]", "test_step[dense-multvae]"),
                     ("test_step[sparse-hvamp]", "test_step[dense-hvamp]")}


def test_floor_is_a_reference_not_a_competitor(tmp_path):
    from evcf_fast.benchtools._synthetic import synthetic_benchmark, synthetic_run

    entries = [
        synthetic_benchmark("bench/m.py::test_ours", [0.04, 0.04, 0.04], group="metrics"),
        synthetic_benchmark("bench/m.py::test_memcopy", [0.06, 0.06, 0.06], group="metrics",
                            extra_info={"role": "baseline", "baseline_for": "test_ours",
                                        "reference": "memory-copy floor"}),
        synthetic_benchmark("bench/m.py::test_numpy_ref", [0.4, 0.4, 0.4], group="metrics"),
    ]
    run = results.parse_run(synthetic_run(entries), path="0001_x.json")
    pairs = report.baseline_pairs(run)
    assert {b.name for _, b in pairs} == {"test_memcopy", "test_numpy_ref"}
    assert [report.is_floor(b) for _, b in pairs if b.name == "test_memcopy"] == [True]
    files = report.write_report([run], tmp_path / "rep")
    md = files.markdown.read_text()
    # ours 40 ms against the 60 ms copy: 0.67x its time, stated as a reference, not a speed-up
    assert "0.67x the time of test_memcopy (memory-copy floor, a reference)" in md
    assert "10.00x vs test_numpy_ref" in md and "vs test_memcopy" not in md
    assert files.speedup_png.read_bytes()[:8] == PNG_MAGIC
