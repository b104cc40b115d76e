"""Conformance with the real peers (the ``conformance`` extra: ranx, pytrec-eval-terrier,
torchmetrics), per user, with the option set the README's peer table documents for each.

Each peer sees what our evaluation sees: the candidates of a user are the items not in its
fold-in row (the run), its held-out items with their graded values are the relevance
judgements (qrels; held-out items that are also fold-in items stay in the qrels, as they stay
in our n_heldout). Cases: random users plus the edge cases of issue 11 (one held-out item, more
held-out items than k, fewer candidates than k, held-out items that are also fold-in items).
Each test skips with a reason when its peer is not installed (``pip install -e ".[conformance]"``).
"""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from evcf_fast.metrics import evaluate

N_ITEMS = 30


def edge_case_data(seed, *, levels=None, graded=True):
    """(scores float64, heldout CSR with values 1..3, fold-in CSR) with the edge cases in the
    first rows; ``levels`` makes integer scores (ties), else continuous (tie-free)."""
    rng = np.random.default_rng(seed)
    n_users = 12
    if levels:
        s = rng.integers(0, levels, (n_users, N_ITEMS)).astype(np.float64) + 1.0
    else:
        s = rng.random((n_users, N_ITEMS)) + 1.0  # positive: torchmetrics drops scores <= 0
    ho_rows, ex_rows = [], []
    for u in range(n_users):
        items = rng.permutation(N_ITEMS)
        n_ho = {0: 1, 1: 20, 2: 4}.get(u, int(rng.integers(1, 9)))
        n_ex = {2: N_ITEMS - 6}.get(u, int(rng.integers(0, 10)))  # row 2: 6 candidates < k
        ho = items[:n_ho]
        ex = items[n_ho - (1 if u == 3 else 0):n_ho + n_ex]  # row 3: a held-out item excluded
        ho_rows.append(np.sort(ho))
        ex_rows.append(np.sort(ex))
    return s, _csr(ho_rows, rng, graded), _csr(ex_rows, rng, False)


def _csr(rows, rng, graded):
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows).astype(np.int32)
    data = (rng.integers(1, 4, indices.size) if graded else np.ones(indices.size)).astype(
        np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), N_ITEMS))


def peer_inputs(s, heldout, fold_in):
    """qrels and run dicts with zero-padded ids (their string order is the index order)."""
    qrels, run = {}, {}
    for u in range(s.shape[0]):
        q = f"u{u:03d}"
        lo, hi = heldout.indptr[u], heldout.indptr[u + 1]
        qrels[q] = {f"d{int(j):03d}": int(v) for j, v in
                    zip(heldout.indices[lo:hi], heldout.data[lo:hi])}
        excluded = set(fold_in.indices[fold_in.indptr[u]:fold_in.indptr[u + 1]].tolist())
        run[q] = {f"d{j:03d}": float(s[u, j]) for j in range(N_ITEMS) if j not in excluded}
    return qrels, run


@pytest.fixture(scope="module")
def ranx():
    """ranx, imported with numba's threading layer restored afterwards (ranx sets it at
    import)."""
    import numba

    layer = numba.config.THREADING_LAYER
    mod = pytest.importorskip("ranx", reason="ranx is not installed (the conformance extra)")
    numba.config.THREADING_LAYER = layer
    return mod


RANX = [  # (ranx metric, our metric, our options); k = 5 and 10
    ("ndcg@{k}", "ndcg@{k}", dict(relevance="linear")),
    ("ndcg_burges@{k}", "ndcg@{k}", dict(relevance="exponential")),
    ("map@{k}", "map@{k}", dict(map_denominator="heldout")),
    ("recall@{k}", "recall@{k}", dict(recall_denominator="heldout")),
    ("precision@{k}", "precision@{k}", {}),
    ("mrr@{k}", "mrr@{k}", {}),
    ("hit_rate@{k}", "hitrate@{k}", {}),
    ("f1@{k}", "f1@{k}", dict(recall_denominator="heldout")),
    ("r-precision", f"rprec@{N_ITEMS}", {}),
]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_ranx_per_user(ranx, seed):
    """Tie-free scores (ranx leaves the order of equal scores unspecified)."""
    s, heldout, fold_in = edge_case_data(seed)
    qrels, run = peer_inputs(s, heldout, fold_in)
    r_qrels, r_run = ranx.Qrels(qrels), ranx.Run(run)
    for k in (5, 10):
        for theirs, ours, opts in RANX:
            theirs, ours = theirs.format(k=k), ours.format(k=k)
            ranx.evaluate(r_qrels, r_run, theirs)
            want = np.array([r_run.scores[theirs][f"u{u:03d}"] for u in range(s.shape[0])])
            got = evaluate(s, heldout, exclude=fold_in, metrics=ours, **opts).per_user[ours]
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=theirs)


