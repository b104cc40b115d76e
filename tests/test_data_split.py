"""The strong-generalization split against an independent pandas re-implementation of the notebook.

The oracle (``notebook_split`` in tests/reference.py) is written from PAPER_SPEC 1.1 (with the 1.5
fix: per-id counts as a Series indexed by the original id) in the notebook's own style: global
``np.random.seed``, ``groupby`` loops, ``pd.unique``, dict-based numerize. It shares no code with
evcf_fast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import scipy.sparse as sp
from _shared_data import real_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import legacy_heldout_draw_python, notebook_split

from evcf_fast.data.pipeline import prepare
from evcf_fast.data.split import factorize, legacy_heldout_draw, strong_generalization_split
from evcf_fast.kernels import split as K

# ----------------------------------------------------------------------------------------------
# comparing with the oracle


def assert_same_as_notebook(ds, raw: pd.DataFrame, n_heldout: int, **kw):
    files, unique_sid, unique_uid, n_train = notebook_split(raw, n_heldout, **kw)
    assert ds.item_ids.tolist() == unique_sid
    assert ds.train_user_ids.tolist() == unique_uid[:n_train]
    assert ds.validation_user_ids.tolist() == unique_uid[n_train:n_train + n_heldout]
    assert ds.test_user_ids.tolist() == unique_uid[n_train + n_heldout:]
    n_items = len(unique_sid)
    for name, attr, first in (("train", "train", 0),
                              ("validation_tr", "validation_fold_in", n_train),
                              ("validation_te", "validation_heldout", n_train),
                              ("test_tr", "test_fold_in", n_train + n_heldout),
                              ("test_te", "test_heldout", n_train + n_heldout)):
        ours = getattr(ds, attr)
        df = files[name]
        n_rows = n_train if name == "train" else n_heldout
        ref = sp.coo_matrix((np.ones(len(df)), (df["uid"] - first, df["sid"])),
                            shape=(n_rows, n_items)).tocsr()
        ref.sum_duplicates()
        assert ours.shape == ref.shape, attr
        assert ours.nnz == len(df), attr  # no duplicates in the reference files either
        np.testing.assert_array_equal(np.asarray(ours.indptr), ref.indptr, err_msg=attr)
        np.testing.assert_array_equal(np.asarray(ours.indices), ref.indices, err_msg=attr)
        check_contract(ours, n_items)


def check_contract(m, n_items):
    assert isinstance(m, sp.csr_matrix)
    assert m.dtype == np.float32 and m.indptr.dtype == np.int64 and m.indices.dtype == np.int32
    assert m.shape[1] == n_items
    assert np.all(m.data == 1)
    for r in range(m.shape[0]):
        row = np.asarray(m.indices[m.indptr[r]:m.indptr[r + 1]])
        assert np.all(np.diff(row) > 0)  # sorted, no duplicates


def to_ours(raw: pd.DataFrame) -> pl.DataFrame:
    return pl.from_pandas(raw).rename({"userId": "user", "movieId": "item"})


# ----------------------------------------------------------------------------------------------
# real data


def test_identical_to_notebook_on_ml_1m():
    """Real ml-1m (ratings_from_rda.csv.gz), n_heldout=600: our whole pipeline (reader, filter
    inside the scan, split) against the pandas notebook on pandas' parse of the same file."""
    path = real_file("ml-1m/ratings_from_rda.csv.gz")
    raw = pd.read_csv(path).rename(columns={"user": "userId", "item": "movieId"})
    ds = prepare(path, n_heldout=600, progress=False)
    assert_same_as_notebook(ds, raw, 600)
    assert ds.meta["counts"]["n_interactions"] == 575_272  # shared/data/README.md
    assert ds.meta["counts"]["n_rows"] == 1_000_209


