"""`evcf train`, `evcf recommend`, `evcf plot` and the presets, end to end on a tiny split."""

import json

import numpy as np
import pytest
import torch
from _train_data import (
    SMALL_TRAIN_FLAGS,
    clustered_split,
    one_torch_thread,  # noqa: F401 (autouse)
    saved_clustered_split,
)

from evcf_fast.cli import main
from evcf_fast.cli.train import parse_set
from evcf_fast.data.dataset import SplitDataset
from evcf_fast.models import ModelConfig
from evcf_fast.train import checkpoint as ckpt
from evcf_fast.train.inference import item_history, top_k
from evcf_fast.train.presets import PRESETS, get_preset, resolve, split_overrides

SMALL = SMALL_TRAIN_FLAGS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return saved_clustered_split(tmp_path_factory.mktemp("data") / "split")


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mv"
    assert main(["train", "--data", str(data_dir), "--model", "multvae", "--epochs", "2",
                 "--out", str(out), *SMALL]) == 0
    return out


def test_train_writes_a_run(run_dir, data_dir, capsys):
    assert {p.name for p in run_dir.iterdir()} >= {"config.json", "log.jsonl", "last.pt",
                                                   "best.pt", "test.json"}
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["data"] == str(data_dir.resolve())
    assert cfg["model_config"]["hidden_size"] == 16 and cfg["train_config"]["epochs"] == 2
    test = json.loads((run_dir / "test.json").read_text())
    assert "ndcg@100" in json.dumps(test)


def test_train_resume_from_run_directory_alone(data_dir, tmp_path, capsys):
    """--resume needs only --out; more --epochs continue the same trajectory as one long run."""
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--model", "multvae", *SMALL]
    assert main(["train", "--data", str(data_dir), "--epochs", "3", "--out", str(a), *args]) == 0
    assert main(["train", "--data", str(data_dir), "--epochs", "2", "--out", str(b), *args]) == 0
    assert main(["train", "--out", str(b), "--resume", "--epochs", "3", "--quiet"]) == 0
    la = ckpt.load_checkpoint(a / "last.pt")
    lb = ckpt.load_checkpoint(b / "last.pt")
    assert lb["epoch"] == 3
    for k, v in la["model_state"].items():
        assert torch.equal(v, lb["model_state"][k])
    capsys.readouterr()


