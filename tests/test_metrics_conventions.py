"""Every convention option and the new metrics (issue 11) against a float64 oracle from the
definitions, on hypothesis-generated inputs and hand-computed cases, on every path (Numba in
memory, chunked .npy files, evaluate_topk, torch on the CPU).

The oracle here extends tests/test_metrics_oracle.py: it sorts whole rows (``np.lexsort``), takes
tie-averaged NDCG from the tie groups of the sorted row (mean gain of the group times the sum of
its discounts, as scikit-learn's ``_tie_averaged_dcg``), and computes beyond-accuracy metrics
from explicit top-k lists with ``collections.Counter``. A brute-force average over every
permutation of the tied items checks that tie-averaged oracle itself.
"""

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from test_metrics_oracle import assert_close, csr, rows_of

from evcf_fast.metrics import EvaluationResult, evaluate, evaluate_topk, topk

ACCURACY = ("ndcg", "recall", "precision", "hitrate", "mrr", "map", "rprec", "f1")


def order_of(score_row, excluded, ties):
    """Items best first under ``ties`` (lower_first/average: lower index; higher_first: higher
    index); excluded items dropped; NaN as -inf."""
    s = np.where(np.isnan(score_row), -np.inf, score_row.astype(np.float64))
    keep = np.setdiff1d(np.arange(s.shape[0]), np.asarray(list(excluded), np.int64))
    second = -keep if ties == "higher_first" else keep
    return keep[np.lexsort((second, -s[keep]))]


def gain_of(value, relevance):
    return 1.0 if relevance == "binary" else value if relevance == "linear" else 2.0 ** value - 1


def tie_averaged_dcg(sorted_scores, gains_in_order, k):
    """Expected DCG@k over all orders of tied scores: per tie group, its mean gain times the sum
    of the discounts of the positions it occupies within k."""
    dcg = 0.0
    start = 0
    n = len(sorted_scores)
    while start < n and start < k:
        end = start
        while end < n and sorted_scores[end] == sorted_scores[start]:
            end += 1
        mean_gain = sum(gains_in_order[start:end]) / (end - start)
        dcg += mean_gain * sum(1 / math.log2(r + 2) for r in range(start, min(end, k)))
        start = end
    return dcg


