"""Learning on real data: ML-1M, strong generalization with 600 validation and 600 test users.

After a fixed small CPU budget (6-8 epochs of a narrowed model), Mult-VAE (Liang's recipe) and
H+Vamp (Gated) (the authors' recipe) must beat a popularity ranking clearly on the test users'
NDCG@100. The popularity scores are the training users' item counts, computed here, evaluated
with the same metric engine (fold-in items excluded).
"""


import numpy as np
import pytest
import torch
from _shared_data import real_file
from _train_data import one_torch_thread  # noqa: F401 (autouse: one torch thread)

from evcf_fast.train import fit
from evcf_fast.train.presets import resolve

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ml1m():
    from evcf_fast.data.pipeline import prepare

    return prepare(real_file("ml-1m/ratings_from_rda.csv.gz"), n_heldout=600, progress=False)


@pytest.fixture(scope="module")
def popularity_ndcg(ml1m):
    from evcf_fast.metrics import evaluate

    fold_in, heldout = ml1m.part("test")
    counts = np.asarray(ml1m.train.sum(axis=0), dtype=np.float32)
    scores = torch.from_numpy(np.repeat(counts, fold_in.shape[0], axis=0))
    res = evaluate(scores, heldout, exclude=fold_in, metrics=("ndcg@100",))
    return res.mean["ndcg@100"], res.stderr["ndcg@100"]


# a fixed small budget: H=200, z=64, K=100, batch 100, lr 3e-3; 8 epochs (H+Vamp: 6)
NARROW = dict(hidden_size=200, latent_size=64, batch_size=100, lr=3e-3, epochs=8, device="cpu",
              seed=0)
CASES = {
    "Mult-VAE": ("multvae-liang", NARROW),
    "H+Vamp (Gated)": ("evcf-hvamp-gated", dict(NARROW, latent2_size=64, n_components=100,
                                                epochs=6, warmup=6)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_beats_popularity(ml1m, popularity_ndcg, name):
    preset, overrides = CASES[name]
    model_cfg, train_cfg = resolve(n_items=ml1m.n_items, preset=preset, overrides=overrides)
    res = fit(ml1m, model_config=model_cfg, train_config=train_cfg, progress=False)
    ndcg, se = res.test.mean["ndcg@100"], res.test.stderr["ndcg@100"]
    pop, pop_se = popularity_ndcg
    print(f"\n{name}: test NDCG@100 {ndcg:.4f} (SE {se:.4f}), Recall@20 "
          f"{res.test.mean['recall@20']:.4f} ({res.test.stderr['recall@20']:.4f}), Recall@50 "
          f"{res.test.mean['recall@50']:.4f} ({res.test.stderr['recall@50']:.4f}); popularity "
          f"NDCG@100 {pop:.4f} (SE {pop_se:.4f}); best epoch {res.best_epoch}")
    assert res.test.n_evaluated == 600
    assert ndcg > pop + 0.05 and ndcg - pop > 5 * max(se, pop_se)
