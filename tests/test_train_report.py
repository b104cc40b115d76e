"""Daily use of `evcf train` (issue 13): --config/--set/flag merging, --dry-run, presets,
the start summary and budget notes, per-epoch lines, append-only logs with torn lines, the
per-user test file, plots, evaluate wording and defaults in every --help."""

import argparse
import json
import math
import re

import numpy as np
import polars as pl
import pytest
from _train_data import (
    SMALL_TRAIN_FLAGS,
    one_torch_thread,  # noqa: F401 (autouse)
    saved_clustered_split,
)

from evcf_fast.cli import main
from evcf_fast.cli.main import build_parser
from evcf_fast.train.config import TrainConfig
from evcf_fast.train.config_file import merge_sources, read_config_file
from evcf_fast.train.logs import RunLog, read_log
from evcf_fast.train.report import budget_warnings

SMALL = SMALL_TRAIN_FLAGS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return saved_clustered_split(tmp_path_factory.mktemp("data") / "split")


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "mv"
    assert main(["train", "--data", str(data_dir), "--model", "multvae", "--epochs", "3",
                 "--out", str(out), *SMALL]) == 0
    return out


# -- --config, --set and flags ------------------------------------------------------------------

def test_merge_sources_names_both_sources():
    assert merge_sources(("a", {"x": 1}), ("b", {"x": 1, "y": 2})) == {"x": 1, "y": 2}
    with pytest.raises(ValueError, match=r"epochs is set twice: 5 by --set epochs=5 and 7 by "
                                         r"--epochs 7; give it once"):
        merge_sources(("--set epochs=5", {"epochs": 5}), ("--epochs 7", {"epochs": 7}))


def test_conflicting_command_line_is_an_error(data_dir, tmp_path, capsys):
    base = ["train", "--data", str(data_dir), "--model", "multvae", "--out", str(tmp_path / "r")]
    assert main([*base, "--set", "epochs=5", "--epochs", "7", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "epochs is set twice: 5 by --set epochs=5 and 7 by --epochs 7" in err
    assert main([*base, "--set", "lr=0.1", "--set", "lr=0.2", "--dry-run"]) == 2
    assert "by --set lr=0.1 and 0.2 by --set lr=0.2" in capsys.readouterr().err
    assert main([*base, "--set", "epochs=7", "--epochs", "7", "--dry-run"]) == 0  # same value
    assert not (tmp_path / "r").exists()


def test_read_config_file_layouts(tmp_path):
    flat = tmp_path / "a.json"
    flat.write_text(json.dumps({"preset": "evcf-baseline", "epochs": 4, "hidden-size": 8}))
    assert read_config_file(flat) == {"preset": "evcf-baseline", "epochs": 4, "hidden_size": 8}
    toml = tmp_path / "b.toml"
    toml.write_text('data = "d"\nlr = 0.01\n[model_config]\nmodel = "vamp"\n'
                    '[train_config]\nepochs = 2\n')
    assert read_config_file(toml) == {"data": "d", "lr": 0.01, "model": "vamp", "epochs": 2}
    twice = tmp_path / "c.json"
    twice.write_text(json.dumps({"epochs": 3, "train_config": {"epochs": 4}}))
    with pytest.raises(ValueError, match=r"'epochs' is given twice, as epochs = 3 and as "
                                         r"train_config.epochs = 4"):
        read_config_file(twice)
    bad = tmp_path / "d.json"
    bad.write_text('{"epochs": 3,\n "lr": }')
    with pytest.raises(ValueError, match=r"not valid JSON: .* at line 2"):
        read_config_file(bad)
    with pytest.raises(FileNotFoundError, match="--config: file .* does not exist"):
        read_config_file(tmp_path / "none.toml")
    (tmp_path / "e.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a table of settings"):
        read_config_file(tmp_path / "e.json")


def test_config_json_reproduces_a_run_and_flags_vary_it(run_dir, tmp_path, capsys):
    """A run's config.json as --config gives the same configs; a flag overrides the file."""
    again = tmp_path / "again"
    assert main(["train", "--config", str(run_dir / "config.json"), "--out", str(again),
                 "--quiet"]) == 0
    a = json.loads((run_dir / "config.json").read_text())
    b = json.loads((again / "config.json").read_text())
    assert a == b
    np.testing.assert_array_equal(
        [r["loss"] for r in read_log(run_dir)], [r["loss"] for r in read_log(again)])
    varied = tmp_path / "varied"
    assert main(["train", "--config", str(run_dir / "config.json"), "--epochs", "1", "--seed",
                 "3", "--out", str(varied), "--quiet"]) == 0
    c = json.loads((varied / "config.json").read_text())
    assert c["train_config"]["epochs"] == 1 and c["train_config"]["seed"] == 3
    assert c["model_config"] == a["model_config"]
    capsys.readouterr()


def test_config_preset_conflict(data_dir, tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"preset": "evcf-baseline", "data": str(data_dir)}))
    assert main(["train", "--config", str(cfg), "--preset", "multvae-liang", "--out",
                 str(tmp_path / "r"), "--dry-run"]) == 2
    assert "preset is set twice: 'evcf-baseline' by --config" in capsys.readouterr().err
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    assert "*max_beta=0.3" in capsys.readouterr().out  # the file's preset and data were used