def oracle(scores, heldout, exclude_rows, metrics, *, recall_denominator="min",
           map_denominator="min", empty_users="skip", ties="lower_first", relevance="binary",
           train=None):
    """(per_user, aggregate) straight from the definitions; heldout is a scipy CSR (values are
    the graded relevance)."""
    n_users, n_items = scores.shape
    per_user, lists = {}, {}
    for m in metrics:
        name, k = m.split("@")
        k = int(k)
        if name in ("coverage", "gini", "entropy", "avgpop", "novelty"):
            lists[m] = (name, k)
            continue
        vals = np.empty(n_users)
        for u in range(n_users):
            lo, hi = heldout.indptr[u], heldout.indptr[u + 1]
            rel = {int(i): float(v) for i, v in zip(heldout.indices[lo:hi], heldout.data[lo:hi])}
            n_ho = len(rel)
            if not n_ho:
                vals[u] = 0.0 if empty_users == "zero" else math.nan
                continue
            ex = exclude_rows[u] if exclude_rows is not None else ()
            order = order_of(scores[u], ex, ties)
            top = order[:k]
            hit_ranks = [r + 1 for r, j in enumerate(top) if int(j) in rel]
            hits = len(hit_ranks)
            cut = min(k, n_ho)
            rec = hits / (cut if recall_denominator == "min" else n_ho)
            if name == "ndcg":
                g_all = sorted((gain_of(v, relevance) for v in rel.values()), reverse=True)
                idcg = sum(g / math.log2(r + 2) for r, g in enumerate(g_all[:cut]))
                if ties == "average":
                    s = np.where(np.isnan(scores[u]), -np.inf, scores[u].astype(np.float64))
                    gs = [gain_of(rel[int(j)], relevance) if int(j) in rel else 0.0
                          for j in order]
                    dcg = tie_averaged_dcg(s[order], gs, k)
                else:
                    dcg = sum(gain_of(rel[int(top[r - 1])], relevance) / math.log2(r + 1)
                              for r in hit_ranks)
                v = dcg / idcg
            elif name == "recall":
                v = rec
            elif name == "precision":
                v = hits / k
            elif name == "hitrate":
                v = float(hits > 0)
            elif name == "mrr":
                v = 1 / hit_ranks[0] if hits else 0.0
            elif name == "map":
                ap = sum((i + 1) / r for i, r in enumerate(hit_ranks))
                den = {"min": cut, "heldout": n_ho, "hits": hits}[map_denominator]
                v = ap / den if den else 0.0
            elif name == "rprec":
                v = sum(1 for r in hit_ranks if r <= cut) / n_ho
            elif name == "f1":
                p = hits / k
                v = 2 * p * rec / (p + rec) if hits else 0.0
            else:
                raise AssertionError(name)
            vals[u] = v
        per_user[m] = vals
    aggregate = {}
    if lists:
        users = [u for u in range(n_users)
                 if empty_users == "zero" or heldout.indptr[u + 1] > heldout.indptr[u]]
        pop = Counter()
        if train is not None:
            for u in range(train.shape[0]):
                for j in train.indices[train.indptr[u]:train.indptr[u + 1]]:
                    pop[int(j)] += 1
        for m, (name, k) in lists.items():
            tops = {u: order_of(scores[u], exclude_rows[u] if exclude_rows else (),
                                "lower_first")[:k] for u in range(n_users)}
            if name in ("avgpop", "novelty"):
                vals = np.full(n_users, math.nan)
                for u in users:
                    items = [int(j) for j in tops[u]]
                    if not items:  # every item excluded: an empty list has no mean
                        continue
                    if name == "avgpop":
                        vals[u] = sum(pop[j] for j in items) / len(items)
                    else:
                        vals[u] = sum(-math.log2(max(pop[j], 1) / train.shape[0])
                                      for j in items) / len(items)
                per_user[m] = vals
                continue
            counts = Counter(int(j) for u in users for j in tops[u])
            c = sorted([counts.get(j, 0) for j in range(n_items)])
            total = sum(c)
            if name == "coverage":
                aggregate[m] = len(counts) / n_items
            elif name == "gini":
                aggregate[m] = sum((2 * (i + 1) - n_items - 1) * x
                                   for i, x in enumerate(c)) / (n_items * total)
            else:
                aggregate[m] = -sum(x / total * math.log(x / total) for x in c if x)
    return per_user, aggregate


def case(seed, n_users=30, n_items=60, *, levels=4, graded=False, empty=True):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, levels, (n_users, n_items)).astype(np.float32)
    ho_rows = [list(rng.choice(n_items, rng.integers(0 if empty else 1, 9), replace=False))
               for _ in range(n_users)]
    ex_rows = [list(rng.choice(n_items, rng.integers(0, 12), replace=False))
               for _ in range(n_users)]
    if not any(ho_rows):
        ho_rows[0] = [0]
    heldout = csr(ho_rows, n_items)
    if graded:
        heldout.data = rng.integers(1, 4, heldout.nnz).astype(np.float32)
    train = csr([list(rng.choice(n_items, rng.integers(1, 20), replace=False))
                 for _ in range(50)], n_items)
    return s, heldout, csr(ex_rows, n_items), train


def check(result, want, aggregate):
    assert_close(result.per_user, want, atol=1e-9)
    assert set(result.aggregate) == set(aggregate)
    for m, v in aggregate.items():
        assert result.aggregate[m] == pytest.approx(v, abs=1e-12), m


OPTIONS = dict(map_denominator=("min", "heldout", "hits"), empty_users=("skip", "zero"),
               ties=("lower_first", "higher_first", "average"),
               relevance=("binary", "linear", "exponential"),
               recall_denominator=("min", "heldout"))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 70), levels=st.integers(1, 6),
       map_denominator=st.sampled_from(OPTIONS["map_denominator"]),
       empty_users=st.sampled_from(OPTIONS["empty_users"]),
       ties=st.sampled_from(OPTIONS["ties"]), relevance=st.sampled_from(OPTIONS["relevance"]),
       recall_denominator=st.sampled_from(OPTIONS["recall_denominator"]))
