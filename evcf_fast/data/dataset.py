"""The strong-generalization split on disk and in memory (Liang et al., WWW 2018; PAPER_SPEC 1.1).

A dataset directory holds one ``.npy`` file per array plus ``meta.json``::

    meta.json                         format version, shapes, nnz, parameters, counts, sources
    train.indptr.npy / .indices.npy   int64 indptr, int32 column indices (values are all ones)
    validation_fold_in.*  validation_heldout.*  test_fold_in.*  test_heldout.*
    item_ids.npy                      raw item id of each column (the notebook's unique_sid)
    train_user_ids.npy  validation_user_ids.npy  test_user_ids.npy   raw user id of each row

``.npy`` files memory-map (``np.load(mmap_mode="r")``) and the values are a stride-0 view of ones
(:func:`ones_view`), so a load allocates nothing in the data size; its one pass is the structural
check of the indices (``verify``). String ids are stored as fixed-width unicode arrays, so nothing
is pickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._io import atomic_dir
from ..errors import IncompatibleDatasetError

#: Bumped whenever the directory layout or the meaning of a stored array changes.
FORMAT_VERSION = 1

MATRICES = ("train", "validation_fold_in", "validation_heldout", "test_fold_in", "test_heldout")
ID_ARRAYS = ("item_ids", "train_user_ids", "validation_user_ids", "test_user_ids")
PARTS = ("validation", "test")
_ROW_IDS = {"train": "train_user_ids", "validation_fold_in": "validation_user_ids",
            "validation_heldout": "validation_user_ids", "test_fold_in": "test_user_ids",
            "test_heldout": "test_user_ids"}


def ones_view(n: int) -> np.ndarray:
    """``n`` float32 ones as a read-only stride-0 view of one value.

    The interaction matrices are binary, so their ``data`` carries no information: a view costs
    no memory and no time to build, where a materialised array would be written on every load
    (4 bytes per interaction: 80 MB for ML-20M, 400 MB for Netflix). scipy and NumPy read it like
    any array; writing to it raises "assignment destination is read-only" instead of changing
    every matrix that shares it.
    """
    return np.broadcast_to(np.float32(1.0), (n,))


def make_csr(indptr: np.ndarray, indices: np.ndarray, n_cols: int,
             data: np.ndarray | None = None) -> sp.csr_matrix:
    """Wrap CSR arrays (sorted rows, no duplicates) without copying or re-checking them.

    scipy would coerce ``indptr`` and ``indices`` to one common dtype; the contract here is
    int64 indptr with int32 indices (compact indices, no overflow on Netflix-sized nnz), so the
    arrays are attached after construction. Note: scipy's ``tocoo()`` and ``nonzero()`` reject
    mixed index dtypes; use ``m.indices.astype(np.int64)`` in a copy for those.

    Without ``data`` the values are :func:`ones_view` (read-only; ``m.copy()`` is writable).
    """
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    if indptr.dtype != np.int64 or indices.dtype != np.int32:
        raise TypeError(f"CSR arrays must be int64 indptr and int32 indices, got "
                        f"{indptr.dtype} and {indices.dtype}")
    n_rows = indptr.shape[0] - 1
    m = sp.csr_matrix((n_rows, n_cols), dtype=np.float32)
    m.data = ones_view(indices.shape[0]) if data is None else data
    m.indices = indices
    m.indptr = indptr
    m.has_canonical_format = True  # sorted, duplicate-free rows: set so scipy never re-sorts
    return m


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class SplitDataset:
    """The five CSR matrices of a strong-generalization split, their id maps and metadata.

    Attributes
    ----------
    train : scipy.sparse.csr_matrix
        Training users x items; row ``u`` is uid ``u`` (``0..U_train-1``).
    validation_fold_in, validation_heldout : scipy.sparse.csr_matrix
        Validation users (uid order, i.e. the seeded permutation) x items: the 80% fold-in input
        and the 20% held-out targets.
    test_fold_in, test_heldout : scipy.sparse.csr_matrix
        The same for the test users.
    item_ids : numpy.ndarray
        Raw item id of each column (``unique_sid``).
    train_user_ids, validation_user_ids, test_user_ids : numpy.ndarray
        Raw user id of each row of the corresponding matrices.
    meta : dict
        Parameters, counts and sources (JSON-serialisable).

    All matrices are float32 ones with int64 ``indptr`` and int32 ``indices``, sorted
    duplicate-free rows, and ``n_items`` columns.
    """

    train: sp.csr_matrix
    validation_fold_in: sp.csr_matrix
    validation_heldout: sp.csr_matrix
    test_fold_in: sp.csr_matrix
    test_heldout: sp.csr_matrix
    item_ids: np.ndarray
    train_user_ids: np.ndarray
    validation_user_ids: np.ndarray
    test_user_ids: np.ndarray
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.meta.setdefault("format_version", FORMAT_VERSION)
        n_items = len(self.item_ids)
        for name in MATRICES:
            m = getattr(self, name)
            if not isinstance(m, sp.csr_matrix):
                raise TypeError(f"{name} must be a scipy.sparse.csr_matrix, got "
                                f"{type(m).__name__}")
            if m.shape[1] != n_items:
                raise ValueError(f"{name} has {m.shape[1]} columns, expected n_items={n_items} "
                                 f"(len(item_ids))")
            n_ids = len(getattr(self, _ROW_IDS[name]))
            if m.shape[0] != n_ids:
                raise ValueError(f"{name} has {m.shape[0]} rows, expected {n_ids} "
                                 f"(len({_ROW_IDS[name]}))")

    @property
    def n_items(self) -> int:
        """Number of items (columns), the model's input and output size."""
        return len(self.item_ids)

    def part(self, name: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """Return ``(fold_in, heldout)`` for ``name`` in ``{"validation", "test"}``."""
        if name not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}, got {name!r}")
        return getattr(self, f"{name}_fold_in"), getattr(self, f"{name}_heldout")

    def summary(self) -> str:
        """A short human-readable description (what ``evcf info`` prints)."""
        m = self.meta
        counts = m.get("counts", {})
        params = m.get("params", {})
        n_tr, n_vd, n_te = (self.train.shape[0], self.validation_fold_in.shape[0],
                            self.test_fold_in.shape[0])
        nnz = {name: getattr(self, name).nnz for name in MATRICES}
        total = sum(nnz.values())
        n_users = n_tr + n_vd + n_te
        density = total / max(1, n_users * self.n_items)
        lines = [
            f"dataset      {m.get('name', '?')} (format v{m.get('format_version', '?')}, "
            f"source format {m.get('source_format', '?')})",
            f"users        {n_users:,} = train {n_tr:,} + validation {n_vd:,} + test {n_te:,}",
            f"items        {self.n_items:,}",
            f"interactions {total:,} (density {100 * density:.3f}%)",
            f"  train {nnz['train']:,}; validation fold-in {nnz['validation_fold_in']:,} / "
            f"held-out {nnz['validation_heldout']:,}; test fold-in {nnz['test_fold_in']:,} / "
            f"held-out {nnz['test_heldout']:,}",
        ]
        if n_tr:
            lines.append(f"  mean items per training user {nnz['train'] / n_tr:.1f}")
        if params:
            mr = params.get("min_rating")
            rule = "implicit (no rating filter)" if mr is None else f"rating > {mr}"
            mode = "exact (notebook-identical)" if params.get("exact") else "fast (not identical)"
            lines.append(
                f"split        {rule}, users with >= {params.get('min_user_count')} "
                f"interactions, seed {params.get('seed')}, held-out fraction "
                f"{params.get('heldout_fraction')}, "
                f"{mode}")
        if counts:
            lines.append(
                f"input        {counts.get('n_rows', 0):,} rows; {counts.get('n_positive', 0):,} "
                f"kept by the rating filter; {counts.get('n_duplicates', 0):,} duplicated "
                f"(user, item) pairs collapsed; {counts.get('n_users_dropped', 0):,} users with "
                f"too few interactions dropped")
            if counts.get("n_invalid_ratings"):
                lines.append(f"dropped      {counts['n_invalid_ratings']:,} rows with a null, "
                             f"NaN or infinite rating (invalid_ratings='drop')")
            lines.append(
                f"held-out     {counts.get('n_heldout_rows_out_of_vocab', 0):,} validation/test "
                f"rows on items unseen in training dropped; "
                f"{counts.get('n_heldout_users_without_targets', 0):,} held-out users without "
                f"targets")
        for src in m.get("sources", []):
            sha = src.get("sha256")
            lines.append(f"source       {src.get('path')} ({src.get('size', 0):,} bytes"
                         + (f", sha256 {sha[:16]}...)" if sha else ")"))
        return "\n".join(lines)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, inputs=()) -> Path:
        """Write the dataset directory atomically (temporary directory, then rename).

        Raises FileExistsError if ``path`` exists and ``overwrite`` is false, or if it is not a
        folder written by evcf_fast; ValueError if it is one of ``inputs`` (or holds one).
        """
        path = Path(path)
        meta = dict(self.meta)
        meta["format_version"] = FORMAT_VERSION
        meta["n_items"] = self.n_items
        meta["matrices"] = {name: {"shape": list(getattr(self, name).shape),
                                   "nnz": int(getattr(self, name).nnz)} for name in MATRICES}
        with atomic_dir(path, overwrite=overwrite, kind="dataset", inputs=inputs) as tmp:
            for name in MATRICES:
                m = getattr(self, name)
                np.save(tmp / f"{name}.indptr.npy", np.asarray(m.indptr, np.int64))
                np.save(tmp / f"{name}.indices.npy", np.asarray(m.indices, np.int32))
            for name in ID_ARRAYS:
                np.save(tmp / f"{name}.npy", _storable_ids(getattr(self, name)),
                        allow_pickle=False)
            # sha256 of every array file, checked by verify_checksums (`evcf info --verify`)
            meta["checksums"] = {f.name: _sha256(f) for f in sorted(tmp.glob("*.npy"))}
            # meta.json last: a directory with a meta.json is complete by construction
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=_json_default))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, mmap: bool = True,
             verify: bool = True) -> SplitDataset:
        """Load a dataset directory written by :meth:`save`.

        Parameters
        ----------
        path : path-like
            The dataset directory.
        mmap : bool
            Memory-map the index arrays (read-only) instead of reading them.
        verify : bool
            Check every matrix fully (non-decreasing ``indptr``, column indices in range,
            sorted and duplicate-free rows), which the metric engine and the training batches
            trust: one vectorised pass over the indices and one over the rows. It costs about
            what filling the float32 ones used to, which the ones view (:func:`ones_view`)
            no longer does.
            False trusts the files (only shapes and counts are checked). The recorded sha256
            checksums are checked by :meth:`verify_checksums` (``evcf info --verify``).

        Raises
        ------
        IncompatibleDatasetError
            The directory is missing, is not a dataset, was written by another format version,
            or a file is missing, truncated or inconsistent with ``meta.json``.
        """
        path = Path(path)
        if not path.is_dir():
            raise IncompatibleDatasetError(f"dataset directory {str(path)!r} does not exist or "
                                           f"is not a directory")
        meta_path = path / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise IncompatibleDatasetError(f"{str(path)!r} is not an evcf dataset: meta.json is "
                                           f"missing (create one with `evcf prepare`)") from None
        except (OSError, ValueError) as exc:
            raise IncompatibleDatasetError(f"{str(meta_path)!r} is corrupt: {exc}") from None
        version = meta.get("format_version") if isinstance(meta, dict) else None
        if version == FORMAT_VERSION:
            _check_meta(meta, meta_path)
        if version != FORMAT_VERSION:
            raise IncompatibleDatasetError(
                f"{str(path)!r} has dataset format version {version}, expected {FORMAT_VERSION}; "
                f"re-create it with `evcf prepare` from this version of evcf_fast")
        mode = "r" if mmap else None
        arrays = {}
        for name in ID_ARRAYS:
            arrays[name] = _load_array(path / f"{name}.npy", mode)
        n_items = len(arrays["item_ids"])
        if meta.get("n_items") != n_items:
            raise IncompatibleDatasetError(f"{str(path)!r}: item_ids.npy has {n_items} entries, "
                                           f"meta.json says n_items={meta.get('n_items')}")
        for name in MATRICES:
            indptr = _load_array(path / f"{name}.indptr.npy", mode)
            indices = _load_array(path / f"{name}.indices.npy", mode)
            expected = meta.get("matrices", {}).get(name, {})
            n_rows = indptr.shape[0] - 1 if indptr.ndim == 1 else -1
            if (indptr.dtype != np.int64 or indices.dtype != np.int32 or n_rows < 0
                    or indptr[0] != 0 or indptr[-1] != indices.shape[0]
                    or [n_rows, n_items] != expected.get("shape")
                    or indices.shape[0] != expected.get("nnz")):
                raise IncompatibleDatasetError(
                    f"{str(path)!r}: {name} arrays are inconsistent with meta.json (expected "
                    f"shape {expected.get('shape')} and nnz {expected.get('nnz')}, got "
                    f"{[n_rows, n_items]} and {indices.shape[0]}); the directory is corrupt")
            if verify:
                row, code = _check_csr(indptr, indices, n_items)
                if row >= 0:
                    raise IncompatibleDatasetError(
                        f"{str(path)!r}: {name} row {row} {_PROBLEMS[code]}; the directory is "
                        f"corrupt (re-create it with `evcf prepare`)")
            arrays[name] = make_csr(indptr, indices, n_items)
        try:
            return cls(**arrays, meta=meta)
        except (TypeError, ValueError) as exc:
            raise IncompatibleDatasetError(f"{str(path)!r} is corrupt: {exc}") from None


    @staticmethod
    def verify_checksums(path: str | os.PathLike) -> int:
        """Compare every array file's sha256 with the one recorded in ``meta.json``.

        Returns the number of files checked (0 for a dataset saved before checksums were
        recorded). Raises IncompatibleDatasetError naming the files that differ or are missing.
        """
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise IncompatibleDatasetError(f"{str(path / 'meta.json')!r} is unreadable: "
                                           f"{exc}") from None
        if not isinstance(meta, dict):
            raise IncompatibleDatasetError(f"{str(path / 'meta.json')!r} is corrupt: expected a "
                                           f"JSON object, got {type(meta).__name__}")
        _check_meta(meta, path / "meta.json")
        recorded = meta.get("checksums") or {}
        bad = []
        for name, digest in sorted(recorded.items()):
            f = path / name
            if not f.is_file():
                bad.append(f"{name} (missing)")
            elif _sha256(f) != digest:
                bad.append(f"{name} (sha256 differs)")
        if bad:
            raise IncompatibleDatasetError(f"{str(path)!r}: {len(bad)} of {len(recorded)} files "
                                           f"do not match the checksums in meta.json: "
                                           f"{', '.join(bad)}; the directory is corrupt")
        return len(recorded)


