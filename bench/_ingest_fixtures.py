"""Helpers for bench/test_bench_ingest.py: the ML-20M-shaped file and the pandas reference.

The pandas reference is the EVCF / Liang et al. notebook procedure (PAPER_SPEC 1.1, with the 1.5
fix for pandas >= 1.1), as the notebook runs it: ``read_csv``, boolean filters, ``groupby``
counts, the global legacy RNG, ``pd.unique``, a per-user ``groupby`` loop for the 80/20 draw, and
``map`` over a dict to numerize. Only the final ``to_csv`` calls are left out (our side's write is
timed, theirs is not: the comparison favours the reference).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# ML-20M after preprocessing (PAPER_SPEC 1.2) and its raw row count; quick mode is ~1% of it
FULL = dict(n_users=136_677, n_positives=9_990_682, n_rows=20_000_263, n_heldout=10_000)
QUICK = dict(n_users=1_367, n_positives=99_907, n_rows=200_003, n_heldout=100)


def make_ml20m_csv(directory: Path, *, quick: bool) -> tuple[Path, dict]:
    """Write an ML-20M-shaped ``ratings.csv`` (userId,movieId,rating,timestamp)."""
    from evcf_fast.data.synthetic import make_synthetic, write_movielens

    sizes = QUICK if quick else FULL
    df = make_synthetic("ml20m", seed=0, n_users=sizes["n_users"],
                        n_positives=sizes["n_positives"], n_rows=sizes["n_rows"])
    path = write_movielens(df, Path(directory) / "ratings.csv")
    return path, sizes


def pandas_reference(path, n_heldout_users: int, *, seed: int = 98765):
    """The notebook, start to numerized split. Returns (parts, unique_sid, unique_uid)."""
    raw_data = pd.read_csv(path, header=0)
    raw_data = raw_data[raw_data["rating"] > 3.5]

    def get_count(tp, id):
        return tp[[id]].groupby(id).size()  # a Series indexed by the sorted ids (1.5 fix)

    usercount = get_count(raw_data, "userId")
    raw_data = raw_data[raw_data["userId"].isin(usercount.index[usercount >= 5])]
    unique_uid = get_count(raw_data, "userId").index
    np.random.seed(seed)
    unique_uid = unique_uid[np.random.permutation(unique_uid.size)]
    n_users = unique_uid.size
    tr_users = unique_uid[:(n_users - n_heldout_users * 2)]
    vd_users = unique_uid[(n_users - n_heldout_users * 2): (n_users - n_heldout_users)]
    te_users = unique_uid[(n_users - n_heldout_users):]
    train_plays = raw_data.loc[raw_data["userId"].isin(tr_users)]
    unique_sid = pd.unique(train_plays["movieId"])
    show2id = dict((sid, i) for (i, sid) in enumerate(unique_sid))
    profile2id = dict((pid, i) for (i, pid) in enumerate(unique_uid))

    def split_train_test_proportion(data, test_prop=0.2):
        tr_list, te_list = list(), list()
        np.random.seed(seed)
        for _, group in data.groupby("userId"):
            n_items_u = len(group)
            if n_items_u >= 5:
                idx = np.zeros(n_items_u, dtype="bool")
                idx[np.random.choice(n_items_u, size=int(test_prop * n_items_u),
                                     replace=False).astype("int64")] = True
                tr_list.append(group[np.logical_not(idx)])
                te_list.append(group[idx])
            else:
                tr_list.append(group)
        return pd.concat(tr_list), pd.concat(te_list)

    parts = {"train": train_plays}
    for name, users in (("validation", vd_users), ("test", te_users)):
        plays = raw_data.loc[raw_data["userId"].isin(users)]
        plays = plays.loc[plays["movieId"].isin(unique_sid)]
        parts[f"{name}_tr"], parts[f"{name}_te"] = split_train_test_proportion(plays)

    def numerize(tp):
        uid = list(map(lambda x: profile2id[x], tp["userId"]))
        sid = list(map(lambda x: show2id[x], tp["movieId"]))
        return np.asarray(uid, np.int64), np.asarray(sid, np.int64)

    return {k: numerize(v) for k, v in parts.items()}, unique_sid, unique_uid


def assert_same_split(ds, ref) -> None:
    """Our SplitDataset equals the reference's numerized files (same CSR, same id maps)."""
    parts, unique_sid, unique_uid = ref
    n_train = ds.train.shape[0]
    n_heldout = ds.validation_fold_in.shape[0]
    np.testing.assert_array_equal(ds.item_ids, unique_sid)
    np.testing.assert_array_equal(
        np.concatenate([ds.train_user_ids, ds.validation_user_ids, ds.test_user_ids]),
        np.asarray(unique_uid))
    for key, attr, first in (("train", "train", 0),
                             ("validation_tr", "validation_fold_in", n_train),
                             ("validation_te", "validation_heldout", n_train),
                             ("test_tr", "test_fold_in", n_train + n_heldout),
                             ("test_te", "test_heldout", n_train + n_heldout)):
        uid, sid = parts[key]
        m = getattr(ds, attr)
        order = np.lexsort((sid, uid))
        assert m.nnz == uid.shape[0], attr
        np.testing.assert_array_equal(np.asarray(m.indices), sid[order], err_msg=attr)
        counts = np.bincount(uid - first, minlength=m.shape[0])
        np.testing.assert_array_equal(np.diff(np.asarray(m.indptr)), counts, err_msg=attr)


_RSS_SNIPPET = """
import json, resource, sys, time
t = time.perf_counter()
{setup}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({{"peak_rss_mib": round(peak / 1024, 1),
                  "fresh_process_s": round(time.perf_counter() - t, 2)}}))
"""


def fresh_process_run(setup: str) -> dict:
    """Peak RSS (MiB) and wall time (s, imports included) of ``setup`` in a new interpreter."""
    out = subprocess.run([sys.executable, "-c", _RSS_SNIPPET.format(setup=setup)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])
