#!/usr/bin/env python
"""Netflix-scale end-to-end check of the data engine (issue 2): ~100M raw rating rows.

1. Generates the ``netflix`` synthetic preset (463,435 users, 17,770 movies, 56,880,037 ratings
   > 3.5 among 100,480,507 rating rows) as four ``combined_data_*.txt`` files in a temporary
   directory (a child process; not part of the measurement).
2. Runs ``prepare(..., n_heldout=40000)`` (exact mode) in a fresh child process and reports its
   wall time and peak RSS, then the dataset summary.

Usage::

    python tools/netflix_scale.py              # full size (about 2 GB of text; minutes)
    python tools/netflix_scale.py --scale 0.05 # a 5% version for a quick look
    python tools/netflix_scale.py --keep DIR   # keep the generated files and dataset in DIR

Prints one JSON line with the measurements at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evcf_fast.data.synthetic import PRESETS

_CHILD = """
import json, resource, sys, time
t = time.perf_counter()
{body}
print(json.dumps({{"seconds": round(time.perf_counter() - t, 2),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                        1)}}))
"""


def run_child(body: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD.format(body=body)], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of the Netflix sizes to generate (default: 1.0)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="work in this directory and keep its contents")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not 0 < args.scale <= 1:
        ap.error(f"--scale must be in (0, 1], got {args.scale}")

    work = args.keep or Path(tempfile.mkdtemp(prefix="evcf-netflix-"))
    work.mkdir(parents=True, exist_ok=True)
    raw, out = work / "netflix", work / "netflix_split"
    s = args.scale
    netflix = PRESETS["netflix"]
    sizes = dict(n_users=round(netflix.n_users * s), n_positives=round(netflix.n_positives * s),
                 n_rows=round(netflix.n_rows * s))
    n_heldout = round(netflix.n_heldout * s)
    try:
        t = time.perf_counter()
        if not raw.exists():
            gen = run_child(
                "from evcf_fast.data.synthetic import make_synthetic, write_netflix\n"
                f"df = make_synthetic('netflix', seed={args.seed}, **{sizes!r})\n"
                f"write_netflix(df, {str(raw)!r})")
            print(f"generated {raw} in {gen['seconds']} s (peak RSS {gen['peak_rss_mib']} MiB)",
                  file=sys.stderr)
        size = sum(f.stat().st_size for f in raw.glob("combined_data_*.txt"))
        res = run_child(
            "from evcf_fast.data.pipeline import prepare\n"
            f"ds = prepare({str(raw)!r}, {str(out)!r}, n_heldout={n_heldout}, overwrite=True,"
            f" progress=False)\n"
            "print(ds.summary(), file=sys.stderr)")
        report = {"scale": s, **sizes, "n_heldout": n_heldout, "input_mib": round(size / 2**20),
                  "prepare_seconds": res["seconds"], "prepare_peak_rss_mib": res["peak_rss_mib"],
                  "total_seconds": round(time.perf_counter() - t, 1)}
        print(json.dumps(report))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
