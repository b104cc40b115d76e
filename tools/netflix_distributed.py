#!/usr/bin/env python
"""Netflix-shaped end to end on torch.distributed (issue 10): synth -> prepare -> 2-rank training.

1. ``evcf synth --preset netflix --format netflix`` (100,480,507 rating rows in four
   ``combined_data_*.txt`` files);
2. ``evcf prepare ... --n-heldout 40000`` (the strong-generalization split, memory-mapped);
3. ``evcf train --nproc-per-node N --preset evcf-hvamp-gated-netflix --device cpu --max-steps S``
   (gloo; every rank memory-maps the same dataset directory).

Each step runs as its own command; a step whose output already exists in ``--work`` is skipped
(so the data is made once). The training step is sampled every 0.2 s through ``/proc``: peak RSS
per rank (resident anonymous memory, i.e. the rank's own, and file-backed pages, i.e. the shared
page cache of the memory-mapped dataset) and the peak of their sum. Prints one JSON line.

Usage::

    python tools/netflix_distributed.py --work /tmp/nf --max-steps 20            # full size
    python tools/netflix_distributed.py --work /tmp/nf1 --scale 0.05 --max-steps 5  # quick look

On GPUs run step 3 with ``--device cuda`` (NCCL, one GPU per rank) and no ``--max-steps``; see
the README's "Distributed training".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from evcf_fast.data.synthetic import PRESETS


def _status(pid: int) -> dict:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _children(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    out = []
    for k in map(int, kids):
        out += [k, *_children(k)]
    return out


def _rank_of(pid: int):
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def run_sampled(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; sample its rank processes' memory; return seconds and peaks (bytes)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    per_rank: dict[int, dict] = {}
    peak_total = peak_total_anon = 0
    while proc.poll() is None:
        total = total_anon = 0
        for pid in _children(proc.pid):
            rank = _rank_of(pid)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if rank is not None else b""
            if rank is None or b"torch.distributed.run" in cmdline:
                continue
            st = _status(pid)
            if not st:
                continue
            rss = st.get("RssAnon", 0) + st.get("RssFile", 0) + st.get("RssShmem", 0)
            rec = per_rank.setdefault(rank, {"peak_rss": 0, "peak_anon": 0, "vm_hwm": 0})
            rec["peak_rss"] = max(rec["peak_rss"], rss)
            rec["peak_anon"] = max(rec["peak_anon"], st.get("RssAnon", 0))
            rec["vm_hwm"] = max(rec["vm_hwm"], st.get("VmHWM", 0))
            total += rss
            total_anon += st.get("RssAnon", 0)
        peak_total, peak_total_anon = max(peak_total, total), max(peak_total_anon, total_anon)
        time.sleep(0.2)
    gib = 2 ** 30
    return {"rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 1),
            "per_rank_gib": {r: {k: round(v / gib, 3) for k, v in rec.items()}
                             for r, rec in sorted(per_rank.items())},
            "peak_total_rss_gib": round(peak_total / gib, 3),
            "peak_total_anon_gib": round(peak_total_anon / gib, 3)}


def _timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return round(time.perf_counter() - t0, 1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="working directory (kept)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of the Netflix sizes (default 1.0: 100,480,507 rows)")
    ap.add_argument("--nproc-per-node", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=20,
                    help="optimizer steps of the training run (default 20)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="global batch (default: the preset's, 200)")
    ap.add_argument("--threads", type=int, default=1, help="OMP threads per rank (default 1)")
    ap.add_argument("--eval-batch-size", type=int, default=2000,
                    help="users per scoring block (default 2000; the preset's 10,000 makes a "
                         "711 MB score block and its masked copy per rank, the host peak)")
    args = ap.parse_args(argv)
    if not 0 < args.scale <= 1:
        ap.error(f"--scale must be in (0, 1], got {args.scale}")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    evcf = [sys.executable, "-m", "evcf_fast"]
    raw, split, run = work / "raw", work / "split", work / "run"
    report = {"scale": args.scale, "nproc_per_node": args.nproc_per_node,
              "max_steps": args.max_steps, "eval_batch_size": args.eval_batch_size}
    if not raw.exists():
        if args.scale == 1.0:
            report["synth_seconds"] = _timed(evcf + ["synth", "--preset", "netflix", "--format",
                                                     "netflix", "--out", str(raw), "--quiet"],
                                             env)
        else:  # a scaled copy of the preset (the CLI has the full presets only)
            from evcf_fast.data.synthetic import make_synthetic, write_netflix

            p = PRESETS["netflix"]
            t0 = time.perf_counter()
            df = make_synthetic("netflix", seed=0, n_users=round(p.n_users * args.scale),
                                n_positives=round(p.n_positives * args.scale),
                                n_rows=round(p.n_rows * args.scale))
            write_netflix(df, str(raw))
            del df
            report["synth_seconds"] = round(time.perf_counter() - t0, 1)
    if not split.exists():
        n_heldout = round(PRESETS["netflix"].n_heldout * args.scale)
        report["prepare_seconds"] = _timed(
            evcf + ["prepare", *map(str, sorted(raw.glob("combined_data_*.txt"))), "--out",
                    str(split), "--n-heldout", str(n_heldout), "--quiet"], env)
    train = evcf + ["train", "--data", str(split), "--out", str(run), "--preset",
                    "evcf-hvamp-gated-netflix", "--device", "cpu", "--quiet",
                    "--max-steps", str(args.max_steps),
                    "--set", f"eval_batch_size={args.eval_batch_size}",
                    "--nproc-per-node", str(args.nproc_per_node)]
    if args.batch_size:
        train += ["--batch-size", str(args.batch_size)]
    if run.exists():
        import shutil

        shutil.rmtree(run)
    report["train"] = run_sampled(train, env)
    log = run / "log.jsonl"
    if log.exists():
        rec = json.loads(log.read_text().splitlines()[-1])
        report["train"]["steps"] = rec["step"]
        report["train"]["train_seconds"] = round(rec["train_seconds"], 1)
        report["train"]["val_seconds"] = round(rec["val_seconds"], 1)
        report["train"]["s_per_step"] = round(rec["train_seconds"] / max(rec["step"], 1), 2)
    print(json.dumps(report))
    return 0 if report["train"]["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
