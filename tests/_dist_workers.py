"""Functions the distributed tests run on every rank (importable by spawned processes)."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import torch
from _train_data import clustered_split

from evcf_fast.models import ModelConfig
from evcf_fast.train import TrainConfig

N_ITEMS = 50
# 226 training users in batches of 25: nine batches cut 13/12 over 2 ranks, and a last batch of
# one user, which leaves rank 1 an empty shard (it computes that user with weight 0)
N_TRAIN = 226
BATCH = 25


def data(seed=0, n_train=N_TRAIN, n_heldout=40):
    return clustered_split(n_train=n_train, n_heldout=n_heldout, n_items=N_ITEMS, seed=seed)


def configs(model, optimizer, *, epochs, **train):
    gated = model == "hvamp"
    mc = ModelConfig(model=model, n_items=N_ITEMS, hidden_size=12, latent_size=6,
                     latent2_size=6, num_layers=1, gated=gated, n_components=5)
    tc = TrainConfig(**{"epochs": epochs, "batch_size": BATCH, "optimizer": optimizer,
                        "lr": 3e-3, "device": "cpu", "warmup": 3, "max_beta": 0.5,
                        "patience": None, "eval_batch_size": 16, "seed": 3,
                        "val_metric": "ndcg@20", "test_metrics": ("ndcg@10", "recall@5"),
                        **train})
    return mc, tc


def fit_run(model, optimizer, *, epochs, out, float64=False, resume=False, **train):
    """One ``fit`` (distributed when a process group is initialised); rank-0 view of the run."""
    from evcf_fast.train.checkpoint import load_checkpoint
    from evcf_fast.train.loop import fit

    previous = torch.get_default_dtype()
    if float64:
        torch.set_default_dtype(torch.float64)
    try:
        mc, tc = configs(model, optimizer, epochs=epochs, **train)
        res = fit(data(), model_config=mc, train_config=tc, out=out, resume=resume,
                  progress=False)
    finally:
        torch.set_default_dtype(previous)
    last = load_checkpoint(Path(out) / "last.pt")
    return {"history": [{k: v for k, v in r.items() if "seconds" not in k} for r in res.history],
            "last": last["model_state"], "test": dict(res.test.mean),
            "test_per_user": {k: np.asarray(v) for k, v in res.test.per_user.items()}}


def fit_many(runs):
    return [fit_run(**run) for run in runs]


def resume_sequence(root, float64=True):
    """Uninterrupted 6 epochs; 3 epochs then resumed to 6; a copy of the 3-epoch folder."""
    import torch.distributed as dist

    root = Path(root)
    kw = dict(model="hvamp", optimizer="adamnormgrad", float64=float64)
    full = fit_run(epochs=6, out=root / "full", **kw)
    fit_run(epochs=3, out=root / "part", **kw)
    if dist.get_rank() == 0:
        shutil.copytree(root / "part", root / "part_copy")
    dist.barrier()
    resumed = fit_run(epochs=6, out=root / "part", resume=True, **kw)
    return {"full": full, "resumed": resumed}


def evaluate_both(seed, eval_batch_sizes, metrics):
    """Distributed evaluation of seeded random weights and the single-process one of the same
    weights, for each scoring block size (37 validation users)."""
    from evcf_fast.models import build_model
    from evcf_fast.train import distributed
    from evcf_fast.train.evaluation import EvalPart, evaluate_part

    ds = data(n_heldout=37)
    torch.manual_seed(seed)
    model = build_model(configs("hvamp", "adam", epochs=1)[0])
    ctx = distributed.current()
    fold_in, heldout = ds.part("validation")
    out = []
    for eb in eval_batch_sizes:
        part = ctx.eval_part(fold_in, heldout, "cpu", batch_size=eb)
        got = ctx.evaluate(model, part, metrics=metrics, batch_size=eb)
        ref = evaluate_part(model, EvalPart(fold_in, heldout, "cpu"), metrics=metrics,
                            batch_size=eb)
        out.append({"got": (dict(got.mean), dict(got.stderr), dict(got.per_user),
                            got.n_heldout),
                    "ref": (dict(ref.mean), dict(ref.stderr), dict(ref.per_user),
                            ref.n_heldout),
                    "local_users": 0 if part is None else part.n_users})
    return out


def bad_inputs(root):
    """(type, message) of each setup error, as every rank sees it."""
    import torch.distributed as dist

    from evcf_fast.train.loop import fit

    rank = dist.get_rank()
    mc, tc = configs("multvae", "adam", epochs=1, batch_size=1)
    cases = {"too_many_ranks": (data(n_train=1, n_heldout=5), {}),
             "too_few_val_users": (data(n_heldout=1), {}),
             "fingerprint": (data(seed=rank), {}),
             "config": (data(), {"lr": 1e-3 * (rank + 1)}),
             "dense": (data(), {"input": "dense"})}
    out = {}
    for name, (ds, over) in cases.items():
        cfg = dataclasses.replace(tc, **over)
        try:
            fit(ds, model_config=mc, train_config=cfg, out=Path(root) / name, progress=False)
            out[name] = None
        except Exception as exc:
            out[name] = (type(exc).__name__, str(exc))
    return out
