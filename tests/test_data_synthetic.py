"""Synthetic data: exact sizes, determinism, long tails, and a structure a model can learn."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from evcf_fast.data.readers import read_interactions
from evcf_fast.data.split import strong_generalization_split
from evcf_fast.data.synthetic import PRESETS, make_synthetic, synthesize, write_netflix


@pytest.fixture(scope="module")
def small():
    return make_synthetic("small", seed=0)


def test_small_preset_sizes(small):
    p = PRESETS["small"]
    assert small.height == p.n_rows
    assert int((small["rating"] > 3.5).sum()) == p.n_positives
    assert small["user"].n_unique() == p.n_users
    per_user = small.filter(pl.col("rating") > 3.5).group_by("user").len()["len"]
    assert per_user.min() >= 5
    assert 50 <= p.n_positives / p.n_users <= 100
    assert small.select(pl.struct("user", "item").is_duplicated().any()).item() is False
    # MovieLens ratings.csv order: by user, then item
    assert small.select((pl.col("user").diff() >= 0).all()).item()
    keyed = small["user"].cast(pl.Int64) * 10_000 + small["item"].cast(pl.Int64)
    assert (keyed.diff().drop_nulls() > 0).all()


def test_deterministic_per_seed(small):
    assert make_synthetic("small", seed=0).equals(small)
    assert not make_synthetic("small", seed=1).equals(small)


def test_long_tails(small):
    pos = small.filter(pl.col("rating") > 3.5)
    pop = np.sort(pos.group_by("item").len()["len"].to_numpy())[::-1]
    top = pop[: len(pop) // 10].sum() / pop.sum()
    assert top > 0.3  # the top 10% items hold a large share of the interactions
    act = pos.group_by("user").len()["len"].to_numpy()
    assert act.max() > 4 * np.median(act)


def test_ratings_on_the_movielens_scale(small):
    assert set(small["rating"].unique().to_list()) <= {0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0,
                                                       4.5, 5.0}
    assert 3.5 in small["rating"].to_list()  # the boundary case of the > 3.5 filter


def ndcg_at(scores, heldout, k=100):
    """NDCG@k with binary relevance and IDCG over min(k, n_heldout) (Liang et al.)."""
    out = []
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for r in range(scores.shape[0]):
        truth = set(heldout.indices[heldout.indptr[r]:heldout.indptr[r + 1]].tolist())
        if not truth:
            continue
        top = np.argsort(-scores[r], kind="stable")[:k]
        dcg = sum(disc[j] for j, i in enumerate(top) if i in truth)
        out.append(dcg / disc[:min(k, len(truth))].sum())
    return float(np.mean(out))


def test_small_preset_rewards_learning_the_clusters(small):
    """An item-item co-occurrence model beats popularity by a wide margin on held-out users."""
    ds = strong_generalization_split(small, n_heldout=300)
    x = ds.train.astype(np.float64)
    fold_in, heldout = ds.part("validation")
    pop = np.asarray(x.sum(axis=0)).ravel()
    cooc = (x.T @ x).toarray()
    np.fill_diagonal(cooc, 0.0)
    cooc /= np.sqrt(np.outer(pop, pop)) + 1e-9
    f = fold_in.toarray().astype(np.float64)
    s_pop = np.tile(pop, (f.shape[0], 1))
    s_knn = f @ cooc
    s_pop[f > 0] = -np.inf
    s_knn[f > 0] = -np.inf
    n_pop, n_knn = ndcg_at(s_pop, heldout), ndcg_at(s_knn, heldout)
    assert n_knn > 2.0 * n_pop, (n_knn, n_pop)  # about 0.50 vs 0.19 at seed 0


def test_paper_shaped_presets():
    ml, nf = PRESETS["ml20m"], PRESETS["netflix"]
    assert (ml.n_users, ml.n_positives, ml.n_rows) == (136_677, 9_990_682, 20_000_263)
    assert (nf.n_users, nf.n_positives, nf.n_rows) == (463_435, 56_880_037, 100_480_507)
    assert (ml.n_heldout, nf.n_heldout) == (10_000, 40_000)
    assert nf.half_stars is False and nf.n_items == 17_770


def test_scaled_down_ml20m_preset_keeps_every_user():
    df = make_synthetic("ml20m", seed=0, n_users=2_000, n_positives=150_000, n_rows=300_000)
    ds = strong_generalization_split(df, n_heldout=100)
    assert ds.meta["counts"]["n_users"] == 2_000
    assert ds.meta["counts"]["n_positive"] == 150_000


@pytest.mark.parametrize("fmt", ["movielens", "netflix", "split"])
def test_synthesize_formats(tmp_path, fmt):
    out = tmp_path / ("ratings.csv" if fmt == "movielens" else "out")
    synthesize("small", out, format=fmt, seed=2)
    if fmt == "split":
        from evcf_fast.data.dataset import SplitDataset

        ds = SplitDataset.load(out)
        assert ds.validation_fold_in.shape[0] == PRESETS["small"].n_heldout
    else:
        df = read_interactions(out)
        assert df.height == PRESETS["small"].n_rows
    with pytest.raises(FileExistsError, match="already exists; pass overwrite"):
        synthesize("small", out, format=fmt)


def test_bad_arguments(tmp_path, small):
    with pytest.raises(ValueError, match="unknown synthetic preset 'huge', expected one of "
                                         "small, ml20m, netflix"):
        make_synthetic("huge")
    with pytest.raises(TypeError, match=r"unknown SyntheticPreset field\(s\) \['n_user'\]"):
        make_synthetic("small", n_user=3)
    with pytest.raises(ValueError, match="need n_users \\* min_positives <= n_positives"):
        make_synthetic("small", n_positives=10)
    with pytest.raises(ValueError, match="too dense"):
        make_synthetic("small", n_items=20, max_item_id=20)
    with pytest.raises(ValueError, match="Netflix ratings are integers"):
        write_netflix(small.head(20), tmp_path / "nf")
    with pytest.raises(ValueError, match="layout must be 'combined' or 'training_set'"):
        write_netflix(small.head(20), tmp_path / "nf", layout="zip")
    with pytest.raises(ValueError, match="format must be movielens, netflix or split"):
        synthesize("small", tmp_path / "x", format="excel")
    with pytest.raises(ValueError, match="n_heldout only applies to format='split'"):
        synthesize("small", tmp_path / "x", n_heldout=3)
