"""The authors' pre-split layout (EVCF ``datasets/ML_20m/``; Liang et al. ``pro_sg``).

``train.csv``, ``validation_tr.csv``, ``validation_te.csv``, ``test_tr.csv``, ``test_te.csv``
with header ``uid,sid``, and ``unique_sid.txt`` (plus ``unique_uid.txt`` when written by
:func:`evcf_fast.data.export.export_presplit`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from ...errors import DataFormatError
from ._common import first_line_of
from .detect import PRESPLIT_FILES

if TYPE_CHECKING:
    import numpy as np


def read_presplit(directory: str | os.PathLike):
    """Read the authors' split files (EVCF ``datasets/ML_20m/`` layout) as a SplitDataset.

    Rows follow the authors' loader (PAPER_SPEC 1.4): train rows are uids ``0..max uid``;
    validation and test rows are re-based by the smallest uid of that part's two files. If a
    ``unique_uid.txt`` (written by :func:`evcf_fast.data.export.export_presplit`) is present, it
    gives the raw user id of every uid; otherwise the user ids are the uids.
    """
    import numpy as np  # here, not at the top: `evcf prepare` of raw logs parses without it

    from evcf_fast.kernels import split as K

    from ..dataset import SplitDataset, make_csr

    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"pre-split directory {str(d)!r} does not exist")
    missing = [f for f in PRESPLIT_FILES + ("unique_sid.txt",) if not (d / f).is_file()]
    if missing:
        raise FileNotFoundError(f"pre-split directory {str(d)!r} lacks {', '.join(missing)}")
    item_ids = _read_id_lines(d / "unique_sid.txt")
    n_items = len(item_ids)
    parts = {}
    for f in PRESPLIT_FILES:
        parts[f] = _read_uid_sid(d / f, n_items)
    uid_ids = _read_id_lines(d / "unique_uid.txt") if (d / "unique_uid.txt").is_file() else None

    def block(files):
        uids = np.concatenate([parts[f][0] for f in files])
        if uids.shape[0] == 0:
            return 0, 0
        return int(uids.min()), int(uids.max()) + 1

    def csr(f, start, n_rows):
        uid, sid = parts[f]
        row = (uid - start).astype(np.int32)
        ptr, items = K.group_items(row, sid.astype(np.int32), n_rows)
        ptr, items = K.drop_repeats(ptr, items, max(n_items, 1))
        return make_csr(ptr, K.sort_rows(ptr, items, n_items), n_items)

    n_train = int(parts["train.csv"][0].max()) + 1 if parts["train.csv"][0].size else 0
    out = {"train": csr("train.csv", 0, n_train)}
    rows = {"train": (0, n_train)}
    for name, tr, te in (("validation", "validation_tr.csv", "validation_te.csv"),
                         ("test", "test_tr.csv", "test_te.csv")):
        lo, hi = block([tr, te])
        out[f"{name}_fold_in"] = csr(tr, lo, hi - lo)
        out[f"{name}_heldout"] = csr(te, lo, hi - lo)
        rows[name] = (lo, hi)
    ids = {}
    for name, key in (("train", "train_user_ids"), ("validation", "validation_user_ids"),
                      ("test", "test_user_ids")):
        lo, hi = rows[name]
        if uid_ids is not None:
            if hi > len(uid_ids):
                raise DataFormatError(d / "unique_uid.txt", None,
                                      f"has {len(uid_ids)} lines, expected at least {hi}")
            ids[key] = uid_ids[lo:hi]
        else:
            ids[key] = np.arange(lo, hi, dtype=np.int64)
    meta = {"name": d.name, "source_format": "presplit",
            "sources": [{"path": str(d.resolve())}]}
    return SplitDataset(item_ids=item_ids, meta=meta, **out, **ids)


def _read_uid_sid(path: Path, n_items: int):
    try:
        df = pl.read_csv(path, schema_overrides={"uid": pl.Int64, "sid": pl.Int64})
    except pl.exceptions.NoDataError:
        raise DataFormatError(path, None, "the file is empty; expected a header uid,sid") \
            from None
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError) as exc:
        raise DataFormatError(path, None, f"expected integer uid,sid rows: "
                                          f"{first_line_of(exc)}") from None
    if df.columns != ["uid", "sid"]:
        raise DataFormatError(path, 1, f"expected the header uid,sid, got {','.join(df.columns)}")
    uid, sid = df["uid"], df["sid"]
    bad = uid.is_null() | sid.is_null() | (sid < 0) | (sid >= n_items) | (uid < 0)
    if bad.any():
        row = int(bad.arg_true()[0])
        raise DataFormatError(path, row + 2, f"expected uid >= 0 and 0 <= sid < {n_items} "
                                             f"(lines of unique_sid.txt), got {uid[row]},"
                                             f"{sid[row]}")
    return uid.to_numpy(), sid.to_numpy()


def _read_id_lines(path: Path) -> np.ndarray:
    import numpy as np

    lines = path.read_text().splitlines()
    if lines and not lines[-1]:
        lines.pop()
    if any(not s for s in lines):
        raise DataFormatError(path, lines.index("") + 1, "empty id line")
    int_like = [re.fullmatch(r"-?\d+", s) is not None for s in lines]
    if all(int_like):
        try:
            return np.array([int(s) for s in lines], dtype=np.int64)
        except OverflowError:
            big = next(k for k, s in enumerate(lines) if not -2**63 <= int(s) < 2**63)
            raise DataFormatError(path, big + 1, f"id {lines[big]} does not fit in int64") \
                from None
    n_int = sum(int_like)
    if n_int:  # the one id-type rule of the readers: a few non-integers among integers
        first = int_like.index(False)
        raise DataFormatError(path, first + 1, f"id {lines[first]!r} is not an integer, but "
                                               f"{n_int:,} other ids are "
                                               f"({len(lines) - n_int:,} not): a typo?")
    return np.array(lines, dtype=str)