def test_numba_matches_oracle_hypothesis(seed, k, levels, **opts):
    """Integer scores with 1..6 levels make ties everywhere; k up to past the catalogue's end."""
    s, heldout, ex, train = case(seed, levels=levels, graded=opts["relevance"] != "binary")
    s[0, :5] = -np.inf  # genuine -inf scores rank after finite ones, before excluded items
    s[1, 3] = np.nan
    k = min(k, s.shape[1])
    metrics = [f"{m}@{k}" for m in ACCURACY] + [f"ndcg@{max(1, k // 3)}", f"map@{max(1, k // 2)}"]
    metrics += [f"coverage@{k}", f"avgpop@{k}", f"novelty@{max(1, k // 2)}", f"gini@{k}",
                f"entropy@{k}"]
    res = evaluate(s, heldout, exclude=ex, metrics=metrics, train=train, nan_policy="neg_inf",
                   **opts)
    want, agg = oracle(s, heldout, rows_of(ex), list(dict.fromkeys(metrics)), train=train,
                       **opts)
    check(res, want, agg)
    assert res.conventions == {**opts}


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 70), levels=st.integers(1, 6),
       map_denominator=st.sampled_from(OPTIONS["map_denominator"]),
       empty_users=st.sampled_from(OPTIONS["empty_users"]),
       ties=st.sampled_from(OPTIONS["ties"]), relevance=st.sampled_from(OPTIONS["relevance"]),
       recall_denominator=st.sampled_from(OPTIONS["recall_denominator"]),
       batch=st.sampled_from([None, 7]))
def test_torch_path_matches_oracle_hypothesis(seed, k, levels, batch, **opts):
    """The torch path (CPU, forced) under every option, blocks of 7 users or one block."""
    torch = pytest.importorskip("torch")
    s, heldout, ex, train = case(seed, levels=levels, graded=opts["relevance"] != "binary")
    s[0, :5] = -np.inf  # genuine -inf scores tie with the masked excluded items
    k = min(k, s.shape[1])
    metrics = [f"{m}@{k}" for m in ACCURACY] + [f"ndcg@{max(1, k // 3)}"]
    metrics += [f"coverage@{k}", f"novelty@{max(1, k // 2)}", f"gini@{k}"]
    res = evaluate(torch.from_numpy(s), heldout, exclude=ex, metrics=metrics, train=train,
                   backend="torch", batch_size=batch, **opts)
    want, agg = oracle(s, heldout, rows_of(ex), list(dict.fromkeys(metrics)), train=train,
                       **opts)
    check(res, want, agg)


@pytest.mark.parametrize("ties", OPTIONS["ties"])
def test_large_rows_take_the_threshold_path(ties):
    """Rows long enough for the sampled threshold (>= 2048 items), ties at the cut."""
    rng = np.random.default_rng(5)
    s = rng.integers(0, 30, (12, 5000)).astype(np.float64)
    heldout = csr([list(rng.choice(5000, 40, replace=False)) for _ in range(12)], 5000)
    ex = csr([list(rng.choice(5000, 100, replace=False)) for _ in range(12)], 5000)
    metrics = ["ndcg@100", "ndcg@7", "map@100", "mrr@50", "recall@20", "rprec@100"]
    res = evaluate(s, heldout, exclude=ex, metrics=metrics, ties=ties, map_denominator="heldout")
    want, _ = oracle(s, heldout, rows_of(ex), metrics, ties=ties, map_denominator="heldout")
    check(res, want, {})


@pytest.mark.parametrize("levels", [None, 40])
def test_beyond_accuracy_on_long_rows(levels):
    """Long rows (the sampled-threshold path and the value-search split of the top-k sets), with
    continuous or tied scores, several cut-offs."""
    rng = np.random.default_rng(11)
    n_items = 4000
    s = (rng.standard_normal((15, n_items)) if levels is None
         else rng.integers(0, levels, (15, n_items)).astype(np.float64))
    s[3, :50] = np.inf  # a degenerate range: many +inf candidates
    heldout = csr([list(rng.choice(n_items, 10, replace=False)) for _ in range(15)], n_items)
    ex = csr([list(rng.choice(n_items, 60, replace=False)) for _ in range(15)], n_items)
    train = csr([list(rng.choice(n_items, 200, replace=False)) for _ in range(40)], n_items)
    metrics = ["coverage@100", "gini@100", "entropy@7", "avgpop@100", "novelty@30",
               "coverage@30"]
    res = evaluate(s, heldout, exclude=ex, metrics=metrics, train=train)
    want, agg = oracle(s, heldout, rows_of(ex), metrics, train=train)
    check(res, want, agg)


