"""Readers: every input layout against a straightforward pandas / Python parse of the same file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from _shared_data import real_file

from evcf_fast.data.readers import read_interactions, read_presplit, resolve_sources
from evcf_fast.data.synthetic import make_synthetic, write_netflix
from evcf_fast.errors import DataFormatError


def assert_table(df: pl.DataFrame, ref: pd.DataFrame):
    """Our table equals pandas' parse: same columns, values and row order."""
    assert df.columns == list(ref.columns)
    for c in ref.columns:
        ours = df[c].to_numpy()
        if c == "rating":
            np.testing.assert_array_equal(ours, ref[c].to_numpy(dtype=np.float64))
        else:
            np.testing.assert_array_equal(ours.astype(ref[c].dtype), ref[c].to_numpy())


def small_ratings(n_users=40, seed=0) -> pl.DataFrame:
    return make_synthetic("small", seed=seed, n_users=n_users, n_items=60,
                          n_positives=n_users * 12, n_rows=n_users * 20, max_item_id=500)


# ----------------------------------------------------------------------------------------------
# MovieLens


def test_ml_100k_u_data():
    path = real_file("ml-100k/u.data")
    df = read_interactions(path)
    ref = pd.read_csv(path, sep="\t", names=["user", "item", "rating", "timestamp"])
    assert_table(df, ref)
    assert resolve_sources(path)[0].label == "movielens u.data"


def test_ml_latest_small_lowercase_header():
    path = real_file("ml-latest-small/ratings.csv")
    df = read_interactions(path)
    ref = pd.read_csv(path).rename(columns={"userid": "user", "movieid": "item"})
    assert_table(df, ref)


def test_ml_1m_gzipped_csv_without_timestamps():
    path = real_file("ml-1m/ratings_from_rda.csv.gz")
    df = read_interactions(path)
    assert_table(df, pd.read_csv(path))
    assert df.height == 1_000_209


def test_ratings_dat_double_colon(tmp_path):
    df = small_ratings()
    lines = [f"{u}::{i}::{int(r)}::{t}" for u, i, r, t in df.iter_rows()]
    path = tmp_path / "ratings.dat"
    path.write_text("\n".join(lines) + "\n")
    out = read_interactions(path)
    ref = pd.DataFrame([line.split("::") for line in lines],
                       columns=["user", "item", "rating", "timestamp"]).astype(
        {"user": np.int64, "item": np.int64, "rating": np.float64, "timestamp": np.int64})
    assert_table(out, ref)
    # detected from the content too, whatever the name
    renamed = tmp_path / "whatever.txt"
    renamed.write_text(path.read_text())
    assert_table(read_interactions(renamed), ref)


def test_movielens_folder_and_format_option(tmp_path):
    df = small_ratings()
    folder = tmp_path / "ml-20m"
    folder.mkdir()
    df.rename({"user": "userId", "item": "movieId"}).write_csv(folder / "ratings.csv")
    a = read_interactions(folder)
    b = read_interactions(folder / "ratings.csv", format="movielens")
    assert a.equals(b)
    assert a["user"].to_list() == df["user"].to_list()
    assert a["rating"].to_list() == df["rating"].cast(pl.Float64).to_list()


# ----------------------------------------------------------------------------------------------
# generic CSV / TSV / Parquet