def test_identical_to_notebook_on_ml_latest_small():
    path = real_file("ml-latest-small/ratings.csv")
    raw = pd.read_csv(path).rename(columns={"userid": "userId", "movieid": "movieId"})
    ds = prepare(path, n_heldout=50, progress=False)
    assert_same_as_notebook(ds, raw, 50)
    assert ds.meta["counts"]["n_users"] == 603


def test_identical_to_notebook_on_ml_100k():
    path = real_file("ml-100k/u.data")
    raw = pd.read_csv(path, sep="\t", names=["userId", "movieId", "rating", "timestamp"])
    ds = prepare(path, n_heldout=100, progress=False)
    assert_same_as_notebook(ds, raw, 100)
    assert ds.meta["counts"]["n_users"] == 938
    # the in-memory split of the same table agrees with the pipeline
    again = strong_generalization_split(to_ours(raw), n_heldout=100)
    np.testing.assert_array_equal(again.train.indices, ds.train.indices)


def test_identical_to_notebook_with_string_ids_on_ml_100k():
    """String ids sort lexicographically in pandas ('10' < '9'): the permutation must follow."""
    raw = pd.read_csv(real_file("ml-100k/u.data"), sep="\t",
                      names=["userId", "movieId", "rating", "timestamp"])
    raw = raw.astype({"userId": str, "movieId": str})
    raw["userId"] = "u" + raw["userId"]
    ds = strong_generalization_split(to_ours(raw), n_heldout=100)
    assert ds.train_user_ids.dtype.kind == "U"
    assert_same_as_notebook(ds, raw, 100)


# ----------------------------------------------------------------------------------------------
# synthetic data


@pytest.mark.parametrize("seed", [0, 1])
def test_identical_to_notebook_on_synthetic(seed):
    from evcf_fast.data.synthetic import make_synthetic

    df = make_synthetic("small", seed=seed, n_users=600, n_items=400, n_positives=30_000,
                        n_rows=45_000)
    raw = df.to_pandas().rename(columns={"user": "userId", "item": "movieId"})
    ds = strong_generalization_split(df, n_heldout=80)
    assert_same_as_notebook(ds, raw, 80)



@pytest.mark.parametrize("exact", [True, False])
def test_threads_do_not_change_the_split(exact):
    """The split runs independent steps on two threads when it may use two cores: the same
    matrices, ids and counts either way (the notebook tests above run on the default, which
    is two threads on a machine with two cores)."""
    from evcf_fast.data.split import split_positives
    from evcf_fast.data.synthetic import make_synthetic

    df = make_synthetic("small", seed=4, n_users=500, n_items=300, n_positives=20_000,
                        n_rows=30_000)
    one, two = (split_positives(df["user"], df["item"], n_rows=df.height, n_heldout=60,
                                min_rating=None, exact=exact, threads=n) for n in (1, 2))
    for name in ("train", "validation_fold_in", "validation_heldout", "test_fold_in",
                 "test_heldout"):
        a, b = getattr(one, name), getattr(two, name)
        assert (a != b).nnz == 0 and a.shape == b.shape
        np.testing.assert_array_equal(a.indptr, b.indptr)
        np.testing.assert_array_equal(a.indices, b.indices)
    for name in ("item_ids", "train_user_ids", "validation_user_ids", "test_user_ids"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    assert one.meta["counts"] == two.meta["counts"]

@st.composite
def interaction_tables(draw):
    n_users = draw(st.integers(3, 25))
    n_items = draw(st.integers(2, 30))
    n = draw(st.integers(1, 400))
    string_ids = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n) * draw(st.sampled_from([1, 7, 1000]))
    items = rng.integers(0, n_items, n)
    ratings = rng.choice([1.0, 2.0, 3.0, 3.5, 4.0, 4.5, 5.0], n)
    raw = pd.DataFrame({"userId": users, "movieId": items, "rating": ratings})
    if string_ids:
        raw = raw.astype({"userId": str, "movieId": str})
    return raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=interaction_tables(), n_heldout=st.integers(0, 4),
       threshold=st.sampled_from([None, 3.5, 2.0]), min_uc=st.integers(1, 6),
       test_prop=st.sampled_from([0.2, 0.1, 0.5]), seed=st.sampled_from([98765, 3]))