@pytest.mark.parametrize("ties", OPTIONS["ties"])
def test_beyond_accuracy_edge_rows(ties):
    """Long rows through the value-search split of the top-k sets (issue 11): all scores equal,
    fewer unmasked items than k, everything masked, a NaN, mostly -inf, adjacent floats."""
    rng = np.random.default_rng(12)
    n_items = 3000
    s = rng.standard_normal((8, n_items))
    s[0] = 0.25  # every score equal: the lower indices win
    s[3, 17] = np.nan
    s[4] = -np.inf
    s[4, rng.choice(n_items, 40, replace=False)] = rng.standard_normal(40)
    s[5] = np.nextafter(1.0, 2.0 * rng.integers(0, 2, n_items))
    s[6, :200] = 5.0  # a tie group across the cut
    ex_rows = [list(rng.choice(n_items, 60, replace=False)) for _ in range(8)]
    ex_rows[1] = [j for j in range(n_items) if j % 100]  # 30 items left, k = 100
    ex_rows[2] = list(range(n_items))  # everything masked
    heldout = csr([list(rng.choice(n_items, 10, replace=False)) for _ in range(8)], n_items)
    train = csr([list(rng.choice(n_items, 300, replace=False)) for _ in range(40)], n_items)
    metrics = ["ndcg@100", "recall@20", "coverage@100", "gini@100", "entropy@50",
               "avgpop@100", "novelty@20"]
    res = evaluate(s, heldout, exclude=csr(ex_rows, n_items), metrics=metrics, train=train,
                   ties=ties, nan_policy="neg_inf")
    want, agg = oracle(s, heldout, ex_rows, metrics, train=train, ties=ties)
    check(res, want, agg)


@pytest.mark.parametrize("ties", OPTIONS["ties"])
@pytest.mark.parametrize("relevance", ("binary", "exponential"))
def test_chunked_file_matches_in_memory(tmp_path, ties, relevance):
    s, heldout, ex, train = case(3, n_users=50, graded=True)
    path = tmp_path / "s.npy"
    np.save(path, s)
    metrics = ("ndcg@10", "map@10", "f1@5", "coverage@10", "novelty@5")
    opts = dict(ties=ties, relevance=relevance, train=train, metrics=metrics, exclude=ex)
    a = evaluate(s, heldout, **opts)
    b = evaluate(str(path), heldout, batch_size=7, **opts)
    assert_close(b.per_user, a.per_user, atol=0)
    assert b.aggregate == a.aggregate


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 60),
       map_denominator=st.sampled_from(OPTIONS["map_denominator"]),
       empty_users=st.sampled_from(OPTIONS["empty_users"]),
       relevance=st.sampled_from(OPTIONS["relevance"]))
def test_evaluate_topk_matches_oracle(seed, k, **opts):
    """Top-K lists from ``topk`` (lower index first) give the oracle's numbers."""
    s, heldout, ex, train = case(seed, graded=opts["relevance"] != "binary")
    metrics = [f"{m}@{k}" for m in ACCURACY] + [f"gini@{k}", f"avgpop@{k}", f"coverage@{k}"]
    top = topk(s, k=k, exclude=ex)
    res = evaluate_topk(top, heldout, metrics=metrics, train=train, **opts)
    want, agg = oracle(s, heldout, rows_of(ex), metrics, train=train, **opts)
    check(res, want, agg)


# ---------------------------------------------------------------------------------------------
# hand-computed cases


