"""Device batch gathering against scipy row slicing."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from evcf_fast.data.dataset import SplitDataset
from evcf_fast.train.batches import DeviceRows, EpochBatches, gather_rows


def _binary_csr(n_rows, n_cols, density, seed):
    m = sp.random(n_rows, n_cols, density=density, format="csr", random_state=seed,
                  dtype=np.float32)
    m.data[:] = 1.0
    m.indptr = m.indptr.astype(np.int64)
    m.indices = m.indices.astype(np.int32)
    return m


def _dense(x: torch.Tensor) -> np.ndarray:
    return x.to_dense().numpy()


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(1, 40), n_cols=st.integers(1, 30), density=st.floats(0, 0.6),
       seed=st.integers(0, 10**6), data=st.data())
def test_gather_rows_equals_scipy_fancy_indexing(n_rows, n_cols, density, seed, data):
    """Arbitrary row lists (repeats, empty rows, empty selection) equal csr[rows]."""
    csr = _binary_csr(n_rows, n_cols, density, seed)
    rows = data.draw(st.lists(st.integers(0, n_rows - 1), max_size=50))
    expected = csr[np.asarray(rows, dtype=np.int64)]
    crow = torch.from_numpy(csr.indptr.astype(np.int64))
    col = torch.from_numpy(csr.indices.astype(np.int64))
    new_crow, new_col = gather_rows(crow, col, torch.tensor(rows, dtype=torch.int64))
    np.testing.assert_array_equal(new_crow.numpy(), expected.indptr)
    np.testing.assert_array_equal(new_col.numpy(), expected.indices)
    # passing the known nnz gives the same result without a read-back
    _, col2 = gather_rows(crow, col, torch.tensor(rows, dtype=torch.int64), nnz=expected.nnz)
    np.testing.assert_array_equal(col2.numpy(), expected.indices)


def test_device_rows_block_and_gather():
    csr = _binary_csr(57, 23, 0.2, 0)
    rows = DeviceRows(csr, "cpu")
    assert rows.nnz == csr.nnz and rows.shape == (57, 23)
    for start, stop in [(0, 57), (10, 20), (56, 57), (5, 5)]:
        x = rows.block(start, stop)
        assert x.layout == torch.sparse_csr and x.shape == (stop - start, 23)
        np.testing.assert_array_equal(_dense(x), csr[start:stop].toarray())
    idx = torch.tensor([4, 0, 4, 56])
    np.testing.assert_array_equal(_dense(rows.gather(idx)), csr[idx.numpy()].toarray())
    with pytest.raises(ValueError, match="outside"):
        rows.block(50, 58)


def test_device_rows_rejects_non_csr():
    with pytest.raises(TypeError, match="CSR"):
        DeviceRows(np.ones((3, 3)), "cpu")
    with pytest.raises(TypeError, match="CSR"):
        DeviceRows(sp.coo_matrix(np.ones((3, 3))), "cpu")


@pytest.mark.parametrize("batch_size", [1, 7, 50, 64])
def test_epoch_batches_cover_a_permutation(batch_size):
    """Every row exactly once per epoch; each batch equals scipy slicing of its rows."""
    csr = _binary_csr(50, 31, 0.15, 3)
    rows = DeviceRows(csr, "cpu")
    gen = torch.Generator().manual_seed(0)
    batches = EpochBatches.shuffled(rows, batch_size=batch_size, generator=gen)
    assert len(batches) == -(-50 // batch_size)
    seen = []
    for x, ids in batches:
        assert x.shape[0] == ids.numel() <= batch_size
        np.testing.assert_array_equal(_dense(x), csr[ids.numpy()].toarray())
        np.testing.assert_array_equal(x.values().numpy(), np.ones(x.values().numel()))
        seen.extend(ids.tolist())
    assert sorted(seen) == list(range(50))
    assert seen == batches.perm.tolist()


def test_epoch_batches_shuffle_is_seeded_and_changes_each_epoch():
    csr = _binary_csr(40, 10, 0.3, 1)
    rows = DeviceRows(csr, "cpu")
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a1 = EpochBatches.shuffled(rows, batch_size=8, generator=g1).perm
    b1 = EpochBatches.shuffled(rows, batch_size=8, generator=g2).perm
    a2 = EpochBatches.shuffled(rows, batch_size=8, generator=g1).perm
    assert torch.equal(a1, b1) and not torch.equal(a1, a2)
    ordered = EpochBatches.shuffled(rows, batch_size=8, generator=None)
    assert ordered.perm.tolist() == list(range(40))


def test_split_dataset_serves_the_trainer():
    tr = _binary_csr(20, 9, 0.3, 0)
    fi, ho = _binary_csr(5, 9, 0.3, 1), _binary_csr(5, 9, 0.3, 2)
    d = SplitDataset(train=tr, validation_fold_in=fi, validation_heldout=ho, test_fold_in=ho,
                     test_heldout=fi, item_ids=np.arange(9), train_user_ids=np.arange(20),
                     validation_user_ids=np.arange(5), test_user_ids=np.arange(5), meta={})
    assert d.n_items == 9 and d.part("validation") == (fi, ho) and d.part("test") == (ho, fi)
    with pytest.raises(ValueError, match="part must be"):
        d.part("train")