def test_identical_to_notebook_on_random_tables(raw, n_heldout, threshold, min_uc, test_prop,
                                                seed):
    """Random small tables (integer or string ids, duplicates, every parameter)."""
    kept = raw if threshold is None else raw[raw["rating"] > threshold]
    kept = kept.drop_duplicates(["userId", "movieId"])
    counts = kept.groupby("userId").size()
    n_users = int((counts >= min_uc).sum())
    kwargs = dict(n_heldout=n_heldout, min_rating=threshold, min_user_count=min_uc,
                  heldout_fraction=test_prop, seed=seed)
    if len(kept) == 0:
        with pytest.raises(ValueError, match="no interactions left after the rating filter"):
            strong_generalization_split(to_ours(raw), **kwargs)
        return
    if n_users == 0:
        with pytest.raises(ValueError, match="no users left after filtering"):
            strong_generalization_split(to_ours(raw), **kwargs)
        return
    if 2 * n_heldout >= n_users:
        with pytest.raises(ValueError, match="validation \\+ test users but only"):
            strong_generalization_split(to_ours(raw), **kwargs)
        return
    ds = strong_generalization_split(to_ours(raw), **kwargs)
    assert_same_as_notebook(ds, raw, n_heldout, threshold=threshold, min_uc=min_uc,
                            seed=seed, test_prop=test_prop, dedupe=True)
    n_dup = len(raw if threshold is None else raw[raw["rating"] > threshold]) - len(kept)
    assert ds.meta["counts"]["n_duplicates"] == n_dup


def test_duplicates_are_collapsed_keeping_the_first_and_counted():
    raw = pd.DataFrame({"userId": [1] * 7 + [2] * 6 + [3] * 5,
                        "movieId": [10, 11, 12, 10, 13, 14, 15] + [10, 11, 12, 13, 14, 11]
                        + [20, 21, 22, 23, 24],
                        "rating": [5.0] * 18})
    ds = strong_generalization_split(to_ours(raw), n_heldout=0)
    assert ds.meta["counts"]["n_duplicates"] == 2
    assert ds.train.nnz == 16
    # first appearance order of the training rows, duplicates changing nothing
    assert set(ds.item_ids.tolist()) == {10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 24}


def test_hand_computed_small_case():
    """Three users; seed 98765; n_heldout=1: the permutation and the 80/20 draw by hand."""
    raw = pd.DataFrame({"userId": [7] * 5 + [3] * 10 + [5] * 6,
                        "movieId": [1, 2, 3, 4, 5] + list(range(10, 20)) + [1, 2, 10, 11, 30, 31],
                        "rating": [4.0] * 21})
    ds = strong_generalization_split(to_ours(raw), n_heldout=1)
    perm = np.random.RandomState(98765).permutation(3)  # over sorted ids [3, 5, 7]
    order = np.array([3, 5, 7])[perm]
    assert ds.train_user_ids.tolist() == [order[0]]
    assert ds.validation_user_ids.tolist() == [order[1]]
    assert ds.test_user_ids.tolist() == [order[2]]
    items = {3: list(range(10, 20)), 5: [1, 2, 10, 11, 30, 31], 7: [1, 2, 3, 4, 5]}
    assert ds.item_ids.tolist() == items[order[0]]  # only the training user's items
    for part, uid in (("validation", order[1]), ("test", order[2])):
        fold_in, heldout = ds.part(part)
        in_vocab = [i for i in items[uid] if i in items[order[0]]]
        n = len(in_vocab)
        if n >= 5:
            pick = np.random.RandomState(98765).choice(n, size=int(0.2 * n), replace=False)
        else:
            pick = []
        expect_te = sorted(ds.item_ids.tolist().index(in_vocab[p]) for p in pick)
        expect_tr = sorted(ds.item_ids.tolist().index(i) for i in in_vocab
                           if ds.item_ids.tolist().index(i) not in expect_te)
        assert heldout.indices.tolist() == expect_te
        assert fold_in.indices.tolist() == expect_tr