#: meta.json keys with a fixed JSON type (what summary(), load and verify_checksums read)
_META_TYPES = {"n_items": int, "matrices": dict, "counts": dict, "params": dict,
               "sources": list, "checksums": dict, "name": str, "source_format": str}


def _check_meta(meta: dict, meta_path: Path) -> None:
    """A damaged meta.json is named, not an AttributeError later."""
    for key, kind in _META_TYPES.items():
        value = meta.get(key)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise IncompatibleDatasetError(
                f"{str(meta_path)!r} is corrupt: {key} must be a JSON {kind.__name__}, got "
                f"{type(value).__name__}")
    for key, kind in (("matrices", dict), ("sources", dict), ("checksums", str)):
        values = meta.get(key) or {}
        for v in values.values() if isinstance(values, dict) else values:
            if not isinstance(v, kind):
                raise IncompatibleDatasetError(
                    f"{str(meta_path)!r} is corrupt: the entries of {key} must be JSON "
                    f"{kind.__name__}s, got {type(v).__name__}")


_PROBLEMS = {1: "has a decreasing or out-of-range indptr",
             2: "has a column index outside [0, n_items)",
             3: "has unsorted or duplicated column indices"}


def _check_csr(indptr, indices, n_items):
    from evcf_fast.kernels.csr import check_csr

    return check_csr(indptr, indices, n_items)


def _sha256(file: Path) -> str:
    h = hashlib.sha256()
    with open(file, "rb") as fh:
        while chunk := fh.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


def _load_array(file: Path, mode):
    try:
        return np.load(file, mmap_mode=mode, allow_pickle=False)
    except FileNotFoundError:
        raise IncompatibleDatasetError(f"dataset file {str(file)!r} is missing") from None
    except (OSError, ValueError, EOFError) as exc:
        raise IncompatibleDatasetError(f"dataset file {str(file)!r} is corrupt or truncated: "
                                       f"{exc}") from None


def _storable_ids(ids) -> np.ndarray:
    """Ids as an int64 or fixed-width unicode array (never object: no pickling)."""
    a = np.asarray(ids)
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    if a.dtype.kind == "U":
        return a
    if a.dtype.kind == "O":
        return a.astype(str) if len(a) else np.zeros(0, "<U1")
    raise TypeError(f"ids must be integers or strings, got dtype {a.dtype}")


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"meta value of type {type(o).__name__} is not JSON-serialisable")
