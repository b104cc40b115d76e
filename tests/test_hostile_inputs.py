"""Issue 9: hostile and careless inputs over every command and the Python API.

Every case states its outcome class and is checked for it:

* ``error``: exit status 2, one line ``evcf CMD: error: ...`` matching the case's pattern (what,
  expected, got; file and line for data files), no traceback, and no partial output left behind
  (no ``--out``, no hidden ``.*.tmp-*`` temporaries, inputs untouched);
* ``usage``: argparse rejects the command line (exit 2, ``usage:``), before any work;
* ``ok``: documented behaviour (exit 0) with the case's own assertion of the result.

API cases (``api_*``) call the library directly and assert the exception type and message. The
counts per class are in the README ("Failure behaviour") and the issue note.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pytest
from _train_data import clustered_split, one_torch_thread  # noqa: F401 (autouse)

import evcf_fast as ev
from evcf_fast.benchtools._synthetic import synthetic_benchmark, synthetic_run, write_run
from evcf_fast.cli import main
from evcf_fast.data.dataset import SplitDataset
from evcf_fast.errors import DataFormatError, IncompatibleDatasetError

HEADER = "userId,movieId,rating,timestamp\n"
SMALL = ["--model", "multvae", "--set", "hidden_size=8", "--set", "latent_size=4",
         "--set", "eval_batch_size=16", "--device", "cpu", "--quiet", "--batch-size", "64"]


def ratings_csv(n_users=40, n_items=30, seed=0) -> str:
    """A valid MovieLens-style file: every user has >= 8 positives."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        for i in rng.choice(n_items, 10, replace=False):
            rows.append(f"{u},{i + 1},{rng.choice([3.0, 4.0, 4.5, 5.0])},{1000 + len(rows)}")
    return HEADER + "\n".join(rows) + "\n"


GOOD = ratings_csv()


