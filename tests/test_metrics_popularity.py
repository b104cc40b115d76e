"""Training popularity and the statistics of recommendation counts (issue 11).

* ``column_counts`` (the parallel Numba count of a training CSR's entries per item) against
  ``np.bincount`` on random indices, in every chunking, out-of-range indices included;
* ``count_statistics`` (coverage, Gini, entropy from one histogram of the counts) against the
  definitions computed item by item in float64 (sorted counts for Gini);
* ``ItemPopularity``: counting once gives the same numbers as passing the CSR, on both
  engines and ``evaluate_topk``; bad popularity objects and malformed CSRs get clear errors.
"""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_oracle import csr

from evcf_fast.kernels.csr import column_counts
from evcf_fast.metrics import ItemPopularity, evaluate, evaluate_topk
from evcf_fast.metrics.conventions import count_statistics

BEYOND = ("coverage@5", "gini@5", "entropy@3", "avgpop@5", "novelty@4")


@settings(max_examples=60, deadline=None)
@given(n_cols=st.integers(1, 40), n_chunks=st.integers(1, 5),
       indices=st.lists(st.integers(-3, 45), max_size=300),
       dtype=st.sampled_from([np.int32, np.int64]))
def test_column_counts_match_bincount(n_cols, n_chunks, indices, dtype):
    idx = np.array(indices, dtype)
    inside = (idx >= 0) & (idx < n_cols)
    counts, n_bad = column_counts(idx, n_cols, n_chunks)
    np.testing.assert_array_equal(counts, np.bincount(idx[inside], minlength=n_cols))
    assert counts.dtype == np.int64 and n_bad == int((~inside).sum())


def statistics_oracle(counts):
    """Coverage, Gini and entropy (nats) item by item in float64, from the definitions."""
    c = np.sort(counts.astype(np.float64))
    n = c.size
    total = c.sum()
    coverage = float((c > 0).sum()) / n
    if total == 0:
        return coverage, math.nan, math.nan
    gini = sum((2 * (i + 1) - n - 1) * c[i] for i in range(n)) / (n * total)
    entropy = -sum(x / total * math.log(x / total) for x in c if x > 0)
    return coverage, gini, entropy


@settings(max_examples=80, deadline=None)
@given(counts=st.lists(st.integers(0, 50), min_size=1, max_size=200))
def test_count_statistics_match_definitions(counts):
    c = np.array(counts, np.int64)
    got = count_statistics(c)
    coverage, gini, entropy = statistics_oracle(c)
    assert got["coverage"] == coverage
    if math.isnan(gini):
        assert math.isnan(got["gini"]) and math.isnan(got["entropy"])
    else:
        assert got["gini"] == pytest.approx(gini, rel=1e-12, abs=1e-15)
        assert got["entropy"] == pytest.approx(entropy, rel=1e-12, abs=1e-15)


def test_count_statistics_by_hand():
    # counts 0, 1, 1, 2: sorted weights (2i - 5) = -3, -1, 1, 3 -> (0 - 1 + 1 + 6) / (4 * 4)
    got = count_statistics(np.array([2, 0, 1, 1]))
    assert got["coverage"] == 0.75
    assert got["gini"] == 6 / 16
    assert got["entropy"] == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    equal = count_statistics(np.array([3, 3, 3]))  # every item equally often: Gini 0
    assert equal["gini"] == 0.0 and equal["entropy"] == pytest.approx(math.log(3))


def _case(seed, n_users=40, n_items=30):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((n_users, n_items))
    heldout = csr([list(rng.choice(n_items, 3, replace=False)) for _ in range(n_users)],
                  n_items)
    exclude = csr([list(rng.choice(n_items, 4, replace=False)) for _ in range(n_users)],
                  n_items)
    train = csr([list(rng.choice(n_items, rng.integers(1, 8), replace=False))
                 for _ in range(60)], n_items)
    return s, heldout, exclude, train


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_item_popularity_gives_the_same_numbers_as_the_csr(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    s, heldout, exclude, train = _case(1)
    pop = ItemPopularity.of(train)
    np.testing.assert_array_equal(pop.counts, np.bincount(train.indices, minlength=30))
    assert pop.n_users == 60
    a = evaluate(s, heldout, exclude=exclude, metrics=BEYOND, train=train, backend=backend)
    b = evaluate(s, heldout, exclude=exclude, metrics=BEYOND, train=pop, backend=backend)
    for m in ("avgpop@5", "novelty@4"):
        np.testing.assert_array_equal(a.per_user[m], b.per_user[m])
    assert a.aggregate == b.aggregate
    lists = np.argsort(-s, axis=1, kind="stable")[:, :10]
    c = evaluate_topk(lists, heldout, metrics=BEYOND, train=train)
    d = evaluate_topk(lists, heldout, metrics=BEYOND, train=pop)
    np.testing.assert_array_equal(c.per_user["novelty@4"], d.per_user["novelty@4"])


@pytest.mark.parametrize("make, exc, match", [
    (lambda: ItemPopularity(np.array([1.0, 2.0]), 3), TypeError,
     r"ItemPopularity.counts must be a 1-d integer numpy array, got a 1-d float64 array"),
    (lambda: ItemPopularity(np.array([[1, 2]]), 3), TypeError, "got a 2-d int64 array"),
    (lambda: ItemPopularity([1, 2], 3), TypeError, "got list"),
    (lambda: ItemPopularity(np.array([1, -2]), 3), ValueError, "non-negative, got minimum -2"),
    (lambda: ItemPopularity(np.array([1, 2]), 0), ValueError, r"n_users must be an int >= 1"),
    (lambda: ItemPopularity(np.array([1, 2]), True), ValueError, "n_users"),
    (lambda: ItemPopularity.of(np.ones((2, 3))), TypeError,
     "train must be a scipy.sparse CSR matrix/array or an ItemPopularity, got ndarray"),
    (lambda: ItemPopularity.of(sp.csr_matrix((0, 3))), ValueError, "at least one user"),
])
def test_bad_popularity(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_popularity_of_the_wrong_catalogue_and_malformed_csr():
    s, heldout, exclude, train = _case(2)
    with pytest.raises(ValueError, match="an ItemPopularity of 30 items .*got one of 29"):
        evaluate(s, heldout, metrics="novelty@3",
                 train=ItemPopularity(np.ones(29, np.int64), 5))
    with pytest.raises(ValueError, match=r"item popularities below 2\*\*31, got 2147483648"):
        evaluate(s, heldout, metrics="novelty@3",
                 train=ItemPopularity(np.full(30, 2**31, np.int64), 5))
    bad = train.copy()
    bad.indices = bad.indices.copy()
    bad.indices[3] = 31  # scipy does not check indices on assignment
    for call in (lambda: evaluate(s, heldout, metrics="novelty@3", train=bad),
                 lambda: evaluate(s, heldout, metrics="novelty@3", train=bad, backend="torch"),
                 lambda: ItemPopularity.of(bad)):
        with pytest.raises(ValueError, match=r"column indices in \[0, 30\), got 1 outside it"):
            call()
