"""The whole ``evcf prepare`` command as a user runs it, against a process that only parses.

Group "prepare-command" (issue 11): on the ML-20M-shaped ``ratings.csv`` (20,000,263 rows; ~1% in
quick mode), whole processes are alternated in one run: ``evcf prepare FILE --out DIR
--n-heldout 10000`` (the console entry point: interpreter start, imports, parse, split, the
cached Numba overloads, the atomic write) and ``python -c "import polars; polars.read_csv(FILE)"``
(the bare parse, the floor of any ingestion). Wall times are measured from outside the process;
each process's own peak RSS comes from ``os.wait4`` in a small launcher process (Linux carries
a parent's peak into a forked child's ``ru_maxrss``, so pytest cannot be the parent). Target: the
command within 1.3x the bare-parse process, peak RSS under 2 GiB. The medians, their ratio and
the peak RSS go to extra_info; nothing here asserts a time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _ingest_fixtures import make_ml20m_csv

pytestmark = pytest.mark.benchmark(group="prepare-command")


@pytest.fixture(scope="module")
def ml20m_file(tmp_path_factory, bench_quick):
    return make_ml20m_csv(tmp_path_factory.mktemp("ml20m_cmd"), quick=bench_quick)


# A small launcher: Linux carries a parent's peak RSS into a forked child's ru_maxrss (through
# exec too), so the child is started from this ~10 MiB process instead of from pytest; it times
# fork + exec + exit of the command and reports the command's own ru_maxrss (os.wait4).
_LAUNCHER = """
import json, os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(fd, 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(json.dumps({"wall": time.perf_counter() - t, "rss_kib": usage.ru_maxrss,
                  "rc": os.waitstatus_to_exitcode(status)}))
"""


def run_process(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one command in a fresh process, which must succeed."""
    res = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0, (argv, res.stderr)
    return out["wall"], out["rss_kib"] / 1024


def _evcf() -> list[str]:
    """The ``evcf`` console script next to this interpreter, else ``python -m evcf_fast``."""
    script = Path(sys.executable).with_name("evcf")
    return [str(script)] if script.exists() else [sys.executable, "-m", "evcf_fast"]


def test_prepare_command_vs_bare_parse_process(benchmark, ml20m_file, tmp_path, bench_quick):
    path, sizes = ml20m_file
    out = tmp_path / "split"
    prepare = [*_evcf(), "prepare", str(path), "--out", str(out), "--n-heldout",
               str(sizes["n_heldout"]), "--quiet"]
    parse = [sys.executable, "-c", f"import polars; polars.read_csv({str(path)!r})"]

    def one_prepare():
        shutil.rmtree(out, ignore_errors=True)
        return run_process(prepare)

    one_prepare()  # fills the Numba cache and the page cache, untimed
    rounds = 2 if bench_quick else 7

    def alternate():
        times = {"prepare": [], "parse": []}
        rss = {"prepare": 0.0, "parse": 0.0}
        for _ in range(rounds):
            for name, fn in (("parse", lambda: run_process(parse)), ("prepare", one_prepare)):
                wall, peak = fn()
                times[name].append(wall)
                rss[name] = max(rss[name], peak)
        return times, rss

    times, rss = benchmark.pedantic(alternate, rounds=1, warmup_rounds=0)
    assert (out / "meta.json").exists()
    med = {k: float(np.median(v)) for k, v in times.items()}
    benchmark.extra_info.update(
        role="ours", track=False, n_rows=sizes["n_rows"], rounds=rounds,
        prepare_process_s=round(med["prepare"], 3), bare_parse_process_s=round(med["parse"], 3),
        ratio_to_bare_parse=round(med["prepare"] / med["parse"], 3),
        prepare_peak_rss_mib=round(rss["prepare"], 1), parse_peak_rss_mib=round(rss["parse"], 1))
    assert rss["prepare"] < 2048  # MiB: the memory bound holds at every size
