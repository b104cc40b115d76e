"""Issue 9: SplitDataset.load validates every matrix fully; `evcf info --verify` checks checksums.

The kernel (evcf_fast.kernels.csr.check_csr) is compared with an obvious Python row walk on random
valid and damaged CSR arrays (hypothesis) and on hand-made cases; the damaged-folder cases check the
message, the CLI exit code and that verify=False still trusts the files.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_data_dataset import make_dataset

from evcf_fast.cli.main import main
from evcf_fast.data.dataset import SplitDataset
from evcf_fast.errors import IncompatibleDatasetError
from evcf_fast.kernels.csr import (
    BAD_INDPTR,
    INDEX_OUT_OF_RANGE,
    OK,
    UNSORTED_OR_DUPLICATE,
    check_csr,
)


def oracle(indptr, indices, n_cols):
    """The definition, row by row in Python: the first bad row and what is wrong with it."""
    nnz = len(indices)
    for r in range(len(indptr) - 1):
        a, b = int(indptr[r]), int(indptr[r + 1])
        if b < a or a < 0 or b > nnz:
            return r, BAD_INDPTR
        row = [int(i) for i in indices[a:b]]
        if any(i < 0 or i >= n_cols for i in row):
            # the walk reports whichever problem comes first in the row
            for k, i in enumerate(row):
                if i < 0 or i >= n_cols:
                    return r, INDEX_OUT_OF_RANGE
                if k and i <= row[k - 1]:
                    return r, UNSORTED_OR_DUPLICATE
        if any(row[k] <= row[k - 1] for k in range(1, len(row))):
            return r, UNSORTED_OR_DUPLICATE
    return -1, OK


@st.composite
def csr_arrays(draw):
    n_cols = draw(st.integers(1, 12))
    n_rows = draw(st.integers(0, 8))
    rows = [sorted(draw(st.sets(st.integers(0, n_cols - 1), max_size=n_cols)))
            for _ in range(n_rows)]
    indptr = np.zeros(n_rows + 1, np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows]) if rows else []
    indices = np.array([i for r in rows for i in r], np.int32)
    damage = draw(st.sampled_from(["none", "swap", "dup", "range", "neg", "indptr"]))
    nnz = len(indices)
    if damage in ("swap", "dup") and nnz >= 2:
        j = draw(st.integers(1, nnz - 1))
        if damage == "swap":
            indices[j - 1], indices[j] = indices[j], indices[j - 1]
        else:
            indices[j] = indices[j - 1]
    elif damage in ("range", "neg") and nnz >= 1:
        j = draw(st.integers(0, nnz - 1))
        indices[j] = n_cols + draw(st.integers(0, 3)) if damage == "range" else -1
    elif damage == "indptr" and n_rows >= 2:
        r = draw(st.integers(1, n_rows - 1))
        indptr[r] = draw(st.integers(-2, nnz + 2))
    return indptr, indices, n_cols


@settings(max_examples=300, deadline=None)
@given(csr_arrays())
def test_check_csr_matches_the_row_walk(arrays):
    indptr, indices, n_cols = arrays
    got = check_csr(indptr, indices, n_cols)
    assert tuple(int(x) for x in got) == oracle(indptr, indices, n_cols)


def test_check_csr_hand_cases():
    ip = np.array([0, 2, 2, 5], np.int64)
    assert check_csr(ip, np.array([0, 3, 1, 2, 4], np.int32), 5) == (-1, OK)
    assert check_csr(ip, np.array([0, 3, 2, 1, 4], np.int32), 5) == (2, UNSORTED_OR_DUPLICATE)
    assert check_csr(ip, np.array([0, 3, 1, 1, 4], np.int32), 5) == (2, UNSORTED_OR_DUPLICATE)
    assert check_csr(ip, np.array([0, 5, 1, 2, 4], np.int32), 5) == (0, INDEX_OUT_OF_RANGE)
    assert check_csr(np.array([0, 3, 2, 5], np.int64), np.array([0, 1, 2, 3, 4], np.int32),
                     5) == (1, BAD_INDPTR)
    # a drop exactly at a row start is fine, a drop anywhere else is not, even when counts match
    assert check_csr(np.array([0, 2, 4], np.int64), np.array([3, 4, 0, 1], np.int32),
                     5) == (-1, OK)
    assert check_csr(np.array([0, 2, 4], np.int64), np.array([3, 1, 2, 4], np.int32),
                     5) == (0, UNSORTED_OR_DUPLICATE)


def _saved(tmp_path):
    ds, _ = make_dataset()
    out = tmp_path / "ds"
    ds.save(out)
    return out


def _unsort(out, name):
    """Reverse the first row with two or more entries of matrix ``name``."""
    ip = np.load(out / f"{name}.indptr.npy")
    r = int(np.flatnonzero(np.diff(ip) >= 2)[0])
    _damage(out, f"{name}.indices.npy",
            lambda a: a.__setitem__(slice(ip[r], ip[r + 1]), a[ip[r]:ip[r + 1]][::-1].copy()))
    return r


def _damage(out, name, fn):
    f = out / name
    a = np.load(f)
    fn(a)
    np.save(f, a)


@pytest.mark.parametrize("name, fn, match", [
    ("train.indptr.npy", lambda a: a.__setitem__(3, 0),
     r"train row \d has a decreasing or out-of-range indptr"),
    ("train.indices.npy", lambda a: a.__setitem__(0, 99),
     r"train row 0 has a column index outside \[0, n_items\)"),
    ("train.indices.npy", lambda a: a.__setitem__(1, a[0]),
     r"train row 0 has unsorted or duplicated column indices"),
])
def test_damaged_folder_is_an_error_on_load_and_in_the_cli(tmp_path, capsys, name, fn, match):
    out = _saved(tmp_path)
    _damage(out, name, fn)
    with pytest.raises(IncompatibleDatasetError, match=match):
        SplitDataset.load(out)
    assert main(["info", str(out)]) == 2
    err = capsys.readouterr().err
    assert "evcf info: error:" in err and "the directory is corrupt" in err
    SplitDataset.load(out, verify=False)  # those who trust their files may skip the check


def test_unsorted_rows_no_longer_reach_the_metrics(tmp_path):
    """The issue's case: reversed fold-in rows gave a different NDCG with exit 0."""
    out = _saved(tmp_path)
    r = _unsort(out, "test_fold_in")
    with pytest.raises(IncompatibleDatasetError, match=f"test_fold_in row {r} has unsorted"):
        SplitDataset.load(out)
    scores = tmp_path / "s.npy"
    np.save(scores, np.random.default_rng(0).random((2, 7), dtype=np.float32))
    assert main(["evaluate", "--scores", str(scores), "--split", str(out), "--part", "test",
                 "--metrics", "ndcg@3"]) == 2


def test_info_verify_checks_the_recorded_checksums(tmp_path, capsys):
    out = _saved(tmp_path)
    meta = json.loads((out / "meta.json").read_text())
    assert set(meta["checksums"]) == {p.name for p in out.glob("*.npy")}
    assert main(["info", str(out), "--verify"]) == 0
    assert f"verified     {len(meta['checksums'])} array files match" in capsys.readouterr().out
    # same shape and structure, other content: only the checksum sees it
    _damage(out, "item_ids.npy", lambda a: a.__setitem__(0, a[0] + 1000))
    SplitDataset.load(out)
    assert main(["info", str(out)]) == 0
    capsys.readouterr()
    assert main(["info", str(out), "--verify"]) == 2
    assert "item_ids.npy (sha256 differs)" in capsys.readouterr().err
    (out / "train.indptr.npy").unlink()
    with pytest.raises(IncompatibleDatasetError, match=r"train.indptr.npy \(missing\)"):
        SplitDataset.verify_checksums(out)
