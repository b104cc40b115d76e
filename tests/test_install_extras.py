"""The base install (no torch) serves ingestion, metrics and evaluation; training says which extra
to install. Run in subprocesses where a meta-path finder makes torch unimportable."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

BLOCK_TORCH = textwrap.dedent("""
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoTorch())
    for m in [m for m in sys.modules if m == "torch" or m.startswith("torch.")]:
        del sys.modules[m]
""")


def _run(code: str, *argv):
    full = BLOCK_TORCH + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", full, *argv], capture_output=True, text=True)


def test_blocker_really_hides_torch():
    res = _run("import torch")
    assert res.returncode != 0 and "No module named 'torch'" in res.stderr


def test_metrics_and_help_work_without_torch():
    res = _run("""
        import numpy as np, scipy.sparse as sp
        from evcf_fast.metrics import evaluate
        s = np.array([[0.9, 0.1, 0.5]], np.float32)
        h = sp.csr_matrix(np.array([[0, 0, 1]], np.float32))
        r = evaluate(s, h, metrics=("recall@1", "ndcg@2"))
        print(r.mean["recall@1"], round(r.mean["ndcg@2"], 6))
        from evcf_fast.cli import main
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0
        assert "torch" not in sys.modules
    """)
    assert res.returncode == 0, res.stderr
    # hand-computed: item 0 ranks first (miss), item 2 second: NDCG@2 = (1/log2(3)) / 1
    assert res.stdout.splitlines()[0] == f"0.0 {round(1 / np.log2(3), 6)}"
    assert "evcf" in res.stdout and "train" in res.stdout


def test_evaluate_command_without_torch(tmp_path):
    from evcf_fast.data.dataset import SplitDataset

    rng = np.random.default_rng(0)
    dense = (rng.random((12, 30)) < 0.3).astype(np.float32)
    m = sp.csr_matrix(dense)
    ds = SplitDataset(train=m, validation_fold_in=m[:4], validation_heldout=m[4:8],
                      test_fold_in=m[:4], test_heldout=m[8:12], item_ids=np.arange(30),
                      train_user_ids=np.arange(12), validation_user_ids=np.arange(4),
                      test_user_ids=np.arange(4), meta={})
    split = ds.save(tmp_path / "split")
    scores = tmp_path / "s.npy"
    np.save(scores, rng.standard_normal((4, 30)).astype(np.float32))
    out = tmp_path / "r.json"
    res = _run("""
        from evcf_fast.cli import main
        code = main(["evaluate", "--scores", sys.argv[1], "--split", sys.argv[2], "--metrics",
                     "ndcg@10", "--quiet", "--json", sys.argv[3]])
        assert "torch" not in sys.modules
        sys.exit(code)
    """, str(scores), str(split), str(out))
    assert res.returncode == 0, res.stderr
    assert json.loads(out.read_text())["metrics"]["ndcg@10"]["mean"] is not None


@pytest.mark.parametrize("argv", [["train", "--data", "x", "--model", "multvae", "--out", "y"],
                                  ["recommend", "--run", "x", "--user", "1"]])
def test_torch_commands_name_the_extra(argv):
    res = _run("""
        import json
        from evcf_fast.cli import main
        sys.exit(main(json.loads(sys.argv[1])))
    """, json.dumps(argv))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"evcf {argv[0]}: error: this command needs PyTorch, which is not installed: pip " \
           f"install 'evcf_fast[train]'" in res.stderr


def test_model_import_names_the_extra():
    res = _run("""
        from evcf_fast.models import ModelConfig   # light: no torch
        try:
            from evcf_fast.models import MultVAE
        except ImportError as e:
            print(e)
    """)
    assert res.returncode == 0, res.stderr
    assert "pip install 'evcf_fast[train]'" in res.stdout


def test_pyproject_extras():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")

    meta = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    deps = " ".join(meta["project"]["dependencies"])
    extras = meta["project"]["optional-dependencies"]
    assert "torch" not in deps and "pyarrow" not in deps
    assert any(d.startswith("torch") for d in extras["train"])
    assert any(d.startswith("tensorboard") for d in extras["tensorboard"])
