"""End-to-end preparation: raw logs -> strong-generalization split -> dataset directory.

The procedure is the Liang et al. (WWW 2018) / Kim & Suh (RecSys 2019) notebook (PAPER_SPEC 1.1):
see :mod:`evcf_fast.data.split`. This module wires the readers, the split and the atomic write
together, applies the rating filter inside the Polars scan (rows that fail it are never
materialised), and records what it did in the dataset's ``meta.json``.

Work that does not need the parsed rows runs beside the parse or the split instead of after
them: Numba's first use in a process (importing NumPy, Numba and scipy, building Numba's target,
loading the cached machine code of the split kernels: about 0.6 s of single-threaded Python) on a
thread while Polars parses (Polars releases the GIL while it parses); the row count before the
rating filter (a second pass over text files) and the sha256 of the sources on a thread while the
split runs (its kernels release the GIL).
"""

from __future__ import annotations

import concurrent.futures
import datetime
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import __version__
from .._checks import check_choice
from .._io import check_output
from .._progress import progress as _progress
from . import readers
from .config import ID_TYPES, INVALID_RATINGS, SplitConfig

if TYPE_CHECKING:
    from .dataset import SplitDataset


def prepare(paths, out_dir: str | os.PathLike | None = None, *, n_heldout: int | None,
            format: str = "auto", user_col: str | None = None, item_col: str | None = None,
            rating_col: str | None = None, timestamp_col: str | None = None,
            separator: str | None = None, has_header: bool | None = None,
            min_rating: float | None = SplitConfig.min_rating,
            min_user_count: int = SplitConfig.min_user_count, seed: int = SplitConfig.seed,
            heldout_fraction: float = SplitConfig.heldout_fraction,
            exact: bool = SplitConfig.exact, overwrite: bool = False,
            progress: bool = True, hash_sources: bool = True,
            name: str | None = None, invalid_ratings: str = "error",
            id_type: str = "auto") -> SplitDataset:
    """Read raw interaction files, split them, and optionally write the dataset directory.

    Parameters
    ----------
    paths : path-like or sequence of path-likes
        Input files or directories (see :func:`evcf_fast.data.readers.read_interactions`), or the
        authors' pre-split directory with ``format="presplit"`` (auto-detected too).
    out_dir : path-like, optional
        Dataset directory to write (atomically: a temporary directory renamed into place).
    n_heldout : int or None
        Validation users, and test users (10,000 for ML-20M, 40,000 for Netflix). None only for
        pre-split input, whose split is given.
    format : str
        One of :data:`evcf_fast.data.config.PREPARE_FORMATS`: ``readers.FORMATS`` or
        ``"presplit"``.
    user_col, item_col, rating_col, timestamp_col, separator, has_header
        Column and parsing options for generic CSV/TSV/Parquet input.
    min_rating : float or None
        Keep ``rating > min_rating``; None for implicit data (every row is a positive).
    min_user_count, seed, heldout_fraction, exact
        See :func:`evcf_fast.data.split.strong_generalization_split`.
    overwrite : bool
        Replace an existing ``out_dir``; otherwise an existing one is an error, raised before
        any work.
    progress : bool
        Progress bars on stderr.
    hash_sources : bool
        Record the sha256 of every input file in the metadata (computed on a thread while
        the split runs).
    name : str, optional
        Dataset name for the metadata (default: ``out_dir``'s name or the first input's).
    invalid_ratings : {"error", "drop"}
        A null, NaN or infinite rating stops with an error naming the file and line, or
        (``"drop"``) the row is dropped and counted in ``meta["counts"]["n_invalid_ratings"]``.
    id_type : {"auto", "string"}
        How ids are typed (:data:`evcf_fast.data.config.ID_TYPES`).

    Returns
    -------
    SplitDataset
        The in-memory split (the same arrays that were written).
    """
    t0 = time.perf_counter()
    check_choice(invalid_ratings, "invalid_ratings", INVALID_RATINGS)
    check_choice(id_type, "id_type", ID_TYPES)
    plist = readers.as_path_list(paths)
    if out_dir is not None:  # before any work: existing, foreign, input or unwritable output
        check_output(out_dir, overwrite=overwrite, inputs=plist)
    presplit = format == "presplit" or (
        format == "auto" and len(plist) == 1 and plist[0].is_dir()
        and all((plist[0] / f).is_file() for f in readers.PRESPLIT_FILES))
    if presplit:
        if n_heldout is not None:
            raise ValueError(f"n_heldout must be None for pre-split input (its split is given), "
                             f"got {n_heldout}")
        if len(plist) != 1:
            raise ValueError(f"pre-split input is one directory, got {len(plist)} paths")
        ds = readers.read_presplit(plist[0])
        if out_dir is not None:
            ds.save(out_dir, overwrite=overwrite, inputs=plist)
        return ds
    if n_heldout is None:
        raise TypeError("n_heldout is required (the number of validation and of test users)")
    config = SplitConfig(n_heldout=n_heldout, min_rating=min_rating,
                         min_user_count=min_user_count, seed=seed,
                         heldout_fraction=heldout_fraction, exact=exact)
    sources = readers.resolve_sources(plist, format=format, user_col=user_col,
                                      item_col=item_col, rating_col=rating_col,
                                      timestamp_col=timestamp_col, separator=separator,
                                      has_header=has_header)
    if config.min_rating is not None and not sources[0].has_rating:
        raise ValueError(f"{str(sources[0].path)!r} has no rating column, so min_rating="
                         f"{min_rating} cannot be applied; pass min_rating=None (--implicit) for "
                         f"implicit data, or name the column (--rating-col)")

    split_module = _Background(_load_split, config.exact)
    bar = _progress(total=3, desc="prepare", unit="step", enabled=progress)
    bar.set_postfix_str("parse")
    stats = {}
    positives = readers.collect_sources(sources, with_timestamp=False,
                                        min_rating=config.min_rating,
                                        invalid_ratings=invalid_ratings, id_type=id_type,
                                        stats=stats, count_now=False)
    t_parse = time.perf_counter()
    split = split_module.result()
    # the split is mostly one core (compiled, GIL-free kernels): meanwhile a thread counts the
    # rows that the rating filter dropped while parsing (a second pass over text) and hashes
    # the sources
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        n_rows = stats["n_rows"]
        count = pool.submit(n_rows) if callable(n_rows) else None
        hashes = pool.submit(_describe_sources, sources, hash_sources)
        bar.update()
        bar.set_postfix_str("split")
        meta = {
            "name": name or (Path(out_dir).name if out_dir is not None else plist[0].stem),
            "source_format": sources[0].label,
            "library": f"evcf_fast {__version__}",
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
        }
        if count is not None and positives.height == 0:  # the split's error states the count
            n_rows, count = count.result(), None
        # while the thread above hashes the sources it keeps a core busy: leave it that core
        # (the row count alone is brief)
        threads = max(1, split.available_cores() - bool(hash_sources))
        ds = split.split_positives(positives["user"], positives["item"],
                             n_rows=None if count is not None else n_rows,
                             **config.to_dict(), meta=meta, threads=threads)
        del positives
        t_split = time.perf_counter()
        if count is not None:
            ds.meta["counts"]["n_rows"] = count.result()
        ds.meta["sources"] = hashes.result()
        ds.meta.setdefault("counts", {})["n_invalid_ratings"] = stats["n_invalid_ratings"]
    bar.update()
    if out_dir is not None:
        bar.set_postfix_str("write")
        ds.meta["timings_s"] = {"parse": round(t_parse - t0, 3),
                                "split": round(t_split - t_parse, 3)}
        ds.save(out_dir, overwrite=overwrite, inputs=plist)
    bar.update()
    bar.close()
    return ds


