"""Training throughput (users per second) on 1 and 2 ranks of this CPU (issue 10).

One epoch of ``Trainer.train_epoch`` (Mult-VAE, H=600, z=200, batch 500, AdamNormGrad) on a
clustered synthetic training matrix, timed in long-lived spawned processes (one torch thread per
rank) so that process start-up and the rendezvous stay outside the timing:

* ours: 2 ranks, gloo, each computing half of every global batch (the distributed trainer);
* baselines (same group): the single-process trainer with 1 torch thread and with 2 threads.

``extra_info["users_per_s"]`` is the training throughput of the median round. On a 2-core
machine shared with other jobs, 2 ranks can at best double the 1-thread throughput; the
gradient all-reduce (the whole parameter vector, every step) and the duplicated per-rank work
(noise of the global batch, the optimizer step on every rank) take a share of that.
"""

from __future__ import annotations

import pytest
from _dist import RankPool

pytestmark = pytest.mark.benchmark(group="distributed-train")


def _sizes(quick):
    if quick:
        return dict(n_train=600, n_items=300, hidden=64, latent=16, batch=100)
    return dict(n_train=6000, n_items=6000, hidden=600, latent=200, batch=500)


def _setup(sizes):
    import torch
    from _train_data import clustered_split

    from evcf_fast.models import ModelConfig
    from evcf_fast.train import TrainConfig, distributed
    from evcf_fast.train.loop import Trainer

    data = clustered_split(n_train=sizes["n_train"], n_heldout=20, n_items=sizes["n_items"],
                           n_clusters=20, per_user=60, seed=0)
    mc = ModelConfig(model="multvae", n_items=sizes["n_items"], hidden_size=sizes["hidden"],
                     latent_size=sizes["latent"])
    tc = TrainConfig(batch_size=sizes["batch"], optimizer="adamnormgrad", device="cpu",
                     val_metric="ndcg@10", test_metrics=("ndcg@10",))
    trainer = Trainer(mc, tc, data, progress=False, dist=distributed.current())
    trainer.train_epoch()  # warm-up
    torch.manual_seed(0)
    return trainer


def _epoch(trainer):
    return trainer.train_epoch()["loss"]


@pytest.fixture(scope="module")
def sizes(bench_quick):
    return _sizes(bench_quick)


@pytest.mark.parametrize("ranks,threads", [(2, 1), (1, 1), (1, 2)],
                         ids=["2ranks-1thread", "1rank-1thread", "1rank-2threads"])
def test_train_throughput(benchmark, sizes, ranks, threads):
    pool = RankPool(ranks, _setup, sizes, threads=threads)
    try:
        rounds = 1 if benchmark.disabled else 5
        loss = benchmark.pedantic(pool.run, args=(_epoch,), rounds=rounds, iterations=1)
    finally:
        pool.close()
    assert loss == loss  # finite, not NaN
    benchmark.extra_info.update({k: v for k, v in sizes.items()})
    benchmark.extra_info.update({"ranks": ranks, "threads": threads})
    if ranks == 1:
        benchmark.extra_info["role"] = "baseline"
        benchmark.extra_info["baseline_for"] = "test_train_throughput"
    if not benchmark.disabled:
        benchmark.extra_info["users_per_s"] = sizes["n_train"] / benchmark.stats.stats.median
