"""``evcf compare`` end to end: score files, top-K files and per-user files of the same users.

The numbers are those of :func:`evcf_fast.compare.compare` on the same per-user values (tested
against scipy and exact enumeration in tests/test_compare.py); here the CLI must find the
sources, pair the users and report, and fail with a clear message on bad input.
"""

import json

import numpy as np
import polars as pl
import pytest

from evcf_fast.cli import main
from evcf_fast.compare import compare
from evcf_fast.data.dataset import SplitDataset, make_csr
from evcf_fast.metrics import evaluate

N_ITEMS, N_USERS = 50, 40


def _csr(rows):
    indptr = np.zeros(len(rows) + 1, np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    idx = np.concatenate([np.sort(r) for r in rows]).astype(np.int32)
    return make_csr(indptr, idx, N_ITEMS)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    rng = np.random.default_rng(1)
    fold, held = [], []
    for _ in range(N_USERS):
        items = rng.choice(N_ITEMS, 10, replace=False)
        fold.append(items[:7])
        held.append(items[7:])
    f, h = _csr(fold), _csr(held)
    ds = SplitDataset(train=_csr([rng.choice(N_ITEMS, 5, replace=False) for _ in range(30)]),
                      validation_fold_in=f, validation_heldout=h, test_fold_in=f,
                      test_heldout=h, item_ids=np.arange(N_ITEMS),
                      train_user_ids=np.arange(30), validation_user_ids=np.arange(N_USERS),
                      test_user_ids=np.arange(N_USERS) + 500)
    root = tmp_path_factory.mktemp("cmp")
    ds.save(root / "split")
    truth = h.toarray()
    scores = {"noise": rng.random((N_USERS, N_ITEMS)).astype(np.float32),
              "good": (rng.random((N_USERS, N_ITEMS)) + 0.8 * truth).astype(np.float32)}
    for name, s in scores.items():
        np.save(root / f"{name}.npy", s)
    return root, ds, scores


def test_compare_score_files_matches_the_library(setup, tmp_path, capsys):
    root, ds, scores = setup
    out = tmp_path / "t.json"
    code = main(["compare", f"noise={root / 'noise.npy'}", f"good={root / 'good.npy'}",
                 "--split", str(root / "split"), "--metrics", "ndcg@10", "recall@5",
                 "--n-permutations", "2000", "--n-bootstrap", "500", "--json", str(out),
                 "--latex", str(tmp_path / "t.tex")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "good" in printed and "noise" in printed
    got = json.loads(out.read_text())
    fold, held = ds.part("test")
    expected = compare({n: evaluate(s, held, exclude=fold, metrics=("ndcg@10", "recall@5"))
                        for n, s in scores.items()},
                       metrics=("ndcg@10", "recall@5"), n_permutations=2000, n_bootstrap=500,
                       users={n: (np.arange(N_USERS) + 500).astype(str) for n in scores})
    assert got == json.loads(expected.to_json())
    assert (tmp_path / "t.tex").read_text().startswith("\\")



def test_compare_popularity_metrics_use_the_splits_training_data(setup, tmp_path):
    """avgpop@k and novelty@k need the training popularity: compare counts the split's once
    and gets the library's numbers with ``train=ds.train``."""
    root, ds, scores = setup
    out = tmp_path / "pop.json"
    metrics = ("novelty@10", "avgpop@5")
    code = main(["compare", f"noise={root / 'noise.npy'}", f"good={root / 'good.npy'}",
                 "--split", str(root / "split"), "--metrics", *metrics,
                 "--n-permutations", "500", "--n-bootstrap", "200", "--json", str(out)])
    assert code == 0
    fold, held = ds.part("test")
    expected = compare({n: evaluate(s, held, exclude=fold, metrics=metrics, train=ds.train)
                        for n, s in scores.items()},
                       metrics=metrics, n_permutations=500, n_bootstrap=200,
                       users={n: (np.arange(N_USERS) + 500).astype(str) for n in scores})
    assert json.loads(out.read_text()) == json.loads(expected.to_json())

def test_compare_topk_and_per_user_sources(setup, tmp_path, capsys):
    root, ds, scores = setup
    # top-K file of "good" and a per-user file of "noise" (from evcf evaluate --per-user)
    order = np.argsort(-scores["good"], axis=1, kind="stable")[:, :20]
    pl.DataFrame({"user": np.repeat(np.arange(N_USERS), 20),
                  "item": order.ravel(),
                  "rank": np.tile(np.arange(1, 21), N_USERS)}).write_parquet(tmp_path / "g.parquet")
    assert main(["evaluate", "--scores", str(root / "noise.npy"), "--split", str(root / "split"),
                 "--metrics", "ndcg@10", "--per-user", str(tmp_path / "n.parquet"),
                 "--quiet"]) == 0
    capsys.readouterr()
    code = main(["compare", f"noise={tmp_path / 'n.parquet'}", f"good={tmp_path / 'g.parquet'}",
                 "--split", str(root / "split"), "--metrics", "ndcg@10",
                 "--n-permutations", "500", "--n-bootstrap", "0", "--tests", "t-test"])
    assert code == 0
    assert "good" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["compare", "a=missing.npy", "b=missing2.npy", "--split", "x"], "does not exist"),
    (["compare", "{noise}", "{noise}"], "system names must be unique"),
    (["compare", "a={noise}", "b={good}"], "--split DIR is required"),
    (["compare", "a={noise}", "b={good}", "--split", "{split}", "--baseline", "zz"], "baseline"),
    (["compare", "a={txt}", "b={good}", "--split", "{split}"], "must be a run folder"),
    (["compare", "a={noise}", "b={good}", "--split", "{split}", "--metrics", "coverage@10"],
     "coverage@10 has one value per system"),
])
def test_compare_errors(setup, tmp_path, capsys, argv, message):
    root, _, _ = setup
    (tmp_path / "x.txt").write_text("hello")
    fill = {"noise": root / "noise.npy", "good": root / "good.npy", "split": root / "split",
            "txt": tmp_path / "x.txt"}
    assert main([a.format(**fill) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_compare_refuses_to_write_over_an_input(setup, capsys):
    root, _, _ = setup
    before = (root / "good.npy").read_bytes()
    assert main(["compare", f"a={root / 'noise.npy'}", f"b={root / 'good.npy'}", "--split",
                 str(root / "split"), "--json", str(root / "good.npy")]) == 2
    assert "--json" in capsys.readouterr().err
    assert (root / "good.npy").read_bytes() == before
