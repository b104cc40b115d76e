"""Helpers shared by the readers: transparent gzip, first lines, message snippets, id checks."""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
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


_BOM = b"\xef\xbb\xbf"


def first_line(p: Path) -> bytes:
    """The first line of ``p`` (decompressed, without a UTF-8 byte-order mark), or a
    DataFormatError if it cannot be read."""
    try:
        if p.name.lower().endswith(_COMPRESSED):
            with gzip.open(p, "rb") as fh:
                return fh.readline().removeprefix(_BOM)
        with open(p, "rb") as fh:
            return fh.readline().removeprefix(_BOM)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(p, None, f"cannot read: {exc or type(exc).__name__}") from None


def maybe_decompress(p: Path):
    """The bytes of a gzip file, or the path itself (Polars reads it directly)."""
    if p.name.lower().endswith(_COMPRESSED):
        try:
            with gzip.open(p, "rb") as fh:
                return fh.read()
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(p, None, f"not a complete gzip file (truncated or corrupt: "
                                           f"{exc or type(exc).__name__})") from None
    return p


def open_text(p: Path):
    """A text handle on ``p`` (gzip or plain), for the slow line-by-line diagnosis."""
    if p.name.lower().endswith(_COMPRESSED):
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8-sig", errors="replace",
                                newline="")
    return open(p, encoding="utf-8-sig", errors="replace", newline="")


def first_line_of(exc: Exception) -> str:
    """The first line of an exception's message (Polars messages run long)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def show(x, limit: int = 80) -> str:
    """``repr`` of a line or fields for a message, cut at ``limit`` characters."""
    s = x.decode(errors="replace") if isinstance(x, bytes) else str(x)
    s = s.rstrip("\r\n")
    return repr(s if len(s) <= limit else s[:limit] + "...")


def invalid_rating(col: str = "rating") -> pl.Expr:
    """The one rule for unusable ratings: null, NaN or +-inf.

    Polars orders NaN above every number, so ``NaN > 3.5`` is true: without this rule a NaN
    rating would count as a positive.
    """
    return ~pl.col(col).is_finite().fill_null(False)


def invalid_rating_hint() -> str:
    return "drop such rows with invalid_ratings='drop' (--drop-invalid-ratings)"


_INT_LIKE = r"^\s*[+-]?\d+\s*$"
_INT64 = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


def check_id_dtypes(df: pl.DataFrame, path: Path, *, id_type: str = "auto",
                    locate=None) -> pl.DataFrame:
    """The one id-type rule, applied to the ``user`` and ``item`` columns of every reader.

    * ``id_type="string"``: every id is text (integers too).
    * ``id_type="auto"``: integer ids stay integers (they must fit in int64); a text column whose
      ids all look like integers becomes int64 (numerical order, as pandas sorts numbers); a text
      column with no integer-looking id stays text (lexicographic order); a text column mixing
      the two is an error naming the first offending line and the count: one typo (``15x``)
      would otherwise turn every id into text and change the order of all users.

    ``locate(column)`` may return ``(line, value, count)`` of the first non-integer id (a slow
    scan of the file); without it the message names the row.
    """
    for c in ("user", "item"):
        dt = df.schema[c]
        if dt.is_integer():
            if dt not in _INT64:
                big = df[c].cast(pl.Int64, strict=False).is_null() & df[c].is_not_null()
                if big.any():
                    row = int(big.arg_true()[0])
                    raise DataFormatError(path, None, f"{c} ids must fit in int64 (at most "
                                                      f"{2**63 - 1}), got {df[c][row]} (row "
                                                      f"{row + 1} of the kept rows); pass "
                                                      f"id_type='string' (--string-ids) to "
                                                      f"read them as text")
                df = df.with_columns(pl.col(c).cast(pl.Int64))
            if id_type == "string":
                df = df.with_columns(pl.col(c).cast(pl.String))
            continue
        if dt != pl.String:
            raise DataFormatError(path, None, f"{c} ids must be integers or strings, got "
                                              f"{dt} values such as {df[c][0]!r}")
        if id_type == "string" or df.height == 0:
            continue
        int_like = df[c].str.contains(_INT_LIKE).fill_null(False)
        n_int = int(int_like.sum())
        if n_int == 0:
            continue
        if n_int == df.height:
            as_int = df[c].str.strip_chars().cast(pl.Int64, strict=False)
            if as_int.null_count():
                row = int(as_int.is_null().arg_true()[0])
                raise DataFormatError(path, None, f"{c} ids must fit in int64 (at most "
                                                  f"{2**63 - 1}), got {df[c][row]}; pass "
                                                  f"id_type='string' (--string-ids) to read "
                                                  f"them as text")
            df = df.with_columns(as_int.alias(c))
            continue
        found = locate(c) if locate is not None else None
        if found is None:
            row = int((~int_like).arg_true()[0])
            where, value, count = f"row {row + 1}", df[c][row], df.height - n_int
        else:
            line, value, count = found
            where = f"line {line}"
        raise DataFormatError(path, None, f"{c} id {value!r} on {where} is not an integer, but "
                                          f"{n_int:,} other {c} ids are ({count:,} not): a "
                                          f"typo would silently change the order of every id; "
                                          f"fix it, or pass id_type='string' (--string-ids) to "
                                          f"read all ids as text")
    return df
