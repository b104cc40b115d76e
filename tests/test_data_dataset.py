"""SplitDataset: the on-disk layout, memory-mapped loading and the corruption checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp

from evcf_fast.data import dataset as D
from evcf_fast.data.dataset import FORMAT_VERSION, SplitDataset, make_csr
from evcf_fast.errors import IncompatibleDatasetError


def random_csr(rng, n_rows, n_cols, density=0.3):
    dense = rng.random((n_rows, n_cols)) < density
    m = sp.csr_matrix(dense.astype(np.float32))
    return make_csr(m.indptr.astype(np.int64), m.indices.astype(np.int32), n_cols), dense


def make_dataset(seed=0, string_ids=False):
    rng = np.random.default_rng(seed)
    n_items = 7
    mats, dense = {}, {}
    for name, rows in (("train", 6), ("validation_fold_in", 3), ("validation_heldout", 3),
                       ("test_fold_in", 2), ("test_heldout", 2)):
        mats[name], dense[name] = random_csr(rng, rows, n_items)
    ids = (lambda a: np.array([f"id{x}" for x in a])) if string_ids else (lambda a: np.asarray(a))
    ds = SplitDataset(**mats, item_ids=ids(np.arange(100, 107)),
                      train_user_ids=ids(np.arange(6)), validation_user_ids=ids([10, 11, 12]),
                      test_user_ids=ids([20, 21]), meta={"name": "toy"})
    return ds, dense


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("string_ids", [False, True])
def test_round_trip(tmp_path, mmap, string_ids):
    ds, dense = make_dataset(string_ids=string_ids)
    ds.save(tmp_path / "ds")
    back = SplitDataset.load(tmp_path / "ds", mmap=mmap)
    for name in D.MATRICES:
        m = getattr(back, name)
        assert isinstance(m, sp.csr_matrix)
        assert m.dtype == np.float32
        assert m.indptr.dtype == np.int64 and m.indices.dtype == np.int32
        assert m.has_sorted_indices
        np.testing.assert_array_equal(m.toarray(), dense[name].astype(np.float32))
        assert m.indices.flags.writeable != mmap  # memory-mapped read-only
    for name in D.ID_ARRAYS:
        assert getattr(back, name).tolist() == getattr(ds, name).tolist()
    assert back.n_items == 7
    assert back.meta["format_version"] == FORMAT_VERSION
    assert back.meta["name"] == "toy"
    fold_in, heldout = back.part("test")
    assert fold_in is back.test_fold_in and heldout is back.test_heldout


def test_scipy_operations_work_on_loaded_matrices(tmp_path):
    """Row slicing, fancy indexing, products and densifying (what the training loop uses)."""
    ds, dense = make_dataset()
    ds.save(tmp_path / "ds")
    m = SplitDataset.load(tmp_path / "ds").train
    d = dense["train"].astype(np.float32)
    np.testing.assert_array_equal(m[[4, 1]].toarray(), d[[4, 1]])
    np.testing.assert_array_equal(m[1:3].toarray(), d[1:3])
    np.testing.assert_allclose(m @ np.ones(7, np.float32), d.sum(1))
    np.testing.assert_array_equal((m.T @ m).toarray(), d.T @ d)
    np.testing.assert_array_equal(np.asarray(m.sum(axis=0)).ravel(), d.sum(0))
    np.testing.assert_array_equal(m.tocsc().toarray(), d)
    np.testing.assert_array_equal((m * 2 + m).toarray(), 3 * d)
    np.testing.assert_array_equal(m.astype(np.float64).toarray(), d)


@pytest.mark.parametrize("mmap", [True, False])
def test_loaded_values_are_a_read_only_view_of_ones(tmp_path, mmap):
    """Binary matrices carry their ones as a stride-0 view: nothing written per load, and a write
    is an error rather than a change to every matrix sharing the view; a copy is writable."""
    ds, dense = make_dataset()
    ds.save(tmp_path / "ds")
    m = SplitDataset.load(tmp_path / "ds", mmap=mmap).train
    assert m.data.shape == (m.nnz,) and m.data.dtype == np.float32 and m.data.strides == (0,)
    assert np.all(m.data == 1.0)
    with pytest.raises(ValueError, match="read-only"):
        m.data[0] = 2.0
    with pytest.raises(ValueError, match="read-only"):
        m.data *= 2
    c = m.copy()
    c.data *= 2
    np.testing.assert_array_equal(c.toarray(), 2 * dense["train"])
    assert np.all(m.data == 1.0)


def test_save_refuses_existing_directory(tmp_path):
    ds, _ = make_dataset()
    ds.save(tmp_path / "ds")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite"):
        ds.save(tmp_path / "ds")
    ds2, dense2 = make_dataset(seed=1)
    ds2.save(tmp_path / "ds", overwrite=True)
    back = SplitDataset.load(tmp_path / "ds")
    np.testing.assert_array_equal(back.train.toarray(), dense2["train"])
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary leftovers


def test_summary_mentions_the_counts(tmp_path):
    ds, _ = make_dataset()
    text = ds.summary()
    assert "users        11 = train 6 + validation 3 + test 2" in text
    assert "items        7" in text
    assert f"interactions {sum(getattr(ds, n).nnz for n in D.MATRICES):,}" in text


def test_wrong_format_version(tmp_path):
    ds, _ = make_dataset()
    ds.save(tmp_path / "ds")
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "ds" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IncompatibleDatasetError,
                       match=f"has dataset format version {FORMAT_VERSION + 1}, expected "
                             f"{FORMAT_VERSION}; re-create it"):
        SplitDataset.load(tmp_path / "ds")


def test_missing_and_corrupt_files(tmp_path):
    ds, _ = make_dataset()
    ds.save(tmp_path / "ds")
    (tmp_path / "ds" / "test_heldout.indices.npy").unlink()
    with pytest.raises(IncompatibleDatasetError,
                       match="dataset file '.*test_heldout.indices.npy' is missing"):
        SplitDataset.load(tmp_path / "ds")

    ds.save(tmp_path / "ds", overwrite=True)
    f = tmp_path / "ds" / "train.indices.npy"
    f.write_bytes(f.read_bytes()[:-8])  # truncated
    with pytest.raises(IncompatibleDatasetError, match="train.indices.npy' is corrupt or "
                                                       "truncated"):
        SplitDataset.load(tmp_path / "ds")
    with pytest.raises(IncompatibleDatasetError, match="train.indices.npy' is corrupt or "
                                                       "truncated"):
        SplitDataset.load(tmp_path / "ds", mmap=False)

    ds.save(tmp_path / "ds", overwrite=True)
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    meta["matrices"]["test_fold_in"]["nnz"] += 1
    (tmp_path / "ds" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(IncompatibleDatasetError, match="test_fold_in arrays are inconsistent "
                                                       "with meta.json"):
        SplitDataset.load(tmp_path / "ds")

    ds.save(tmp_path / "ds", overwrite=True)
    (tmp_path / "ds" / "meta.json").write_text("{not json")
    with pytest.raises(IncompatibleDatasetError, match="meta.json' is corrupt"):
        SplitDataset.load(tmp_path / "ds")

    (tmp_path / "ds" / "meta.json").unlink()
    with pytest.raises(IncompatibleDatasetError, match="is not an evcf dataset: meta.json is "
                                                       "missing"):
        SplitDataset.load(tmp_path / "ds")

    with pytest.raises(IncompatibleDatasetError, match="does not exist or is not a directory"):
        SplitDataset.load(tmp_path / "nowhere")


def test_inconsistent_item_count(tmp_path):
    ds, _ = make_dataset()
    ds.save(tmp_path / "ds")
    np.save(tmp_path / "ds" / "item_ids.npy", np.arange(8))
    with pytest.raises(IncompatibleDatasetError, match="item_ids.npy has 8 entries, meta.json "
                                                       "says n_items=7"):
        SplitDataset.load(tmp_path / "ds")


def test_constructor_checks():
    ds, _ = make_dataset()
    kwargs = {n: getattr(ds, n) for n in D.MATRICES + D.ID_ARRAYS}
    with pytest.raises(ValueError, match="train has 7 columns, expected n_items=6"):
        SplitDataset(**{**kwargs, "item_ids": np.arange(6)})
    with pytest.raises(ValueError, match=r"test_fold_in has 2 rows, expected 3 "
                                         r"\(len\(test_user_ids\)\)"):
        SplitDataset(**{**kwargs, "test_user_ids": np.arange(3)})
    with pytest.raises(TypeError, match="train must be a scipy.sparse.csr_matrix, got ndarray"):
        SplitDataset(**{**kwargs, "train": ds.train.toarray()})
    with pytest.raises(ValueError, match="part must be one of validation, test, got 'train'"):
        ds.part("train")
    with pytest.raises(TypeError, match="CSR arrays must be int64 indptr and int32 indices"):
        make_csr(np.zeros(1, np.int32), np.zeros(0, np.int32), 3)
    with pytest.raises(TypeError, match="ids must be integers or strings, got dtype float64"):
        D._storable_ids(np.array([1.5]))