def test_tie_averaged_oracle_equals_the_mean_over_all_permutations():
    """Brute force: average DCG@k over every order of the tied items."""
    scores = np.array([3.0, 2.0, 2.0, 2.0, 1.0, 1.0])
    gains = [0.0, 1.0, 0.0, 2.0, 1.0, 0.0]
    for k in range(1, 7):
        total, count = 0.0, 0
        groups = [[0], [1, 2, 3], [4, 5]]
        for perms in itertools.product(*(itertools.permutations(g) for g in groups)):
            order = [i for p in perms for i in p]
            total += sum(gains[i] / math.log2(r + 2) for r, i in enumerate(order[:k]))
            count += 1
        assert tie_averaged_dcg(scores, gains, k) == pytest.approx(total / count)


def test_hand_computed_ties_and_map_denominators():
    """All four items tie; held-out {1, 3}; k = 2.

    lower_first ranks 0,1 -> hit at rank 2; higher_first ranks 3,2 -> hit at rank 1;
    average: each position holds a held-out item with probability 1/2.
    """
    s = np.zeros((1, 4))
    ho = csr([[1, 3]], 4)
    d1, d2 = 1.0, 1 / math.log2(3)
    low = evaluate(s, ho, metrics=("ndcg@2", "map@2", "mrr@2"))
    assert low.mean["ndcg@2"] == pytest.approx(d2 / (d1 + d2))
    assert low.mean["map@2"] == pytest.approx((1 / 2) / 2)
    high = evaluate(s, ho, metrics=("ndcg@2", "mrr@2"), ties="higher_first")
    assert high.mean["ndcg@2"] == pytest.approx(d1 / (d1 + d2))
    assert high.mean["mrr@2"] == 1.0
    avg = evaluate(s, ho, metrics=("ndcg@2",), ties="average")
    assert avg.mean["ndcg@2"] == pytest.approx(0.5)
    # one hit at rank 2 of k = 3 with 3 held-out items: AP sum = 1/2
    s3 = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    ho3 = csr([[1, 3, 4]], 5)
    for den, want in (("min", 0.5 / 3), ("heldout", 0.5 / 3), ("hits", 0.5)):
        assert evaluate(s3, ho3, metrics="map@3", map_denominator=den).mean["map@3"] == \
            pytest.approx(want)
    assert evaluate(s3, ho3, metrics="map@2", map_denominator="heldout").mean["map@2"] == \
        pytest.approx(0.5 / 3)
    assert evaluate(s3, ho3, metrics="map@2").mean["map@2"] == pytest.approx(0.5 / 2)


def test_hand_computed_graded_rprec_f1():
    """Ranking 0..4; held-out 0 (rel 2) and 3 (rel 1); k = 2: one hit (item 0) at rank 1."""
    s = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]])
    ho = csr([[0, 3]], 5)
    ho.data = np.array([2.0, 1.0], np.float32)
    d2 = 1 / math.log2(3)
    lin = evaluate(s, ho, metrics=("ndcg@2", "ndcg@4"), relevance="linear")
    assert lin.mean["ndcg@2"] == pytest.approx(2 / (2 + d2))
    assert lin.mean["ndcg@4"] == pytest.approx((2 + 1 / math.log2(5)) / (2 + d2))
    exp = evaluate(s, ho, metrics="ndcg@2", relevance="exponential")
    assert exp.mean["ndcg@2"] == pytest.approx(3 / (3 + d2))
    res = evaluate(s, ho, metrics=("rprec@2", "rprec@1", "f1@2", "f1@1"))
    assert res.mean["rprec@2"] == 0.5  # hits in the top 2 / 2 held-out items
    assert res.mean["rprec@1"] == 0.5  # hits in the top 1 / 2: a run cut at 1
    assert res.mean["f1@2"] == pytest.approx(2 * 0.5 * 0.5 / 1.0)
    assert res.mean["f1@1"] == pytest.approx(1.0)  # P = 1, R = 1 / min(1, 2)


