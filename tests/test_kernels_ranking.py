"""evcf_fast.kernels.ranking against the float64 oracle of tests/test_metrics_oracle.py.

Small hypothesis cases cover the unsampled paths (every item into the buffer, compaction, ties,
-inf, NaN, all items excluded, k >= n_items). Rows of >= 2 * _SAMPLE items take the sampled
threshold; dedicated rows force each of its fallbacks (threshold too high once and twice) and
the compaction path (threshold too low) by planting values at the sampled positions.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_metrics_oracle import ALL_METRICS, assert_close, csr, oracle, rows_of

from evcf_fast.kernels import ranking as R

CODES = {"ndcg": R.NDCG, "recall": R.RECALL, "precision": R.PRECISION, "hitrate": R.HITRATE,
         "mrr": R.MRR, "map": R.MAP}


def run_kernel(scores, heldout, exclude, metrics, *, recall_mode=0):
    ks = np.array([int(m.split("@")[1]) for m in metrics], np.int64)
    codes = np.array([CODES[m.split("@")[0]] for m in metrics], np.int64)
    disc = 1.0 / np.log2(np.arange(2, ks.max() + 2))
    out = np.empty((scores.shape[0], len(metrics)))
    nan_rows = np.zeros(scores.shape[0], np.uint8)
    R.topk_metrics(scores, exclude.indptr.astype(np.int64), exclude.indices,
                   heldout.indptr.astype(np.int64), heldout.indices, ks, codes, recall_mode,
                   disc, np.cumsum(disc), out, nan_rows)
    return {m: out[:, q] for q, m in enumerate(metrics)}, nan_rows


def check(scores, ho_rows, ex_rows, metrics, *, recall_mode=0):
    n_items = scores.shape[1]
    got, nan_rows = run_kernel(scores, csr(ho_rows, n_items), csr(ex_rows, n_items), metrics,
                               recall_mode=recall_mode)
    want = oracle(scores, ho_rows, ex_rows, metrics,
                  recall_denominator=("min", "heldout")[recall_mode])
    assert_close(got, want)
    return nan_rows


@st.composite
def cases(draw, max_items=40):
    n_users = draw(st.integers(1, 5))
    n_items = draw(st.integers(1, max_items))
    kind = draw(st.sampled_from(["continuous", "ties", "inf"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "continuous":
        s = rng.standard_normal((n_users, n_items))
    elif kind == "ties":  # integer-valued scores: many ties, the tie rule decides
        s = rng.integers(0, 3, (n_users, n_items)).astype(np.float64)
    else:
        s = rng.choice([-np.inf, np.inf, 0.0, 1.0, -1.0], (n_users, n_items))
    p_ex = draw(st.sampled_from([0.0, 0.3, 1.0]))  # 1.0: every item excluded
    ex = [np.flatnonzero(rng.random(n_items) < p_ex).tolist() for _ in range(n_users)]
    ho = [np.flatnonzero(rng.random(n_items) < draw(st.sampled_from([0.0, 0.2, 0.6]))).tolist()
          for _ in range(n_users)]
    ks = draw(st.lists(st.integers(1, n_items), min_size=1, max_size=3))
    names = draw(st.lists(st.sampled_from(ALL_METRICS), min_size=len(ks), max_size=len(ks)))
    metrics = list(dict.fromkeys(f"{m}@{k}" for m, k in zip(names, ks)))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    return s.astype(dtype), ho, ex, metrics


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, 1))
def test_kernel_matches_oracle_small(case, recall_mode):
    scores, ho, ex, metrics = case
    check(scores, ho, ex, metrics, recall_mode=recall_mode)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.sampled_from([np.float32, np.float64]))
def test_kernel_compaction_in_unsampled_rows(seed, k, dtype):
    """n_items between the buffer size and the sampling size: the buffer overflows and is
    compacted while every item is visited."""
    rng = np.random.default_rng(seed)
    n_items = 1500
    s = np.round(rng.standard_normal((3, n_items)), 1).astype(dtype)  # ties too
    ho = [rng.choice(n_items, 30, replace=False).tolist() for _ in range(3)]
    ex = [rng.choice(n_items, 60, replace=False).tolist() for _ in range(3)]
    check(s, ho, ex, [f"ndcg@{k}", f"recall@{k}", f"map@{k}", "mrr@40"])


def sampled_positions(n_items):
    span = n_items - R._SAMPLE_RUN
    starts = [(b * span) // (R._SAMPLE_RUNS - 1) for b in range(R._SAMPLE_RUNS)]
    return np.array([j for s in starts for j in range(s, s + R._SAMPLE_RUN)])


N_BIG = 8192  # large enough for the sampled threshold with k = 50


def big_case(kind, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    n = N_BIG
    pos = sampled_positions(n)
    if kind == "normal":
        s = rng.standard_normal((4, n))
    elif kind == "sample_too_high":  # one high item per sampled run, everything else low
        s = rng.standard_normal((4, n)) - 100
        s[:, pos[::R._SAMPLE_RUN]] = 100 + rng.random((4, R._SAMPLE_RUNS))
    elif kind == "sample_high_once":  # the first threshold is too high, the fallback is not
        s = rng.standard_normal((4, n))
        s[:, pos[::R._SAMPLE_RUN][:20]] = 100 + rng.random((4, 20))
    elif kind == "sample_too_low":  # sampled items low, the rest high: the buffer overflows
        s = rng.standard_normal((4, n)) + 100
        s[:, pos] = -100
    elif kind == "ties":
        s = rng.integers(0, 4, (4, n)).astype(np.float64)
    elif kind == "sorted":  # popularity-sorted ids: scores fall with the index
        s = -np.arange(n, dtype=np.float64)[None, :] + rng.standard_normal((4, n)) * 10
    else:  # mostly -inf
        s = np.full((4, n), -np.inf)
        s[:, rng.choice(n, 30, replace=False)] = rng.standard_normal(30)
    ex = [rng.choice(n, 58, replace=False).tolist() for _ in range(4)]
    top = [ranking_head(s[u], ex[u]) for u in range(4)]
    # held-out: some items of the true top 60 (hits) and some random ones
    ho = [sorted(set(rng.choice(top[u], 8, replace=False).tolist())
                 | set(rng.choice(n, 8, replace=False).tolist())) for u in range(4)]
    return s.astype(dtype), ho, ex


def ranking_head(row, ex):
    from test_metrics_oracle import ranking

    return ranking(row, ex)[:60]


@pytest.mark.parametrize("kind", ["normal", "sample_too_high", "sample_high_once",
                                  "sample_too_low", "ties", "sorted", "neg_inf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_oracle_sampled_paths(kind, dtype):
    scores, ho, ex = big_case(kind, seed=hash(kind) % 1000, dtype=dtype)
    check(scores, ho, ex, ["ndcg@50", "recall@20", "precision@10", "mrr@50", "map@50",
                           "hitrate@5"])


def test_kernel_reports_nan_rows_outside_excluded_items():
    s = np.arange(12.0).reshape(3, 4)
    s[0, 1] = np.nan  # a ranked item: counts
    s[1, 2] = np.nan  # an excluded item: does not count
    big = np.random.default_rng(0).standard_normal((2, N_BIG))
    big[1, 4321] = np.nan
    nan_small = check(s, [[0], [0], [0]], [[], [2], []], ["ndcg@2"])
    nan_big = check(big, [[1], [2]], [[], []], ["ndcg@50"])
    assert nan_small.tolist() == [1, 0, 0]
    assert nan_big.tolist() == [0, 1]


def test_kernel_all_items_excluded_gives_zero_not_nan():
    s = np.ones((1, 3))
    got, _ = run_kernel(s, csr([[0]], 3), csr([[0, 1, 2]], 3), ["ndcg@3", "recall@1"])
    assert got["ndcg@3"][0] == 0.0 and got["recall@1"][0] == 0.0


def test_kernel_row_block_slices_of_indptr():
    """A row block is passed as a slice of the full CSR's indptr (pointers not starting at 0)."""
    rng = np.random.default_rng(1)
    s = rng.standard_normal((6, 30))
    ho, ex = csr([[1, 2], [3], [4, 5], [], [7], [8]], 30), csr([[0], [1], [2], [3], [4], [5]], 30)
    full, _ = run_kernel(s, ho, ex, ["ndcg@10"])
    ks = np.array([10], np.int64)
    disc = 1.0 / np.log2(np.arange(2, 12))
    out = np.empty((3, 1))
    R.topk_metrics(s[2:5], ex.indptr[2:6].astype(np.int64), ex.indices,
                   ho.indptr[2:6].astype(np.int64), ho.indices, ks,
                   np.array([R.NDCG], np.int64), 0, disc, np.cumsum(disc), out,
                   np.zeros(3, np.uint8))
    np.testing.assert_array_equal(out[:, 0], full["ndcg@10"][2:5])


