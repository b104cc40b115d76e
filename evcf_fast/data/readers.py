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
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import DataFormatError

FORMATS = ("auto", "movielens", "netflix", "csv", "tsv", "parquet")
PRESPLIT_FILES = ("train.csv", "validation_tr.csv", "validation_te.csv", "test_tr.csv",
                  "test_te.csv")

# Header names recognised without --user-col etc. (compared case-insensitively).
USER_NAMES = ("user", "userid", "user_id", "uid", "customer", "customerid", "customer_id",
              "cust_id", "user_id:token")
ITEM_NAMES = ("item", "itemid", "item_id", "sid", "movie", "movieid", "movie_id", "song",
              "song_id", "artist", "artistid", "artist_id", "product", "productid",
              "product_id", "asin", "item_id:token")
RATING_NAMES = ("rating", "ratings", "score", "stars", "rating:float")
TIMESTAMP_NAMES = ("timestamp", "time", "date", "datetime", "ts", "timestamp:float")

_NETFLIX_HEADER = re.compile(rb"^\s*\d+:\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_COMPRESSED = (".gz", ".gzip")
_BATCH_BYTES = 64 << 20  # training_set/mv_*.txt files are parsed in batches of this size


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


# --------------------------------------------------------------------------------------------
# Sources: one resolved input file (or a batch of Netflix movie files) and how to parse it


@dataclasses.dataclass(frozen=True, kw_only=True)
class Source:
    """One input file after format detection (internal; see :func:`resolve_sources`)."""

    path: Path
    kind: str  # "delimited", "dat", "netflix", "netflix_dir", "parquet"
    separator: str = ","
    has_header: bool = True
    columns: tuple = ()  # (user, item, rating | None, timestamp | None): names or positions
    n_fields: int = 0  # fields per line (header-less delimited / dat files)
    files: tuple = ()  # netflix_dir: the mv_*.txt files in movie order
    label: str = ""  # detected format, for the metadata (e.g. "movielens ratings.dat")

    @property
    def has_rating(self) -> bool:
        return self.kind in ("netflix", "netflix_dir") or self.columns[2] is not None

    @property
    def has_timestamp(self) -> bool:
        return self.kind in ("netflix", "netflix_dir") or self.columns[3] is not None


def resolve_sources(paths, *, format: str = "auto", user_col=None, item_col=None,
                    rating_col=None, timestamp_col=None, separator=None,
                    has_header=None) -> list[Source]:
    """Detect the format and columns of every input path (reads only first lines)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}, expected one of {', '.join(FORMATS)}")
    plist = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not plist:
        raise ValueError("no input paths given")
    cols = dict(user_col=user_col, item_col=item_col, rating_col=rating_col,
                timestamp_col=timestamp_col)
    sources = []
    for p in plist:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"input {str(p)!r} does not exist")
        sources.extend(_resolve_one(p, format, cols, separator, has_header))
    rated = {s.has_rating for s in sources}
    if len(rated) > 1:
        raise DataFormatError(sources[0].path, None, "some inputs have a rating column and "
                                                     "others do not; expected all or none")
    return sources


def _resolve_one(p: Path, fmt: str, cols: dict, separator, has_header) -> list[Source]:
    if p.is_dir():
        if all((p / f).exists() for f in PRESPLIT_FILES) and (p / "unique_sid.txt").exists():
            raise DataFormatError(p, None, "this is the authors' pre-split layout (train.csv, "
                                           "unique_sid.txt, ...); read it with read_presplit "
                                           "(evcf prepare --format presplit)")
        if fmt in ("auto", "netflix"):
            if (p / "training_set").is_dir():
                return [_netflix_dir(p / "training_set")]
            combined = sorted(p.glob("combined_data_*.txt"), key=_natural_key)
            if combined:
                return [Source(path=c, kind="netflix", label="netflix combined_data")
                        for c in combined]
            if list(p.glob("mv_*.txt")):
                return [_netflix_dir(p)]
        if fmt in ("auto", "movielens"):
            for name in ("ratings.csv", "ratings.dat", "u.data"):
                if (p / name).is_file():
                    return _resolve_one(p / name, fmt, cols, separator, has_header)
        raise DataFormatError(p, None, f"cannot detect an input format in this directory "
                                       f"(format={fmt}): expected a MovieLens folder "
                                       f"(ratings.csv, ratings.dat, u.data) or a Netflix folder "
                                       f"(combined_data_*.txt, training_set/mv_*.txt)")
    first = _first_line(p)
    if not first.strip():
        raise DataFormatError(p, 1 if first else None, "the file is empty" if not first else
                              "the first line is blank; expected a header or a data line")
    name = p.name.lower()
    is_parquet = name.endswith((".parquet", ".pq"))
    if fmt == "auto":
        if is_parquet:
            fmt = "parquet"
        elif name == "u.data" or name.startswith("ratings.") and name.endswith((".dat",
                                                                                ".csv")):
            fmt = "movielens"
        elif name.startswith("combined_data") or _NETFLIX_HEADER.match(first):
            fmt = "netflix"
        elif b"::" in first:
            fmt = "movielens"
        elif b"\t" in first:
            fmt = "tsv"
        elif b"," in first:
            fmt = "csv"
        else:
            raise DataFormatError(p, None, "cannot detect the format: expected MovieLens "
                                           "(u.data, ratings.dat, ratings.csv), Netflix "
                                           "(combined_data_*.txt), CSV/TSV or Parquet; pass "
                                           "format (--format)")
    if fmt == "netflix":
        if not _NETFLIX_HEADER.match(first):
            raise DataFormatError(p, 1, f"expected a Netflix '<movie id>:' header line, got "
                                        f"{_show(first)}")
        return [Source(path=p, kind="netflix", label="netflix combined_data")]
    if fmt == "parquet":
        if not is_parquet and not first.startswith(b"PAR1"):
            raise DataFormatError(p, None, "expected a Parquet file (.parquet)")
        names = list(pl.read_parquet_schema(p))
        return [Source(path=p, kind="parquet", columns=_pick_columns(p, names, cols),
                       label="parquet")]
    if fmt == "movielens":
        if b"::" in first:  # ml-1m / ml-10m ratings.dat
            n = len(first.decode(errors="replace").strip().split("::"))
            if n < 3:
                raise DataFormatError(p, 1, f"expected UserID::MovieID::Rating[::Timestamp], "
                                            f"got {_show(first)}")
            return [Source(path=p, kind="dat", has_header=False, n_fields=n,
                           columns=(0, 1, 2, 3 if n > 3 else None),
                           label="movielens ratings.dat")]
        if name == "u.data" or b"\t" in first:
            separator = separator or "\t"
        label = "movielens u.data" if name == "u.data" else "movielens ratings.csv"
        fmt = "csv"
    else:
        label = fmt
    sep = separator or ("\t" if fmt == "tsv" or b"\t" in first else ",")
    text = first.decode(errors="replace").rstrip("\r\n")
    fields = next(csv.reader([text], delimiter=sep)) if text else []
    if len(fields) < 2:
        raise DataFormatError(p, 1, f"expected at least 2 fields separated by {sep!r}, got "
                                    f"{_show(first)}")
    header = has_header if has_header is not None else not all(
        _NUMBER.match(f.strip()) for f in fields)
    if header:
        names = [f.strip() for f in fields]
        return [Source(path=p, kind="delimited", separator=sep, has_header=True,
                       columns=_pick_columns(p, names, cols), n_fields=len(names), label=label)]
    n = len(fields)
    columns = []
    for key, default in zip(("user_col", "item_col", "rating_col", "timestamp_col"), range(4)):
        given = cols[key]
        if given is not None:
            if not str(given).isdigit() or int(given) >= n:
                raise DataFormatError(p, None, f"{key.replace('_', '-')} must be a 0-based "
                                               f"position < {n} for a file without a header, "
                                               f"got {given!r}")
            columns.append(int(given))
        else:
            columns.append(default if default < n else None)
    if cols["rating_col"] is None and n == 2:
        columns[2] = None
    return [Source(path=p, kind="delimited", separator=sep, has_header=False,
                   columns=tuple(columns), n_fields=n, label=label)]


def _pick_columns(path, names: list[str], cols: dict) -> tuple:
    lower = {n.lower(): n for n in reversed(names)}
    out = []
    for key, cands, required in (("user_col", USER_NAMES, True), ("item_col", ITEM_NAMES, True),
                                 ("rating_col", RATING_NAMES, False),
                                 ("timestamp_col", TIMESTAMP_NAMES, False)):
        given = cols[key]
        if given is not None:
            found = given if given in names else lower.get(str(given).lower())
            if found is None:
                raise DataFormatError(path, None, f"column {given!r} (--{key.replace('_', '-')}"
                                                  f") not found: expected one of the columns "
                                                  f"{names}")
        else:
            found = next((lower[c] for c in cands if c in lower), None)
            if found is None and required:
                what = key.split("_")[0]
                raise DataFormatError(path, None, f"no {what} column: expected one named like "
                                                  f"{', '.join(cands[:4])} (or pass --"
                                                  f"{key.replace('_', '-')}), got columns "
                                                  f"{names}")
        out.append(found)
    picked = [c for c in out if c is not None]
    if len(set(picked)) != len(picked):
        raise DataFormatError(path, None, f"one column is used for two roles: user, item, "
                                          f"rating, timestamp = {out}")
    return tuple(out)


def _netflix_dir(d: Path) -> Source:
    files = [f for f in d.glob("mv_*.txt") if f.is_file()]
    if not files:
        raise DataFormatError(d, None, "expected Netflix movie files mv_<id>.txt, found none")
    return Source(path=d, kind="netflix_dir", files=tuple(sorted(files, key=_natural_key)),
                  label="netflix training_set")


# --------------------------------------------------------------------------------------------
# Collecting: lazy Polars scans, an optional rating filter, checks with line numbers


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
        df, n = _collect_one(s, with_timestamp=with_timestamp, min_rating=min_rating)
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


def _collect_one(src: Source, *, with_timestamp: bool, min_rating) -> tuple[pl.DataFrame, int]:
    """One source -> (table, data rows before the rating filter)."""
    if src.kind in ("netflix", "netflix_dir"):
        return _collect_netflix(src, with_timestamp=with_timestamp, min_rating=min_rating)
    if src.kind == "parquet":
        return _collect_parquet(src, with_timestamp=with_timestamp, min_rating=min_rating)
    df = _collect_delimited(src, with_timestamp=with_timestamp, min_rating=min_rating)
    if min_rating is None:
        return df, df.height
    # a line count without field parsing (fast; blank lines, which are skipped, count too)
    n = pl.scan_csv(_maybe_decompress(src.path), has_header=src.has_header,
                    separator=src.separator if src.kind == "delimited" else ":",
                    infer_schema=False).select(pl.len()).collect().item()
    return df, n


def _scan_delimited(src: Source, *, string_ids: bool, with_timestamp: bool) -> pl.LazyFrame:
    data = _maybe_decompress(src.path)
    u, i, r, t = src.columns
    if src.kind == "dat":
        # "::" is two one-byte separators with an empty field between: fields 0, 2, 4, 6
        raw = pl.scan_csv(data, has_header=False, separator=":", infer_schema_length=10_000,
                          schema_overrides={"column_0": pl.String, "column_2": pl.String}
                          if string_ids else None)
        c = raw.collect_schema().names()
        sel = [pl.col(c[0]).alias("user"), pl.col(c[2]).alias("item"),
               pl.col(c[4]).alias("rating")]
        if src.n_fields > 3 and with_timestamp:
            sel.append(pl.col(c[6]).alias("timestamp"))
        gaps = [pl.col(c[k]) for k in range(1, len(c), 2)]
        return raw.select(*sel, _bad=pl.any_horizontal([g.is_not_null() for g in gaps]))
    overrides = {}
    if src.has_header:
        names = list(src.columns)
    else:
        names = [f"column_{k}" if k is not None else None for k in src.columns]
    if r is not None:
        overrides[names[2]] = pl.Float64
    if string_ids:
        overrides[names[0]] = pl.String
        overrides[names[1]] = pl.String
    lf = pl.scan_csv(data, has_header=src.has_header, separator=src.separator,
                     infer_schema_length=10_000, schema_overrides=overrides or None)
    sel = [pl.col(names[0]).alias("user"), pl.col(names[1]).alias("item")]
    if r is not None:
        sel.append(pl.col(names[2]).alias("rating"))
    if t is not None and with_timestamp:
        sel.append(pl.col(names[3]).alias("timestamp"))
    return lf.select(*sel, _bad=pl.lit(False))


def _collect_delimited(src: Source, *, with_timestamp, min_rating) -> pl.DataFrame:
    df = None
    for string_ids in (False, True):
        lf = _scan_delimited(src, string_ids=string_ids, with_timestamp=with_timestamp)
        lf = _filtered(lf, min_rating=min_rating)
        try:
            df = lf.collect()
            break
        except (pl.exceptions.ComputeError, pl.exceptions.SchemaError,
                pl.exceptions.InvalidOperationError, pl.exceptions.NoDataError) as exc:
            if isinstance(exc, pl.exceptions.NoDataError):
                raise DataFormatError(src.path, None, "the file is empty") from None
            _diagnose_delimited(src)  # raises with the line number when it finds one
            if string_ids:
                raise DataFormatError(src.path, None, _first_line_of(exc)) from None
            # no malformed line: an id column that looked numeric at first holds strings
    return _checked(df, src)


def _filtered(lf: pl.LazyFrame, *, min_rating) -> pl.LazyFrame:
    """Apply the rating filter in the scan; flag rows with missing fields in ``_bad``."""
    names = lf.collect_schema().names()
    cols = [c for c in names if c != "_bad"]
    nulls = pl.any_horizontal([pl.col(c).is_null() for c in names if c != "_bad"])
    if min_rating is not None:
        # suspicious rows (missing fields, blank lines) pass the filter so they get reported
        lf = lf.filter((pl.col("rating") > min_rating) | nulls | pl.col("_bad"))
        cols = [c for c in cols if c != "rating"]
        return lf.select(*cols, _bad=pl.col("_bad") | nulls)
    return lf.select(*cols, _bad=pl.col("_bad") | nulls)


def _checked(df: pl.DataFrame, src: Source) -> pl.DataFrame:
    """Drop blank lines (as pandas does) and report any other row with a missing field."""
    if df["_bad"].any():
        data_cols = [c for c in df.columns if c != "_bad"]
        blank = pl.all_horizontal([pl.col(c).is_null() for c in data_cols])
        if df.filter(pl.col("_bad") & ~blank).height:
            _diagnose_delimited(src)
            raise DataFormatError(src.path, None, "a line has missing fields")
        df = df.filter(~pl.col("_bad"))
    df = df.drop("_bad")
    for c in ("user", "item"):
        dt = df.schema[c]
        if not (dt.is_integer() or dt == pl.String):
            raise DataFormatError(src.path, None, f"{c} ids must be integers or strings, got "
                                                  f"{dt} values such as {df[c][0]!r}")
    return df


def _collect_parquet(src: Source, *, with_timestamp, min_rating) -> pl.DataFrame:
    u, i, r, t = src.columns
    sel = [pl.col(u).alias("user"), pl.col(i).alias("item")]
    if r is not None:
        sel.append(pl.col(r).alias("rating"))
    if t is not None and with_timestamp:
        sel.append(pl.col(t).alias("timestamp"))
    lf = pl.scan_parquet(src.path).select(*sel)
    schema = lf.collect_schema()
    if r is not None:
        if not schema["rating"].is_numeric():
            raise DataFormatError(src.path, None, f"rating column {r!r} must be numeric, got "
                                                  f"{schema['rating']}")
        lf = lf.with_columns(pl.col("rating").cast(pl.Float64))
    if min_rating is not None:
        lf = lf.filter(pl.col("rating") > min_rating).drop("rating")
    df = lf.collect()
    for c in ("user", "item", "rating"):
        if c in df.columns and df[c].null_count():
            row = int(df[c].is_null().arg_true()[0])
            raise DataFormatError(src.path, None, f"column {c} has {df[c].null_count()} missing "
                                                  f"values (first in row {row})")
    n_rows = pl.scan_parquet(src.path).select(pl.len()).collect().item()
    return _checked(df.with_columns(_bad=pl.lit(False)), src), n_rows


def _collect_netflix(src: Source, *, with_timestamp, min_rating) -> pl.DataFrame:
    if src.kind == "netflix":
        return _parse_netflix(_maybe_decompress(src.path), [(src.path, 0)],
                              with_timestamp=with_timestamp, min_rating=min_rating)
    frames = []
    n_rows = 0
    batch, spans, size, line = [], [], 0, 0
    for f in src.files + (None,):
        if f is not None:
            b = f.read_bytes()
            if not b.endswith(b"\n"):
                b += b"\n"
            batch.append(b)
            spans.append((f, line))
            line += b.count(b"\n")
            size += len(b)
        if batch and (f is None or size >= _BATCH_BYTES):
            df, n = _parse_netflix(b"".join(batch), spans, with_timestamp=with_timestamp,
                                   min_rating=min_rating)
            frames.append(df)
            n_rows += n
            batch, spans, size, line = [], [], 0, 0
    return pl.concat(frames, how="vertical"), n_rows


def _parse_netflix(data, spans, *, with_timestamp, min_rating) -> tuple[pl.DataFrame, int]:
    """Parse Netflix text (one file, or several concatenated: ``spans`` = (file, first row))."""
    schema = {"a": pl.String, "rating": pl.Float64, "date": pl.String}
    try:
        df = pl.read_csv(data, has_header=False, schema=schema, missing_columns="insert",
                         columns=None if with_timestamp else [0, 1])
    except pl.exceptions.NoDataError:
        raise DataFormatError(spans[0][0], None, "the file is empty") from None
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError) as exc:
        for path, _ in spans:
            _diagnose_netflix(path)
        raise DataFormatError(spans[0][0], None, _first_line_of(exc)) from None
    header = df["rating"].is_null()
    movie_of_header = df["a"].str.strip_chars().str.strip_suffix(":").cast(pl.Int64,
                                                                           strict=False)
    ok_header = header & movie_of_header.is_not_null() & df["a"].str.strip_chars().str.ends_with(
        ":")
    blank = header & df["a"].is_null()
    bad = header & ~ok_header & ~blank
    if bad.any():
        row = int(bad.arg_true()[0])
        _raise_at(spans, row, f"expected '<movie id>:' or 'customer,rating,date', got "
                              f"{df['a'][row]!r}")
    first_header = ok_header.arg_true()
    first_data = (~header).arg_true()
    if first_data.len() and (first_header.len() == 0 or first_data[0] < first_header[0]):
        _raise_at(spans, int(first_data[0]), "rating line before the first '<movie id>:' header")
    user = df["a"].cast(pl.Int64, strict=False)
    bad_user = ~header & user.is_null()
    if bad_user.any():
        row = int(bad_user.arg_true()[0])
        _raise_at(spans, row, f"customer id {df['a'][row]!r} is not an integer")
    out = pl.DataFrame({
        "user": user,
        "item": _forward_fill_headers(movie_of_header, ok_header),
        "rating": df["rating"],
    })
    if with_timestamp:
        out = out.with_columns(timestamp=df["date"].str.strip_chars().str.to_date(
            "%Y-%m-%d", strict=False))
        bad_date = ~header & out["timestamp"].is_null()
        if bad_date.any():
            row = int(bad_date.arg_true()[0])
            _raise_at(spans, row, f"date {df['date'][row]!r} is not YYYY-MM-DD")
    keep = ~header
    n_rows = int(keep.sum())
    if min_rating is not None:
        keep = keep & (df["rating"] > min_rating)
        out = out.drop("rating")
    out = out.filter(keep)
    return out.with_columns(pl.col("user").cast(pl.Int32), pl.col("item").cast(pl.Int32)), n_rows


def _forward_fill_headers(movie: pl.Series, is_header: pl.Series) -> pl.Series:
    return pl.select(pl.when(is_header).then(movie).otherwise(None).forward_fill()).to_series()


def _raise_at(spans, row: int, message: str):
    """Raise a DataFormatError for 0-based ``row`` of a (possibly concatenated) Netflix batch."""
    path, start = spans[0]
    for p, s in spans:
        if s <= row:
            path, start = p, s
    raise DataFormatError(path, row - start + 1, message)


# --------------------------------------------------------------------------------------------
# Slow diagnosis: only after the fast path failed, find the first bad line


def _diagnose_delimited(src: Source):
    u, i, r, t = src.columns
    with _open_text(src.path) as fh:
        if src.kind == "dat":
            rows = (line.rstrip("\r\n").split("::") for line in fh)
        else:
            rows = csv.reader(fh, delimiter=src.separator)
        idx = None
        for lineno, fields in enumerate(rows, start=1):
            if lineno == 1 and src.has_header:
                idx = {name: k for k, name in enumerate(f.strip() for f in fields)}
                expected = len(fields)
                continue
            if not fields or fields == [""]:
                continue  # blank line: skipped, as pandas does
            n = src.n_fields if not src.has_header else expected
            if len(fields) != n:
                raise DataFormatError(src.path, lineno, f"expected {n} fields, got "
                                                        f"{len(fields)}: {_show(fields)}")
            pos = [idx[c] if idx is not None and c is not None else c for c in (u, i, r)]
            for what, k in (("user id", pos[0]), ("item id", pos[1])):
                if not fields[k].strip():
                    raise DataFormatError(src.path, lineno, f"{what} is missing")
            if pos[2] is not None:
                v = fields[pos[2]].strip()
                try:
                    float(v)
                except ValueError:
                    raise DataFormatError(src.path, lineno, f"rating {v!r} is not a number") \
                        from None


def _diagnose_netflix(path: Path):
    seen_header = False
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, start=1):
            s = line.strip()
            if not s:
                continue
            if s.endswith(":") and s[:-1].isdigit():
                seen_header = True
                continue
            fields = s.split(",")
            if len(fields) != 3:
                raise DataFormatError(path, lineno, f"expected '<movie id>:' or "
                                                    f"'customer,rating,date', got {s!r}")
            if not seen_header:
                raise DataFormatError(path, lineno, "rating line before the first "
                                                    "'<movie id>:' header")
            try:
                float(fields[1])
            except ValueError:
                raise DataFormatError(path, lineno, f"rating {fields[1]!r} is not a number") \
                    from None


# --------------------------------------------------------------------------------------------
# The authors' pre-split layout


def read_presplit(directory: str | os.PathLike):
    """Read the authors' split files (EVCF ``datasets/ML_20m/`` layout) as a SplitDataset.

    Rows follow the authors' loader (PAPER_SPEC 1.4): train rows are uids ``0..max uid``;
    validation and test rows are re-based by the smallest uid of that part's two files. If a
    ``unique_uid.txt`` (written by :func:`evcf_fast.data.export.export_presplit`) is present, it
    gives the raw user id of every uid; otherwise the user ids are the uids.
    """
    from evcf_fast.kernels import split as K

    from .dataset import SplitDataset, make_csr

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
                                          f"{_first_line_of(exc)}") from None
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
    lines = path.read_text().splitlines()
    if lines and not lines[-1]:
        lines.pop()
    if any(not s for s in lines):
        raise DataFormatError(path, lines.index("") + 1, "empty id line")
    if all(re.fullmatch(r"-?\d+", s) for s in lines):
        return np.array([int(s) for s in lines], dtype=np.int64)
    return np.array(lines, dtype=str)


# --------------------------------------------------------------------------------------------
# small helpers


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _first_line(p: Path) -> bytes:
    try:
        if p.name.lower().endswith(_COMPRESSED):
            with gzip.open(p, "rb") as fh:
                return fh.readline()
        with open(p, "rb") as fh:
            return fh.readline()
    except (OSError, EOFError) as exc:
        raise DataFormatError(p, None, f"cannot read: {exc}") from None


def _maybe_decompress(p: Path):
    if p.name.lower().endswith(_COMPRESSED):
        with gzip.open(p, "rb") as fh:
            return fh.read()
    return p


def _open_text(p: Path):
    if p.name.lower().endswith(_COMPRESSED):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", errors="replace",
                                newline="")
    return open(p, encoding="utf-8", errors="replace", newline="")


def _first_line_of(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _show(x, limit: int = 80) -> str:
    s = x.decode(errors="replace") if isinstance(x, bytes) else str(x)
    s = s.rstrip("\r\n")
    return repr(s if len(s) <= limit else s[:limit] + "...")


def as_path_list(paths) -> Sequence[Path]:
    """Normalise one path or a sequence of paths to a list of Paths."""
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]
