"""Format detection: input paths -> :class:`Source` records (reads only first lines).

Each explicit format has one resolver in the ``_RESOLVERS`` table (format -> function); ``"auto"``
picks the format from the file name and first line with the ordered ``_DETECT`` rules, and
directories are searched for the MovieLens and Netflix file names.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from pathlib import Path

import polars as pl

from ...errors import DataFormatError
from ..config import INPUT_FORMATS
from ._common import first_line, first_line_of, natural_key, show

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
_COLUMN_KEYS = ("user_col", "item_col", "rating_col", "timestamp_col")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Source:
    """One input file after format detection (internal; see :func:`resolve_sources`).

    ``kind`` selects the parser in :data:`evcf_fast.data.readers.READERS`: ``"delimited"``
    (CSV/TSV), ``"dat"`` (MovieLens ``::``), ``"netflix"`` (one ``combined_data`` file),
    ``"netflix_dir"`` (a folder of ``mv_*.txt`` files) or ``"parquet"``.
    """

    path: Path
    kind: str
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
    def input_files(self) -> tuple:
        """The files this source reads: ``files`` for a Netflix folder, else ``(path,)``."""
        return self.files or (self.path,)


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
        return _resolve_dir(p, fmt, cols, separator, has_header)
    first = first_line(p)
    if not first.strip():
        raise DataFormatError(p, 1 if first else None, "the file is empty" if not first else
                              "the first line is blank; expected a header or a data line")
    if fmt == "auto":
        fmt = _detect_format(p.name.lower(), first)
        if fmt is None:
            raise DataFormatError(p, None, "cannot detect the format: expected MovieLens "
                                           "(u.data, ratings.dat, ratings.csv), Netflix "
                                           "(combined_data_*.txt), CSV/TSV or Parquet; pass "
                                           "format (--format)")
    return _RESOLVERS[fmt](p, first, cols, separator, has_header)


def _resolve_dir(p: Path, fmt: str, cols: dict, separator, has_header) -> list[Source]:
    if all((p / f).exists() for f in PRESPLIT_FILES) and (p / "unique_sid.txt").exists():
        raise DataFormatError(p, None, "this is the authors' pre-split layout (train.csv, "
                                       "unique_sid.txt, ...); read it with read_presplit "
                                       "(evcf prepare --format presplit)")
    if fmt in ("auto", "netflix"):
        if (p / "training_set").is_dir():
            return [_netflix_dir(p / "training_set")]
        combined = sorted(p.glob("combined_data_*.txt"), key=natural_key)
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


def _is_parquet(name: str) -> bool:
    return name.endswith((".parquet", ".pq"))


# "auto" on a file: the first rule that matches (lower-cased file name, first line) wins
_DETECT = (
    ("parquet", lambda name, first: _is_parquet(name)),
    ("movielens", lambda name, first: name == "u.data" or (
        name.startswith("ratings.") and name.endswith((".dat", ".csv")))),
    ("netflix", lambda name, first: name.startswith("combined_data")
        or bool(_NETFLIX_HEADER.match(first))),
    ("movielens", lambda name, first: b"::" in first),
    ("tsv", lambda name, first: b"\t" in first),
    ("csv", lambda name, first: b"," in first),
)


def _detect_format(name: str, first: bytes) -> str | None:
    return next((fmt for fmt, rule in _DETECT if rule(name, first)), None)


# --------------------------------------------------------------------------------------------
# one resolver per explicit format: (path, first line, column options, separator, has_header)


def _resolve_netflix(p: Path, first: bytes, cols, separator, has_header) -> list[Source]:
    if not _NETFLIX_HEADER.match(first):
        raise DataFormatError(p, 1, f"expected a Netflix '<movie id>:' header line, got "
                                    f"{show(first)}")
    return [Source(path=p, kind="netflix", label="netflix combined_data")]


def _resolve_parquet(p: Path, first: bytes, cols, separator, has_header) -> list[Source]:
    if not first.startswith(b"PAR1"):
        raise DataFormatError(p, None, f"expected a Parquet file (starting with PAR1), got "
                                       f"{show(first[:40])}; pass --format csv/tsv for text")
    try:
        names = list(pl.read_parquet_schema(p))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataFormatError(p, None, f"not a readable Parquet file: "
                                       f"{first_line_of(exc)}") from None
    return [Source(path=p, kind="parquet", columns=_pick_columns(p, names, cols),
                   label="parquet")]


def _resolve_movielens(p: Path, first: bytes, cols, separator, has_header) -> list[Source]:
    name = p.name.lower()
    if b"::" in first:  # ml-1m / ml-10m ratings.dat
        n = len(first.decode(errors="replace").strip().split("::"))
        if n < 3:
            raise DataFormatError(p, 1, f"expected UserID::MovieID::Rating[::Timestamp], "
                                        f"got {show(first)}")
        return [Source(path=p, kind="dat", has_header=False, n_fields=n,
                       columns=(0, 1, 2, 3 if n > 3 else None), label="movielens ratings.dat")]
    if name == "u.data" or b"\t" in first:
        separator = separator or "\t"
    label = "movielens u.data" if name == "u.data" else "movielens ratings.csv"
    return _resolve_text(p, first, cols, separator, has_header, label=label)


def _resolve_csv(p: Path, first: bytes, cols, separator, has_header) -> list[Source]:
    return _resolve_text(p, first, cols, separator, has_header, label="csv")


def _resolve_tsv(p: Path, first: bytes, cols, separator, has_header) -> list[Source]:
    return _resolve_text(p, first, cols, separator or "\t", has_header, label="tsv")


def _resolve_text(p: Path, first: bytes, cols: dict, separator, has_header, *,
                  label: str) -> list[Source]:
    sep = separator or ("\t" if b"\t" in first else ",")
    text = first.decode(errors="replace").rstrip("\r\n")
    fields = next(csv.reader([text], delimiter=sep)) if text else []
    if len(fields) < 2:
        raise DataFormatError(p, 1, f"expected at least 2 fields separated by {sep!r}, got "
                                    f"{show(first)}")
    header = has_header if has_header is not None else not all(
        _NUMBER.match(f.strip()) for f in fields)
    if header:
        names = [f.strip() for f in fields]
        picked = _pick_columns(p, names, cols)
        # Polars keeps the header's spaces ("userId ,movieId"): scan the raw names
        raw = tuple(fields[names.index(c)] if c is not None else None for c in picked)
        return [Source(path=p, kind="delimited", separator=sep, has_header=True,
                       columns=raw, n_fields=len(names), label=label)]
    n = len(fields)
    columns = []
    for default, key in enumerate(_COLUMN_KEYS):
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


#: format -> resolver; the order is the documented one (and the error message's)
_RESOLVERS = {
    "movielens": _resolve_movielens,
    "netflix": _resolve_netflix,
    "csv": _resolve_csv,
    "tsv": _resolve_tsv,
    "parquet": _resolve_parquet,
}
FORMATS = ("auto", *_RESOLVERS)
assert FORMATS == INPUT_FORMATS, "evcf_fast.data.config.INPUT_FORMATS is out of date"


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
    return Source(path=d, kind="netflix_dir", files=tuple(sorted(files, key=natural_key)),
                  label="netflix training_set")