@settings(max_examples=60, deadline=None)
@given(cases(max_items=30))
def test_masked_topk_is_the_oracle_ranking(case):
    scores, _, ex, metrics = case
    k = int(metrics[0].split("@")[1])
    excl = csr(ex, scores.shape[1])
    out = np.empty((scores.shape[0], k), np.int64)
    R.masked_topk(scores, excl.indptr.astype(np.int64), excl.indices, k, out,
                  np.zeros(scores.shape[0], np.uint8))
    for u in range(scores.shape[0]):
        want = ranking_full(scores[u], ex[u])[:k]
        assert out[u, :len(want)].tolist() == want.tolist()
        assert (out[u, len(want):] == -1).all()


@pytest.mark.parametrize("kind", ["normal", "sample_too_high", "sample_too_low", "ties"])
def test_masked_topk_sampled_rows(kind):
    scores, _, ex = big_case(kind, seed=3)
    excl = csr(ex, N_BIG)
    out = np.empty((4, 64), np.int64)
    R.masked_topk(scores, excl.indptr.astype(np.int64), excl.indices, 64, out,
                  np.zeros(4, np.uint8))
    for u in range(4):
        assert out[u].tolist() == ranking_full(scores[u], ex[u])[:64].tolist()


def ranking_full(row, ex):
    from test_metrics_oracle import ranking

    return ranking(row, ex)


