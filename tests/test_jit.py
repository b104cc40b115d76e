"""First use of Numba kernels (evcf_fast._jit): one note on stderr when compiling, none when the
cache holds the machine code, only the signatures a call needs, and `evcf warmup`."""

import subprocess
import sys
import textwrap

import numpy as np

from evcf_fast import _jit

TOY = textwrap.dedent("""
    import sys
    import numba as nb
    import numpy as np
    from evcf_fast import _jit

    @nb.njit(cache=True)
    def toy(x):
        return x.sum() * 2

    a = np.arange(5, dtype=np.float64)
    print("needs", _jit.needs_compiling(toy, a), file=sys.stderr)
    _jit.ensure_compiled(toy, a)
    print("signatures", len(toy.signatures), file=sys.stderr)
    assert toy(a) == 20.0
    _jit.ensure_compiled(toy, a)   # loaded now: nothing to do, no second note
    _jit.ensure_compiled(toy, np.arange(3, dtype=np.int32))  # new types: compiles, note once
    print("signatures", len(toy.signatures), file=sys.stderr)
""")


def _run_toy(tmp_path):
    script = tmp_path / "toy_kernel.py"
    if not script.exists():  # rewriting it would change its mtime, which invalidates the cache
        script.write_text(TOY)
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin",
           "PYTHONPATH": ":".join(sys.path)}
    res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         check=True)
    return res.stderr


def test_note_once_when_compiling_and_silent_when_cached(tmp_path):
    cold = _run_toy(tmp_path)
    assert cold.count("evcf: compiling Numba kernels for first use") == 1
    assert "needs True" in cold and str(tmp_path / "cache") in cold
    # only the signatures asked for were compiled: one, then two
    assert "signatures 1" in cold and "signatures 2" in cold
    warm = _run_toy(tmp_path)
    assert "compiling Numba kernels" not in warm and "needs False" in warm


def test_ensure_compiled_never_runs_the_kernel():
    import numba as nb

    calls = np.zeros(1)

    @nb.njit
    def bump(c):
        c[0] += 1

    _jit.ensure_compiled(bump, calls, announce=False)
    assert calls[0] == 0 and len(bump.signatures) == 1
    assert _jit.ensure_compiled(bump, calls) == 0.0  # already loaded


def test_cache_dir_of_a_kernel():
    from evcf_fast.kernels import ranking

    assert _jit.cache_dir(ranking.topk_metrics)


def test_warmup_command_says_where_the_cache_is(capsys):
    from evcf_fast.cli import main

    assert main(["warmup"]) == 0
    out = capsys.readouterr().out
    assert "metric kernels" in out and "split kernels" in out
    assert "machine code cached in " in out


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    """Under nohup/pipes a bar would be one line of carriage returns: evaluate stays silent."""
    code = textwrap.dedent("""
        import numpy as np, scipy.sparse as sp
        from evcf_fast.metrics import evaluate
        s = np.random.default_rng(0).standard_normal((50, 40)).astype(np.float32)
        h = sp.random(50, 40, density=0.1, format="csr", random_state=0, dtype=np.float32)
        h.sort_indices()
        evaluate(s, h, metrics=("ndcg@10",), progress=True, batch_size=5)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "\r" not in res.stderr and "user/s" not in res.stderr
