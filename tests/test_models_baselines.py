"""Closed-form baselines (popularity, ItemKNN, EASE) against direct NumPy float64 oracles, and as
models of the zoo: run folder, evaluate --run, recommend, plot."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _train_data import clustered_split, one_torch_thread  # noqa: F401 (autouse)
from hypothesis import given, settings
from hypothesis import strategies as st

from evcf_fast.cli.main import main
from evcf_fast.models import ModelConfig, build_model
from evcf_fast.models import baselines as bl
from evcf_fast.train import TrainConfig, fit
from evcf_fast.train.inference import load_run, part_scores

# -- oracles: the definitions, dense float64 -------------------------------------------------


def oracle_popularity(x, hist):
    return np.tile((x > 0).sum(axis=0).astype(np.float64), (hist.shape[0], 1))


def oracle_itemknn(x, hist, *, k, shrink):
    x = (x > 0).astype(np.float64)
    d = x.shape[1]
    c = x.T @ x
    n = np.diag(c).copy()
    sim = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            den = np.sqrt(n[i] * n[j]) + shrink
            if i != j and den > 0:
                sim[i, j] = c[i, j] / den
    kept = np.zeros((d, d))
    for i in range(d):
        cand = [j for j in range(d) if j != i]
        cand.sort(key=lambda j: (-sim[i, j], j))   # largest first, lower index on ties
        for j in cand[:k]:
            kept[i, j] = sim[i, j]
    return hist @ kept


def oracle_ease(x, hist, *, lam):
    x = (x > 0).astype(np.float64)
    g = x.T @ x + lam * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return hist @ b


def fitted(model, x, **cfg):
    m = build_model(ModelConfig(model=model, n_items=x.shape[1], **cfg))
    return m.fit(sp.csr_matrix(x))


def scores_of(m, hist, *, sparse):
    t = torch.from_numpy(hist.astype(np.float32))
    return m.scores(t.to_sparse_csr() if sparse else t).double().numpy()


binary = st.integers(2, 9).flatmap(lambda d: st.integers(1, 14).flatmap(
    lambda u: st.lists(st.lists(st.booleans(), min_size=d, max_size=d), min_size=u, max_size=u)))


@settings(max_examples=40, deadline=None)
@given(rows=binary, k=st.integers(1, 10), shrink=st.sampled_from([0.0, 0.5, 10.0]),
       sparse=st.booleans())
def test_itemknn_matches_oracle(rows, k, shrink, sparse):
    x = np.array(rows, np.float64)
    hist = x[::-1].copy()
    m = fitted("itemknn", x, neighbours=k, shrink=shrink)
    np.testing.assert_allclose(scores_of(m, hist, sparse=sparse),
                               oracle_itemknn(x, hist, k=k, shrink=shrink), rtol=1e-5, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(rows=binary, lam=st.sampled_from([0.5, 3.0, 500.0]), sparse=st.booleans(),
       dtype=st.sampled_from(["float32", "float64"]))
def test_ease_matches_oracle(rows, lam, sparse, dtype):
    x = np.array(rows, np.float64)
    hist = x[::-1].copy()
    m = fitted("ease", x, ease_lambda=lam, fit_dtype=dtype)
    tol = 1e-6 if dtype == "float64" else 2e-4
    np.testing.assert_allclose(scores_of(m, hist, sparse=sparse),
                               oracle_ease(x, hist, lam=lam), rtol=tol, atol=tol)
    assert np.all(np.diag(m.weight.numpy()) == 0)


@settings(max_examples=20, deadline=None)
@given(rows=binary, sparse=st.booleans())
def test_popularity_matches_oracle(rows, sparse):
    x = np.array(rows, np.float64)
    m = fitted("popularity", x)
    np.testing.assert_array_equal(scores_of(m, x, sparse=sparse), oracle_popularity(x, x))


def test_hand_computed_cases():
    # 3 users, 3 items: item 0 with everyone, items 1 and 2 each with user 0 only
    x = np.array([[1, 1, 1], [1, 0, 0], [1, 0, 0]], np.float64)
    # c = [[3,1,1],[1,1,1],[1,1,1]]; n = (3, 1, 1); shrink 0: sim(0,1) = 1/sqrt(3), sim(1,2) = 1
    m = fitted("itemknn", x, neighbours=1, shrink=0.0)
    assert m.neighbour_index.tolist() == [[1], [2], [1]]       # ties (1 and 2 for item 0): lower
    np.testing.assert_allclose(m.neighbour_sim.numpy().ravel(), [1 / np.sqrt(3), 1, 1], rtol=1e-6)
    # history {0}: only item 0's one neighbour (item 1) scores
    np.testing.assert_allclose(scores_of(m, np.array([[1.0, 0, 0]]), sparse=True),
                               [[0, 1 / np.sqrt(3), 0]], rtol=1e-6)
    # EASE with one item pair: X = [[1, 1]] * 2 users -> G = [[2+l, 2], [2, 2+l]]
    lam = 1.0
    ease = fitted("ease", np.ones((2, 2)), ease_lambda=lam)
    # P = G^-1; B_01 = -P_01 / P_11 = 2 / (2 + lam)
    np.testing.assert_allclose(ease.weight.numpy(), [[0, 2 / 3], [2 / 3, 0]], rtol=1e-6)
    pop = fitted("popularity", x)
    assert pop.item_counts.tolist() == [3, 1, 1]


def test_duplicates_and_nonbinary_training_values_count_once():
    x = sp.csr_matrix((np.array([5.0, 2.0, 1.0]), np.array([0, 0, 1]), np.array([0, 2, 3])),
                      shape=(2, 2))   # row 0 has item 0 twice with values 5 and 2
    m = build_model(ModelConfig(model="popularity", n_items=2)).fit(x)
    assert m.item_counts.tolist() == [1, 1]


def test_ease_memory_error_names_the_need(monkeypatch):
    monkeypatch.setattr(bl, "available_bytes", lambda device: 1000)
    m = build_model(ModelConfig(model="ease", n_items=20, fit_dtype="float64"))
    with pytest.raises(ValueError, match=r"needs about .* GiB on cpu .*only 0.00 GiB.*float32"):
        m.fit(sp.csr_matrix(np.ones((3, 20))))
    assert bl.ease_memory_bytes(20_000, "float32") == 3 * 20_000 ** 2 * 4


@pytest.mark.parametrize("bad, match", [
    ({"ease_lambda": 0.0}, "ease_lambda must be > 0"),
    ({"shrink": -1.0}, "shrink must be >= 0"),
    ({"neighbours": 0}, "neighbours"),
    ({"fit_dtype": "float16"}, "unknown fit_dtype"),
])
def test_bad_baseline_configs(bad, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(model="ease", n_items=5, **bad)


def test_loss_is_a_clear_error():
    m = build_model(ModelConfig(model="ease", n_items=4))
    with pytest.raises(TypeError, match="closed form"):
        m.loss(torch.ones(1, 4))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_ease_on_cuda_matches_cpu():
    rng = np.random.default_rng(0)
    x = (rng.random((300, 60)) < 0.2).astype(np.float64)
    cpu = fitted("ease", x, ease_lambda=5.0)
    gpu = build_model(ModelConfig(model="ease", n_items=60, ease_lambda=5.0)).to("cuda")
    gpu.fit(sp.csr_matrix(x), device="cuda")
    np.testing.assert_allclose(gpu.weight.cpu().numpy(), cpu.weight.numpy(), rtol=1e-5,
                               atol=1e-6)


# -- models of the zoo: a normal run folder ----------------------------------------------------

@pytest.fixture(scope="module")
def data():
    return clustered_split(n_items=120)


@pytest.fixture(scope="module")
def split_dir(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "clustered"
    data.save(path)
    return path


@pytest.mark.parametrize("model", ["popularity", "itemknn", "ease"])
def test_fit_writes_a_normal_run(data, split_dir, tmp_path, model):
    cfg = ModelConfig(model=model, n_items=120, neighbours=10, ease_lambda=20.0)
    res = fit(split_dir, model_config=cfg, train_config=TrainConfig(device="cpu"),
              out=tmp_path / "r", progress=False)
    run = tmp_path / "r"
    assert {"config.json", "log.jsonl", "best.pt", "test.json"} <= {p.name for p in run.iterdir()}
    test = json.loads((run / "test.json").read_text())
    assert test["best_epoch"] == 1
    assert res.test.mean["ndcg@100"] == pytest.approx(test["metrics"]["ndcg@100"]["mean"])
    # the stored weights give the same scores as the fitted model
    scores, fold_in, _ = part_scores(run, part="test")
    direct = res.model.scores(torch.from_numpy(fold_in.toarray()))
    np.testing.assert_allclose(scores.numpy(), direct.numpy(), rtol=1e-6)
    model_back, _, payload = load_run(run)
    assert payload["model_config"]["model"] == model
    with pytest.raises(FileExistsError, match="already holds"):
        fit(data, model_config=cfg, train_config=TrainConfig(device="cpu"), out=run,
            progress=False)


def test_ease_beats_popularity_on_clustered_data(data):
    cfg = TrainConfig(device="cpu")
    pop = fit(data, model_config=ModelConfig(model="popularity", n_items=120), train_config=cfg,
              progress=False)
    ease = fit(data, model_config=ModelConfig(model="ease", n_items=120, ease_lambda=10.0),
               train_config=cfg, progress=False)
    assert ease.test.mean["ndcg@100"] > pop.test.mean["ndcg@100"] + 0.1


def test_cli_train_evaluate_recommend_plot(data, split_dir, tmp_path, capsys):
    split = split_dir
    run = tmp_path / "ease"
    assert main(["train", "--data", str(split), "--model", "ease", "--set", "ease_lambda=5",
                 "--device", "cpu", "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", "--run", str(run), "--json", str(tmp_path / "t.json"),
                 "--metrics", "ndcg@100", "--quiet"]) == 0
    again = json.loads((tmp_path / "t.json").read_text())
    stored = json.loads((run / "test.json").read_text())
    mean = "metrics", "ndcg@100", "mean"
    assert again[mean[0]][mean[1]][mean[2]] == pytest.approx(
        stored[mean[0]][mean[1]][mean[2]], rel=1e-6)
    capsys.readouterr()
    user = str(data.test_user_ids[0])
    assert main(["recommend", "--run", str(run), "--user", user, "--k", "3", "--json"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs[0]["recommendations"]) == 3
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").stat().st_size > 0
    assert main(["train", "--data", str(split), "--model", "ease", "--set", "ease_lambda=0",
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "ease_lambda must be > 0" in capsys.readouterr().err


def test_itemknn_blocks_and_ties_match_a_dense_reference(monkeypatch):
    # many equal similarities (small integer counts) and several row blocks
    monkeypatch.setattr(bl, "_KNN_BLOCK_ENTRIES", 7 * 150)
    rng = np.random.default_rng(1)
    p = 1.0 / np.arange(1, 151) ** 0.8
    x = np.zeros((400, 150))
    for row in x:
        row[rng.choice(150, size=12, replace=False, p=p / p.sum())] = 1.0
    for shrink in (0.0, 10.0):
        index, value = bl.knn_neighbours(sp.csr_matrix(x), k=30, shrink=shrink)
        c = x.T @ x
        n = np.diag(c).copy()
        sim = c / (np.sqrt(np.outer(n, n)) + shrink)
        sim[np.isnan(sim)] = 0.0
        np.fill_diagonal(sim, -np.inf)
        order = np.argsort(-sim, axis=1, kind="stable")[:, :30]
        np.testing.assert_array_equal(index, order)
        np.testing.assert_array_equal(value, np.take_along_axis(sim, order, axis=1))