def test_hand_computed_beyond_accuracy():
    """Two users, top-2 lists {0, 1} and {0, 2} of 4 items; training popularity 3, 1, 0, 0 of 4
    users."""
    s = np.array([[4.0, 3.0, 1.0, 0.0], [4.0, 1.0, 3.0, 0.0]])
    ho = csr([[3], [3]], 4)
    train = csr([[0, 1], [0], [0], []], 4)
    res = evaluate(s, ho, metrics=("coverage@2", "gini@2", "entropy@2", "avgpop@2",
                                   "novelty@2"), train=train)
    assert res.aggregate["coverage@2"] == 0.75
    # counts sorted: 0, 1, 1, 2 -> sum((2i - 5) c_i) / (4 * 4) = (0 - 1 + 1 + 6) / 16
    assert res.aggregate["gini@2"] == pytest.approx(6 / 16)
    assert res.aggregate["entropy@2"] == pytest.approx(-(0.5 * math.log(0.5)
                                                         + 2 * 0.25 * math.log(0.25)))
    np.testing.assert_allclose(res.per_user["avgpop@2"], [2.0, 1.5])
    info = [-math.log2(3 / 4), -math.log2(1 / 4), -math.log2(1 / 4)]
    np.testing.assert_allclose(res.per_user["novelty@2"], [(info[0] + info[1]) / 2,
                                                           (info[0] + info[2]) / 2])
    assert math.isnan(res.stderr["gini@2"])


def test_empty_users_skip_zero_raise():
    s = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    ho = csr([[0], []], 3)
    skip = evaluate(s, ho, metrics="ndcg@1")
    assert skip.n_skipped == 1 and skip.mean["ndcg@1"] == 1.0
    zero = evaluate(s, ho, metrics="ndcg@1", empty_users="zero")
    assert zero.n_skipped == 0 and zero.n_evaluated == 2 and zero.mean["ndcg@1"] == 0.5
    assert zero.per_user["ndcg@1"].tolist() == [1.0, 0.0]
    assert "counted as 0" in zero.table()
    with pytest.raises(ValueError, match=r"1 users without held-out items \(first: row 1\)"):
        evaluate(s, ho, metrics="ndcg@1", empty_users="raise")
    with pytest.raises(ValueError, match="empty_users='raise'"):
        evaluate_topk(np.array([[0], [1]]), ho, metrics="ndcg@1", empty_users="raise")


def test_conventions_in_result_dict_and_concat():
    s, heldout, ex, _ = case(1)
    a = evaluate(s[:10], heldout[:10], metrics="map@5", map_denominator="hits", ties="average")
    b = evaluate(s[10:], heldout[10:], metrics="map@5", map_denominator="hits", ties="average")
    d = a.to_dict()
    assert d["map_denominator"] == "hits" and d["ties"] == "average"
    both = EvaluationResult.concat([a, b])
    assert both.map_denominator == "hits" and both.n_users == 30
    c = evaluate(s[10:], heldout[10:], metrics="map@5")
    with pytest.raises(ValueError, match="different evaluations"):
        EvaluationResult.concat([a, c])
    g = evaluate(s, heldout, metrics="gini@5")
    with pytest.raises(ValueError, match="aggregate metrics"):
        EvaluationResult.concat([g, g])


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(map_denominator="n"), ValueError, "map_denominator"),
    (dict(empty_users="drop"), ValueError, "empty_users"),
    (dict(ties="random"), ValueError, "ties"),
    (dict(relevance="graded"), ValueError, "relevance"),
    (dict(metrics="avgpop@3"), ValueError, "train must be the training interactions"),
    (dict(metrics="novelty@3", train=np.ones((3, 4))), TypeError, "train must be a scipy"),
    (dict(metrics="novelty@3", train=sp.csr_matrix((3, 5))), ValueError, "4 columns"),
])
def test_bad_options(kwargs, exc, match):
    s = np.zeros((2, 4))
    with pytest.raises(exc, match=match):
        evaluate(s, csr([[0], [1]], 4), **kwargs)


def test_graded_relevance_needs_positive_finite_values():
    ho = csr([[0], [1]], 4)
    ho.data = np.array([1.0, 0.0], np.float32)
    with pytest.raises(ValueError, match=r"heldout values must be finite and > 0 under "
                                         r"relevance='linear'.*1 values"):
        evaluate(np.zeros((2, 4)), ho, metrics="ndcg@2", relevance="linear")
    ho.data = np.array([1.0, 0.0], np.float32)  # binary ignores the values
    assert evaluate(np.zeros((2, 4)), ho, metrics="ndcg@2").n_evaluated == 2
