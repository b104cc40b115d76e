"""Netflix Prize text: ``combined_data_*.txt`` (Kaggle; kind ``"netflix"``) and the original
``training_set/mv_*.txt`` folder (kind ``"netflix_dir"``).

A ``<movie id>:`` line, then ``customer,rating,date`` lines. Movie ids come from the header lines
(the EVCF notebook numbers them 1, 2, ... by position, which gives the same ids on the real
files). The movie files of a folder are parsed in batches of about ``_BATCH_BYTES``.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ...errors import DataFormatError
from ._common import (
    check_id_dtypes,
    first_line_of,
    invalid_rating_hint,
    maybe_decompress,
    open_text,
)
from .detect import Source

_BATCH_BYTES = 64 << 20  # training_set/mv_*.txt files are parsed in batches of this size


def collect_file(src: Source, *, with_timestamp: bool, min_rating,
                 invalid_ratings: str = "error", id_type: str = "auto",
                 stats: dict | None = None) -> tuple[pl.DataFrame, int]:
    """One ``combined_data`` file -> (table, rating rows before the rating filter)."""
    df, n = _parse(maybe_decompress(src.path), [(src.path, 0)], with_timestamp=with_timestamp,
                   min_rating=min_rating, invalid_ratings=invalid_ratings, stats=stats)
    return check_id_dtypes(df, src.path, id_type=id_type), n


def collect_dir(src: Source, *, with_timestamp: bool, min_rating,
                invalid_ratings: str = "error", id_type: str = "auto",
                stats: dict | None = None) -> tuple[pl.DataFrame, int]:
    """A folder of ``mv_*.txt`` files -> (table, rating rows before the rating filter)."""
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
            df, n = _parse(b"".join(batch), spans, with_timestamp=with_timestamp,
                           min_rating=min_rating, invalid_ratings=invalid_ratings, stats=stats)
            frames.append(df)
            n_rows += n
            batch, spans, size, line = [], [], 0, 0
    return check_id_dtypes(pl.concat(frames, how="vertical"), src.path, id_type=id_type), n_rows


def _parse(data, spans, *, with_timestamp, min_rating, invalid_ratings="error",
           stats=None) -> tuple[pl.DataFrame, int]:
    """Parse Netflix text (one file, or several concatenated: ``spans`` = (file, first row))."""
    schema = {"a": pl.String, "rating": pl.Float64, "date": pl.String}
    try:
        df = pl.read_csv(data, has_header=False, schema=schema, missing_columns="insert",
                         columns=None if with_timestamp else [0, 1])
    except pl.exceptions.NoDataError:
        raise DataFormatError(spans[0][0], None, "the file is empty") from None
    except (pl.exceptions.ComputeError, pl.exceptions.SchemaError) as exc:
        for path, _ in spans:
            _diagnose(path)
        raise DataFormatError(spans[0][0], None, first_line_of(exc)) from None
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
    bad_rating = ~header & ~df["rating"].is_finite().fill_null(False)  # NaN / inf
    if bad_rating.any():
        if invalid_ratings == "error":
            row = int(bad_rating.arg_true()[0])
            _raise_at(spans, row, f"rating {df['rating'][row]} is not a finite number; "
                                  f"{invalid_rating_hint()}")
        if stats is not None:
            stats["n_invalid_ratings"] = stats.get("n_invalid_ratings", 0) + int(bad_rating.sum())
        keep = keep & ~bad_rating
    if min_rating is not None:
        keep = keep & (df["rating"] > min_rating)
        out = out.drop("rating")
    out = out.filter(keep)
    # int32 ids halve the memory of the real sets; larger ids (valid too) stay int64
    small = [pl.col(c).cast(pl.Int32) for c in ("user", "item")
             if out.height == 0 or (out[c].min() >= -(2**31) and out[c].max() < 2**31)]
    return out.with_columns(*small), n_rows


def _forward_fill_headers(movie: pl.Series, is_header: pl.Series) -> pl.Series:
    return pl.select(pl.when(is_header).then(movie).otherwise(None).forward_fill()).to_series()


def _raise_at(spans, row: int, message: str):
    """Raise a DataFormatError for 0-based ``row`` of a (possibly concatenated) Netflix batch."""
    path, start = spans[0]
    for p, s in spans:
        if s <= row:
            path, start = p, s
    raise DataFormatError(path, row - start + 1, message)


def _diagnose(path: Path):
    """Slow scan after the fast path failed: raise at the first bad line of ``path``."""
    seen_header = False
    with open_text(path) as fh:
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