def with_line(text: str, line_no: int, new: str) -> str:
    """``text`` with its 1-based line ``line_no`` replaced by ``new``."""
    lines = text.splitlines()
    lines[line_no - 1] = new
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A prepared dataset and a 1-epoch run, built once and only read by the cases."""
    root = tmp_path_factory.mktemp("shared")
    s = clustered_split(n_items=120)
    ds = root / "ds"
    s.save(ds)
    run = root / "run"
    assert main(["train", "--data", str(ds), "--epochs", "1",
                 "--out", str(run), *SMALL]) == 0
    n_test = s.test_fold_in.shape[0]
    np.save(root / "scores.npy", np.random.default_rng(0).random((n_test, 120), np.float32))
    return {"ds": ds, "run": run, "scores": root / "scores.npy", "n_test": n_test}


@dataclass
class Case:
    id: str
    argv: list  # "{w}" is the case's folder, "{ds}" / "{run}" / "{scores}" the shared ones
    outcome: str  # "error" | "usage" | "ok"
    match: str = ""  # regex the error line must match (error), or the stdout (ok)
    files: dict = field(default_factory=dict)  # name -> str | bytes | callable(w, shared)
    after: Callable | None = None  # extra check: after(w, shared)


def _bench_doc(**top):
    doc = synthetic_run([synthetic_benchmark("bench/test_x.py::test_f",
                                             np.full(5, 1e-3), group="g")],
                        datetime="2026-01-01T00:00:00+00:00")
    doc.update(top)
    return doc


def _bench_files(doc_b):
    def make(w, shared):
        store = w / "store" / "m"
        store.mkdir(parents=True)
        write_run(store / "0001_a.json", _bench_doc())
        if isinstance(doc_b, (str, bytes)):
            (store / "0002_b.json").write_text(doc_b)
        else:
            write_run(store / "0002_b.json", doc_b)
    return {"store": make}


def _copy_ds(w, shared):
    shutil.copytree(shared["ds"], w / "dsc")


def _copy_run(w, shared):
    shutil.copytree(shared["run"], w / "runc")


def _edit_meta(w, shared, **changes):
    _copy_ds(w, shared)
    meta = json.loads((w / "dsc" / "meta.json").read_text())
    meta.update(changes)
    (w / "dsc" / "meta.json").write_text(json.dumps(meta))


def _edit_npy(name, fn):
    def make(w, shared):
        _copy_ds(w, shared)
        a = np.load(w / "dsc" / name)
        fn(a)
        np.save(w / "dsc" / name, a)
    return make


def _netflix(rating):
    rows = "\n".join(f"{u},{rating if u == 3 else 5},2005-01-0{1 + u % 5}" for u in range(1, 9))
    return f"1:\n{rows}\n2:\n" + "\n".join(f"{u},4,2005-02-01" for u in range(1, 9)) + "\n"


def _parquet(values, ids=None):
    def make(w, shared):
        n = len(values)
        pl.DataFrame({"user": ids if ids is not None else [1 + k % 4 for k in range(n)],
                      "item": list(range(n)), "rating": values}).write_parquet(w / "r.parquet")
    return make


def _untouched(*names):
    def check(w, shared):
        for n in names:
            assert (w / n).exists(), f"{n} was deleted"
    return check


def _meta_count(key, value):
    def check(w, shared):
        assert json.loads((w / "out" / "meta.json").read_text())["counts"][key] == value
    return check


def _forged_last(w, shared):
    import torch

    _copy_run(w, shared)
    payload = torch.load(w / "runc" / "last.pt", weights_only=True)
    del payload["dataset"], payload["rng"]
    torch.save(payload, w / "runc" / "last.pt")


def _pickle_bomb(w, shared):
    _copy_run(w, shared)

    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {w / 'pwned'}",))

    (w / "runc" / "last.pt").write_bytes(pickle.dumps({"x": Bomb()}))


P = ["prepare"]
OUT = ["--out", "{w}/out", "--n-heldout", "3", "--quiet"]
CASES = [
    # -- prepare: ratings (one rule for null / NaN / inf in every reader) ----------------------
    Case("nan-rating-csv", P + ["{w}/r.csv"] + OUT, "error",
         r"r\.csv:5: rating 'nan' is not a finite number",
         {"r.csv": with_line(GOOD, 5, "1,7,nan,9")}),
    Case("inf-rating-csv", P + ["{w}/r.csv"] + OUT, "error",
         r"r\.csv:4: rating 'inf' is not a finite number",
         {"r.csv": with_line(GOOD, 4, "1,7,inf,9")}),
    Case("minus-inf-rating-csv", P + ["{w}/r.csv"] + OUT, "error",
         r"r\.csv:4: rating '-inf' is not a finite", {"r.csv": with_line(GOOD, 4, "1,7,-inf,9")}),
    Case("empty-rating-csv", P + ["{w}/r.csv"] + OUT, "error", r"r\.csv:6: rating is missing",
         {"r.csv": with_line(GOOD, 6, "1,7,,9")}),
    Case("text-rating-csv", P + ["{w}/r.csv"] + OUT, "error",
         r"r\.csv:6: rating 'good' is not a number", {"r.csv": with_line(GOOD, 6, "1,7,good,9")}),
    Case("nan-rating-dropped", P + ["{w}/r.csv", "--drop-invalid-ratings"] + OUT, "ok", "",
         {"r.csv": with_line(with_line(GOOD, 5, "1,7,nan,9"), 8, "1,8,,9")},
         _meta_count("n_invalid_ratings", 2)),
    Case("nan-rating-dat", P + ["{w}/ratings.dat"] + OUT, "error",
         r"ratings\.dat:2: rating 'NaN' is not a finite",
         {"ratings.dat": GOOD.replace(",", "::").split("\n", 1)[1].replace("1::", "1::", 1)
          .replace("\n", "\n", 1).splitlines()[0] + "\n1::9::NaN::5\n"
          + "\n".join(GOOD.replace(",", "::").splitlines()[2:]) + "\n"}),
    Case("nan-rating-netflix", P + ["{w}/combined_data_1.txt", "--n-heldout", "1",
                                    "--out", "{w}/out", "--quiet", "--min-user-count", "1"],
         "error", r"combined_data_1\.txt:4: rating nan is not a finite",
         {"combined_data_1.txt": _netflix("nan")}),
    Case("nan-rating-parquet", P + ["{w}/r.parquet"] + OUT, "error",
         r"r\.parquet: rating nan in row 3 is not a finite number \(1 such rows\)",
         {"r.parquet": _parquet([4.0, 5.0, float("nan")] + [5.0] * 37)}),
    Case("null-rating-parquet", P + ["{w}/r.parquet"] + OUT, "error",
         r"r\.parquet: rating None in row 2 is not a finite",
         {"r.parquet": _parquet([4.0, None] + [5.0] * 38)}),
    Case("inf-rating-parquet-dropped", P + ["{w}/r.parquet", "--drop-invalid-ratings",
                                            "--min-user-count", "1", "--n-heldout", "1",
                                            "--out", "{w}/out", "--quiet"], "ok", "",
         {"r.parquet": _parquet([float("inf")] + [5.0] * 39)},
         _meta_count("n_invalid_ratings", 1)),
    # -- prepare: ids (one id-type rule) --------------------------------------------------------
    Case("typo-user-id", P + ["{w}/r.csv"] + OUT, "error",
         r"user id '15x' on line 7 is not an integer, but [\d,]+ other user ids are \(1 not\)",
         {"r.csv": with_line(GOOD, 7, "15x,3,5,9")}),
    Case("typo-item-id", P + ["{w}/r.csv"] + OUT, "error",
         r"item id '3a' on line 9 is not an integer",
         {"r.csv": with_line(GOOD, 9, "2,3a,5,9")}),
    Case("typo-id-in-filtered-row", P + ["{w}/r.csv"] + OUT, "ok", "",
         {"r.csv": with_line(GOOD, 7, "15x,3,1,9")},  # dropped by the rating filter anyway
         lambda w, s: np.testing.assert_array_equal(
             SplitDataset.load(w / "out").train_user_ids.dtype.kind, "i")),
    Case("typo-id-string-ids", P + ["{w}/r.csv", "--string-ids"] + OUT, "ok", "",
         {"r.csv": with_line(GOOD, 7, "15x,3,5,9")},
         lambda w, s: np.testing.assert_equal(
             SplitDataset.load(w / "out").item_ids.dtype.kind, "U")),
    Case("id-beyond-int64", P + ["{w}/r.csv"] + OUT, "error",
         r"user ids must fit in int64 \(at most 9223372036854775807\), got 99999999999999999999",
         {"r.csv": with_line(GOOD, 3, "99999999999999999999,3,5,9")}),
    Case("mixed-id-types-across-files", P + ["{w}/a.csv", "{w}/b.csv"] + OUT, "error",
         r"b\.csv: user ids are text here but integers in",
         {"a.csv": GOOD, "b.csv": HEADER + "alice,1,5,1\n"}),
    Case("negative-ids-are-ids", P + ["{w}/r.csv"] + OUT, "ok", "",
         {"r.csv": GOOD.replace("\n1,", "\n-1,")},
         lambda w, s: SplitDataset.load(w / "out")),
    # -- prepare: file formats ------------------------------------------------------------------
    Case("utf8-bom-is-valid", P + ["{w}/r.csv"] + OUT, "ok", "",
         {"r.csv": b"\xef\xbb\xbf" + GOOD.encode()},
         lambda w, s: SplitDataset.load(w / "out")),
    Case("truncated-gzip", P + ["{w}/r.csv.gz"] + OUT, "error",
         r"r\.csv\.gz: (cannot read|not a complete gzip file)",
         {"r.csv.gz": gzip.compress(GOOD.encode())[:200]}),
    Case("csv-named-parquet", P + ["{w}/r.parquet"] + OUT, "error",
         r"r\.parquet: expected a Parquet file \(starting with PAR1\), got 'userId",
         {"r.parquet": GOOD}),
    Case("truncated-parquet", P + ["{w}/t.parquet"] + OUT, "error",
         r"t\.parquet: not a readable Parquet file",
         {"t.parquet": lambda w, s: (_parquet([5.0] * 40)(w, s),
                                     (w / "t.parquet").write_bytes(
                                         (w / "r.parquet").read_bytes()[:60]))}),
    Case("empty-file", P + ["{w}/r.csv"] + OUT, "error", r"r\.csv", {"r.csv": ""}),
    Case("header-only", P + ["{w}/r.csv"] + OUT, "error", r"no interactions|empty|rows",
         {"r.csv": HEADER}),
    Case("binary-garbage", P + ["{w}/r.csv"] + OUT, "error", r"r\.csv",
         {"r.csv": bytes(range(256)) * 4}),
    Case("wrong-field-count", P + ["{w}/r.csv"] + OUT, "error",
         r"r\.csv:6: expected 4 fields, got 2", {"r.csv": with_line(GOOD, 6, "1,2")}),
    Case("windows-line-ends", P + ["{w}/r.csv"] + OUT, "ok", "",
         {"r.csv": GOOD.replace("\n", "\r\n").encode()},
         lambda w, s: np.testing.assert_equal(SplitDataset.load(w / "out").n_items, 30)),
    Case("quoted-ids", P + ["{w}/r.csv"] + OUT, "ok", "",
         {"r.csv": GOOD.replace("\n1,", '\n"1",')},
         lambda w, s: np.testing.assert_equal(
             SplitDataset.load(w / "out").item_ids.dtype.kind, "i")),
    Case("spaces-around-fields", P + ["{w}/r.csv"] + OUT, "error",
         r"r\.csv: could not parse `[\d.]+ ` as dtype `f64` at column 'rating '",
         {"r.csv": GOOD.replace(",", " ,")}),
    Case("semicolons-undetected", P + ["{w}/r.csv"] + OUT, "error",
         r"r\.csv: cannot detect the format", {"r.csv": GOOD.replace(",", ";")}),
    Case("semicolons-with-separator", P + ["{w}/r.csv", "--separator", ";", "--format", "csv"]
         + OUT, "ok", "", {"r.csv": GOOD.replace(",", ";")},
         lambda w, s: SplitDataset.load(w / "out")),
    Case("duplicate-header-names", P + ["{w}/r.csv"] + OUT, "error", r"no item column",
         {"r.csv": GOOD.replace("userId,movieId", "userId,userId")}),
    Case("missing-input", P + ["{w}/nope.csv"] + OUT, "error", r"nope\.csv"),
    Case("unknown-column", P + ["{w}/r.csv", "--user-col", "who"] + OUT, "error", r"who",
         {"r.csv": GOOD}),
    Case("not-a-presplit-folder", P + ["{w}", "--format", "presplit", "--out", "{w}/out",
                                       "--quiet"], "error", r"train\.csv|presplit|pre-split",
         {"r.csv": GOOD}),
    Case("netflix-ids-beyond-int32", P + ["{w}/combined_data_1.txt", "--n-heldout", "1",
                                          "--out", "{w}/out", "--quiet", "--min-user-count",
                                          "1"], "ok", "",
         {"combined_data_1.txt": _netflix(5).replace("\n3,", "\n3000000000,")},
         lambda w, s: np.testing.assert_equal(
             3000000000 in SplitDataset.load(w / "out").train_user_ids.tolist()
             + SplitDataset.load(w / "out").test_user_ids.tolist()
             + SplitDataset.load(w / "out").validation_user_ids.tolist(), True)),
    Case("presplit-typo-in-unique-sid", P + ["{w}/ex", "--out", "{w}/out", "--quiet"], "error",
         r"unique_sid\.txt:2: id '1x' is not an integer, but [\d,]+ other ids are \(1 not\)",
         {"ex": lambda w, s: (main(["export", str(s["ds"]), "--out", str(w / "ex"), "--quiet"]),
                              (w / "ex/unique_sid.txt").write_text(
                                  (w / "ex/unique_sid.txt").read_text().replace("\n", "\n1x\n",
                                                                                 1)
                                  .rsplit("\n", 2)[0] + "\n"))}),
    Case("presplit-sid-out-of-range", P + ["{w}/ex", "--out", "{w}/out", "--quiet"], "error",
         r"train\.csv:2: expected uid >= 0 and 0 <= sid < 120",
         {"ex": lambda w, s: (main(["export", str(s["ds"]), "--out", str(w / "ex"), "--quiet"]),
                              (w / "ex/train.csv").write_text(
                                  "uid,sid\n0,999\n" + (w / "ex/train.csv").read_text()
                                  .split("\n", 1)[1]))}),
    Case("presplit-duplicate-rows-collapse", P + ["{w}/ex", "--out", "{w}/out", "--quiet"],
         "ok", "",
         {"ex": lambda w, s: (main(["export", str(s["ds"]), "--out", str(w / "ex"), "--quiet"]),
                              (w / "ex/train.csv").write_text(
                                  (w / "ex/train.csv").read_text() + "0,"
                                  + (w / "ex/train.csv").read_text().splitlines()[1]
                                  .split(",")[1] + "\n"))},
         lambda w, s: np.testing.assert_equal(SplitDataset.load(w / "out").train.nnz,
                                              SplitDataset.load(s["ds"]).train.nnz)),
    # -- prepare: parameters --------------------------------------------------------------------
    Case("n-heldout-negative", P + ["{w}/r.csv", "--n-heldout", "-1", "--out", "{w}/out"],
         "error", r"n_heldout must be >= 0, got -1", {"r.csv": GOOD}),
    Case("n-heldout-too-large", P + ["{w}/r.csv", "--n-heldout", "30", "--out", "{w}/out",
                                     "--quiet"], "error", r"n_heldout", {"r.csv": GOOD}),
    Case("min-rating-nan", P + ["{w}/r.csv", "--min-rating", "nan"] + OUT, "error",
         r"min_rating must be finite, got nan", {"r.csv": GOOD}),
    Case("heldout-fraction-out-of-range", P + ["{w}/r.csv", "--heldout-fraction", "1.5"] + OUT,
         "error", r"heldout_fraction must be in \[0, 1\), got 1\.5", {"r.csv": GOOD}),
    Case("seed-negative", P + ["{w}/r.csv", "--seed", "-1"] + OUT, "error",
         r"seed must be in \[0, 4294967295\], got -1", {"r.csv": GOOD}),
    Case("n-heldout-not-int", P + ["{w}/r.csv", "--n-heldout", "ten", "--out", "{w}/out"],
         "usage", "", {"r.csv": GOOD}),
    # -- --out and --overwrite: only our own outputs, never an input ---------------------------
    Case("overwrite-input-folder", P + ["{w}/raw/ratings.csv", "--out", "{w}/raw", "--overwrite",
                                        "--n-heldout", "3", "--quiet"], "error",
         r"would overwrite the input .*ratings\.csv",
         {"raw/ratings.csv": GOOD, "raw/notes.txt": "mine"},
         _untouched("raw/ratings.csv", "raw/notes.txt")),
    Case("overwrite-input-file", P + ["{w}/r.csv", "--out", "{w}/r.csv", "--overwrite",
                                      "--n-heldout", "3", "--quiet"], "error",
         r"would overwrite the input", {"r.csv": GOOD}, _untouched("r.csv")),
    Case("overwrite-foreign-folder", P + ["{w}/r.csv", "--out", "{w}/mine", "--overwrite",
                                          "--n-heldout", "3", "--quiet"], "error",
         r"refusing to overwrite output directory .*mine.*: expected a folder written by "
         r"evcf_fast .*found a folder of 1 entries \(thesis\.tex\)",
         {"r.csv": GOOD, "mine/thesis.tex": "years of work"}, _untouched("mine/thesis.tex")),
    Case("overwrite-foreign-file", P + ["{w}/r.csv", "--out", "{w}/notes.txt", "--overwrite",
                                        "--n-heldout", "3", "--quiet"], "error",
         r"refusing to overwrite .*notes\.txt.*found a file of 4 bytes",
         {"r.csv": GOOD, "notes.txt": "mine"}, _untouched("notes.txt")),
    Case("out-exists-no-overwrite", P + ["{w}/r.csv", "--out", "{w}/dsc", "--n-heldout", "3",
                                         "--quiet"], "error",
         r"output directory .*dsc.* already exists; pass overwrite \(--overwrite\)",
         {"r.csv": GOOD, "dsc": _copy_ds}),
    Case("overwrite-our-dataset", P + ["{w}/r.csv", "--out", "{w}/dsc", "--overwrite",
                                       "--n-heldout", "3", "--quiet"], "ok", "",
         {"r.csv": GOOD, "dsc": _copy_ds},
         lambda w, s: np.testing.assert_equal(SplitDataset.load(w / "dsc").n_items, 30)),
    Case("out-under-a-file", P + ["{w}/r.csv", "--out", "{w}/r.csv/sub", "--n-heldout", "3",
                                  "--quiet"], "error", r"r\.csv.* is a file, expected a folder",
         {"r.csv": GOOD}),
    Case("stale-temporaries-swept", P + ["{w}/r.csv"] + OUT, "ok", "",
         {"r.csv": GOOD, ".out.tmp-999999999-abc/x": "left by kill -9"},
         lambda w, s: np.testing.assert_equal(
             [p.name for p in w.iterdir() if p.name.startswith(".")], [])),
    # -- info -----------------------------------------------------------------------------------
    Case("info-not-a-dataset", ["info", "{w}"], "error", r"is not an evcf dataset: meta\.json "
         r"is missing", {"r.csv": GOOD}),
    Case("info-on-a-file", ["info", "{w}/r.csv"], "error", r"does not exist or is not a "
         r"directory", {"r.csv": GOOD}),
    Case("info-garbage-meta", ["info", "{w}/dsc"], "error", r"meta\.json.* is corrupt",
         {"dsc": lambda w, s: (_copy_ds(w, s), (w / "dsc/meta.json").write_text("{garbage"))}),
    Case("info-meta-matrices-wrong-type", ["info", "{w}/dsc"], "error",
         r"meta\.json' is corrupt: matrices must be a JSON dict, got list",
         {"dsc": lambda w, s: _edit_meta(w, s, matrices=[1])}),
    Case("info-meta-counts-wrong-type", ["info", "{w}/dsc", "--verify"], "error",
         r"meta\.json' is corrupt: counts must be a JSON dict, got str",
         {"dsc": lambda w, s: _edit_meta(w, s, counts="many")}),
    Case("info-meta-checksum-wrong-type", ["info", "{w}/dsc", "--verify"], "error",
         r"the entries of checksums must be JSON strs, got int",
         {"dsc": lambda w, s: _edit_meta(w, s, checksums={"train.indptr.npy": 3})}),
    Case("info-truncated-npy", ["info", "{w}/dsc"], "error",
         r"train\.indices\.npy.* is corrupt or truncated",
         {"dsc": lambda w, s: (_copy_ds(w, s), (w / "dsc/train.indices.npy").write_bytes(
             (w / "dsc/train.indices.npy").read_bytes()[:300]))}),
    Case("info-decreasing-indptr", ["info", "{w}/dsc"], "error",
         r"validation_heldout row \d+ has a decreasing or out-of-range indptr",
         {"dsc": _edit_npy("validation_heldout.indptr.npy", lambda a: a.__setitem__(5, 0))}),
    Case("info-unsorted-row", ["info", "{w}/dsc"], "error",
         r"train row 0 has unsorted or duplicated column indices",
         {"dsc": _edit_npy("train.indices.npy", lambda a: a.__setitem__(slice(0, 3),
                                                                       a[0:3][::-1].copy()))}),
    Case("info-index-out-of-range", ["info", "{w}/dsc"], "error",
         r"test_fold_in row \d+ has a column index outside \[0, n_items\)",
         {"dsc": _edit_npy("test_fold_in.indices.npy", lambda a: a.__setitem__(-1, 120))}),
    Case("info-verify-changed-ids", ["info", "{w}/dsc", "--verify"], "error",
         r"1 of \d+ files do not match the checksums in meta\.json: item_ids\.npy",
         {"dsc": _edit_npy("item_ids.npy", lambda a: a.__setitem__(0, 12345))}),
    Case("info-verify-ok", ["info", "{shared_ds}", "--verify"], "ok",
         r"verified +\d+ array files match"),
    # -- export / synth -------------------------------------------------------------------------
    Case("export-over-its-input", ["export", "{w}/dsc", "--out", "{w}/dsc", "--overwrite",
                                   "--quiet"], "error", r"would overwrite the input",
         {"dsc": _copy_ds}, _untouched("dsc/meta.json")),
    Case("export-over-foreign", ["export", "{shared_ds}", "--out", "{w}/mine", "--overwrite",
                                 "--quiet"], "error", r"refusing to overwrite",
         {"mine/a.txt": "x"}, _untouched("mine/a.txt")),
    Case("export-twice-overwrite", ["export", "{shared_ds}", "--out", "{w}/ex", "--overwrite",
                                    "--quiet"], "ok", "",
         {"ex": lambda w, s: main(["export", str(s["ds"]), "--out", str(w / "ex"),
                                   "--quiet"])},
         _untouched("ex/train.csv")),
    Case("synth-over-foreign", ["synth", "--format", "split", "--out", "{w}/mine", "--overwrite",
                                "--quiet"], "error", r"refusing to overwrite",
         {"mine/a.txt": "x"}, _untouched("mine/a.txt")),
    Case("synth-n-heldout-movielens", ["synth", "--out", "{w}/r.csv", "--n-heldout", "3",
                                       "--quiet"], "error", r"n_heldout only applies"),
    Case("synth-file-exists", ["synth", "--out", "{w}/r.csv", "--quiet"], "error",
         r"already exists; pass overwrite", {"r.csv": "mine"}, _untouched("r.csv")),
    Case("synth-negative-seed", ["synth", "--seed", "-1", "--out", "{w}/r.csv", "--quiet"],
         "error", r"seed must be in \[0, 4294967295\], got -1"),
    Case("synth-bad-preset", ["synth", "--preset", "huge", "--out", "{w}/r.csv"], "usage"),
    # -- evaluate -------------------------------------------------------------------------------
    Case("json-is-a-folder", ["evaluate", "--scores", "{scores}", "--split", "{shared_ds}",
                              "--json", "{w}/d", "--quiet"], "error",
         r"--json .*d.* is a folder, expected a file path", {"d/keep": "x"}, _untouched("d/keep")),
    Case("json-is-an-input", ["evaluate", "--scores", "{w}/s.npy", "--split", "{shared_ds}",
                              "--json", "{w}/s.npy", "--quiet"], "error",
         r"--json .*s\.npy.* would overwrite the input",
         {"s.npy": lambda w, s: shutil.copy(s["scores"], w / "s.npy")}, _untouched("s.npy")),
    Case("per-user-is-the-split", ["evaluate", "--scores", "{scores}", "--split", "{w}/dsc",
                                   "--per-user", "{w}/dsc/meta.json", "--quiet"], "error",
         r"--per-user .* would overwrite the input", {"dsc": _copy_ds}),
    Case("truncated-scores", ["evaluate", "--scores", "{w}/s.npy", "--split", "{shared_ds}",
                              "--quiet"], "error",
         r"scores file .*s\.npy.* is not a readable \.npy array",
         {"s.npy": lambda w, s: (w / "s.npy").write_bytes(s["scores"].read_bytes()[:500])}),
    Case("scores-wrong-shape", ["evaluate", "--scores", "{w}/s.npy", "--split", "{shared_ds}",
                                "--quiet"], "error", r"has shape \(3, 60\).*expected",
         {"s.npy": lambda w, s: np.save(w / "s.npy", np.zeros((3, 60), np.float32))}),
    Case("scores-int-dtype", ["evaluate", "--scores", "{w}/s.npy", "--split", "{shared_ds}",
                              "--quiet"], "error", r"float32 or float64, got int",
         {"s.npy": lambda w, s: np.save(w / "s.npy", np.zeros((s["n_test"], 120), np.int64))}),
    Case("scores-nan", ["evaluate", "--scores", "{w}/s.npy", "--split", "{shared_ds}",
                        "--quiet"], "error", r"NaN",
         {"s.npy": lambda w, s: np.save(w / "s.npy", np.full((s["n_test"], 120), np.nan,
                                                             np.float32))}),
    Case("scores-pickled-object", ["evaluate", "--scores", "{w}/s.npy", "--split",
                                   "{shared_ds}", "--quiet"], "error", r"not a readable",
         {"s.npy": lambda w, s: np.save(w / "s.npy", np.array([{"a": 1}], dtype=object),
                                        allow_pickle=True)}),
    Case("metrics-garbage", ["evaluate", "--scores", "{scores}", "--split", "{shared_ds}",
                             "--metrics", "ndcg@x", "--quiet"], "error", r"ndcg@x"),
    Case("metrics-k-zero", ["evaluate", "--scores", "{scores}", "--split", "{shared_ds}",
                            "--metrics", "ndcg@0", "--quiet"], "error",
         r"cut-off k of 'ndcg' must be >= 1, got 0"),
    Case("evaluate-bad-part", ["evaluate", "--scores", "{scores}", "--split", "{shared_ds}",
                               "--part", "train"], "usage"),
    # -- train / recommend / plot ---------------------------------------------------------------
    Case("train-no-validation-users", ["train", "--data", "{w}/d0", "--out", "{w}/out",
                                       *SMALL], "error",
         r"no validation users with held-out items \(got 0 validation users\)",
         {"d0": lambda w, s: clustered_split(n_items=120, n_heldout=0).save(w / "d0")}),
    Case("train-forged-last-pt", ["train", "--out", "{w}/runc", "--resume", "--quiet"], "error",
         r"last\.pt: damaged checkpoint: missing \['dataset', 'rng'\]", {"runc": _forged_last}),
    Case("train-pickle-in-checkpoint", ["train", "--out", "{w}/runc", "--resume", "--quiet"],
         "error", r"last\.pt: not a loadable evcf_fast checkpoint", {"runc": _pickle_bomb},
         lambda w, s: np.testing.assert_equal((w / "pwned").exists(), False)),
    Case("train-garbage-config", ["train", "--out", "{w}/runc", "--resume", "--quiet"], "error",
         r"run config .*config\.json.* is not valid JSON \(line 1 column 2",
         {"runc": lambda w, s: (_copy_run(w, s), (w / "runc/config.json").write_text("{oops"))}),
    Case("train-config-not-object", ["train", "--out", "{w}/runc", "--resume", "--quiet"],
         "error", r"config\.json.* must hold a JSON dict, got list",
         {"runc": lambda w, s: (_copy_run(w, s), (w / "runc/config.json").write_text("[1]"))}),
    Case("plot-truncated-log", ["plot", "{w}/runc"], "error",
         r"log\.jsonl:1: not a JSON record",
         {"runc": lambda w, s: (_copy_run(w, s), (w / "runc/log.jsonl").write_text('{"epo'))}),
    Case("plot-record-missing-keys", ["plot", "{w}/runc"], "error",
         r"log\.jsonl:1: epoch record is missing \['loss', 'nll', 'kl', 'beta'\]",
         {"runc": lambda w, s: (_copy_run(w, s), (w / "runc/log.jsonl").write_text(
             '{"epoch": 1}\n'))}),
    Case("plot-out-is-the-checkpoint", ["plot", "{w}/runc", "--out", "{w}/runc/last.pt"],
         "error", r"--out .*last\.pt.* would overwrite the input", {"runc": _copy_run},
         lambda w, s: SplitDataset and __import__("evcf_fast.train.checkpoint").train.checkpoint
         .load_checkpoint(w / "runc/last.pt")),
    Case("plot-out-is-a-folder", ["plot", "{w}/runc", "--out", "{w}/runc"], "error",
         r"--out .*runc.* would overwrite the input", {"runc": _copy_run}),
    Case("train-resume-sweeps-kill-9-leftovers", ["train", "--out", "{w}/runc", "--resume",
                                                  "--epochs", "2", "--quiet"], "ok", "",
         {"runc": lambda w, s: (_copy_run(w, s),
                                (w / "runc/.last.pt.tmp-999999999-ab").write_bytes(b"half"),
                                (w / "runc/.log.jsonl.tmp-999999999-cd").write_text("{"))},
         lambda w, s: np.testing.assert_equal(
             sorted(p.name for p in (w / "runc").iterdir() if p.name != "tensorboard"),
             [".evcf_fast", ".lock", "best.pt", "config.json", "last.pt", "log.csv",
              "log.jsonl", "test.json", "test_per_user.parquet"])),
    Case("train-out-is-a-file", ["train", "--data", "{shared_ds}", "--out", "{w}/f", *SMALL],
         "error", r"--out .*f.* is a file, expected a run directory", {"f": "x"}),
    Case("train-out-foreign-folder", ["train", "--data", "{shared_ds}", "--out", "{w}/mine",
                                      *SMALL], "error",
         r"refusing to write a run into --out .*mine.*found a folder of 1 entries",
         {"mine/config.json": '{"my": "settings"}'}, _untouched("mine/config.json")),
    Case("train-out-is-a-dataset", ["train", "--data", "{shared_ds}", "--out", "{w}/dsc",
                                    *SMALL], "error",
         r"refusing to write a run into --out .*dsc.*found a folder of \d+ entries",
         {"dsc": _copy_ds}, lambda w, s: SplitDataset.load(w / "dsc")),
    Case("train-unknown-set-key", ["train", "--data", "{shared_ds}", "--out", "{w}/out",
                                   "--set", "hiden_size=3", *SMALL], "error", r"hiden_size"),
    Case("train-batch-size-zero", ["train", "--data", "{shared_ds}", "--out", "{w}/out",
                                   *SMALL, "--batch-size", "0"], "error", r"batch_size"),
    Case("train-lr-negative", ["train", "--data", "{shared_ds}", "--out", "{w}/out", "--lr",
                               "-1", *SMALL], "error", r"lr"),
    Case("train-resume-nothing", ["train", "--out", "{w}/out", "--resume"], "error",
         r"--data DIR is required"),
    Case("train-bf16-on-cpu", ["train", "--data", "{shared_ds}", "--out", "{w}/out", "--bf16",
                               *SMALL], "error", r"bf16 needs a CUDA device"),
    Case("recommend-unknown-user", ["recommend", "--run", "{run}", "--user", "nobody"], "error",
         r"nobody"),
    Case("recommend-k-zero", ["recommend", "--run", "{run}", "--user", "240", "--k", "0"],
         "error", r"k"),
    Case("recommend-empty-items", ["recommend", "--run", "{run}", "--items", ","], "error",
         r"--items expects a comma-separated list"),
    Case("evaluate-run-truncated-best", ["evaluate", "--run", "{w}/runc", "--quiet"], "error",
         r"best\.pt: not a loadable evcf_fast checkpoint",
         {"runc": lambda w, s: (_copy_run(w, s), (w / "runc/best.pt").write_bytes(
             (w / "runc/best.pt").read_bytes()[:1000]))}),
    Case("recommend-garbage-config", ["recommend", "--run", "{w}/runc", "--user", "240"],
         "error", r"run config .*config\.json.* is not valid JSON",
         {"runc": lambda w, s: (_copy_run(w, s), (w / "runc/config.json").write_text("nul"))}),
    Case("evaluate-topk-not-parquet", ["evaluate", "--topk", "{w}/t.parquet", "--split",
                                       "{shared_ds}", "--quiet"], "error", r"t\.parquet",
         {"t.parquet": "user,item\n1,2\n"}),
    Case("train-data-is-a-run", ["train", "--data", "{run}", "--out", "{w}/out", *SMALL],
         "error", r"is not an evcf dataset: meta\.json is missing"),
    Case("export-over-a-file", ["export", "{shared_ds}", "--out", "{w}/f.txt", "--overwrite",
                                "--quiet"], "error", r"refusing to overwrite .*found a file",
         {"f.txt": "mine"}, _untouched("f.txt")),
    Case("info-json-damaged", ["info", "{w}/dsc", "--json"], "error",
         r"train row 0 has unsorted",
         {"dsc": _edit_npy("train.indices.npy", lambda a: a.__setitem__(1, a[0]))}),
    # -- bench ----------------------------------------------------------------------------------
    Case("bench-machine-info-type", ["bench", "compare", "--storage", "{w}/store"], "error",
         r"0002_b\.json: machine_info must be an object, got list",
         _bench_files(_bench_doc(machine_info=[1, 2]))),
    Case("bench-commit-info-type", ["bench", "compare", "--storage", "{w}/store"], "error",
         r"0002_b\.json: commit_info must be an object, got str",
         _bench_files(_bench_doc(commit_info="abc"))),
    Case("bench-cpu-type", ["bench", "compare", "--storage", "{w}/store"], "error",
         r"machine_info\.cpu must be an object, got int",
         _bench_files(_bench_doc(machine_info={"cpu": 3}))),
    Case("bench-commit-id-type", ["bench", "compare", "--storage", "{w}/store"], "error",
         r"commit commit must be a str or null, got dict",
         _bench_files(_bench_doc(commit_info={"id": {"x": 1}}, evcf_fast={"schema": 1}))),
    Case("bench-deep-json", ["bench", "compare", "--storage", "{w}/store"], "error",
         r"0002_b\.json: JSON nested too deeply", _bench_files("[" * 100_000 + "]" * 100_000)),
    Case("bench-iterations-text", ["bench", "compare", "--storage", "{w}/store"], "error",
         r"stats\.iterations must be an integer >= 1, got 'many'",
         _bench_files({**_bench_doc(), "benchmarks": [
             {**_bench_doc()["benchmarks"][0],
              "stats": {**_bench_doc()["benchmarks"][0]["stats"], "iterations": "many"}}]})),
    Case("bench-not-json", ["bench", "compare", "--storage", "{w}/store"], "error",
         r"0002_b\.json:1: not valid JSON", _bench_files("not json")),
    Case("bench-report-over-foreign", ["bench", "report", "--storage", "{w}/store", "--out",
                                       "{w}/mine", "--overwrite"], "error",
         r"refusing to overwrite", {**_bench_files(_bench_doc()), "mine/a.txt": "x"},
         _untouched("mine/a.txt")),
]


def _fill(arg: str, w: Path, shared) -> str:
    return (arg.replace("{w}", str(w)).replace("{shared_ds}", str(shared["ds"]))
            .replace("{scores}", str(shared["scores"])).replace("{run}", str(shared["run"])))


def _snapshot(w: Path) -> set:
    return {str(p.relative_to(w)) for p in w.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_case(case, shared, tmp_path, capsys):
    w = tmp_path
    for name, content in case.files.items():
        path = w / name
        if callable(content):
            content(w, shared)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    argv = [_fill(a, w, shared) for a in case.argv]
    before = _snapshot(w)
    capsys.readouterr()
    if case.outcome == "usage":
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        assert "usage:" in capsys.readouterr().err
        assert _snapshot(w) == before
        return
    rc = main(argv)
    out, err = capsys.readouterr()
    if case.outcome == "error":
        assert rc == 2, (rc, err)
        lines = err.strip().splitlines()
        assert lines and lines[-1].startswith(f"evcf {argv[0]}: error: "), err
        assert "Traceback" not in err
        import re

        assert re.search(case.match, lines[-1]), (case.match, lines[-1])
        # nothing half-written: no new path at all (no --out, no temporaries)
        assert _snapshot(w) - before == set(), _snapshot(w) - before
    else:
        assert rc == 0, err
        if case.match:
            import re

            assert re.search(case.match, out), out
        leftovers = [p for p in w.rglob(".*.tmp-*")] + [p for p in w.rglob(".*.old-*")]
        assert leftovers == []
    if case.after is not None:
        case.after(w, shared)


# -- the Python API ----------------------------------------------------------------------------

def _frame(ratings):
    n = len(ratings)
    return pl.DataFrame({"user": [k % 8 for k in range(n)], "item": [k // 8 for k in range(n)],
                         "rating": ratings})


API_CASES = [
    ("split-nan-rating", lambda w: ev.strong_generalization_split(
        _frame([5.0] * 40 + [float("nan")]), n_heldout=1), ValueError,
     r"rating must be a finite number, got nan in row 40 \(1 rows"),
    ("split-null-rating", lambda w: ev.strong_generalization_split(
        _frame([5.0] * 40 + [None]), n_heldout=1), ValueError, r"got None in row 40"),
    ("split-bad-invalid-ratings", lambda w: ev.strong_generalization_split(
        _frame([5.0] * 40), n_heldout=1, invalid_ratings="skip"), ValueError,
     r"invalid_ratings must be one of \['error', 'drop'\], got 'skip'"),
    ("read-bad-id-type", lambda w: ev.read_interactions(w / "r.csv", id_type="text"),
     ValueError, r"id_type must be one of \['auto', 'string'\], got 'text'"),
    ("read-typo-id", lambda w: ev.read_interactions(w / "t.csv"), DataFormatError,
     r"user id 'x' on line 3 is not an integer"),
    ("prepare-overwrite-input", lambda w: ev.prepare(w / "r.csv", w, n_heldout=3,
                                                     overwrite=True, progress=False),
     ValueError, r"would overwrite the input"),
    ("save-over-foreign", lambda w: clustered_split().save(w / "mine", overwrite=True),
     FileExistsError, r"refusing to overwrite output directory"),
    ("load-damaged", lambda w: SplitDataset.load(w / "bad"), IncompatibleDatasetError,
     r"train row 0 has unsorted or duplicated column indices"),
    ("evaluate-nan-scores", lambda w: ev.evaluate(
        np.full((2, 3), np.nan, np.float32), _csr2(), exclude=None, metrics=("ndcg@2",)),
     ValueError, r"NaN"),
    ("fit-no-validation-users", lambda w: ev.fit(
        clustered_split(n_heldout=0), model_config=ev.ModelConfig(model="multvae", n_items=50),
        train_config=ev.TrainConfig(device="cpu", epochs=1)), ValueError,
     r"no validation users with held-out items"),
    ("fit-closed-form-no-validation-users", lambda w: ev.fit(
        clustered_split(n_heldout=0), model_config=ev.ModelConfig(model="ease", n_items=50),
        train_config=ev.TrainConfig(device="cpu", epochs=1)), ValueError,
     r"no validation users with held-out items"),
]


def _csr2():
    import scipy.sparse as sp

    return sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]], np.float32))


@pytest.mark.parametrize("make, exc, match", [c[1:] for c in API_CASES],
                         ids=[c[0] for c in API_CASES])
def test_api_case(make, exc, match, tmp_path):
    (tmp_path / "r.csv").write_text(GOOD)
    (tmp_path / "t.csv").write_text("user,item\n1,2\nx,3\n")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "a.txt").write_text("x")
    clustered_split().save(tmp_path / "bad")
    a = np.load(tmp_path / "bad" / "train.indices.npy")
    a[:2] = a[:2][::-1].copy()
    np.save(tmp_path / "bad" / "train.indices.npy", a)
    with pytest.raises(exc, match=match):
        make(tmp_path)
    assert (tmp_path / "mine" / "a.txt").exists() and (tmp_path / "r.csv").exists()


API_OK = [
    ("load-damaged-verify-false", lambda w: SplitDataset.load(w / "bad", verify=False)),
    ("split-drop-invalid", lambda w: ev.strong_generalization_split(
        _frame([5.0] * 40 + [float("nan"), float("inf")]), n_heldout=1, min_user_count=1,
        invalid_ratings="drop").meta["counts"]["n_invalid_ratings"] == 2 or 1 / 0),
]


@pytest.mark.parametrize("make", [c[1] for c in API_OK], ids=[c[0] for c in API_OK])
def test_api_documented_behaviour(make, tmp_path):
    clustered_split().save(tmp_path / "bad")
    a = np.load(tmp_path / "bad" / "train.indices.npy")
    a[:2] = a[:2][::-1].copy()
    np.save(tmp_path / "bad" / "train.indices.npy", a)
    make(tmp_path)


# -- signals and bugs ----------------------------------------------------------------------------

def test_a_bug_prints_one_line_and_writes_the_traceback(monkeypatch, capsys, tmp_path):
    """An unexpected exception (here an AttributeError) is reported as a bug with a file."""
    from evcf_fast.cli import data as data_cli

    def broken(args):
        return None.attribute

    monkeypatch.setattr(data_cli, "cmd_info", broken)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert main(["info", "x"]) == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("evcf info: internal error (a bug in evcf_fast, please report it): "
                             "AttributeError: 'NoneType' object has no attribute 'attribute'; "
                             "traceback written to ")
    path = Path(err[0].rsplit(" ", 1)[1])
    assert path.parent == tmp_path and "Traceback" in path.read_text()


@pytest.mark.parametrize("exc, rc, match", [
    (RuntimeError("CUDA out of memory"), 2, r"^evcf info: error: CUDA out of memory$"),
    (RecursionError("maximum recursion depth exceeded"), 70, r"internal error"),
    (KeyError("dataset"), 2, r"^evcf info: error: missing key 'dataset'$"),
])
def test_runtime_errors_are_classified(monkeypatch, capsys, tmp_path, exc, rc, match):
    from evcf_fast.cli import data as data_cli

    def raise_it(args):
        raise exc

    monkeypatch.setattr(data_cli, "cmd_info", raise_it)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert main(["info", "x"]) == rc
    import re

    assert re.search(match, capsys.readouterr().err.strip(), re.M)


def _train_cmd(data, out, epochs):
    return [sys.executable, "-m", "evcf_fast", "train", "--data", str(data), "--out", str(out),
            "--model", "multvae", "--epochs", str(epochs), "--set", "hidden_size=8",
            "--set", "latent_size=4", "--device", "cpu", "--batch-size", "64"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_interrupted_train_says_what_was_saved_and_how_to_resume(shared, tmp_path, sig):
    """SIGTERM is handled exactly like Ctrl-C: the message names the checkpoint and the exact
    resume command (or that nothing was saved yet), exit status 130, no temporaries left."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(ev.__file__).parent.parent), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen(_train_cmd(shared["ds"], out, 10_000), env=env, text=True,
                         stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    import time

    deadline = time.time() + 240
    while not (out / "last.pt").exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)
    p.send_signal(sig)
    _, err = p.communicate(timeout=240)
    assert p.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("evcf train: interrupted; epoch "), last
    assert f"is saved in {out / 'last.pt'}" in last
    assert last.endswith(f"resume exactly with: evcf train --out {out} --resume")
    assert not [q for q in out.iterdir() if ".tmp-" in q.name]


