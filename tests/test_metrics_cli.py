"""``evcf evaluate`` end to end on a small SplitDataset built in memory and saved to tmp_path.

The printed table, the JSON summary and the per-user Parquet are checked against the float64
oracle of tests/test_metrics_oracle.py; every CLI error path exits with status 2 and a message.
"""

import json
import re

import numpy as np
import polars as pl
import pytest
from test_metrics_oracle import assert_close, oracle, rows_of

from evcf_fast.cli import main
from evcf_fast.data.dataset import SplitDataset, make_csr

N_ITEMS = 60


def _csr(rows):
    indptr = np.zeros(len(rows) + 1, np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    idx = np.concatenate([np.sort(r) for r in rows]).astype(np.int32)
    return make_csr(indptr, idx, N_ITEMS)


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    rng = np.random.default_rng(0)

    def part(n_users):
        fold, held = [], []
        for _ in range(n_users):
            items = rng.choice(N_ITEMS, 12, replace=False)
            fold.append(items[:9])
            held.append(items[9:])
        return _csr(fold), _csr(held)

    vf, vh = part(7)
    tf, th = part(9)
    th = _csr([rows_of(th)[u] if u != 4 else [] for u in range(9)])  # a user to skip
    ds = SplitDataset(train=_csr([rng.choice(N_ITEMS, 5, replace=False) for _ in range(20)]),
                      validation_fold_in=vf, validation_heldout=vh, test_fold_in=tf,
                      test_heldout=th, item_ids=np.arange(N_ITEMS) + 1000,
                      train_user_ids=np.arange(20), validation_user_ids=np.arange(7) + 100,
                      test_user_ids=np.array([f"u{i}" for i in range(9)]))
    path = tmp_path_factory.mktemp("cli") / "split"
    ds.save(path)
    return path


def _part(split_dir, name):
    ds = SplitDataset.load(split_dir)
    fold, held = ds.part(name)
    return rows_of(fold), rows_of(held)


@pytest.mark.parametrize("part, n_users", [("test", 9), ("validation", 7)])
def test_evaluate_scores_file_json_and_per_user(split_dir, tmp_path, capsys, part, n_users):
    scores = np.random.default_rng(1).standard_normal((n_users, N_ITEMS)).astype(np.float32)
    np.save(tmp_path / "s.npy", scores)
    metrics = ["ndcg@10", "recall@5", "map@20"]
    rc = main(["evaluate", "--scores", str(tmp_path / "s.npy"), "--split", str(split_dir),
               "--part", part, "--metrics", "ndcg@10,recall@5", "map@20", "--json",
               str(tmp_path / "out.json"), "--per-user", str(tmp_path / "users.parquet"),
               "--quiet", "--batch-size", "4", "--threads", "1"])
    assert rc == 0
    fold, held = _part(split_dir, part)
    want = oracle(scores, held, fold, metrics)
    out = capsys.readouterr().out
    assert "ndcg@10" in out and "map@20" in out and f"{n_users} users" in out
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["part"] == part and summary["n_users"] == n_users
    for m in metrics:
        assert summary["metrics"][m]["mean"] == pytest.approx(np.nanmean(want[m]), abs=1e-12)
    df = pl.read_parquet(tmp_path / "users.parquet")
    assert df.columns[:3] == ["user", "user_id", "n_heldout"]
    assert df["user"].to_list() == list(range(n_users))
    assert_close({m: df[m].to_numpy() for m in metrics}, want)


def test_evaluate_topk_parquet_by_rank_and_by_score(split_dir, tmp_path, capsys):
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, (9, N_ITEMS)).astype(np.float64)  # ties: lower item first
    fold, held = _part(split_dir, "test")
    users, items, ranks, vals = [], [], [], []
    for u in range(9):
        if u == 3:
            continue  # a user without a list: all metrics 0
        order = np.lexsort((np.arange(N_ITEMS), -scores[u]))[:25]
        users += [u] * 25
        items += order.tolist()
        ranks += list(range(1, 26))
        vals += scores[u, order].tolist()
    perm = rng.permutation(len(users))  # row order in the file does not matter
    frame = pl.DataFrame({"user": np.array(users)[perm], "item": np.array(items)[perm]})
    by_rank = frame.with_columns(pl.Series("rank", np.array(ranks)[perm]))
    by_score = frame.with_columns(pl.Series("score", np.array(vals)[perm]))
    by_rank.write_parquet(tmp_path / "rank.parquet")
    by_score.write_parquet(tmp_path / "score.parquet")
    # the lists ignore the fold-in items (9 per user); evaluate drops them, which leaves at
    # least the oracle's first 16 items: cut-offs up to 16 must agree with the oracle
    metrics = ["ndcg@15", "recall@10", "mrr@16"]
    want = oracle(scores, held, fold, metrics)
    for m in metrics:
        want[m][3] = 0.0  # user 3 has no list (and has held-out items)
    for name in ("rank", "score"):
        rc = main(["evaluate", "--topk", str(tmp_path / f"{name}.parquet"), "--split",
                   str(split_dir), "--metrics", *metrics, "--per-user",
                   str(tmp_path / f"{name}_users.parquet")])
        assert rc == 0
        df = pl.read_parquet(tmp_path / f"{name}_users.parquet")
        assert_close({m: df[m].to_numpy() for m in metrics}, want)
    assert "9 users: 8 evaluated, 1 skipped" in capsys.readouterr().out


