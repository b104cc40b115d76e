"""Independent references the tests and benchmarks compare evcf_fast against (no evcf_fast code).

* :func:`notebook_split`: the pandas strong-generalization split of the vae_cf / EVCF notebooks
  (MovieLens_preprocessing.ipynb / VAE_ML20M_WWW2018.ipynb, PAPER_SPEC 1.1 with the 1.5 fix:
  per-id counts as a Series indexed by the original id), in the notebook's own style: global
  ``np.random.seed``, ``groupby`` loops, ``pd.unique``, dict-based numerize. Only the final
  ``to_csv`` calls are left out. Used by tests/test_data_split.py and, timed, by
  bench/test_bench_ingest.py.
* :func:`legacy_heldout_draw_python`: the 80/20 draw as a plain loop over
  ``RandomState.permutation``, the readable twin of the compiled replay.
* :func:`vae_cf_ndcg`, :func:`vae_cf_recall`, :func:`vae_cf_metrics`: dawenl/vae_cf's
  ``NDCG_binary_at_k_batch`` / ``Recall_at_k_batch`` (``bn.argpartition`` replaced by
  ``np.argpartition``) and the notebook's batched evaluation loop around them.

The notebook's constants (ratings > 3.5, users with >= 5 of them, seed 98765, 20% targets, >= 5
rows to split) are written out here on purpose: the reference must not take them from the
library it checks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# ----------------------------------------------------------------------------------------------
# the split


def notebook_split(raw: pd.DataFrame, n_heldout_users: int, *, threshold=3.5, min_uc=5,
                   seed=98765, test_prop=0.2, dedupe=False):
    """The notebook, from the raw ratings to the numerized split, as pandas 0.23 ran it.

    ``raw`` has columns ``userId``, ``movieId`` and (unless ``threshold`` is None) ``rating``.
    Returns ``(files, unique_sid, unique_uid, n_train)``: ``files`` maps ``train``,
    ``validation_tr``, ``validation_te``, ``test_tr``, ``test_te`` to the ``uid,sid`` frames the
    notebook writes; ``unique_uid`` is in uid order (train, validation, test users). The global
    NumPy RNG state is restored afterwards.
    """
    saved = np.random.get_state()
    try:
        if threshold is not None:
            raw_data = raw[raw["rating"] > threshold]
        else:
            raw_data = raw
        if dedupe:  # evcf_fast's documented extension; a no-op on duplicate-free files
            raw_data = raw_data.drop_duplicates(["userId", "movieId"], keep="first")

        def get_count(tp, id):
            return tp[[id]].groupby(id).size()  # a Series indexed by the sorted ids (1.5 fix)

        usercount = get_count(raw_data, "userId")
        raw_data = raw_data[raw_data["userId"].isin(usercount.index[usercount >= min_uc])]
        user_activity = get_count(raw_data, "userId")
        unique_uid = user_activity.index
        np.random.seed(seed)
        idx_perm = np.random.permutation(unique_uid.size)
        unique_uid = unique_uid[idx_perm]
        n_users = unique_uid.size
        tr_users = unique_uid[:(n_users - n_heldout_users * 2)]
        vd_users = unique_uid[(n_users - n_heldout_users * 2): (n_users - n_heldout_users)]
        te_users = unique_uid[(n_users - n_heldout_users):]
        train_plays = raw_data.loc[raw_data["userId"].isin(tr_users)]
        unique_sid = pd.unique(train_plays["movieId"])
        show2id = dict((sid, i) for (i, sid) in enumerate(unique_sid))
        profile2id = dict((pid, i) for (i, pid) in enumerate(unique_uid))

        def split_train_test_proportion(data, test_prop=test_prop):
            data_grouped_by_user = data.groupby("userId")
            tr_list, te_list = list(), list()
            np.random.seed(seed)
            for i, (_, group) in enumerate(data_grouped_by_user):
                n_items_u = len(group)
                if n_items_u >= 5:
                    idx = np.zeros(n_items_u, dtype="bool")
                    idx[np.random.choice(n_items_u, size=int(test_prop * n_items_u),
                                         replace=False).astype("int64")] = True
                    tr_list.append(group[np.logical_not(idx)])
                    te_list.append(group[idx])
                else:
                    tr_list.append(group)
            data_tr = pd.concat(tr_list) if tr_list else data.iloc[:0]
            data_te = pd.concat(te_list) if te_list else data.iloc[:0]
            return data_tr, data_te

        vad_plays = raw_data.loc[raw_data["userId"].isin(vd_users)]
        vad_plays = vad_plays.loc[vad_plays["movieId"].isin(unique_sid)]
        vad_plays_tr, vad_plays_te = split_train_test_proportion(vad_plays)
        test_plays = raw_data.loc[raw_data["userId"].isin(te_users)]
        test_plays = test_plays.loc[test_plays["movieId"].isin(unique_sid)]
        test_plays_tr, test_plays_te = split_train_test_proportion(test_plays)

        def numerize(tp):
            uid = [profile2id[x] for x in tp["userId"]]
            sid = [show2id[x] for x in tp["movieId"]]
            return pd.DataFrame(data={"uid": uid, "sid": sid}, columns=["uid", "sid"])

        files = {"train": numerize(train_plays), "validation_tr": numerize(vad_plays_tr),
                 "validation_te": numerize(vad_plays_te), "test_tr": numerize(test_plays_tr),
                 "test_te": numerize(test_plays_te)}
        return files, list(unique_sid), list(unique_uid), len(tr_users)
    finally:
        np.random.set_state(saved)


def legacy_heldout_draw_python(optr: np.ndarray, *, seed: int, fraction: float) -> np.ndarray:
    """The notebook's per-user ``np.random.choice`` loop as a plain loop over ``permutation``.

    ``optr`` delimits each held-out user's rows (users in ascending id order); returns the
    held-out flag of every row. ``choice(n, k, replace=False)`` is ``permutation(n)[:k]`` in
    legacy NumPy (same values, same state afterwards), and is called for every user with
    ``n >= 5`` even when ``k == 0``.
    """
    permutation = np.random.RandomState(seed).permutation
    flag = np.zeros(int(optr[-1]), np.bool_)
    sizes = np.diff(optr)
    users = np.flatnonzero(sizes >= 5)  # the notebook's hard-coded 5
    for start, n in zip(optr[users].tolist(), sizes[users].tolist()):
        k = int(fraction * n)  # float64 product, truncated: int(0.2 * 15) == 3
        flag[start + permutation(n)[:k]] = True
    return flag


# ----------------------------------------------------------------------------------------------
# the metrics


def vae_cf_ndcg(X_pred, heldout_batch, k=100):
    """dawenl/vae_cf NDCG_binary_at_k_batch (bottleneck argpartition -> numpy)."""
    batch_users = X_pred.shape[0]
    idx_topk_part = np.argpartition(-X_pred, k, axis=1)
    topk_part = X_pred[np.arange(batch_users)[:, np.newaxis], idx_topk_part[:, :k]]
    idx_part = np.argsort(-topk_part, axis=1)
    idx_topk = idx_topk_part[np.arange(batch_users)[:, np.newaxis], idx_part]
    tp = 1. / np.log2(np.arange(2, k + 2))
    DCG = (heldout_batch[np.arange(batch_users)[:, np.newaxis], idx_topk].toarray()
           * tp).sum(axis=1)
    IDCG = np.array([(tp[:min(n, k)]).sum() for n in heldout_batch.getnnz(axis=1)])
    return DCG / IDCG


def vae_cf_recall(X_pred, heldout_batch, k=100):
    """dawenl/vae_cf Recall_at_k_batch."""
    batch_users = X_pred.shape[0]
    idx = np.argpartition(-X_pred, k, axis=1)
    X_pred_binary = np.zeros_like(X_pred, dtype=bool)
    X_pred_binary[np.arange(batch_users)[:, np.newaxis], idx[:, :k]] = True
    X_true_binary = (heldout_batch > 0).toarray()
    tmp = (np.logical_and(X_true_binary, X_pred_binary).sum(axis=1)).astype(np.float32)
    return tmp / np.minimum(k, X_true_binary.sum(axis=1))


def vae_cf_metrics(scores, fold_in, heldout, batch_users=2000):
    """The vae_cf evaluation: per batch a masked copy, then the notebook's two functions.

    Returns per-user ``ndcg@100``, ``recall@20`` and ``recall@50`` arrays.
    """
    out = {m: [] for m in ("ndcg@100", "recall@20", "recall@50")}
    for a in range(0, scores.shape[0], batch_users):
        b = min(a + batch_users, scores.shape[0])
        X = scores[a:b].copy()
        X[fold_in[a:b].nonzero()] = -np.inf
        H = heldout[a:b]
        out["ndcg@100"].append(vae_cf_ndcg(X, H, 100))
        out["recall@20"].append(vae_cf_recall(X, H, 20))
        out["recall@50"].append(vae_cf_recall(X, H, 50))
    return {m: np.concatenate(v) for m, v in out.items()}
