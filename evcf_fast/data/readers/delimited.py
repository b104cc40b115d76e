"""Delimited text: CSV/TSV with or without a header (kind ``"delimited"``) and MovieLens
``ratings.dat`` with ``::`` separators (kind ``"dat"``).

Lazy Polars scans with the rating filter applied while parsing; when the fast path fails, a slow
line-by-line scan finds the first bad line so the error names it.
"""

from __future__ import annotations

import csv
import functools
import math

import polars as pl

from ...errors import DataFormatError
from ._common import (
    check_id_dtypes,
    first_line_of,
    invalid_rating,
    invalid_rating_hint,
    maybe_decompress,
    open_text,
    show,
)
from .detect import Source


def collect_text(src: Source, *, with_timestamp: bool, min_rating,
                 invalid_ratings: str = "error", id_type: str = "auto",
                 stats: dict | None = None) -> tuple[pl.DataFrame, int]:
    """A CSV/TSV source -> (table, data rows before the rating filter)."""
    return _collect(src, _scan_text, _split_text, src.separator,
                    with_timestamp=with_timestamp, min_rating=min_rating,
                    invalid_ratings=invalid_ratings, id_type=id_type, stats=stats)


def collect_dat(src: Source, *, with_timestamp: bool, min_rating,
                invalid_ratings: str = "error", id_type: str = "auto",
                stats: dict | None = None) -> tuple[pl.DataFrame, int]:
    """A MovieLens ``ratings.dat`` source -> (table, data rows before the rating filter)."""
    return _collect(src, _scan_dat, _split_dat, ":", with_timestamp=with_timestamp,
                    min_rating=min_rating, invalid_ratings=invalid_ratings, id_type=id_type,
                    stats=stats)


def _collect(src: Source, scan, split_rows, count_separator: str, *, with_timestamp,
             min_rating, invalid_ratings, id_type, stats) -> tuple[pl.DataFrame, int]:
    df = None
    check_ratings = invalid_ratings == "error"
    for string_ids in (False, True) if id_type == "auto" else (True,):
        lf = _filtered(scan(src, string_ids=string_ids, with_timestamp=with_timestamp),
                       min_rating=min_rating)
        try:
            df = lf.collect()
            break
        except (pl.exceptions.ComputeError, pl.exceptions.SchemaError,
                pl.exceptions.InvalidOperationError, pl.exceptions.NoDataError) as exc:
            if isinstance(exc, pl.exceptions.NoDataError):
                raise DataFormatError(src.path, None, "the file is empty") from None
            # raises with the line number when it finds one
            _diagnose(src, split_rows, check_ratings=check_ratings)
            if string_ids:
                raise DataFormatError(src.path, None, first_line_of(exc)) from None
            # no malformed line: an id column that looked numeric at first holds strings
    df = _drop_invalid_ratings(df, src, split_rows, invalid_ratings, stats)
    df = check_id_dtypes(_drop_blank_lines(df, src, split_rows), src.path, id_type=id_type,
                         locate=lambda col: _locate_id(src, split_rows, col))
    if min_rating is None:
        return df, df.height
    # the rows before the filter need a second pass over the file: returned as a function, which
    # the caller runs now or on a thread (see collect_sources)
    return df, functools.partial(_count_rows, src, count_separator)


def _count_rows(src: Source, separator: str) -> int:
    """A line count without field parsing (fast; blank lines, which are skipped, count too)."""
    return pl.scan_csv(maybe_decompress(src.path), has_header=src.has_header,
                       separator=separator, infer_schema=False).select(pl.len()).collect().item()


def _scan_dat(src: Source, *, string_ids: bool, with_timestamp: bool) -> pl.LazyFrame:
    # "::" is two one-byte separators with an empty field between: fields 0, 2, 4, 6
    overrides = {"column_4": pl.Float64}
    if string_ids:
        overrides.update(column_0=pl.String, column_2=pl.String)
    raw = pl.scan_csv(maybe_decompress(src.path), has_header=False, separator=":",
                      infer_schema_length=10_000, schema_overrides=overrides)
    c = raw.collect_schema().names()
    sel = [pl.col(c[0]).alias("user"), pl.col(c[2]).alias("item"),
           pl.col(c[4]).alias("rating")]
    if src.n_fields > 3 and with_timestamp:
        sel.append(pl.col(c[6]).alias("timestamp"))
    gaps = [pl.col(c[k]) for k in range(1, len(c), 2)]
    return raw.select(*sel, _bad=pl.any_horizontal([g.is_not_null() for g in gaps]))


def _scan_text(src: Source, *, string_ids: bool, with_timestamp: bool) -> pl.LazyFrame:
    u, i, r, t = src.columns
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
    lf = pl.scan_csv(maybe_decompress(src.path), has_header=src.has_header,
                     separator=src.separator, infer_schema_length=10_000,
                     schema_overrides=overrides or None)
    sel = [pl.col(names[0]).alias("user"), pl.col(names[1]).alias("item")]
    if r is not None:
        sel.append(pl.col(names[2]).alias("rating"))
    if t is not None and with_timestamp:
        sel.append(pl.col(names[3]).alias("timestamp"))
    return lf.select(*sel, _bad=pl.lit(False))


