"""prepare(): files in, dataset directory out; atomic writes, metadata, pre-split round trip."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from evcf_fast.data.dataset import MATRICES, SplitDataset
from evcf_fast.data.export import export_presplit
from evcf_fast.data.pipeline import prepare
from evcf_fast.data.readers import read_interactions, read_presplit
from evcf_fast.data.split import strong_generalization_split
from evcf_fast.data.synthetic import make_synthetic, write_movielens, write_netflix


@pytest.fixture(scope="module")
def table():
    return make_synthetic("small", seed=5, n_users=500, n_items=300, n_positives=25_000,
                          n_rows=40_000, half_stars=False)


@pytest.fixture()
def ratings_csv(tmp_path, table):
    return write_movielens(table, tmp_path / "raw" / "ratings.csv")


def assert_same_dataset(a: SplitDataset, b: SplitDataset, *, user_ids=True):
    for name in MATRICES:
        ma, mb = getattr(a, name), getattr(b, name)
        assert ma.shape == mb.shape, name
        np.testing.assert_array_equal(ma.indptr, mb.indptr, err_msg=name)
        np.testing.assert_array_equal(ma.indices, mb.indices, err_msg=name)
    assert a.item_ids.tolist() == b.item_ids.tolist()
    if user_ids:
        for name in ("train_user_ids", "validation_user_ids", "test_user_ids"):
            assert getattr(a, name).tolist() == getattr(b, name).tolist()


def test_prepare_writes_what_it_returns(tmp_path, ratings_csv, table):
    ds = prepare(ratings_csv, tmp_path / "ds", n_heldout=50, progress=False)
    back = SplitDataset.load(tmp_path / "ds")
    assert_same_dataset(ds, back)
    # the same split as the in-memory function on the same table
    assert_same_dataset(ds, strong_generalization_split(table, n_heldout=50))
    src = back.meta["sources"][0]
    assert src["sha256"] == hashlib.sha256(ratings_csv.read_bytes()).hexdigest()
    assert src["size"] == ratings_csv.stat().st_size
    assert back.meta["counts"]["n_rows"] == table.height
    assert back.meta["counts"]["n_positive"] == int((table["rating"] > 3.5).sum())
    assert back.meta["params"] == {"n_heldout": 50, "min_rating": 3.5, "min_user_count": 5,
                                   "seed": 98765, "heldout_fraction": 0.2, "exact": True}
    assert back.meta["source_format"] == "movielens ratings.csv"
    assert back.meta["name"] == "ds"
    assert "library" in back.meta and "created" in back.meta


def test_netflix_layouts_give_the_same_dataset(tmp_path, table):
    write_netflix(table, tmp_path / "combined", layout="combined", n_files=2)
    write_netflix(table, tmp_path / "ts", layout="training_set")
    a = prepare(tmp_path / "combined", n_heldout=40, progress=False)
    b = prepare(tmp_path / "ts", n_heldout=40, progress=False, hash_sources=False)
    assert_same_dataset(a, b)
    assert a.meta["counts"]["n_rows"] == table.height
    assert "sha256" not in b.meta["sources"][0]
    # Netflix rows are grouped by movie: a different file order, so a different vocabulary
    # order than the MovieLens-ordered table, but the same users and item sets
    c = strong_generalization_split(table.sort("item", maintain_order=True), n_heldout=40)
    assert_same_dataset(a, c)


def test_refuses_existing_output_before_any_work(tmp_path):
    (tmp_path / "out").mkdir()
    bad = tmp_path / "bad.csv"
    bad.write_text("nonsense")
    with pytest.raises(FileExistsError, match="output directory .* already exists; pass "
                                              "overwrite"):
        prepare(bad, tmp_path / "out", n_heldout=1)


def test_overwrite_replaces(tmp_path, ratings_csv):
    prepare(ratings_csv, tmp_path / "ds", n_heldout=50, progress=False)
    ds = prepare(ratings_csv, tmp_path / "ds", n_heldout=60, overwrite=True, progress=False)
    assert SplitDataset.load(tmp_path / "ds").test_fold_in.shape[0] == 60 == \
        ds.test_fold_in.shape[0]


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(n_heldout=10_000), ValueError, "validation \\+ test users but only 500 users remain"),
    # the rows before the filter are counted on a thread; this error waits for the count
    (dict(n_heldout=10, min_rating=9.0), ValueError, "no interactions left after the rating "
                                                     "filter: .* got none out of 40,000"),
    (dict(n_heldout=10, min_user_count=10_000), ValueError, "no users left after filtering"),
    (dict(n_heldout=None), TypeError, "n_heldout is required"),
    (dict(n_heldout=10, heldout_fraction=2.0), ValueError, "heldout_fraction must be in"),
])
def test_errors_leave_no_output(tmp_path, ratings_csv, kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        prepare(ratings_csv, tmp_path / "out" / "ds", progress=False, **kwargs)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_malformed_input_leaves_no_output(tmp_path):
    bad = tmp_path / "ratings.csv"
    bad.write_text("userId,movieId,rating\n1,2,5\n1,x\n")
    with pytest.raises(ValueError, match="ratings.csv:3: expected 3 fields, got 2"):
        prepare(bad, tmp_path / "ds", n_heldout=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratings.csv"]


def test_implicit_data(tmp_path):
    path = tmp_path / "clicks.csv"
    rows = [f"u{u},i{(u * 7 + k) % 20}" for u in range(30) for k in range(6)]
    path.write_text("user_id,item_id\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="has no rating column, so min_rating=3.5 cannot be "
                                         "applied; pass min_rating=None"):
        prepare(path, n_heldout=2, progress=False)
    ds = prepare(path, n_heldout=2, min_rating=None, progress=False)
    assert ds.meta["counts"]["n_rows"] == 180
    assert ds.train_user_ids.dtype.kind == "U"
    assert "implicit (no rating filter)" in ds.summary()


def test_duplicates_are_counted_in_the_summary(tmp_path):
    path = tmp_path / "r.csv"
    rows = [f"{u},{i},5" for u in range(1, 6) for i in range(1, 7)] + ["1,1,5", "2,3,4"]
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    ds = prepare(path, tmp_path / "ds", n_heldout=1, progress=False)
    assert ds.meta["counts"]["n_duplicates"] == 2
    assert "2 duplicated (user, item) pairs collapsed" in SplitDataset.load(
        tmp_path / "ds").summary()


def test_fast_mode_is_recorded_and_differs(tmp_path, ratings_csv):
    exact = prepare(ratings_csv, n_heldout=50, progress=False)
    fast = prepare(ratings_csv, n_heldout=50, exact=False, progress=False)
    assert "fast (not identical)" in fast.summary()
    assert (exact.test_heldout != fast.test_heldout).nnz > 0
    np.testing.assert_array_equal(exact.train.indices, fast.train.indices)


def test_presplit_round_trip(tmp_path, ratings_csv):
    ds = prepare(ratings_csv, tmp_path / "ds", n_heldout=50, progress=False)
    export_presplit(SplitDataset.load(tmp_path / "ds"), tmp_path / "pro_sg")
    # the authors' uid numbering: validation after train, test after validation
    tr = pl.read_csv(tmp_path / "pro_sg" / "train.csv")
    vte = pl.read_csv(tmp_path / "pro_sg" / "validation_te.csv")
    assert tr.columns == ["uid", "sid"] and tr.height == ds.train.nnz
    assert vte["uid"].min() >= ds.train.shape[0]
    assert (tmp_path / "pro_sg" / "unique_sid.txt").read_text().split() == \
        [str(i) for i in ds.item_ids]
    back = read_presplit(tmp_path / "pro_sg")
    assert_same_dataset(ds, back)
    via_prepare = prepare(tmp_path / "pro_sg", tmp_path / "ds2", n_heldout=None, progress=False)
    assert_same_dataset(ds, via_prepare)
    assert SplitDataset.load(tmp_path / "ds2").meta["source_format"] == "presplit"
    # without unique_uid.txt (the authors' files), user ids are the uids
    (tmp_path / "pro_sg" / "unique_uid.txt").unlink()
    bare = read_presplit(tmp_path / "pro_sg")
    assert_same_dataset(ds, bare, user_ids=False)
    assert bare.validation_user_ids.tolist() == list(range(ds.train.shape[0],
                                                           ds.train.shape[0] + 50))
    with pytest.raises(ValueError, match="n_heldout must be None for pre-split input"):
        prepare(tmp_path / "pro_sg", n_heldout=5)
    with pytest.raises(FileExistsError, match="already exists"):
        export_presplit(ds, tmp_path / "pro_sg")


def test_read_interactions_and_prepare_see_the_same_rows(ratings_csv, table):
    df = read_interactions(ratings_csv)
    assert df["user"].to_list() == table["user"].to_list()
    assert df["item"].to_list() == table["item"].to_list()
