"""The training loop: schedules in the log, early stopping, checkpoints, exact resume, errors."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from _train_data import clustered_split, one_torch_thread  # noqa: F401 (autouse)

import evcf_fast.models as models_pkg
from evcf_fast.errors import IncompatibleDatasetError, NonFiniteLossError
from evcf_fast.models import ModelConfig
from evcf_fast.train import TrainConfig, fit
from evcf_fast.train import checkpoint as ckpt
from evcf_fast.train.config import to_plain
from evcf_fast.train.loop import Trainer
from evcf_fast.train.schedules import beta_epoch, beta_step

N_ITEMS = 120


@pytest.fixture(scope="module")
def data():
    return clustered_split(n_items=N_ITEMS)


def mult_cfg(**kw):
    return ModelConfig(**{"model": "multvae", "n_items": N_ITEMS, "hidden_size": 16,
                          "latent_size": 4, **kw})


def hvamp_cfg(**kw):
    return ModelConfig(**{"model": "hvamp", "n_items": N_ITEMS, "hidden_size": 16,
                          "latent_size": 4, "latent2_size": 4, "num_layers": 2, "gated": True,
                          "n_components": 6, **kw})


def train_cfg(**kw):
    return TrainConfig(**{"epochs": 4, "batch_size": 64, "device": "cpu", "warmup": 3,
                          "max_beta": 0.3, "lr": 3e-3, "eval_batch_size": 16, "seed": 3, **kw})


def _strip_time(history):
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in history]


def test_fit_in_memory_logs_the_schedule_and_evaluates_the_best_epoch(data):
    res = fit(data, model_config=mult_cfg(), train_config=train_cfg(), progress=False)
    assert res.epochs_run == 4 and len(res.history) == 4 and res.run_dir is None
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4]
    assert [r["beta"] for r in res.history] == [beta_epoch(e, max_beta=0.3, warmup=3)
                                                for e in (1, 2, 3, 4)]
    assert [r["step"] for r in res.history] == [4, 8, 12, 16]  # ceil(240 / 64) steps per epoch
    for r in res.history:
        assert np.isfinite([r["loss"], r["nll"], r["kl"]]).all()
        assert r["loss"] == pytest.approx(r["nll"] + r["beta"] * r["kl"], rel=0.05)
    vals = [r["val_ndcg@100"] for r in res.history]
    assert res.best_epoch == int(np.argmax(vals)) + 1 and res.best_metric == max(vals)
    assert set(res.test.mean) == set(TrainConfig().test_metrics)
    assert all(np.isfinite(res.test.stderr[m]) for m in res.test.mean)
    # the returned model holds the best weights: re-validating gives the best metric
    from evcf_fast.train.evaluation import EvalPart, evaluate_part
    again = evaluate_part(res.model, EvalPart(*data.part("validation"), "cpu"),
                          metrics=("ndcg@100",), batch_size=7)
    assert again.mean["ndcg@100"] == pytest.approx(res.best_metric, abs=1e-12)


def test_step_schedule_logs_liang_beta(data):
    cfg = train_cfg(beta_schedule="step", anneal_cap=0.2, total_anneal_steps=10, optimizer="adam",
                    epochs=3)
    res = fit(data, model_config=mult_cfg(kl="analytic"), train_config=cfg, progress=False,
              evaluate_test=False)
    # the last update of epoch e is update number 4e - 1 (0-based)
    assert [r["beta"] for r in res.history] == [
        beta_step(4 * e - 1, anneal_cap=0.2, total_anneal_steps=10) for e in (1, 2, 3)]
    assert res.test is None


def test_learning_beats_popularity_on_clustered_data(data):
    """A structured toy problem: the trained model ranks own-cluster items first."""
    res = fit(data, model_config=mult_cfg(), progress=False,
              train_config=train_cfg(epochs=25, batch_size=32, warmup=0, max_beta=0.2))
    from evcf_fast.metrics import evaluate

    fold_in, heldout = data.part("test")
    pop = torch.from_numpy(np.asarray(data.train.sum(axis=0), np.float32).repeat(
        fold_in.shape[0], axis=0))
    pop_ndcg = evaluate(pop, heldout, exclude=fold_in, metrics=("ndcg@100",)).mean["ndcg@100"]
    assert res.test.mean["ndcg@100"] > pop_ndcg + 0.1


def test_early_stopping_uses_authors_rule(data, monkeypatch, tmp_path):
    """Scripted validation metrics: warm-up 4, patience 1 -> stop after epoch 5, best epoch 2."""
    script = iter([0.1, 0.5, 0.2, 0.3, 0.4, 0.9, 0.9])
    monkeypatch.setattr(Trainer, "validate", lambda self: next(script))
    res = fit(data, model_config=mult_cfg(), progress=False, out=tmp_path / "run",
              train_config=train_cfg(epochs=7, warmup=4, patience=1))
    # e: epoch 3 held at 0 (< warm-up), epoch 4 -> 1, epoch 5 -> 2 > 1: stop
    assert res.epochs_run == 5 and res.stopped_early and res.best_epoch == 2
    assert [r["bad_epochs"] for r in res.history] == [0, 0, 0, 1, 2]
    assert [r["best"] for r in res.history] == [True, True, False, False, False]
    best = ckpt.load_checkpoint(tmp_path / "run" / "best.pt")
    assert best["epoch"] == 2 and best["metric"] == {"ndcg@100": 0.5}
    last = ckpt.load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 5 and last["stopped"] is True
    assert json.loads((tmp_path / "run" / "test.json").read_text())["best_epoch"] == 2


def test_run_directory_contents_and_reload(data, tmp_path):
    out = tmp_path / "run"
    res = fit(data, model_config=hvamp_cfg(), train_config=train_cfg(epochs=2), out=out,
              progress=False)
    assert {p.name for p in out.iterdir()} >= {"config.json", "log.jsonl", "last.pt", "best.pt",
                                               "test.json"}
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log == res.history
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_config"] == to_plain(dataclasses.asdict(hvamp_cfg()))
    assert cfg["train_config"] == train_cfg(epochs=2).to_dict() and cfg["data"] is None
    last = ckpt.load_checkpoint(out / "last.pt")  # weights_only=True inside
    assert last["train_config"] == train_cfg(epochs=2).to_dict()
    assert last["dataset"] == ckpt.dataset_fingerprint(data)
    assert set(last["rng"]) >= {"torch_cpu", "numpy", "python", "shuffle"}
    assert last["versions"]["torch"] == torch.__version__
    model, payload = ckpt.load_model(out)
    x = torch.from_numpy(data.test_fold_in[:5].toarray())
    torch.testing.assert_close(model.scores(x), res.model.scores(x), rtol=0, atol=0)
    test = json.loads((out / "test.json").read_text())
    assert test["best_epoch"] == payload["epoch"] == res.best_epoch


@pytest.mark.parametrize("make_model, optimizer", [(mult_cfg, "adam"),
                                                   (hvamp_cfg, "adamnormgrad")])
def test_resume_after_kill_equals_uninterrupted(data, tmp_path, make_model, optimizer):
    """Kill after epoch 2 (an exception from on_epoch), resume to 5: identical weights and logs."""
    cfg = train_cfg(epochs=5, optimizer=optimizer, warmup=2, patience=10)
    full = fit(data, model_config=make_model(), train_config=cfg, out=tmp_path / "a",
               progress=False)

    def kill(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(data, model_config=make_model(), train_config=cfg, out=tmp_path / "b",
            progress=False, on_epoch=kill)
    assert ckpt.load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 2
    # some unrelated RNG use between the runs must not matter
    torch.rand(7), np.random.rand(3)
    resumed = fit(data, model_config=make_model(), train_config=cfg, out=tmp_path / "b",
                  resume=True, progress=False)
    assert _strip_time(resumed.history) == _strip_time(full.history)
    a = ckpt.load_checkpoint(tmp_path / "a" / "last.pt")
    b = ckpt.load_checkpoint(tmp_path / "b" / "last.pt")
    for k, v in a["model_state"].items():
        assert torch.equal(v, b["model_state"][k]), k
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert resumed.test.mean == full.test.mean
    assert _strip_time([json.loads(s) for s in (tmp_path / "b" / "log.jsonl").read_text()
                        .splitlines()]) == _strip_time(full.history)


def test_resume_with_more_epochs_continues(data, tmp_path):
    out = tmp_path / "run"
    fit(data, model_config=mult_cfg(), train_config=train_cfg(epochs=2), out=out, progress=False)
    more = fit(data, model_config=mult_cfg(), train_config=train_cfg(epochs=4), out=out,
               resume=True, progress=False)
    assert [r["epoch"] for r in more.history] == [1, 2, 3, 4]
    straight = fit(data, model_config=mult_cfg(), train_config=train_cfg(epochs=4),
                   progress=False)
    assert _strip_time(more.history) == _strip_time(straight.history)


# -- bad input --------------------------------------------------------------------------------

def test_resume_without_checkpoint(data, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint .* to continue"):
        fit(data, model_config=mult_cfg(), train_config=train_cfg(), out=tmp_path / "none",
            resume=True, progress=False)
    with pytest.raises(ValueError, match="needs the run directory"):
        fit(data, model_config=mult_cfg(), train_config=train_cfg(), resume=True)


@pytest.fixture
def trained_run(data, tmp_path):
    out = tmp_path / "run"
    fit(data, model_config=mult_cfg(), train_config=train_cfg(epochs=1), out=out, progress=False,
        evaluate_test=False)
    return out


def test_existing_run_is_not_overwritten(data, trained_run):
    before = (trained_run / "last.pt").read_bytes()
    with pytest.raises(FileExistsError, match="already holds a checkpoint"):
        fit(data, model_config=mult_cfg(), train_config=train_cfg(), out=trained_run,
            progress=False)
    assert (trained_run / "last.pt").read_bytes() == before


def test_resume_with_another_model(data, trained_run):
    with pytest.raises(IncompatibleDatasetError, match="checkpoint is for model 'multvae'"):
        fit(data, model_config=hvamp_cfg(), train_config=train_cfg(), out=trained_run,
            resume=True, progress=False)
    with pytest.raises(IncompatibleDatasetError, match=r"model config differs .*hidden_size"):
        fit(data, model_config=mult_cfg(hidden_size=8), train_config=train_cfg(),
            out=trained_run, resume=True, progress=False)
    with pytest.raises(IncompatibleDatasetError, match=r"train config differs .*'lr'"):
        fit(data, model_config=mult_cfg(), train_config=train_cfg(lr=1e-2), out=trained_run,
            resume=True, progress=False)


def test_resume_with_another_item_count_or_dataset(trained_run):
    other = clustered_split(n_items=N_ITEMS + 5)
    with pytest.raises(IncompatibleDatasetError, match="another dataset .*n_items"):
        fit(other, model_config=mult_cfg(n_items=N_ITEMS + 5), train_config=train_cfg(),
            out=trained_run, resume=True, progress=False)
    reseeded = clustered_split(n_items=N_ITEMS, seed=1)
    with pytest.raises(IncompatibleDatasetError, match="another dataset"):
        fit(reseeded, model_config=mult_cfg(), train_config=train_cfg(), out=trained_run,
            resume=True, progress=False)


def test_corrupt_or_foreign_checkpoint(trained_run, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(IncompatibleDatasetError, match="not a loadable evcf_fast checkpoint"):
        ckpt.load_checkpoint(bad)
    torch.save({"weights": torch.ones(2)}, bad)
    with pytest.raises(IncompatibleDatasetError, match="not an evcf_fast checkpoint"):
        ckpt.load_checkpoint(bad)
    payload = ckpt.load_checkpoint(trained_run / "last.pt")
    payload["version"] = 999
    torch.save(payload, bad)
    with pytest.raises(IncompatibleDatasetError, match="format version 999, expected 1"):
        ckpt.load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="is this a run directory"):
        ckpt.load_model(tmp_path)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path, monkeypatch):
    """A NaN in epoch 3: NonFiniteLossError naming the step; last.pt and the log stay at epoch 2."""
    real_build = models_pkg.build_model
    calls = {"n": 0}

    def build_poisoned(cfg):
        model = real_build(cfg)
        real_loss = model.loss

        def loss(x, *, beta):
            calls["n"] += 1
            value, stats = real_loss(x, beta=beta)
            if calls["n"] == 10:  # epoch 3, batch 2 (4 batches per epoch)
                value = value * float("nan")
            return value, stats

        model.loss = loss
        return model

    monkeypatch.setattr(models_pkg, "build_model", build_poisoned)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss at epoch 3, step 10 "
                                                 r"\(batch 2 of 4: loss=nan"):
        fit(data, model_config=mult_cfg(), train_config=train_cfg(epochs=5), out=out,
            progress=False)
    last = ckpt.load_checkpoint(out / "last.pt")
    assert last["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in last["model_state"].values())
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    assert not (out / "test.json").exists()


def test_device_and_precision_errors(data):
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' requested but CUDA is not available"):
            fit(data, model_config=mult_cfg(), train_config=train_cfg(device="cuda"))
    for flag in ("bf16", "tf32"):
        with pytest.raises(ValueError, match=f"{flag} needs a CUDA device, got device='cpu'"):
            fit(data, model_config=mult_cfg(), train_config=train_cfg(**{flag: True}))


def test_batch_and_item_count_errors(data):
    with pytest.raises(ValueError, match=r"batch_size=241 is larger than the number of training "
                                         r"users \(240\)"):
        fit(data, model_config=mult_cfg(), train_config=train_cfg(batch_size=241))
    with pytest.raises(IncompatibleDatasetError, match="model has n_items=121 but the dataset "
                                                       "has 120 items"):
        fit(data, model_config=mult_cfg(n_items=121), train_config=train_cfg())
    few = clustered_split(n_items=60)
    with pytest.raises(ValueError, match="metric ndcg@100 needs at least 100 items, the dataset "
                                         "has 60"):
        fit(few, model_config=mult_cfg(n_items=60), train_config=train_cfg())


def test_missing_dataset_directory(tmp_path):
    with pytest.raises(IncompatibleDatasetError, match="does not exist"):
        fit(tmp_path / "nope", model_config=mult_cfg(), train_config=train_cfg())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"epochs": 0}, ValueError, "epochs must be >= 1"),
    ({"optimizer": "sgd"}, ValueError, "optimizer must be one of"),
    ({"lr": 0.0}, ValueError, "lr must be finite and > 0"),
    ({"beta_schedule": "cosine"}, ValueError, "beta_schedule must be one of"),
    ({"patience": -1}, ValueError, "patience must be >= 0"),
    ({"device": "tpu"}, ValueError, "device must be one of"),
    ({"bf16": 1}, TypeError, "bf16 must be a bool"),
    ({"batch_size": 2.0}, TypeError, "batch_size must be an int"),
    ({"test_metrics": "ndcg@100"}, TypeError, "test_metrics must be a tuple"),
    ({"test_metrics": ()}, ValueError, "at least one metric"),
])
def test_train_config_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_train_config_round_trip():
    cfg = TrainConfig(epochs=3, patience=None, test_metrics=("ndcg@10",))
    d = cfg.to_dict()
    assert json.loads(json.dumps(d)) == d and d["test_metrics"] == ["ndcg@10"]
    assert TrainConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['nope'\]"):
        TrainConfig.from_dict({**d, "nope": 1})
    assert dataclasses.replace(cfg, epochs=4).epochs == 4


@pytest.mark.parametrize("name", ["multvae", "multdae", "vamp", "hvamp", "hvamp1"])
def test_every_model_trains(data, name):
    kw = {"model": name, "n_items": N_ITEMS, "hidden_size": 16, "latent_size": 4,
          "latent2_size": 4, "n_components": 5, "num_layers": 2 if name == "hvamp" else 1}
    if name == "multdae":
        kw["dae_l2"] = 1e-4
    res = fit(data, model_config=ModelConfig(**kw), progress=False,
              train_config=train_cfg(epochs=2, optimizer="adamnormgrad"))
    assert all(np.isfinite([r["loss"], r["nll"], r["kl"]]).all() for r in res.history)
    if name == "multdae":
        assert all(r["kl"] == 0 for r in res.history)
    assert 0 < res.test.mean["ndcg@100"] <= 1