def test_interrupt_before_any_checkpoint_says_nothing_was_saved(tmp_path):
    from evcf_fast.cli.train import train_interrupted

    class Args:
        out = tmp_path / "run"

    assert train_interrupted(Args) == (f"nothing was saved yet (no checkpoint in "
                                       f"{tmp_path / 'run'}); run the same command again to "
                                       f"start over")


def test_outcome_counts():
    """The counts reported in the README and the issue note (kept in sync by this test)."""
    counts = {}
    for c in CASES:
        counts[c.outcome] = counts.get(c.outcome, 0) + 1
    counts["api-error"] = len(API_CASES)
    counts["api-ok"] = len(API_OK)
    print(counts)
    assert sum(counts.values()) >= 100


def test_unwritable_out_is_reported_before_parsing(tmp_path, monkeypatch, capsys):
    """Issue 9: the writability of --out is checked before the parse and the split."""
    from evcf_fast.data import readers

    (tmp_path / "r.csv").write_text(GOOD)

    def never(*a, **k):
        raise AssertionError("parsed before checking --out")

    monkeypatch.setattr(readers, "collect_sources", never)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # as if not writable
    assert main(["prepare", str(tmp_path / "r.csv"), "--out", str(tmp_path / "o" / "ds"),
                 "--n-heldout", "3", "--quiet"]) == 2
    assert "is not writable" in capsys.readouterr().err