# -- --dry-run, start summary, notes, epoch lines -------------------------------------------------

def test_dry_run_prints_the_plan_and_writes_nothing(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(data_dir), "--preset", "evcf-hvamp-gated", "--out",
                 str(out), "--epochs", "5", "--set", "n_components=7", "--device", "cpu",
                 "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    from evcf_fast.models import ModelConfig, build_model

    model = build_model(ModelConfig(model="hvamp", n_items=120, num_layers=2, gated=True,
                                    likelihood="bernoulli", n_components=7))
    n_params = sum(p.numel() for p in model.parameters())
    assert f"model: HVampVAE (hvamp), {n_params:,} parameters, device cpu" in text
    assert "threads: torch" in text and "data: " in text and "240 training users" in text
    assert "(4 steps of 200 per epoch)" not in text and "(2 steps of 200 per epoch)" in text
    assert f"run folder: {out} (new)" in text
    assert "*epochs=5" in text and "*n_components=7" in text and "*max_beta=0.3" in text
    assert " lr=0.0005" in text  # the preset's lr is TrainConfig's default: not marked
    assert "note: --epochs 5 is below the beta warm-up (warmup=100 epochs)" in text


def test_budget_warnings_hand_computed():
    cfg = TrainConfig(epochs=10, warmup=40, max_beta=0.2)
    (note,) = budget_warnings(cfg, steps_per_epoch=3)
    assert "beta reaches only 0.05 of max_beta 0.2" in note and "early stopping never" in note
    assert budget_warnings(TrainConfig(epochs=40, warmup=40), steps_per_epoch=3) == []
    liang = TrainConfig(beta_schedule="step", epochs=10, anneal_cap=0.2, total_anneal_steps=1000,
                        warmup=0)
    (note,) = budget_warnings(liang, steps_per_epoch=15)  # 150 steps < 0.2 * 1000
    assert "150 steps" in note and "ends at 0.15" in note
    assert budget_warnings(liang, steps_per_epoch=20) == []  # 200 steps reach the cap exactly


def test_plain_epoch_lines_when_stderr_is_not_a_terminal(data_dir, tmp_path, capsys):
    """--quiet keeps one plain line per epoch (no carriage returns) with time and estimate."""
    assert main(["train", "--data", str(data_dir), "--model", "multvae", "--epochs", "2",
                 "--out", str(tmp_path / "r"), *SMALL]) == 0
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("epoch ")]
    assert len(lines) == 2 and "\r" not in err
    assert "elapsed 0:00:" in lines[0] and "to epoch 2" in lines[0]
    assert "to epoch" not in lines[1]
    assert "model:" not in err  # --quiet drops the start summary


