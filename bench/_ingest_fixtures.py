"""Helpers for bench/test_bench_ingest.py: the ML-20M-shaped file and the pandas reference.

The pandas reference is the EVCF / Liang et al. notebook procedure (PAPER_SPEC 1.1, with the 1.5
fix for pandas >= 1.1), as the notebook runs it: ``read_csv``, boolean filters, ``groupby``
counts, the global legacy RNG, ``pd.unique``, a per-user ``groupby`` loop for the 80/20 draw, and
a dict lookup to numerize (tests/reference.py ``notebook_split``, shared with the tests). Only the
final ``to_csv`` calls are left out (our side's write is timed, theirs is not: the comparison
favours the reference).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from reference import notebook_split

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
    """The notebook, start to numerized split. Returns (parts, unique_sid, unique_uid).

    ``parts`` maps ``train``, ``validation_tr``, ... to (uid, sid) int64 arrays; the split itself
    is tests/reference.py's :func:`notebook_split` on ``read_csv`` of the file.
    """
    raw_data = pd.read_csv(path, header=0)
    files, unique_sid, unique_uid, _ = notebook_split(raw_data, n_heldout_users, seed=seed)
    parts = {k: (df["uid"].to_numpy(np.int64), df["sid"].to_numpy(np.int64))
             for k, df in files.items()}
    return parts, unique_sid, unique_uid


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
