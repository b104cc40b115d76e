"""Run metadata that ``bench/conftest.py`` stores next to pytest-benchmark's own.

pytest-benchmark records the machine (``machine_info``) and the commit (``commit_info``). We add
what decides the speed of *this* library: versions of numba, torch, polars, scipy and numpy, the
thread settings of every pool (Numba, Torch intra/inter-op, the BLAS environment variables), the
usable CPU count, and the git commit with a dirty flag computed without touching the index. The
block lives under the top-level key ``"evcf_fast"`` of the JSON file, with a ``schema`` number
that :mod:`evcf_fast.benchtools.results` checks.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

METADATA_KEY = "evcf_fast"
METADATA_SCHEMA = 1

_VERSIONED = ("evcf_fast", "numba", "torch", "polars", "scipy", "numpy", "pyarrow",
              "pytest-benchmark")
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
               "NUMBA_THREADING_LAYER", "TORCH_NUM_THREADS")


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(args: list[str], cwd: Path) -> str | None:
    # --no-optional-locks: `git status` must not rewrite the index of a tree others work in
    try:
        out = subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True,
                             text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_state(cwd: str | os.PathLike = ".") -> dict:
    """Commit id, short id, branch and dirty flag of the git tree at ``cwd`` (``None`` outside git).

    Parameters
    ----------
    cwd : path-like
        A directory inside the work tree.

    Returns
    -------
    dict
        ``{"commit", "short", "branch", "dirty"}``; every value is ``None`` when git is absent.
    """
    cwd = Path(cwd)
    commit = _git(["rev-parse", "HEAD"], cwd)
    if not commit:
        return {"commit": None, "short": None, "branch": None, "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {"commit": commit, "short": commit[:10],
            "branch": _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd),
            "dirty": None if status is None else bool(status)}


def thread_settings() -> dict:
    """Thread counts of the pools that share the cores (Numba, Torch, BLAS environment)."""
    threads: dict = {"env": {k: os.environ.get(k) for k in _THREAD_ENV}}
    try:
        import numba

        threads["numba"] = int(numba.get_num_threads())
        threads["numba_layer"] = str(numba.config.THREADING_LAYER)
    except ImportError:
        pass
    try:
        import torch

        threads["torch_intra_op"] = int(torch.get_num_threads())
        threads["torch_interop"] = int(torch.get_num_interop_threads())
    except ImportError:
        pass
    return threads


def collect_metadata(*, cwd: str | os.PathLike = ".", quick: bool = False) -> dict:
    """Everything :func:`pytest_benchmark_update_json` adds under ``output_json["evcf_fast"]``.

    Parameters
    ----------
    cwd : path-like
        A directory inside the git work tree of the benchmarked code.
    quick : bool
        Whether the session ran in quick mode (reduced sizes; such runs are not comparable).

    Returns
    -------
    dict
        JSON-serialisable metadata with ``schema``, ``versions``, ``threads``, ``cpu``, ``git``.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        import psutil

        mem_total = int(psutil.virtual_memory().total)
    except ImportError:
        mem_total = None
    return {
        "schema": METADATA_SCHEMA,
        "quick": bool(quick),
        "versions": {"python": platform.python_version()}
                    | {name: _version(name) for name in _VERSIONED},
        "threads": thread_settings(),
        "cpu": {"count": os.cpu_count(), "usable": usable, "machine": platform.machine(),
                "processor": platform.processor() or None, "memory_bytes": mem_total},
        "git": git_state(cwd),
    }
