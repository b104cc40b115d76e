"""The slow float64 oracle of the ranking metrics, written from the definitions, and its own checks.

Other metric tests import ``oracle`` and the data helpers from here. The oracle sorts every
row completely (``np.lexsort`` on (item index, -score)), so it shares no code or idea with the
kernels' threshold-and-count algorithm or the torch path's topk-and-repair.
"""

import math

import numpy as np
import pytest
import scipy.sparse as sp


def csr(rows, n_items, *, index_dtype=np.int32):
    """A canonical CSR matrix (float32 ones) from per-row item lists."""
    indptr = np.zeros(len(rows) + 1, np.int64)
    indptr[1:] = np.cumsum([len(set(r)) for r in rows])
    indices = np.concatenate([np.array(sorted(set(r)), np.int64) for r in rows]) \
        if indptr[-1] else np.zeros(0, np.int64)
    m = sp.csr_matrix((np.ones(indices.size, np.float32), indices, indptr),
                      shape=(len(rows), n_items))
    m.sort_indices()
    # scipy picks the smallest index dtype itself; set the one asked for afterwards
    m.indices = m.indices.astype(index_dtype)
    m.indptr = m.indptr.astype(np.int64 if index_dtype == np.int64 else m.indptr.dtype)
    return m


def rows_of(m):
    return [m.indices[m.indptr[u]:m.indptr[u + 1]].tolist() for u in range(m.shape[0])]


def ranking(score_row, excluded):
    """Items best first: score descending, equal scores by lower index; excluded items dropped;
    NaN ranks as -inf."""
    s = np.where(np.isnan(score_row), -np.inf, score_row.astype(np.float64))
    keep = np.setdiff1d(np.arange(s.shape[0]), np.asarray(list(excluded), np.int64))
    order = np.lexsort((keep, -s[keep]))
    return keep[order]


def oracle(scores, heldout_rows, exclude_rows, metrics, *, recall_denominator="min"):
    """Per-user metric values (dict name -> float64 array), straight from the definitions."""
    n_users = scores.shape[0]
    out = {m: np.empty(n_users) for m in metrics}
    for u in range(n_users):
        ho = set(heldout_rows[u])
        order = ranking(scores[u], exclude_rows[u] if exclude_rows is not None else ())
        for m in metrics:
            name, k = m.split("@")
            k = int(k)
            if not ho:
                out[m][u] = math.nan
                continue
            top = order[:k]
            rel = np.array([1.0 if j in ho else 0.0 for j in top])
            hit_ranks = [r + 1 for r in range(len(top)) if rel[r]]
            hits = len(hit_ranks)
            cut = min(k, len(ho))
            if name == "ndcg":
                dcg = sum(1.0 / math.log2(r + 1) for r in hit_ranks)
                idcg = sum(1.0 / math.log2(r + 1) for r in range(1, cut + 1))
                v = dcg / idcg
            elif name == "recall":
                v = hits / (cut if recall_denominator == "min" else len(ho))
            elif name == "precision":
                v = hits / k
            elif name in ("hitrate", "hit"):
                v = 1.0 if hits else 0.0
            elif name == "mrr":
                v = 1.0 / hit_ranks[0] if hits else 0.0
            elif name == "map":
                v = sum((i + 1) / r for i, r in enumerate(hit_ranks)) / cut
            else:
                raise AssertionError(name)
            out[m][u] = v
    return out


ALL_METRICS = ("ndcg", "recall", "precision", "hitrate", "mrr", "map")


def assert_close(got: dict, want: dict, *, atol=1e-12):
    assert set(got) == set(want)
    for m in want:
        g, w = np.asarray(got[m]), np.asarray(want[m])
        assert g.shape == w.shape, m
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=m)
        np.testing.assert_allclose(g[~np.isnan(w)], w[~np.isnan(w)], rtol=0, atol=atol,
                                   err_msg=m)


# ---------------------------------------------------------------------------------------------
# the oracle against hand-computed values


def test_oracle_closed_form_ndcg_recall_precision():
    """scores rank items 0,1,2,3; held-out {0, 2}: hits at ranks 1 and 3."""
    s = np.array([[0.9, 0.8, 0.7, 0.6]])
    got = oracle(s, [[0, 2]], None, ["ndcg@3", "recall@3", "precision@3", "recall@1",
                                     "mrr@3", "map@3", "hitrate@1"])
    assert got["ndcg@3"][0] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    assert got["recall@3"][0] == 1.0
    assert got["precision@3"][0] == pytest.approx(2 / 3)
    assert got["recall@1"][0] == 1.0  # hits / min(1, 2)
    assert got["mrr@3"][0] == 1.0
    assert got["map@3"][0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert got["hitrate@1"][0] == 1.0


def test_oracle_ties_lower_index_first_and_exclusion():
    """All scores equal: the ranking is 0, 1, 2, ...; excluding 0 moves 1 to rank 1."""
    s = np.zeros((1, 5))
    assert ranking(s[0], ()).tolist() == [0, 1, 2, 3, 4]
    assert ranking(s[0], (0, 3)).tolist() == [1, 2, 4]
    got = oracle(s, [[1]], [[0]], ["mrr@2", "ndcg@1"])
    assert got["mrr@2"][0] == 1.0 and got["ndcg@1"][0] == 1.0


def test_oracle_neg_inf_after_finite_and_nan_as_neg_inf():
    s = np.array([-np.inf, np.nan, -5.0, np.inf])
    assert ranking(s, ()).tolist() == [3, 2, 0, 1]


def test_oracle_empty_heldout_is_nan_and_heldout_denominator():
    s = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])
    got = oracle(s, [[], [0, 1, 2]], None, ["recall@1"], recall_denominator="heldout")
    assert math.isnan(got["recall@1"][0])
    assert got["recall@1"][1] == pytest.approx(1 / 3)


def test_csr_helper_builds_canonical_rows():
    m = csr([[3, 1, 1], []], 5)
    assert rows_of(m) == [[1, 3], []] and m.has_canonical_format