@pytest.mark.parametrize("argv, match", [
    (["--model", "multvae", "--resume"], "no checkpoint .* to continue"),
    (["--model", "multvae", "--set", "bogus=1"], "unknown override key 'bogus'"),
    (["--model", "multvae", "--set", "hidden_size"], "--set expects KEY=VALUE"),
    (["--preset", "nope"], "unknown preset 'nope'"),
    ([], "no model given"),
    (["--model", "multvae", "--bf16"], "bf16 needs a CUDA device"),
    (["--model", "multvae", "--batch-size", "1000"], "larger than the number of training users"),
])
def test_train_errors(data_dir, tmp_path, capsys, argv, match):
    small = [a for a in SMALL if a not in ("--batch-size", "64")] if "--batch-size" in argv \
        else SMALL
    rc = main(["train", "--data", str(data_dir), "--out", str(tmp_path / "r"), *small, *argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("evcf train: error:")
    assert pytest.importorskip("re").search(match, err), err


def test_train_error_paths_without_data(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--model", "multvae"]) == 2
    assert "--data DIR is required" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"),
                 "--model", "multvae"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_train_cuda_requested_but_absent(data_dir, tmp_path, capsys):
    assert main(["train", "--data", str(data_dir), "--out", str(tmp_path / "r"), "--model",
                 "multvae", "--device", "cuda", "--quiet"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_existing_run_needs_resume(run_dir, data_dir, capsys):
    assert main(["train", "--data", str(data_dir), "--model", "multvae", "--out", str(run_dir),
                 *SMALL]) == 2
    assert "already holds a checkpoint" in capsys.readouterr().err


def test_recommend_users_and_items(run_dir, data_dir, capsys):
    ds = SplitDataset.load(data_dir)
    assert main(["recommend", "--run", str(run_dir), "--user", "3000", "1005", "--k", "5",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [u["user"] for u in out] == ["3000", "1005"]
    assert [u["history"] for u in out] == ["test fold-in", "train"]
    raw_items = [str(i) for i in ds.item_ids.tolist()]
    seen = {raw_items[c] for c in ds.test_fold_in[0].indices}
    recs = [r["item"] for r in out[0]["recommendations"]]
    assert len(recs) == 5 and not seen & set(recs)
    scores = [r["score"] for r in out[0]["recommendations"]]
    assert scores == sorted(scores, reverse=True)
    # the same ranking as scoring the fold-in row directly with the best model
    model, _ = ckpt.load_model(run_dir)
    s = model.scores(torch.from_numpy(ds.test_fold_in[0].toarray())).numpy()[0]
    s[ds.test_fold_in[0].indices] = -np.inf
    expected = np.argsort(-s, kind="stable")[:5]
    assert recs == [raw_items[c] for c in expected]

    assert main(["recommend", "--run", str(run_dir), "--items", "7,17,27", "--k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "user\thistory\trank\titem\tscore" and len(lines) == 4
    assert not {"7", "17", "27"} & {line.split("\t")[3] for line in lines[1:]}


@pytest.mark.parametrize("argv, match", [
    (["--user", "99999"], "user '99999' is not in the dataset"),
    (["--items", "7,8"], r"unknown item id\(s\) \['8'\]"),
    (["--items", ","], "--items expects a comma-separated list"),
    (["--user", "3000", "--k", "0"], "k must be an int >= 1"),
])
def test_recommend_errors(run_dir, capsys, argv, match):
    assert main(["recommend", "--run", str(run_dir), *argv]) == 2
    assert pytest.importorskip("re").search(match, capsys.readouterr().err)


def test_recommend_missing_run(tmp_path, capsys):
    assert main(["recommend", "--run", str(tmp_path), "--user", "1"]) == 2
    assert "a run directory written by `evcf train`" in capsys.readouterr().err


def test_top_k_pads_when_history_covers_almost_everything():
    """48 of 50 items seen: only the 2 unseen ones are recommended, the rest is -1 padding."""
    from evcf_fast.models import build_model

    model = build_model(ModelConfig(model="multvae", n_items=50, hidden_size=8, latent_size=2))
    ds = type("Items", (), {"item_ids": np.arange(50)})()
    hist = item_history(ds, list(range(48)))
    items, scores = top_k(model, hist, k=4)
    assert sorted(items[0, :2].tolist()) == [48, 49] and items[0, 2:].tolist() == [-1, -1]
    assert np.isfinite(scores[0, :2]).all() and np.isinf(scores[0, 2:]).all()
    items, _ = top_k(model, hist, k=60)  # k > n_items
    assert items.shape == (1, 60) and (items[0, 2:] == -1).all()


def test_plot_writes_png(run_dir, tmp_path, capsys):
    assert main(["plot", str(run_dir)]) == 0
    png = run_dir / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == str(png)
    other = tmp_path / "c.png"
    assert main(["plot", str(run_dir), "--out", str(other)]) == 0 and other.exists()
    assert main(["plot", str(tmp_path)]) == 2
    assert "log.jsonl" in capsys.readouterr().err


# -- presets ------------------------------------------------------------------------------------

def test_parse_set():
    assert parse_set(["a=1", "b=0.5", "c=true", "d=null", "e=[1, 2]", "f=adam", "g-h=None"]) == \
        {"a": 1, "b": 0.5, "c": True, "d": None, "e": [1, 2], "f": "adam", "g_h": None}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_resolves(name):
    model, train = resolve(n_items=321, preset=name)
    assert model.n_items == 321
    for k, v in get_preset(name).model.items():
        assert getattr(model, k) == v
    for k, v in get_preset(name).train.items():
        assert getattr(train, k) == v


def test_evcf_hvamp_gated_is_the_readme_command():
    model, train = resolve(n_items=17_769, preset="evcf-hvamp-gated-netflix")
    assert (model.model, model.num_layers, model.gated, model.likelihood) == \
        ("hvamp", 2, True, "bernoulli")
    assert (model.hidden_size, model.latent_size, model.latent2_size, model.n_components) == \
        (600, 200, 200, 1000)
    assert (model.kl, model.logvar_clip, model.init) == ("mc", (-12.0, 4.0), "he")
    assert (train.optimizer, train.lr, train.batch_size, train.max_beta, train.warmup,
            train.epochs, train.patience, train.seed, train.beta_schedule) == \
        ("adamnormgrad", 5e-4, 200, 0.3, 100, 400, 50, 14, "epoch")
    liang, liang_train = resolve(n_items=10, preset="multvae-liang")
    assert (liang.kl, liang.init, liang.logvar_clip) == ("analytic", "xavier", None)
    assert (liang_train.optimizer, liang_train.lr, liang_train.batch_size, liang_train.epochs,
            liang_train.anneal_cap, liang_train.total_anneal_steps, liang_train.patience) == \
        ("adam", 1e-3, 500, 200, 0.2, 200_000, None)


def test_overrides_win_and_unknown_keys_fail():
    model, train = resolve(n_items=10, preset="evcf-hvamp-gated",
                           overrides={"hidden_size": 32, "epochs": 3, "gated": False})
    assert (model.hidden_size, model.gated, train.epochs) == (32, False, 3)
    assert model.model == "hvamp" and train.max_beta == 0.3
    with pytest.raises(ValueError, match="unknown override key 'hiden_size'"):
        resolve(n_items=10, preset="evcf-baseline", overrides={"hiden_size": 3})
    with pytest.raises(ValueError, match="unknown preset 'x'; expected one of"):
        get_preset("x")
    with pytest.raises(ValueError, match="does not match the dataset's 10 items"):
        resolve(n_items=10, preset="evcf-baseline", overrides={"n_items": 11})
    assert split_overrides({"lr": 1.0, "dropout": 0.1}) == ({"dropout": 0.1}, {"lr": 1.0})


# -- evcf evaluate --run ------------------------------------------------------------------------

def test_evaluate_run_matches_training_summary(run_dir, data_dir, tmp_path, capsys):
    """Scoring the best checkpoint again reproduces test.json and the best validation metric."""
    out = tmp_path / "t.json"
    assert main(["evaluate", "--run", str(run_dir), "--metrics", "ndcg@100,recall@50",
                 "--quiet", "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    test = json.loads((run_dir / "test.json").read_text())
    for m in ("ndcg@100", "recall@50"):
        assert got["metrics"][m]["mean"] == pytest.approx(test["metrics"][m]["mean"], abs=1e-12)
    assert got["run"] == str(run_dir) and got["split"] == str(data_dir.resolve())
    assert main(["evaluate", "--run", str(run_dir), "--part", "validation", "--metrics",
                 "ndcg@100", "--split", str(data_dir), "--quiet", "--json", str(out)]) == 0
    best = ckpt.load_checkpoint(run_dir / "best.pt")["metric"]["ndcg@100"]
    assert json.loads(out.read_text())["metrics"]["ndcg@100"]["mean"] == \
        pytest.approx(best, abs=1e-12)
    capsys.readouterr()


def test_evaluate_run_errors(run_dir, tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path), "--quiet"]) == 2
    assert "a run directory written by `evcf train`" in capsys.readouterr().err
    other = clustered_split(n_items=130, seed=5)
    ds = SplitDataset(train=other.train, validation_fold_in=other.validation_fold_in,
                      validation_heldout=other.validation_heldout, test_fold_in=other.test_fold_in,
                      test_heldout=other.test_heldout, item_ids=np.arange(130),
                      train_user_ids=np.arange(240), validation_user_ids=np.arange(40) + 300,
                      test_user_ids=np.arange(40) + 400, meta={})
    wrong = ds.save(tmp_path / "other")
    assert main(["evaluate", "--run", str(run_dir), "--split", str(wrong), "--quiet"]) == 2
    assert "checkpoint was written for another dataset" in capsys.readouterr().err
    assert main(["evaluate", "--scores", "x.npy", "--quiet"]) == 2
    assert "--split DIR is required" in capsys.readouterr().err