def test_summary_names_the_best_epoch_metric(run_dir, tmp_path, capsys):
    assert main(["train", "--out", str(run_dir), "--resume", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "best epoch: " in out and "(by validation ndcg@100: " in out
    assert "recall@k = hits / min(k, n_heldout)" in out


# -- logs ---------------------------------------------------------------------------------------

def test_log_is_appended_and_matches_the_csv(run_dir):
    records = read_log(run_dir)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    csv = pl.read_csv(run_dir / "log.csv")
    assert csv["epoch"].to_list() == [1, 2, 3]
    np.testing.assert_array_equal(csv["loss"].to_numpy(), [r["loss"] for r in records])


def test_run_log_appends_without_rewriting(tmp_path):
    log = RunLog(tmp_path, [], tensorboard=False)
    log.append({"epoch": 1, "loss": 1.5})
    first = (tmp_path / "log.jsonl").read_bytes()
    log.append({"epoch": 2, "loss": 1.25})
    data = (tmp_path / "log.jsonl").read_bytes()
    assert data.startswith(first) and data.count(b"\n") == 2
    assert (tmp_path / "log.csv").read_text() == "epoch,loss\n1,1.5\n2,1.25\n"


def test_torn_last_line_is_ignored(tmp_path, capsys):
    (tmp_path / "log.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epo')
    assert read_log(tmp_path) == [{"epoch": 1}, {"epoch": 2}]
    assert "line 3: torn last line ignored" in capsys.readouterr().err
    (tmp_path / "log.jsonl").write_text('{"epoch": 1}\n{"epo\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match=r"log.jsonl:2: not a JSON record"):
        read_log(tmp_path)


def test_resume_repairs_a_torn_log(data_dir, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["--model", "multvae", *SMALL]
    assert main(["train", "--data", str(data_dir), "--epochs", "2", "--out", str(out), *args]) == 0
    with open(out / "log.jsonl", "a") as f:
        f.write('{"epoch": 3, "loss": 1')  # killed while appending epoch 3
    with open(out / "log.csv", "a") as f:
        f.write("3,")
    assert main(["train", "--out", str(out), "--resume", "--epochs", "4", "--quiet"]) == 0
    records = read_log(out, warn=False)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert all(len(r) == len(records[0]) for r in records)
    assert pl.read_csv(out / "log.csv")["epoch"].to_list() == [1, 2, 3, 4]
    capsys.readouterr()


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    log = RunLog(tmp_path, [], tensorboard=True)
    log.append({"epoch": 1, "loss": 2.0, "best": True})
    log.close()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


# -- per-user test file, evaluate wording ---------------------------------------------------------

def test_per_user_test_metrics_next_to_test_json(run_dir):
    test = json.loads((run_dir / "test.json").read_text())
    assert test["per_user_file"] == "test_per_user.parquet"
    assert test["best_epoch_metric"] == "validation ndcg@100"
    frame = pl.read_parquet(run_dir / "test_per_user.parquet")
    assert frame.height == 40 and frame["user_id"].to_list() == list(range(3000, 3040))
    for metric, cell in test["metrics"].items():
        values = frame[metric].to_numpy()
        assert math.isclose(np.nanmean(values), cell["mean"], rel_tol=1e-12)


def test_evaluate_names_part_dataset_checkpoint_and_files(run_dir, tmp_path, capsys):
    js, pu = tmp_path / "t.json", tmp_path / "u.parquet"
    assert main(["evaluate", "--run", str(run_dir), "--quiet", "--json", str(js), "--per-user",
                 str(pu)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("test part of ") and "40 users, 120 items" in out
    assert f"best checkpoint {run_dir / 'best.pt'} (epoch " in out
    assert ", validation ndcg@100 0." in out
    assert f"wrote {js}" in out and f"wrote {pu}" in out
    assert "recall@k = hits / min(k, n_heldout)" in out


# -- plots --------------------------------------------------------------------------------------

def test_plot_overlays_runs(run_dir, data_dir, tmp_path, capsys):
    other = tmp_path / "other"
    assert main(["train", "--data", str(data_dir), "--model", "vamp", "--epochs", "2", "--out",
                 str(other), *SMALL, "--set", "n_components=5"]) == 0
    png = tmp_path / "both.png"
    assert main(["plot", str(run_dir), str(other), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(run_dir), str(other)]) == 2
    assert "2 runs need --out FILE.png" in capsys.readouterr().err
    from evcf_fast.train.plot import run_label

    test = json.loads((run_dir / "test.json").read_text())
    label = run_label(run_dir)
    assert label.startswith("mv: multvae on split") and \
        f"test NDCG@100 {test['metrics']['ndcg@100']['mean']:.4f}" in label


# -- presets and --help -------------------------------------------------------------------------

def test_presets_command(capsys):
    from evcf_fast.train.presets import PRESETS

    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in PRESETS:
        assert any(line.startswith(name + " ") for line in out.splitlines())
    assert main(["presets", "multvae-liang"]) == 0
    out = capsys.readouterr().out
    set_part, default_part = out.split("training (TrainConfig), set by the preset:")[1].split(
        "training (TrainConfig), defaults:")
    assert re.search(r"^  lr +0\.001$", set_part, re.M) and "  anneal_cap" in set_part
    assert re.search(r"^  weight_decay +0\.0$", default_part, re.M)  # left alone by the preset
    assert re.search(r"^  dropout +0\.5$", out, re.M)
    assert main(["presets", "nope"]) == 2
    assert "unknown preset 'nope'; expected one of" in capsys.readouterr().err


def _parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_help_shows_defaults():
    """Every option with a default states it in --help (argparse's or a 'default' phrase)."""
    checked = 0
    for parser in _parsers(build_parser()):
        for action in parser._actions:
            if action.help in (None, argparse.SUPPRESS) or isinstance(
                    action, (argparse._HelpAction, argparse._VersionAction,
                             argparse._SubParsersAction)):
                continue
            if action.default in (None, False, [], argparse.SUPPRESS):
                continue
            formatter = parser._get_formatter()
            shown = formatter._expand_help(action) if hasattr(formatter, "_expand_help") else ""
            assert "default" in shown.lower(), (parser.prog, action.dest, shown)
            checked += 1
    assert checked >= 15
    epochs = next(p for p in _parsers(build_parser()) if p.prog == "evcf train")
    assert "else 400" in epochs.format_help().replace("\n", " ")


def test_messages_speak_the_cli_language(run_dir, data_dir, capsys):
    assert main(["train", "--data", str(data_dir), "--model", "multvae", "--out", str(run_dir),
                 *SMALL]) == 2
    err = capsys.readouterr().err
    assert "add --resume to continue it" in err and "resume=True (--resume)" not in err
