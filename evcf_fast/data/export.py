"""Export a split to the authors' pre-split layout (Liang et al. ``pro_sg``; EVCF datasets/ML_20m).

Writes ``train.csv``, ``validation_tr.csv``, ``validation_te.csv``, ``test_tr.csv`` and
``test_te.csv`` with the header ``uid,sid`` and ``unique_sid.txt`` (one raw item id per line, in
sid order), exactly what EVCF's ``utils/load_data.py`` reads (PAPER_SPEC 1.1 step 8 and 1.4):
validation uids follow the training uids and test uids follow the validation ones. Also writes
``unique_uid.txt`` (the raw user id of each uid), which the authors' loader ignores and
:func:`evcf_fast.data.readers.read_presplit` uses to restore the user ids.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from .._io import atomic_dir
from .._progress import progress as _progress
from .dataset import SplitDataset

FILES = {"train.csv": "train", "validation_tr.csv": "validation_fold_in",
         "validation_te.csv": "validation_heldout", "test_tr.csv": "test_fold_in",
         "test_te.csv": "test_heldout"}


def export_presplit(dataset: SplitDataset, out_dir: str | os.PathLike, *,
                    overwrite: bool = False, progress: bool = False, inputs=()) -> Path:
    """Write ``dataset`` in the authors' CSV layout into a new directory (atomically).

    Rows are written in uid order and, within a user, in sid order. ``inputs`` (e.g. the
    dataset's own folder) may not be overwritten.
    """
    n_train = dataset.train.shape[0]
    n_valid = dataset.validation_fold_in.shape[0]
    offsets = {"train": 0, "validation_fold_in": n_train, "validation_heldout": n_train,
               "test_fold_in": n_train + n_valid, "test_heldout": n_train + n_valid}
    with atomic_dir(out_dir, overwrite=overwrite, kind="presplit", inputs=inputs) as tmp:
        for fname, attr in _progress(FILES.items(), total=len(FILES), desc="export",
                                     unit="file", enabled=progress):
            m = getattr(dataset, attr)
            uid = np.repeat(np.arange(m.shape[0], dtype=np.int64) + offsets[attr],
                            np.diff(m.indptr))
            pl.DataFrame({"uid": uid, "sid": np.asarray(m.indices, np.int64)}).write_csv(
                tmp / fname)
        _write_lines(tmp / "unique_sid.txt", dataset.item_ids)
        users = np.concatenate([np.asarray(dataset.train_user_ids),
                                np.asarray(dataset.validation_user_ids),
                                np.asarray(dataset.test_user_ids)])
        _write_lines(tmp / "unique_uid.txt", users)
    return Path(out_dir)


def _write_lines(path: Path, values) -> None:
    text = "\n".join(str(v) for v in np.asarray(values).tolist())
    path.write_text(text + "\n" if text else "")