@pytest.mark.parametrize("make, match", [
    (lambda: pl.DataFrame({"user": [0], "thing": [1]}), "has columns .* expected user, item"),
    (lambda: pl.DataFrame({"user": [0], "item": [99], "rank": [1]}),
     r"'item' must be item indices in \[0, 60\)"),
    (lambda: pl.DataFrame({"user": [50], "item": [1], "rank": [1]}),
     r"'user' must be row indices in \[0, 9\)"),
    (lambda: pl.DataFrame({"user": [0], "item": [1.5], "rank": [1]}),
     "top-K column 'item' must hold integers"),
    (lambda: pl.DataFrame({"user": [0, 0], "item": [1, 1], "rank": [1, 2]}),
     "topk repeats an item within row 0"),
    (lambda: pl.DataFrame({"user": [0], "item": [1], "score": [float("nan")]}),
     "top-K column 'score' holds NaN in 1 rows; pass --nan-as-neg-inf"),
])
def test_topk_file_errors(split_dir, tmp_path, capsys, make, match):
    make().write_parquet(tmp_path / "bad.parquet")
    rc = main(["evaluate", "--topk", str(tmp_path / "bad.parquet"), "--split", str(split_dir),
               "--metrics", "ndcg@5"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("evcf evaluate: error: ")
    assert re.search(match, err), err


def test_cli_errors(split_dir, tmp_path, capsys):
    np.save(tmp_path / "wrong.npy", np.zeros((3, N_ITEMS), np.float32))
    np.save(tmp_path / "nan.npy", np.full((9, N_ITEMS), np.nan, np.float32))
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    cases = [
        (["--scores", str(tmp_path / "wrong.npy")], r"has shape \(3, 60\), but part 'test' of "
                                                    r".* has 9 users and 60 items"),
        (["--scores", str(tmp_path / "missing.npy")], "scores file .* does not exist"),
        (["--scores", str(tmp_path / "junk.parquet")], "is not a readable .npy array"),
        (["--scores", str(tmp_path / "nan.npy"), "--metrics", "ndcg@5"],
         "scores contain NaN in 9 of 9 rows"),
        (["--scores", str(tmp_path / "nan.npy")], r"k must be in \[1, n_items=60\], got ndcg@100"),
        (["--scores", str(tmp_path / "nan.npy"), "--metrics", "ndcg@500"],
         r"k must be in \[1, n_items=60\]"),
        (["--scores", str(tmp_path / "nan.npy"), "--metrics", "bleu@5"], "unknown metric"),
        (["--topk", str(tmp_path / "junk.parquet")], "is not a readable Parquet file"),
        (["--topk", str(tmp_path / "none.parquet")], "top-K file .* does not exist"),
    ]
    for extra, match in cases:
        assert main(["evaluate", "--split", str(split_dir), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert re.search(match, err), (extra, err)
    assert main(["evaluate", "--scores", str(tmp_path / "wrong.npy"), "--split",
                 str(tmp_path / "nosplit")]) == 2
    assert "does not exist or is not a directory" in capsys.readouterr().err


def test_nan_as_neg_inf_flag(split_dir, tmp_path, capsys):
    scores = np.random.default_rng(3).standard_normal((9, N_ITEMS))
    scores[:, ::7] = np.nan
    np.save(tmp_path / "s.npy", scores)
    rc = main(["evaluate", "--scores", str(tmp_path / "s.npy"), "--split", str(split_dir),
               "--nan-as-neg-inf", "--metrics", "ndcg@10", "--json", str(tmp_path / "o.json"),
               "--quiet", "--recall-denominator", "heldout"])
    assert rc == 0
    fold, held = _part(split_dir, "test")
    want = np.nanmean(oracle(scores, held, fold, ["ndcg@10"])["ndcg@10"])
    got = json.loads((tmp_path / "o.json").read_text())
    assert got["metrics"]["ndcg@10"]["mean"] == pytest.approx(want, abs=1e-12)
    assert got["recall_denominator"] == "heldout"


def test_help_lists_examples(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "evcf evaluate --topk recs.parquet" in capsys.readouterr().out


def test_convention_options_and_beyond_metrics(split_dir, tmp_path, capsys):
    """--ties/--map-denominator/--empty-users and beyond-accuracy metrics (issue 11), against
    the conventions oracle; avgpop/novelty read the split's training popularity."""
    from test_metrics_conventions import oracle as conv_oracle

    scores = np.random.default_rng(4).integers(0, 3, (9, N_ITEMS)).astype(np.float32)
    np.save(tmp_path / "s.npy", scores)
    metrics = ["ndcg@10", "map@10", "f1@5", "rprec@10", "coverage@10", "novelty@5"]
    rc = main(["evaluate", "--scores", str(tmp_path / "s.npy"), "--split", str(split_dir),
               "--metrics", ",".join(metrics), "--ties", "average", "--map-denominator",
               "hits", "--empty-users", "zero", "--json", str(tmp_path / "o.json"), "--quiet"])
    assert rc == 0
    ds = SplitDataset.load(split_dir)
    fold, held = ds.part("test")
    want, agg = conv_oracle(scores, held, rows_of(fold), metrics, ties="average",
                            map_denominator="hits", empty_users="zero", train=ds.train)
    got = json.loads((tmp_path / "o.json").read_text())
    assert got["ties"] == "average" and got["empty_users"] == "zero" and got["n_skipped"] == 0
    for m in metrics:
        expected = agg[m] if m in agg else np.mean(want[m])
        assert got["metrics"][m]["mean"] == pytest.approx(expected, abs=1e-12), m
    assert "1 without held-out items counted as 0" in capsys.readouterr().out
    assert main(["evaluate", "--scores", str(tmp_path / "s.npy"), "--split", str(split_dir),
                 "--empty-users", "raise", "--metrics", "ndcg@5"]) == 2
    assert "1 users without held-out items (first: row 4)" in capsys.readouterr().err
    pl.DataFrame({"user": [0], "item": [1], "rank": [1]}).write_parquet(tmp_path / "t.parquet")
    assert main(["evaluate", "--topk", str(tmp_path / "t.parquet"), "--split", str(split_dir),
                 "--ties", "average"]) == 2
    assert "--ties average applies to --scores" in capsys.readouterr().err
