"""tools/gpu_bench.py runs end to end on the CPU with --small, without polars (the GPU machine
has none), so it works the first time on a GPU."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TOOL = Path(__file__).resolve().parents[1] / "tools" / "gpu_bench.py"


def _load_tool():
    spec = importlib.util.spec_from_file_location("gpu_bench", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_csr_shape_and_canonical_rows():
    m = _load_tool().synthetic_csr(3_000, 500, 40.0, seed=0)
    assert m.shape == (3_000, 500) and m.indptr.dtype == np.int64 and m.indices.dtype == np.int32
    assert np.all(m.data == 1)
    assert 25 < m.nnz / 3_000 < 45  # log-normal lengths around the mean, minus duplicates
    assert (np.diff(m.indptr) >= 1).all()
    for r in range(0, 3_000, 97):  # sorted, duplicate-free rows
        row = m.indices[m.indptr[r]:m.indptr[r + 1]]
        assert (np.diff(row) > 0).all()


def test_small_cpu_run_without_polars(tmp_path):
    out = tmp_path / "rows.json"
    code = ("import sys, runpy; sys.modules['polars'] = None; "
            f"sys.argv = ['gpu_bench.py', '--small', '--device', 'cpu', '--shapes', 'ml20m', "
            f"'--epochs', '1', '--warmup-epochs', '0', '--val-repeats', '1', "
            f"'--json', {str(out)!r}]; "
            f"runpy.run_path({str(TOOL)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "s/epoch" in proc.stdout and "peak GPU GiB" in proc.stdout
    rows = json.loads(out.read_text())
    assert [(r["model"], r["optimizer"]) for r in rows] == [
        ("multvae", "adam"), ("multvae", "adamnormgrad"),
        ("hvamp-gated", "adam"), ("hvamp-gated", "adamnormgrad")]
    for r in rows:
        assert r["epoch_s"] > 0 and r["val_s"] > 0 and np.isfinite(r["loss"])
        assert 0 <= r["val_ndcg@100"] <= 1 and r["val_users"] == 200
        assert r["peak_rss_gib"] > 0 and r["shape"] == "ml20m"