# ----------------------------------------------------------------------------------------------
# the pieces


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 400), frac=st.floats(0, 1), seed=st.integers(0, 2**32 - 1),
       warmup=st.integers(0, 3))
def test_choice_without_replacement_is_permutation_prefix(n, frac, seed, warmup):
    """Legacy ``choice(n, k, replace=False)`` == ``permutation(n)[:k]``, same state after."""
    k = int(frac * n)
    a, b = np.random.RandomState(seed), np.random.RandomState(seed)
    for _ in range(warmup):
        a.random_sample()
        b.random_sample()
    x = a.choice(n, size=k, replace=False) if n else np.zeros(0, int)
    y = b.permutation(n)[:k]
    np.testing.assert_array_equal(x, y)
    assert a.randint(0, 2**31 - 1) == b.randint(0, 2**31 - 1)


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.integers(0, 3000), min_size=0, max_size=40),
       fraction=st.sampled_from([0.2, 0.1, 0.5, 0.3, 0.0, 0.999]),
       seed=st.integers(0, 2**32 - 1))
def test_compiled_heldout_draw_is_bit_identical(sizes, fraction, seed):
    """The compiled MT19937 replay equals the notebook's ``np.random.choice`` loop exactly."""
    optr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    rs = np.random.RandomState(seed)  # the notebook: one stream over the users in order
    expected = np.zeros(int(optr[-1]), bool)
    for j, n in enumerate(sizes):
        if n >= 5:
            pick = rs.choice(n, size=int(fraction * n), replace=False)
            expected[optr[j] + pick] = True
    np.testing.assert_array_equal(legacy_heldout_draw(optr, seed=seed, fraction=fraction),
                                  expected)
    np.testing.assert_array_equal(legacy_heldout_draw_python(optr, seed=seed,
                                                             fraction=fraction), expected)


def test_heldout_size_is_float64_truncation():
    assert int(0.2 * 15) == 3  # the notebook's float64 arithmetic, not round()
    raw = pd.DataFrame({"userId": [1] * 15 + [2] * 15 + [3] * 15,
                        "movieId": list(range(15)) * 3, "rating": [4.0] * 45})
    ds = strong_generalization_split(to_ours(raw), n_heldout=1)
    assert ds.validation_heldout.nnz == 3 and ds.test_heldout.nnz == 3


def test_fast_mode_draws_the_same_sizes_but_not_the_same_items():
    from evcf_fast.data.synthetic import make_synthetic

    df = make_synthetic("small", seed=3, n_users=800, n_items=300, n_positives=40_000,
                        n_rows=50_000)
    exact = strong_generalization_split(df, n_heldout=100)
    fast = strong_generalization_split(df, n_heldout=100, exact=False)
    again = strong_generalization_split(df, n_heldout=100, exact=False)
    assert fast.meta["params"]["exact"] is False
    np.testing.assert_array_equal(fast.item_ids, exact.item_ids)
    np.testing.assert_array_equal(fast.train.indices, exact.train.indices)
    for part in ("validation", "test"):
        ef, eh = exact.part(part)
        ff, fh = fast.part(part)
        np.testing.assert_array_equal(np.diff(eh.indptr), np.diff(fh.indptr))  # int(0.2 n)
        assert ((ef + eh) != (ff + fh)).nnz == 0  # same items per user in total
        assert (ff.multiply(fh)).nnz == 0
        assert (eh != fh).nnz > 0  # a different draw
        np.testing.assert_array_equal(again.part(part)[1].indices, fh.indices)  # seeded


