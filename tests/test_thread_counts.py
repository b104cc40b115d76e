"""Numba's thread pool must not change torch's thread count.

With the OpenMP threading layer, Numba and a CPU build of torch share one libgomp; starting
Numba's pool used to set every later torch op to all cores, overriding OMP_NUM_THREADS=1. Each
case runs in a fresh process: the pool starts once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")

CASES = {
    # the bare mechanism: the bug as it was, so that the test can fail without the helper
    "helper": """
        import torch
        from evcf_fast._jit import start_numba_threads
        start_numba_threads()
        result = torch.get_num_threads()
    """,
    "evaluate": """
        import numpy as np, scipy.sparse as sp, torch
        from evcf_fast.metrics import evaluate
        s = np.random.default_rng(0).standard_normal((8, 300)).astype(np.float32)
        h = sp.random(8, 300, density=0.05, format="csr", random_state=0, dtype=np.float32)
        h.sort_indices()
        evaluate(s, h, metrics=("ndcg@100",))
        result = torch.get_num_threads()
    """,
    "fit": """
        import sys, tempfile, torch
        sys.path.insert(0, TESTS)
        from _train_data import clustered_split
        from evcf_fast.models import ModelConfig
        from evcf_fast.train import TrainConfig, fit
        data = clustered_split(n_items=150, n_train=120, n_heldout=20)
        mc = ModelConfig(model="multvae", n_items=150, hidden_size=16, latent_size=8)
        tc = TrainConfig(epochs=2, batch_size=40, device="cpu", eval_batch_size=20, warmup=0)
        fit(data, model_config=mc, train_config=tc, out=tempfile.mkdtemp() + "/r",
            progress=False)
        result = torch.get_num_threads()
    """,
}


def _run(body: str) -> int:
    code = (f"TESTS = {str(Path(__file__).parent)!r}\n" + textwrap.dedent(body)
            + "\nimport json; print(json.dumps(result))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_keeps_its_thread_count(case):
    assert _run(CASES[case]) == 1
