"""Parquet files (kind ``"parquet"``): named columns, integer or string ids, numeric ratings."""

from __future__ import annotations

import polars as pl

from ...errors import DataFormatError
from ._common import check_id_dtypes
from .detect import Source


def collect(src: Source, *, with_timestamp: bool, min_rating) -> tuple[pl.DataFrame, int]:
    """A Parquet source -> (table, rows before the rating filter)."""
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
    return check_id_dtypes(df, src.path), n_rows
