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

import functools

import polars as pl

from ..._checks import check_choice
from ...errors import DataFormatError
from ..config import ID_TYPES, INVALID_RATINGS
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

#: Source.kind -> parser: ``(source, *, with_timestamp, min_rating, invalid_ratings, id_type,
#: stats) -> (table, rows read)``; rows read is an int, or a function that counts them (a second
#: pass over a file whose rows the rating filter dropped while parsing)
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
                      has_header: bool | None = None, with_timestamp: bool = True,
                      id_type: str = "auto") -> pl.DataFrame:
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
    id_type : {"auto", "string"}
        See :data:`evcf_fast.data.config.ID_TYPES`: integer ids, or text ids when none looks
        like an integer; a mix is an error unless ``"string"`` reads every id as text.

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
    return collect_sources(sources, with_timestamp=with_timestamp, id_type=id_type)


def collect_sources(sources: list[Source], *, with_timestamp: bool = True,
                    min_rating: float | None = None, invalid_ratings: str = "error",
                    id_type: str = "auto", stats: dict | None = None,
                    count_now: bool = True) -> pl.DataFrame:
    """Parse resolved sources into one table, optionally keeping only ``rating > min_rating``.

    The filter runs inside the Polars scan, so rows that fail it are never materialised; the
    ``rating`` column is then dropped (the caller asked for positives only). A null, NaN or
    infinite rating is a DataFormatError naming the file and line, or, with
    ``invalid_ratings="drop"``, the row is dropped and counted. ``stats``, when given, receives
    ``n_rows`` (the data rows before the filter) and ``n_invalid_ratings`` (rows dropped).
    Counting the rows of filtered text is a second pass over the file; with ``count_now=False``
    ``stats["n_rows"]`` may instead be a function that counts them, for the caller to run later
    (on a thread, while the split runs).
    """
    check_choice(invalid_ratings, "invalid_ratings", INVALID_RATINGS)
    check_choice(id_type, "id_type", ID_TYPES)
    frames = []
    counts = []  # per source: rows read, or a function that counts them
    local: dict = {"n_invalid_ratings": 0}
    for s in sources:
        df, n = READERS[s.kind](s, with_timestamp=with_timestamp, min_rating=min_rating,
                                invalid_ratings=invalid_ratings, id_type=id_type, stats=local)
        frames.append(df)
        counts.append(n)
    if stats is not None:
        later = not count_now and any(callable(n) for n in counts)
        stats["n_rows"] = functools.partial(_sum_counts, counts) if later else _sum_counts(counts)
        stats["n_invalid_ratings"] = local["n_invalid_ratings"]
    # ids must share one dtype across files: integers everywhere, or text everywhere
    for c in ("user", "item"):
        kinds = {f.schema[c] == pl.String for f in frames}
        if len(kinds) > 1:
            text = [str(s.path) for s, f in zip(sources, frames) if f.schema[c] == pl.String]
            ints = [str(s.path) for s, f in zip(sources, frames) if f.schema[c] != pl.String]
            raise DataFormatError(text[0], None, f"{c} ids are text here but integers in "
                                                 f"{ints[0]!r}; ids must have one type across "
                                                 f"files (pass id_type='string' (--string-ids) "
                                                 f"to read all ids as text)")
    if len(frames) > 1:
        frames = [_align_ids(f, frames) for f in frames]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def _sum_counts(counts) -> int:
    return sum(n() if callable(n) else n for n in counts)


def _align_ids(f: pl.DataFrame, frames) -> pl.DataFrame:
    out = {}
    for c in ("user", "item"):
        dts = {g.schema[c] for g in frames}
        out[c] = pl.col(c).cast(pl.String if pl.String in dts else pl.Int64)
    return f.with_columns(**out)
