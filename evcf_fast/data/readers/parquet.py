"""Parquet files (kind ``"parquet"``): named columns, integer or string ids, numeric ratings."""

from __future__ import annotations

import polars as pl

from ...errors import DataFormatError
from ._common import check_id_dtypes, first_line_of, invalid_rating, invalid_rating_hint
from .detect import Source


def collect(src: Source, *, with_timestamp: bool, min_rating, invalid_ratings: str = "error",
            id_type: str = "auto", stats: dict | None = None) -> tuple[pl.DataFrame, int]:
    """A Parquet source -> (table, rows before the rating filter)."""
    try:
        return _collect(src, with_timestamp=with_timestamp, min_rating=min_rating,
                        invalid_ratings=invalid_ratings, id_type=id_type, stats=stats)
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError, OSError) as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise DataFormatError(src.path, None, f"not a readable Parquet file: "
                                              f"{first_line_of(exc)}") from None


def _collect(src: Source, *, with_timestamp, min_rating, invalid_ratings, id_type, stats):
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
        # invalid ratings (null, NaN, inf) pass the filter so that they are reported or counted
        lf = lf.filter((pl.col("rating") > min_rating) | invalid_rating()).with_row_index(
            "_row").with_columns(_badrating=invalid_rating())
    df = lf.collect()
    if "_badrating" in df.columns:
        bad = df["_badrating"]
        if bad.any():
            first = df.filter(bad)
            if invalid_ratings == "error":
                raise DataFormatError(src.path, None, f"rating {first['rating'][0]} in row "
                                                      f"{first['_row'][0] + 1} is not a finite "
                                                      f"number ({int(bad.sum()):,} such rows); "
                                                      f"{invalid_rating_hint()}")
            if stats is not None:
                stats["n_invalid_ratings"] = stats.get("n_invalid_ratings", 0) + int(bad.sum())
        df = df.filter(~bad).drop("rating", "_row", "_badrating")
    for c in ("user", "item", "rating"):
        if c in df.columns and df[c].null_count():
            row = int(df[c].is_null().arg_true()[0])
            raise DataFormatError(src.path, None, f"column {c} has {df[c].null_count()} missing "
                                                  f"values (first in row {row})")
    n_rows = pl.scan_parquet(src.path).select(pl.len()).collect().item()
    return check_id_dtypes(df, src.path, id_type=id_type), n_rows