TREC = [  # (trec_eval measure, our metric, our options)
    ("ndcg_cut_{k}", "ndcg@{k}", dict(relevance="linear")),
    ("map_cut_{k}", "map@{k}", dict(map_denominator="heldout")),
    ("recall_{k}", "recall@{k}", dict(recall_denominator="heldout")),
    ("P_{k}", "precision@{k}", {}),
    ("success_{k}", "hitrate@{k}", {}),
    ("Rprec", f"rprec@{N_ITEMS}", {}),
    ("recip_rank", f"mrr@{N_ITEMS}", {}),
]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), levels=st.sampled_from([None, 2, 4]))
def test_trec_eval_per_user_with_ties(seed, levels):
    """trec_eval ranks equal scores by document id descending: with zero-padded ids that is
    ``ties="higher_first"``, which makes integer scores (many ties) agree too."""
    pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec-eval-terrier is not "
                                      "installed (the conformance extra)")
    s, heldout, fold_in = edge_case_data(seed, levels=levels)
    qrels, run = peer_inputs(s, heldout, fold_in)
    measures = {"ndcg_cut", "map_cut", "recall", "P", "success", "Rprec", "recip_rank"}
    res = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    for k in (5, 10):
        for theirs, ours, opts in TREC:
            theirs, ours = theirs.format(k=k), ours.format(k=k)
            want = np.array([res[f"u{u:03d}"][theirs] for u in range(s.shape[0])])
            got = evaluate(s, heldout, exclude=fold_in, metrics=ours, ties="higher_first",
                           **opts).per_user[ours]
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=theirs)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), levels=st.sampled_from([None, 2, 4]))
def test_torchmetrics_ndcg_tie_averaged_and_map(seed, levels):
    """torchmetrics' NDCG averages over tied orders (``ties="average"``, linear gains); its
    RetrievalMAP divides by the hits within k (``map_denominator="hits"``) and orders ties
    arbitrarily (compared on tie-free scores). Excluded items are passed as candidates scored 0:
    torchmetrics drops the targets of non-positive scores, and they rank last. Cut-offs stay
    below every row's number of candidates (row 2, 6 candidates, is compared at k = 5)."""
    tm = pytest.importorskip("torchmetrics.functional.retrieval",
                             reason="torchmetrics is not installed (the conformance extra)")
    import torch

    s, heldout, fold_in = edge_case_data(seed, levels=levels)
    k = 5
    rel = heldout.toarray().astype(np.int64)
    masked = s.copy()
    for u in range(s.shape[0]):
        masked[u, fold_in.indices[fold_in.indptr[u]:fold_in.indptr[u + 1]]] = 0.0
    ndcg = [float(tm.retrieval_normalized_dcg(torch.from_numpy(masked[u]),
                                              torch.from_numpy(rel[u]), top_k=k))
            for u in range(s.shape[0])]
    got = evaluate(s, heldout, exclude=fold_in, metrics=f"ndcg@{k}", ties="average",
                   relevance="linear").per_user[f"ndcg@{k}"]
    # torchmetrics' IDCG sees every held-out item, excluded ones included, like ours
    np.testing.assert_allclose(got, ndcg, rtol=0, atol=1e-6)
    if levels is None:
        ap = [float(tm.retrieval_average_precision(torch.from_numpy(masked[u]),
                                                   torch.from_numpy(rel[u] > 0), top_k=k))
              for u in range(s.shape[0])]
        got = evaluate(s, heldout, exclude=fold_in, metrics=f"map@{k}",
                       map_denominator="hits").per_user[f"map@{k}"]
        np.testing.assert_allclose(got, ap, rtol=0, atol=1e-6)