class _Background:
    """``fn(*args)`` on a daemon thread; :meth:`result` waits for it and re-raises its error.

    A daemon thread, unlike an executor's, never holds up an error raised meanwhile (bad input
    is reported at once, even while the thread is still compiling kernels on a cold cache).
    """

    def __init__(self, fn, *args):
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True,
                                        name=f"evcf-{fn.__name__}")
        self._thread.start()

    def _run(self, fn, *args):
        try:
            self._value = fn(*args)
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _load_split(exact: bool):
    """Import the split (NumPy, Numba, scipy) and load its kernels' machine code; the module.

    Runs the split on a tiny table of the parse's id types (int64; text ids share every kernel
    but one), which loads exactly the overloads the real split calls, or compiles them once on
    a machine whose Numba cache is cold (with the first-use note).
    """
    from . import split

    split.warmup(exact=exact)
    return split


def _describe_sources(sources, hash_sources: bool) -> list[dict]:
    out = []
    for s in sources:
        files = s.input_files
        h = hashlib.sha256() if hash_sources else None
        size = 0
        for f in files:
            size += os.path.getsize(f)
            if h is not None:
                _hash_file(f, h)
        entry = {"path": str(Path(s.path).resolve()), "size": size}
        if len(files) > 1:
            entry["n_files"] = len(files)
        if h is not None:
            entry["sha256"] = h.hexdigest()
        out.append(entry)
    return out


def _hash_file(path, h) -> None:
    """Feed the bytes of ``path`` to ``h`` through one reused buffer (no new 8 MiB bytes
    object, and its page faults, per chunk)."""
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
