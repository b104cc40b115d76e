#!/usr/bin/env python
"""Full-epoch training and validation timings at ML-20M and Netflix shape (issue 4).

Synthetic binary CSR data of the paper's shapes (PAPER_SPEC section 7) is generated directly with
NumPy (no polars: the GPU machine does not have it):

* ML-20M:  116,677 training users x 20,108 items, ~73 nonzeros per row;
* Netflix: 383,435 training users x 17,769 items, ~123 nonzeros per row;

plus 10,000 validation users (fold-in ~58, held-out ~14 items). For Mult-VAE (authors' baseline
architecture) and H+Vamp (Gated) (L=2, H=600, z1=z2=200, K=1000, Bernoulli) with Adam and
AdamNormGrad at batch 500 it times one full epoch after a warm-up epoch (CUDA-synchronised),
the 10,000-user validation pass (NDCG@100 through the metric engine), and reports peak GPU memory
(``torch.cuda.max_memory_allocated``) and host RSS. The timed code is the library's own
``evcf_fast.train.loop.Trainer``: device-resident CSR, on-device shuffling, sparse first layers.

    python tools/gpu_bench.py                         # both shapes, bf16 + TF32 on CUDA
    python tools/gpu_bench.py --shapes ml20m --models multvae --optimizers adam
    python tools/gpu_bench.py --small --device cpu    # tiny shapes: a smoke test anywhere
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]

SHAPES = {  # name: (training users, items, mean nnz per training row)
    "ml20m": (116_677, 20_108, 73.0),
    "netflix": (383_435, 17_769, 123.0),
}
SMALL_SHAPES = {"ml20m": (800, 300, 15.0), "netflix": (1_000, 250, 20.0)}
MODELS = {
    "multvae": dict(model="multvae", num_layers=1, gated=False, likelihood="multinomial"),
    "hvamp-gated": dict(model="hvamp", num_layers=2, gated=True, likelihood="bernoulli",
                        n_components=1000),
}


def _import_library():
    """Import evcf_fast from the checkout even when it is not pip-installed.

    pyproject maps the top-level ``kernels/`` folder to ``evcf_fast.kernels``; on a bare
    ``PYTHONPATH`` checkout that alias is registered here.
    """
    sys.path.insert(0, str(ROOT))
    try:
        import evcf_fast.kernels  # noqa: F401
    except ModuleNotFoundError:
        spec = importlib.util.spec_from_file_location(
            "evcf_fast.kernels", ROOT / "kernels" / "__init__.py",
            submodule_search_locations=[str(ROOT / "kernels")])
        module = importlib.util.module_from_spec(spec)
        sys.modules["evcf_fast.kernels"] = module
        spec.loader.exec_module(module)


def synthetic_csr(n_rows: int, n_items: int, mean_nnz: float, *, seed: int,
                  _pilot: bool = True) -> sp.csr_matrix:
    """Binary CSR with log-normal row lengths and Zipf-like item popularity, no duplicates.

    Popular items are drawn repeatedly within long rows; a pilot of 10,000 rows measures the
    share that survives de-duplication so the final mean row length is close to ``mean_nnz``.
    Rows are generated in blocks so the generator's own peak memory stays small.
    """
    if _pilot:
        pilot = synthetic_csr(10_000, n_items, mean_nnz, seed=seed + 1, _pilot=False)
        mean_nnz = mean_nnz * mean_nnz / max(pilot.nnz / 10_000, 1e-9)
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    pop = pop[rng.permutation(n_items)]
    cdf = np.cumsum(pop / pop.sum())
    counts, blocks = np.zeros(n_rows, np.int64), []
    for lo in range(0, n_rows, 20_000):
        hi = min(lo + 20_000, n_rows)
        lengths = np.clip(rng.lognormal(np.log(mean_nnz) - 0.5, 1.0, hi - lo), 1, n_items // 2)
        lengths = lengths.astype(np.int64)
        items = np.searchsorted(cdf, rng.random(int(lengths.sum())), side="right")
        np.minimum(items, n_items - 1, out=items)
        rows = np.repeat(np.arange(hi - lo, dtype=np.int64), lengths)
        keys = np.unique(rows * n_items + items)  # sorted (row, item) pairs, no duplicates
        row_of = keys // n_items
        counts[lo:hi] = np.bincount(row_of, minlength=hi - lo)
        blocks.append((keys - row_of * n_items).astype(np.int32))
    indptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(blocks)
    m = sp.csr_matrix((n_rows, n_items), dtype=np.float32)
    m.data, m.indices, m.indptr = np.ones(indices.size, np.float32), indices, indptr
    return m


def host_rss_gib() -> tuple[float, float]:
    """(current, peak) resident set size of this process in GiB."""
    import psutil

    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return psutil.Process().memory_info().rss / 2**30, peak_kib / 2**20


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_one(data, *, model_name, optimizer, args, n_items, small):
    import torch

    from evcf_fast.models import ModelConfig
    from evcf_fast.train.config import TrainConfig
    from evcf_fast.train.loop import Trainer

    model_kw = dict(MODELS[model_name])
    if small:
        model_kw.update(hidden_size=64, latent_size=16, latent2_size=16,
                        n_components=min(model_kw.get("n_components", 1000), 50))
    mcfg = ModelConfig(n_items=n_items, **model_kw)
    on_cuda = args.device == "cuda"
    tcfg = TrainConfig(optimizer=optimizer, lr=1e-3 if optimizer == "adam" else 5e-4,
                       batch_size=args.batch_size, epochs=10**6, max_beta=0.3, device=args.device,
                       bf16=on_cuda and not args.fp32, tf32=on_cuda and not args.fp32,
                       eval_batch_size=args.val_users, input="dense" if args.dense else "sparse",
                       seed=0)
    if on_cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if tcfg.tf32:
        torch.set_float32_matmul_precision("high")  # a benchmark process: no need to restore
    trainer = Trainer(mcfg, tcfg, data, progress=False)
    if args.compile:
        trainer.model.loss = torch.compile(trainer.model.loss, dynamic=True)
    dev = trainer.device
    times = []
    for _ in range(args.warmup_epochs + args.epochs):
        _sync(dev)
        t0 = time.perf_counter()
        rec = trainer.train_epoch()  # ends in a host read of the epoch's losses
        _sync(dev)
        times.append(time.perf_counter() - t0)
        trainer.epoch += 1
    epoch_s = statistics.median(times[args.warmup_epochs:])
    val_times, ndcg = [], None
    for _ in range(args.val_repeats + 1):
        _sync(dev)
        t0 = time.perf_counter()
        ndcg = trainer.validate()
        _sync(dev)
        val_times.append(time.perf_counter() - t0)
    peak_gpu = torch.cuda.max_memory_allocated(dev) / 2**30 if on_cuda else float("nan")
    rss, peak_rss = host_rss_gib()
    if not np.isfinite(rec["loss"]) or not 0.0 <= ndcg <= 1.0:
        raise RuntimeError(f"{model_name}/{optimizer}: bad results loss={rec['loss']} "
                           f"ndcg={ndcg}")
    return {"model": model_name, "optimizer": optimizer, "bf16": tcfg.bf16, "tf32": tcfg.tf32,
            "input": tcfg.input, "compile": bool(args.compile),
            "steps": rec["steps"], "epoch_s": epoch_s, "epoch_s_all": times,
            "val_s": statistics.median(val_times[1:]),
            "val_users": data.validation_fold_in.shape[0],
            "val_ndcg@100": ndcg, "loss": rec["loss"], "peak_gpu_gib": peak_gpu,
            "rss_gib": rss, "peak_rss_gib": peak_rss}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="tiny shapes and widths (smoke test)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--shapes", default="ml20m,netflix")
    p.add_argument("--models", default="multvae,hvamp-gated")
    p.add_argument("--optimizers", default="adam,adamnormgrad")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--val-users", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=1, help="timed epochs (median)")
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--val-repeats", type=int, default=3)
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast / TF32 on CUDA")
    p.add_argument("--dense", action="store_true", help="dense model input (for comparison)")
    p.add_argument("--compile", action="store_true", help="torch.compile the loss (experimental)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = p.parse_args(argv)

    _import_library()
    import torch

    from evcf_fast.data.dataset import SplitDataset

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_bench: CUDA is not available; use --device cpu (with --small)")
    shapes = SMALL_SHAPES if args.small else SHAPES
    val_users = min(args.val_users, 200) if args.small else args.val_users
    args.val_users = val_users
    device_name = (torch.cuda.get_device_name() if args.device == "cuda" else "cpu")
    print(f"# device: {device_name}; torch {torch.__version__}; batch {args.batch_size}; "
          f"validation users {val_users}", flush=True)
    rows = []
    for shape in args.shapes.split(","):
        n_users, n_items, mean_nnz = shapes[shape]
        t0 = time.perf_counter()
        train = synthetic_csr(n_users, n_items, mean_nnz, seed=1)
        fold_in = synthetic_csr(val_users, n_items, mean_nnz * 0.8, seed=2)
        heldout = synthetic_csr(val_users, n_items, mean_nnz * 0.2, seed=3)
        data = SplitDataset(train=train, validation_fold_in=fold_in, validation_heldout=heldout,
                            test_fold_in=fold_in, test_heldout=heldout,
                            item_ids=np.arange(n_items), train_user_ids=np.arange(n_users),
                            validation_user_ids=np.arange(val_users),
                            test_user_ids=np.arange(val_users), meta={"synthetic": shape})
        print(f"# {shape}: {n_users} x {n_items}, nnz {train.nnz} "
              f"({train.nnz / n_users:.1f}/row), generated in {time.perf_counter() - t0:.1f}s",
              flush=True)
        for model_name in args.models.split(","):
            for optimizer in args.optimizers.split(","):
                row = {"shape": shape, "n_users": n_users, "n_items": n_items,
                       "nnz": int(train.nnz),
                       **bench_one(data, model_name=model_name, optimizer=optimizer, args=args,
                                   n_items=n_items, small=args.small)}
                rows.append(row)
                print(_format_row(row), flush=True)
        del data, train
    print()
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


_HEADER = ("shape", "model", "optimizer", "prec", "s/epoch", "steps", "val s", "val ndcg",
           "peak GPU GiB", "RSS GiB", "peak RSS GiB")


def _format_row(r) -> str:
    prec = "bf16" if r["bf16"] else ("tf32" if r["tf32"] else "fp32")
    cells = (r["shape"], r["model"], r["optimizer"], prec, f"{r['epoch_s']:.3f}",
             str(r["steps"]), f"{r['val_s']:.4f}", f"{r['val_ndcg@100']:.4f}",
             f"{r['peak_gpu_gib']:.2f}", f"{r['rss_gib']:.2f}", f"{r['peak_rss_gib']:.2f}")
    return " | ".join(cells)


def _table(rows) -> str:
    lines = [" | ".join(_HEADER), " | ".join("---" for _ in _HEADER)]
    lines += [_format_row(r) for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
