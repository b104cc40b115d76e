"""Tiny clustered strong-generalization splits for the trainer tests, built in memory as
SplitDataset (no data engine, no polars needed)."""

import os

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from evcf_fast.data.dataset import SplitDataset


def csr_from_rows(rows, n_items):
    indptr = np.zeros(len(rows) + 1, np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    indices = np.concatenate([np.sort(r) for r in rows]).astype(np.int32) if rows else \
        np.zeros(0, np.int32)
    m = sp.csr_matrix((len(rows), n_items), dtype=np.float32)
    m.data, m.indices, m.indptr = np.ones(indices.size, np.float32), indices, indptr
    return m


def clustered_split(*, n_train=240, n_heldout=40, n_items=50, n_clusters=5, per_user=10,
                    seed=0) -> SplitDataset:
    """Users of ``n_clusters`` taste groups; each picks mostly items of its own group.

    Held-out users get an 80/20 fold-in/held-out split of their items, like PAPER_SPEC 1.1.
    """
    rng = np.random.default_rng(seed)
    groups = np.array_split(rng.permutation(n_items), n_clusters)

    def user():
        g = groups[rng.integers(n_clusters)]
        own = rng.choice(g, size=min(per_user - 2, len(g)), replace=False)
        other = rng.choice(n_items, size=2, replace=False)
        return np.unique(np.concatenate([own, other]))

    train = [user() for _ in range(n_train)]
    parts = {}
    for name in ("validation", "test"):
        fold_in, heldout = [], []
        for _ in range(n_heldout):
            items = rng.permutation(user())
            k = int(0.2 * len(items))
            heldout.append(items[:k])
            fold_in.append(items[k:])
        parts[name] = (csr_from_rows(fold_in, n_items), csr_from_rows(heldout, n_items))
    (vf, vh), (tf, th) = parts["validation"], parts["test"]
    return SplitDataset(train=csr_from_rows(train, n_items), validation_fold_in=vf,
                        validation_heldout=vh, test_fold_in=tf, test_heldout=th,
                        item_ids=np.arange(n_items), train_user_ids=np.arange(n_train),
                        validation_user_ids=n_train + np.arange(n_heldout),
                        test_user_ids=n_train + n_heldout + np.arange(n_heldout),
                        meta={"name": "clustered", "seed": seed})


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread for the tiny models of these tests: on a busy 2-core machine OpenMP
    threads spin against each other and run several times slower (restored afterwards)."""
    if os.environ.get("OMP_NUM_THREADS"):
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# flags that make `evcf train` quick on clustered_split data (the CLI tests share them)
SMALL_TRAIN_FLAGS = ["--set", "hidden_size=16", "--set", "latent_size=4", "--set",
                     "eval_batch_size=16", "--device", "cpu", "--quiet", "--batch-size", "64"]


def saved_clustered_split(path, *, n_items=120):
    """clustered_split with raw-looking ids and a name, saved as a dataset folder at ``path``."""
    s = clustered_split(n_items=n_items)
    ds = SplitDataset(train=s.train, validation_fold_in=s.validation_fold_in,
                      validation_heldout=s.validation_heldout, test_fold_in=s.test_fold_in,
                      test_heldout=s.test_heldout, item_ids=np.arange(n_items) * 10 + 7,
                      train_user_ids=np.arange(s.train.shape[0]) + 1000,
                      validation_user_ids=np.arange(s.validation_fold_in.shape[0]) + 2000,
                      test_user_ids=np.arange(s.test_fold_in.shape[0]) + 3000,
                      meta={"name": "clustered"})
    return ds.save(path)
