"""Synthetic pytest-benchmark result documents, for tests and documentation examples.

They have the shape pytest-benchmark 5 writes (``session.py``: ``machine_info``, ``commit_info``,
``benchmarks``, ``datetime``, ``version``; ``stats.py``: the per-benchmark statistics), built
from given per-round times, so the comparison logic can be tested on known slowdowns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .metadata import METADATA_KEY, METADATA_SCHEMA


def synthetic_benchmark(fullname: str, rounds, *, group: str | None = None,
                        params: dict | None = None, extra_info: dict | None = None,
                        save_data: bool = True) -> dict:
    """One ``benchmarks[i]`` entry with statistics computed from ``rounds`` (seconds per call)."""
    data = np.asarray(rounds, dtype=np.float64)
    q1, median, q3 = np.percentile(data, [25, 50, 75])
    stats = {"min": float(data.min()), "max": float(data.max()), "mean": float(data.mean()),
             "stddev": float(data.std(ddof=1)) if data.size > 1 else 0.0,
             "rounds": int(data.size), "median": float(median), "iqr": float(q3 - q1),
             "q1": float(q1), "q3": float(q3), "iterations": 1,
             "ops": float(1.0 / data.mean()), "total": float(data.sum())}
    if save_data:
        stats["data"] = data.tolist()
    name = fullname.rsplit("::", 1)[-1]
    return {"group": group, "name": name, "fullname": fullname, "params": params,
            "param": None if params is None else "-".join(str(v) for v in params.values()),
            "extra_info": dict(extra_info or {}), "options": {"timer": "perf_counter"},
            "stats": stats}


def synthetic_run(benchmarks: list[dict], *, datetime: str = "2026-01-01T00:00:00+00:00",
                  commit: str = "0" * 40, dirty: bool = False, version: str = "5.3.1",
                  metadata: bool = True) -> dict:
    """A whole result document around ``benchmarks`` (from :func:`synthetic_benchmark`)."""
    doc = {"machine_info": {"node": "synthetic", "cpu": {"brand_raw": "test cpu", "count": 2}},
           "commit_info": {"id": commit, "dirty": dirty, "branch": "main"},
           "benchmarks": benchmarks, "datetime": datetime, "version": version}
    if metadata:
        doc[METADATA_KEY] = {"schema": METADATA_SCHEMA, "quick": False,
                             "versions": {"numpy": np.__version__}, "threads": {"numba": 2},
                             "cpu": {"count": 2, "usable": 2},
                             "git": {"commit": commit, "dirty": dirty, "branch": "main"}}
    return doc


def write_run(path: str | Path, doc: dict) -> Path:
    """Write ``doc`` as JSON to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path