@settings(max_examples=100, deadline=None)
@given(cases(max_items=30), st.integers(0, 1))
def test_metrics_from_topk_matrix_match_oracle(case, recall_mode):
    """The precomputed-list kernel on the oracle's own ranking (padded with -1), with the
    excluded items left in the lists: the kernel must drop them."""
    scores, ho, ex, metrics = case
    n_users, n_items = scores.shape
    width = n_items
    top = np.full((n_users, width), -1, np.int64)
    for u in range(n_users):
        r = ranking_full(scores[u], ())  # excluded items included, the kernel drops them
        top[u, :len(r)] = r
    ks = np.array([int(m.split("@")[1]) for m in metrics], np.int64)
    codes = np.array([CODES[m.split("@")[0]] for m in metrics], np.int64)
    disc = 1.0 / np.log2(np.arange(2, ks.max() + 2))
    excl, held = csr(ex, n_items), csr(ho, n_items)
    out = np.empty((n_users, len(metrics)))
    R.topk_metrics_from_topk(top, excl.indptr.astype(np.int64), excl.indices,
                             held.indptr.astype(np.int64), held.indices, ks, codes,
                             recall_mode, disc, np.cumsum(disc), out)
    want = oracle(scores, ho, ex, metrics, recall_denominator=("min", "heldout")[recall_mode])
    assert_close({m: out[:, q] for q, m in enumerate(metrics)}, want)


def test_rows_of_roundtrip():
    assert rows_of(csr([[2, 0], []], 3)) == [[0, 2], []]