def test_generic_csv_with_named_columns_and_string_ids(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("visitor,page,stars,when\nann,p1,4,10\nbob,p2,2.5,11\nann,p3,5,12\n")
    df = read_interactions(path, user_col="visitor", item_col="page", rating_col="stars",
                           timestamp_col="when")
    assert df.to_dict(as_series=False) == {"user": ["ann", "bob", "ann"],
                                           "item": ["p1", "p2", "p3"],
                                           "rating": [4.0, 2.5, 5.0], "timestamp": [10, 11, 12]}


def test_generic_csv_implicit_without_rating(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user_id,item_id\n1,10\n2,11\n")
    df = read_interactions(path)
    assert df.columns == ["user", "item"]
    assert not resolve_sources(path)[0].has_rating


def test_tsv_and_headerless_positions(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("5\t7\t3.5\n6\t8\t4\n")
    df = read_interactions(path)
    assert df.to_dict(as_series=False) == {"user": [5, 6], "item": [7, 8], "rating": [3.5, 4.0]}
    swapped = read_interactions(path, user_col="1", item_col="0", rating_col="2",
                                has_header=False)
    assert swapped["user"].to_list() == [7, 8] and swapped["item"].to_list() == [5, 6]


def test_ids_that_turn_into_strings_late_in_the_file(tmp_path):
    """Issue 9: schema inference sees numbers first; one non-integer id later is an error naming
    its line and the count (it would turn every id into text and change the user order); with
    id_type="string" every id is text."""
    rows = [f"{u},{u % 7},4" for u in range(20_000)] + ["x9,3,5"]
    path = tmp_path / "late.csv"
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataFormatError, match=r"late.csv: user id 'x9' on line 20002 is not an "
                                              r"integer, but 20,000 other user ids are \(1 not\)"):
        read_interactions(path)
    df = read_interactions(path, id_type="string")
    assert df.schema["user"] == pl.String and df.schema["item"] == pl.String
    assert df["user"][-1] == "x9" and df["user"][0] == "0"


def test_all_text_ids_stay_text_and_all_integer_text_becomes_int(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("user,item,rating\nalice,m1,4\nbob,m2,5\n")
    df = read_interactions(path)
    assert df.schema["user"] == pl.String and df["user"].to_list() == ["alice", "bob"]


def test_blank_lines_are_skipped_like_pandas(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("userId,movieId,rating\n1,2,4\n\n3,4,5\n\n")
    df = read_interactions(path)
    assert_table(df, pd.read_csv(path).rename(columns={"userId": "user", "movieId": "item"}))


def test_parquet(tmp_path):
    df = small_ratings().rename({"user": "u", "item": "i"})
    path = tmp_path / "x.parquet"
    df.write_parquet(path)
    out = read_interactions(path, user_col="u", item_col="i")
    assert out["user"].to_list() == df["u"].to_list()
    assert out["rating"].to_list() == df["rating"].cast(pl.Float64).to_list()


def test_several_files_are_concatenated_in_order(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("user,item,rating\n2,1,4\n1,1,5\n")
    b.write_text("user,item,rating\n1,2,4\n")
    df = read_interactions([b, a])
    assert df["user"].to_list() == [1, 2, 1] and df["item"].to_list() == [2, 1, 1]


def test_string_and_integer_ids_across_files_are_an_error(tmp_path):
    """Issue 9: integer ids in one file and text ids in another would sort every id as text."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("user,item\n1,5\n")
    b.write_text("user,item\nx,5\n")
    with pytest.raises(DataFormatError, match=r"b.csv: user ids are text here but integers in"):
        read_interactions([a, b])
    df = read_interactions([a, b], id_type="string")
    assert df["user"].to_list() == ["1", "x"]


# ----------------------------------------------------------------------------------------------
# Netflix Prize


def python_parse_netflix(paths):
    """The obvious line-by-line parse: movie id from the header line, then its ratings."""
    rows = []
    for p in paths:
        movie = None
        for line in Path(p).read_text().splitlines():
            if line.endswith(":"):
                movie = int(line[:-1])
            else:
                c, r, d = line.split(",")
                rows.append((int(c), movie, float(r), d))
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


@pytest.mark.parametrize("layout", ["combined", "training_set"])
def test_netflix_layouts(tmp_path, layout):
    df = small_ratings(n_users=60).with_columns(pl.col("rating").ceil())
    write_netflix(df, tmp_path / "nf", layout=layout, n_files=3)
    if layout == "combined":
        files = sorted((tmp_path / "nf").glob("combined_data_*.txt"))
        assert len(files) == 3
    else:
        files = sorted((tmp_path / "nf" / "training_set").glob("mv_*.txt"))
    out = read_interactions(tmp_path / "nf")
    ref = python_parse_netflix(files)
    assert out["user"].to_list() == ref["user"].tolist()
    assert out["item"].to_list() == ref["item"].tolist()
    assert out["rating"].to_list() == ref["rating"].tolist()
    assert [d.isoformat() for d in out["timestamp"].to_list()] == ref["timestamp"].tolist()
    # the movie ids are the header ids (sparse here), not a running counter
    assert set(out["item"].to_list()) == set(df["item"].to_list())
    assert max(out["item"].to_list()) > out["item"].n_unique()


def test_netflix_hand_written_file(tmp_path):
    path = tmp_path / "combined_data_1.txt"
    path.write_text("17:\n5,3,2005-01-02\n6,4,2005-01-03\n3:\n5,5,2001-12-31\n")
    df = read_interactions(path, with_timestamp=False)
    assert df.to_dict(as_series=False) == {"user": [5, 6, 5], "item": [17, 17, 3],
                                           "rating": [3.0, 4.0, 5.0]}


def test_netflix_several_files_follow_the_given_order(tmp_path):
    a, b = tmp_path / "combined_data_2.txt", tmp_path / "combined_data_1.txt"
    a.write_text("2:\n9,4,2005-01-02\n")
    b.write_text("1:\n8,4,2005-01-02\n")
    assert read_interactions([a, b])["user"].to_list() == [9, 8]
    assert read_interactions(tmp_path)["user"].to_list() == [8, 9]  # folder: natural order


# ----------------------------------------------------------------------------------------------
# the authors' pre-split layout


def test_read_presplit_hand_written(tmp_path):
    d = tmp_path / "pro_sg"
    d.mkdir()
    (d / "unique_sid.txt").write_text("151\n223\n253\n")
    (d / "train.csv").write_text("uid,sid\n0,2\n0,0\n1,1\n")
    (d / "validation_tr.csv").write_text("uid,sid\n2,0\n2,1\n")
    (d / "validation_te.csv").write_text("uid,sid\n2,2\n")
    (d / "test_tr.csv").write_text("uid,sid\n3,1\n4,2\n")
    (d / "test_te.csv").write_text("uid,sid\n3,0\n")
    ds = read_presplit(d)
    assert ds.item_ids.tolist() == [151, 223, 253]
    assert ds.train.toarray().tolist() == [[1, 0, 1], [0, 1, 0]]
    assert ds.validation_fold_in.toarray().tolist() == [[1, 1, 0]]
    assert ds.validation_heldout.toarray().tolist() == [[0, 0, 1]]
    assert ds.test_fold_in.toarray().tolist() == [[0, 1, 0], [0, 0, 1]]
    assert ds.test_heldout.toarray().tolist() == [[1, 0, 0], [0, 0, 0]]
    assert ds.test_user_ids.tolist() == [3, 4]
    assert ds.train.indices.dtype == np.int32 and ds.train.indptr.dtype == np.int64


def test_read_presplit_errors(tmp_path):
    d = tmp_path / "pro_sg"
    d.mkdir()
    with pytest.raises(FileNotFoundError, match="lacks train.csv"):
        read_presplit(d)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_presplit(tmp_path / "nope")
    (d / "unique_sid.txt").write_text("1\n2\n")
    for f in ("train.csv", "validation_tr.csv", "validation_te.csv", "test_tr.csv",
              "test_te.csv"):
        (d / f).write_text("uid,sid\n0,1\n")
    (d / "test_te.csv").write_text("uid,sid\n0,1\n0,5\n")
    with pytest.raises(DataFormatError, match=r"test_te.csv:3: expected uid >= 0 and "
                                              r"0 <= sid < 2"):
        read_presplit(d)
    (d / "test_te.csv").write_text("user,item\n0,1\n")
    with pytest.raises(DataFormatError, match="test_te.csv:1: expected the header uid,sid"):
        read_presplit(d)
    (d / "test_te.csv").write_text("")
    with pytest.raises(DataFormatError, match="test_te.csv: the file is empty"):
        read_presplit(d)


def test_presplit_directory_is_not_a_raw_input(tmp_path):
    d = tmp_path / "pro_sg"
    d.mkdir()
    for f in ("train.csv", "validation_tr.csv", "validation_te.csv", "test_tr.csv",
              "test_te.csv", "unique_sid.txt"):
        (d / f).write_text("uid,sid\n")
    with pytest.raises(DataFormatError, match="pre-split layout"):
        read_interactions(d)


# ----------------------------------------------------------------------------------------------
# bad input


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"input '.*nope.csv' does not exist"):
        read_interactions(tmp_path / "nope.csv")


def test_unknown_format_name(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("user,item\n1,2\n")
    with pytest.raises(ValueError, match="unknown format 'excel', expected one of auto"):
        read_interactions(path, format="excel")


def test_undetectable_format(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello world\n")
    with pytest.raises(DataFormatError, match="notes.txt: cannot detect the format"):
        read_interactions(path)
    folder = tmp_path / "empty_dir"
    folder.mkdir()
    with pytest.raises(DataFormatError, match="cannot detect an input format in this directory"):
        read_interactions(folder)


def test_malformed_line_reports_file_and_line(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,2,4,5\n1,3,4,5\n1,4,4,5,9\n")
    with pytest.raises(DataFormatError, match=r"ratings.csv:4: expected 4 fields, got 5"):
        read_interactions(path)


def test_short_line_reports_file_and_line(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,2,4,5\n1,3\n")
    with pytest.raises(DataFormatError, match=r"ratings.csv:3: expected 4 fields, got 2"):
        read_interactions(path)


def test_missing_id_reports_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,2,4\n,3,5\n")
    with pytest.raises(DataFormatError, match=r"r.csv:3: user id is missing"):
        read_interactions(path)


def test_non_numeric_rating_reports_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,2,4\n1,3,great\n")
    with pytest.raises(DataFormatError, match=r"r.csv:3: rating 'great' is not a number"):
        read_interactions(path)


def test_non_numeric_rating_in_gzip(tmp_path):
    path = tmp_path / "r.csv.gz"
    path.write_bytes(gzip.compress(b"user,item,rating\n1,2,4\n1,3,x\n"))
    with pytest.raises(DataFormatError, match=r"r.csv.gz:3: rating 'x' is not a number"):
        read_interactions(path)


def test_malformed_dat_line(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::2::5::100\n1::3::5\n")
    with pytest.raises(DataFormatError, match=r"ratings.dat:2: expected 4 fields, got 3"):
        read_interactions(path)


def test_misnamed_columns(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("person,thing,rating\n1,2,4\n")
    with pytest.raises(DataFormatError, match=r"no user column: expected one named like user, "
                                              r"userid.*got columns \['person', 'thing'"):
        read_interactions(path)
    with pytest.raises(DataFormatError, match=r"column 'human' \(--user-col\) not found"):
        read_interactions(path, user_col="human", item_col="thing")
    with pytest.raises(DataFormatError, match="one column is used for two roles"):
        read_interactions(path, user_col="person", item_col="person")
    with pytest.raises(DataFormatError, match="must be a 0-based position < 3"):
        read_interactions(path, user_col="person", has_header=False)


def test_empty_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("")
    with pytest.raises(DataFormatError, match="r.csv: the file is empty"):
        read_interactions(path)
    path.write_text("\nuser,item\n")
    with pytest.raises(DataFormatError, match="r.csv:1: the first line is blank"):
        read_interactions(path)
    path.write_text("useritem\n1\n")
    with pytest.raises(DataFormatError, match="r.csv:1: expected at least 2 fields"):
        read_interactions(path, format="csv")
    path.write_text("user,item,rating\n")
    assert read_interactions(path).height == 0


def test_float_ids_are_rejected(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1.5,2,4\n")
    with pytest.raises(DataFormatError, match="user ids must be integers or strings, got Float64"):
        read_interactions(path)


def test_parquet_bad_columns(tmp_path):
    path = tmp_path / "x.parquet"
    pl.DataFrame({"user": [1, None], "item": [1, 2], "rating": ["a", "b"]}).write_parquet(path)
    with pytest.raises(DataFormatError, match="rating column 'rating' must be numeric"):
        read_interactions(path)
    pl.DataFrame({"user": [1, None], "item": [1, 2]}).write_parquet(path)
    with pytest.raises(DataFormatError, match=r"column user has 1 missing values \(first in "
                                              r"row 1\)"):
        read_interactions(path)


@pytest.mark.parametrize("text, line, msg", [
    ("5,3,2005-01-02\n1:\n", 1, "expected a Netflix '<movie id>:' header line"),
    ("1:\n5,3,2005-01-02\nfoo\n", 3, "expected '<movie id>:' or 'customer,rating,date', "
                                     "got 'foo'"),
    ("1:\n5,3,2005-01-02\nabc,3,2005-01-02\n", 3, "customer id 'abc' is not an integer"),
    ("1:\n5,3,2005-01-02\n6,x,2005-01-02\n", 3, "rating 'x' is not a number"),
    ("1:\n5,3,2005-01-02\n6,3,yesterday\n", 3, "date 'yesterday' is not YYYY-MM-DD"),
    ("1:\n5,3,2005-01-02,7\n", 2, "expected '<movie id>:' or 'customer,rating,date'"),
])
def test_netflix_bad_lines(tmp_path, text, line, msg):
    path = tmp_path / "combined_data_1.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=f"combined_data_1.txt:{line}: {msg}"):
        read_interactions(path)


def test_netflix_bad_line_in_a_movie_file(tmp_path):
    ts = tmp_path / "training_set"
    ts.mkdir()
    (ts / "mv_0000001.txt").write_text("1:\n5,3,2005-01-02\n")
    (ts / "mv_0000002.txt").write_text("2:\n5,3,2005-01-02\n7;3;2005-01-02\n")
    with pytest.raises(DataFormatError, match=r"mv_0000002.txt:3: "):
        read_interactions(tmp_path)
