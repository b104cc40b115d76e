"""Helpers shared by the readers: transparent gzip, first lines, message snippets, id checks."""

from __future__ import annotations

import gzip
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ...errors import DataFormatError

_COMPRESSED = (".gz", ".gzip")


def as_path_list(paths) -> Sequence[Path]:
    """Normalise one path or a sequence of paths to a list of Paths."""
    if isinstance(paths, (str, os.PathLike)):
        return [Path(paths)]
    return [Path(p) for p in paths]


def natural_key(p: Path):
    """Sort key that orders ``mv_2.txt`` before ``mv_10.txt``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def first_line(p: Path) -> bytes:
    """The first line of ``p`` (decompressed), or a DataFormatError if it cannot be read."""
    try:
        if p.name.lower().endswith(_COMPRESSED):
            with gzip.open(p, "rb") as fh:
                return fh.readline()
        with open(p, "rb") as fh:
            return fh.readline()
    except (OSError, EOFError) as exc:
        raise DataFormatError(p, None, f"cannot read: {exc}") from None


def maybe_decompress(p: Path):
    """The bytes of a gzip file, or the path itself (Polars reads it directly)."""
    if p.name.lower().endswith(_COMPRESSED):
        with gzip.open(p, "rb") as fh:
            return fh.read()
    return p


def open_text(p: Path):
    """A text handle on ``p`` (gzip or plain), for the slow line-by-line diagnosis."""
    if p.name.lower().endswith(_COMPRESSED):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", errors="replace",
                                newline="")
    return open(p, encoding="utf-8", errors="replace", newline="")


def first_line_of(exc: Exception) -> str:
    """The first line of an exception's message (Polars messages run long)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def show(x, limit: int = 80) -> str:
    """``repr`` of a line or fields for a message, cut at ``limit`` characters."""
    s = x.decode(errors="replace") if isinstance(x, bytes) else str(x)
    s = s.rstrip("\r\n")
    return repr(s if len(s) <= limit else s[:limit] + "...")


def check_id_dtypes(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """``df`` if its user and item columns hold integers or strings; DataFormatError otherwise."""
    for c in ("user", "item"):
        dt = df.schema[c]
        if not (dt.is_integer() or dt == pl.String):
            raise DataFormatError(path, None, f"{c} ids must be integers or strings, got "
                                              f"{dt} values such as {df[c][0]!r}")
    return df