@given(st.lists(st.integers(-5, 2**40), min_size=1, max_size=50))
def test_factorize_integer_ids_sorted(values):
    codes, uniques = factorize(pl.Series("user", values), sort=True)
    assert uniques.tolist() == sorted(set(values))
    assert uniques[codes].tolist() == values


@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                        min_size=1, max_size=4),
                min_size=1, max_size=50))
def test_factorize_string_ids_sort_like_python(values):
    # (NUL is excluded: NumPy unicode arrays drop trailing NULs; ids never contain one)
    codes, uniques = factorize(pl.Series("user", values), sort=True)
    assert uniques.tolist() == sorted(set(values))
    assert uniques[codes].tolist() == values


def test_factorize_rejects_missing_and_float_ids():
    with pytest.raises(ValueError, match="column user has 1 missing values"):
        factorize(pl.Series("user", [1, None]), sort=True)
    with pytest.raises(TypeError, match="must hold integer or string ids, got Float64"):
        factorize(pl.Series("user", [1.5]), sort=True)


def test_sort_rows_kernel_against_numpy():
    rng = np.random.default_rng(0)
    indptr = np.concatenate([[0], np.cumsum(rng.integers(0, 9, 50))]).astype(np.int64)
    indices = np.concatenate([rng.permutation(40)[:n] for n in np.diff(indptr)]).astype(np.int32)
    out = K.sort_rows(indptr, indices, 40)
    for r in range(50):
        a, b = indptr[r], indptr[r + 1]
        np.testing.assert_array_equal(out[a:b], np.sort(indices[a:b]))


# ----------------------------------------------------------------------------------------------
# bad input


def _small():
    return pl.DataFrame({"user": [1, 1, 1, 1, 1, 2, 2, 2, 2, 2],
                         "item": [1, 2, 3, 4, 5, 1, 2, 3, 4, 5],
                         "rating": [5.0] * 10})


def test_more_heldout_users_than_exist():
    with pytest.raises(ValueError, match=r"n_heldout=1 asks for 2 validation \+ test users but "
                                         r"only 2 users remain"):
        strong_generalization_split(_small(), n_heldout=1)


def test_empty_after_rating_filter():
    with pytest.raises(ValueError, match=r"no interactions left after the rating filter: "
                                         r"expected some rows with rating > 5"):
        strong_generalization_split(_small(), n_heldout=0, min_rating=5)


def test_no_users_left():
    with pytest.raises(ValueError, match="expected users with >= 6 interactions, got none"):
        strong_generalization_split(_small(), n_heldout=0, min_user_count=6)


def test_missing_rating_column_needs_implicit():
    with pytest.raises(ValueError, match="no rating column; pass min_rating=None"):
        strong_generalization_split(_small().drop("rating"), n_heldout=0)
    ds = strong_generalization_split(_small().drop("rating"), n_heldout=0, min_rating=None)
    assert ds.train.nnz == 10


def test_non_numeric_rating_column():
    df = _small().with_columns(pl.col("rating").cast(pl.String))
    with pytest.raises(ValueError, match="rating column must be numeric, got String"):
        strong_generalization_split(df, n_heldout=0)


def test_missing_user_column():
    with pytest.raises(ValueError, match="must have columns user and item"):
        strong_generalization_split(_small().rename({"user": "u"}), n_heldout=0)


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(n_heldout=-1), ValueError, "n_heldout must be >= 0, got -1"),
    (dict(n_heldout=1.5), TypeError, "n_heldout must be an int, got float"),
    (dict(n_heldout=0, min_user_count=0), ValueError, "min_user_count must be >= 1"),
    (dict(n_heldout=0, min_user_count=2.0), TypeError, "min_user_count must be an int"),
    (dict(n_heldout=0, heldout_fraction=1.0), ValueError, r"heldout_fraction must be in \[0, 1\)"),
    (dict(n_heldout=0, min_rating="3"), TypeError, "min_rating must be a number or None"),
])
def test_bad_parameters(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        strong_generalization_split(_small(), **kwargs)
