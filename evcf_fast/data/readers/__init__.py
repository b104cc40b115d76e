"""Readers: raw interaction logs -> one Polars table (user, item, [rating], [timestamp]).

Formats (PAPER_SPEC 1.2-1.4):

* MovieLens: ml-100k ``u.data`` (tab, no header), ml-1m / ml-10m ``ratings.dat`` (``::``), and
  ml-20m / ml-25m / latest ``ratings.csv`` (header ``userId,movieId,rating,timestamp``, any case).
* Netflix Prize: ``combined_data_*.txt`` (Kaggle) and ``training_set/mv_*.txt`` (original): a
  ``<movie id>:`` line, then ``customer,rating,date`` lines. Movie ids come from the header lines
  (the EVCF notebook numbers them 1, 2, ... by position, which gives the same ids on the real
  files).
* Generic CSV / TSV (with or without a header) and Parquet, with integer or string ids and an
  optional rating column (implicit data).
* The authors' pre-split layout (``train.csv``, ``validation_tr.csv``, ``validation_te.csv``,
  ``test_tr.csv``, ``test_te.csv`` with header ``uid,sid``, ``unique_sid.txt``):
  :func:`read_presplit`, which returns a ready :class:`~evcf_fast.data.dataset.SplitDataset`.

Parsing is Polars (lazy scans, so a rating filter is applied while parsing); the original ids and
the file row order are kept. Bad input raises :class:`~evcf_fast.errors.DataFormatError` naming
the file and, where there is one, the line; a slow line-by-line scan locates the line only after
the fast path has failed.

Files, bottom up: ``_common`` (gzip, messages) -> ``detect`` (:class:`Source`,
:func:`resolve_sources`, the format table) -> ``delimited``, ``netflix``, ``parquet``,
``presplit`` (one parser each) -> this module (the source-kind -> parser table and the verbs).
"""

from __future__ import annotations

import polars as pl

from . import delimited, netflix, parquet
from ._common import as_path_list
from .detect import (
    FORMATS,
    ITEM_NAMES,
    PRESPLIT_FILES,
    RATING_NAMES,
    TIMESTAMP_NAMES,
    USER_NAMES,
    Source,
    resolve_sources,
)
from .presplit import read_presplit

__all__ = ["FORMATS", "PRESPLIT_FILES", "USER_NAMES", "ITEM_NAMES", "RATING_NAMES",
           "TIMESTAMP_NAMES", "READERS", "Source", "as_path_list", "collect_sources",
           "read_interactions", "read_presplit", "resolve_sources"]

#: Source.kind -> parser: ``(source, *, with_timestamp, min_rating) -> (table, rows read)``
READERS = {
    "delimited": delimited.collect_text,
    "dat": delimited.collect_dat,
    "netflix": netflix.collect_file,
    "netflix_dir": netflix.collect_dir,
    "parquet": parquet.collect,
}


def read_interactions(paths, *, format: str = "auto", user_col: str | None = None,
                      item_col: str | None = None, rating_col: str | None = None,
                      timestamp_col: str | None = None, separator: str | None = None,
                      has_header: bool | None = None,
                      with_timestamp: bool = True) -> pl.DataFrame:
    """Read one or more raw interaction files into a single table.

    Parameters
    ----------
    paths : path-like or sequence of path-likes
        Files, or a directory (a MovieLens folder holding ``ratings.*``/``u.data``, a Netflix
        folder holding ``combined_data_*.txt`` or ``training_set/``). Several files are
        concatenated in the given order.
    format : {"auto", "movielens", "netflix", "csv", "tsv", "parquet"}
        "auto" detects from the file name and first line.
    user_col, item_col, rating_col, timestamp_col : str, optional
        Column names for CSV/TSV/Parquet (0-based positions for header-less files). Unset ones
        are found among common names (``userId``, ``user_id``, ``movieId``, ``rating``, ...);
        without a rating column the data are implicit.
    separator : str, optional
        Field separator for CSV/TSV (default: sniffed from the first line).
    has_header : bool, optional
        Whether CSV/TSV files start with a header (default: yes if the first line has a
        non-numeric field).
    with_timestamp : bool
        Keep the timestamp column when there is one.

    Returns
    -------
    polars.DataFrame
        Columns ``user``, ``item`` (integer or string ids, as in the file), then ``rating``
        (Float64) and ``timestamp`` when present; rows in file order.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    DataFormatError
        Unknown format, malformed line (with file and line), missing columns, non-numeric
        ratings or missing ids.
    """
    sources = resolve_sources(paths, format=format, user_col=user_col, item_col=item_col,
                              rating_col=rating_col, timestamp_col=timestamp_col,
                              separator=separator, has_header=has_header)
    return collect_sources(sources, with_timestamp=with_timestamp)


def collect_sources(sources: list[Source], *, with_timestamp: bool = True,
                    min_rating: float | None = None,
                    stats: dict | None = None) -> pl.DataFrame:
    """Parse resolved sources into one table, optionally keeping only ``rating > min_rating``.

    The filter runs inside the Polars scan, so rows that fail it are never materialised; the
    ``rating`` column is then dropped (the caller asked for positives only). ``stats``, when
    given, receives ``n_rows``: the data rows before the filter.
    """
    frames = []
    n_rows = 0
    for s in sources:
        df, n = READERS[s.kind](s, with_timestamp=with_timestamp, min_rating=min_rating)
        frames.append(df)
        n_rows += n
    if stats is not None:
        stats["n_rows"] = n_rows
    # ids must share one dtype across files: integers everywhere, else strings everywhere
    if len({f.schema["user"] for f in frames} | {f.schema["item"] for f in frames}) > 1 and \
            len(frames) > 1:
        frames = [_align_ids(f, frames) for f in frames]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def _align_ids(f: pl.DataFrame, frames) -> pl.DataFrame:
    out = {}
    for c in ("user", "item"):
        dts = {g.schema[c] for g in frames}
        out[c] = pl.col(c).cast(pl.String if pl.String in dts else pl.Int64)
    return f.with_columns(**out)