def _filtered(lf: pl.LazyFrame, *, min_rating) -> pl.LazyFrame:
    """Apply the rating filter in the scan; flag rows with missing fields in ``_bad``.

    With a rating filter, rows whose rating is null, NaN or infinite (:func:`invalid_rating`)
    pass it flagged in ``_badrating`` (``NaN > 3.5`` is true in Polars; they must never count
    as positives silently).
    """
    names = lf.collect_schema().names()
    cols = [c for c in names if c != "_bad"]
    if min_rating is None:
        nulls = pl.any_horizontal([pl.col(c).is_null() for c in cols])
        return lf.select(*cols, _bad=pl.col("_bad") | nulls)
    nulls = pl.any_horizontal([pl.col(c).is_null() for c in cols if c != "rating"])
    bad_rating = invalid_rating()
    # suspicious rows (missing fields, blank lines, bad ratings) pass so they get reported
    lf = lf.filter((pl.col("rating") > min_rating) | nulls | pl.col("_bad") | bad_rating)
    cols = [c for c in cols if c != "rating"]
    return lf.select(*cols, _bad=pl.col("_bad") | nulls, _badrating=bad_rating)


def _drop_invalid_ratings(df: pl.DataFrame, src: Source, split_rows, invalid_ratings: str,
                          stats: dict | None) -> pl.DataFrame:
    """Rows with an invalid rating: an error at their line, or dropped and counted."""
    if "_badrating" not in df.columns:
        return df
    blank = pl.all_horizontal([pl.col(c).is_null() for c in df.columns
                               if c not in ("_bad", "_badrating")])
    bad = df.select(pl.col("_badrating") & ~blank).to_series()
    n_bad = int(bad.sum())
    if n_bad and invalid_ratings == "error":
        _diagnose(src, split_rows, check_ratings=True)
        raise DataFormatError(src.path, None, f"{n_bad} rows have a null, NaN or infinite "
                                              f"rating; {invalid_rating_hint()}")
    if stats is not None:
        stats["n_invalid_ratings"] = stats.get("n_invalid_ratings", 0) + n_bad
    return df.filter(~bad).drop("_badrating")


def _drop_blank_lines(df: pl.DataFrame, src: Source, split_rows) -> pl.DataFrame:
    """Drop blank lines (as pandas does) and report any other row with a missing field."""
    if df["_bad"].any():
        data_cols = [c for c in df.columns if c != "_bad"]
        blank = pl.all_horizontal([pl.col(c).is_null() for c in data_cols])
        if df.filter(pl.col("_bad") & ~blank).height:
            _diagnose(src, split_rows, check_ratings=False)
            raise DataFormatError(src.path, None, "a line has missing fields")
        df = df.filter(~pl.col("_bad"))
    return df.drop("_bad")


# --------------------------------------------------------------------------------------------
# Slow diagnosis: only after the fast path failed, find the first bad line


def _split_text(fh, src: Source):
    return csv.reader(fh, delimiter=src.separator)


def _split_dat(fh, src: Source):
    return (line.rstrip("\r\n").split("::") for line in fh)


def _diagnose(src: Source, split_rows, *, check_ratings: bool = True):
    u, i, r, t = src.columns
    with open_text(src.path) as fh:
        idx = None
        for lineno, fields in enumerate(split_rows(fh, src), start=1):
            if lineno == 1 and src.has_header:
                idx = {name: k for k, name in enumerate(f.strip() for f in fields)}
                expected = len(fields)
                continue
            if not fields or fields == [""]:
                continue  # blank line: skipped, as pandas does
            n = src.n_fields if not src.has_header else expected
            if len(fields) != n:
                raise DataFormatError(src.path, lineno, f"expected {n} fields, got "
                                                        f"{len(fields)}: {show(fields)}")
            pos = [idx[c.strip()] if idx is not None and c is not None else c
                   for c in (u, i, r)]
            for what, k in (("user id", pos[0]), ("item id", pos[1])):
                if not fields[k].strip():
                    raise DataFormatError(src.path, lineno, f"{what} is missing")
            if pos[2] is not None:
                v = fields[pos[2]].strip()
                try:
                    x = float(v)
                except ValueError:
                    if not v and not check_ratings:
                        continue  # a missing rating, dropped
                    what = "is missing" if not v else f"{v!r} is not a number"
                    raise DataFormatError(src.path, lineno, f"rating {what}; "
                                                            f"{invalid_rating_hint()}") from None
                if check_ratings and not math.isfinite(x):
                    raise DataFormatError(src.path, lineno, f"rating {v!r} is not a finite "
                                                            f"number; {invalid_rating_hint()}")


def _locate_id(src: Source, split_rows, col: str):
    """``(line, value, count)`` of the first and the number of non-integer ``col`` ids."""
    import re

    int_like = re.compile(r"^\s*[+-]?\d+\s*$")
    k = src.columns[0 if col == "user" else 1]
    first, count = None, 0
    with open_text(src.path) as fh:
        for lineno, fields in enumerate(split_rows(fh, src), start=1):
            if lineno == 1 and src.has_header:
                names = [f.strip().lstrip("\ufeff") for f in fields]
                k = names.index(k.strip()) if k.strip() in names else k
                continue
            if not fields or fields == [""] or not isinstance(k, int) or k >= len(fields):
                continue
            if not int_like.match(fields[k]):
                count += 1
                if first is None:
                    first = (lineno, fields[k].strip())
    return None if first is None else (first[0], first[1], count)
