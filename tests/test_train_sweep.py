"""``evcf sweep`` on Optuna: spec checks, pruning on the validation curve, one SQLite study shared
by two processes, a killed sweep that resumes, and the report."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _train_data import clustered_split, one_torch_thread  # noqa: F401 (autouse)

optuna = pytest.importorskip("optuna")

from evcf_fast.cli.main import main  # noqa: E402
from evcf_fast.train.sweep import SweepSpec, load_study, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_ITEMS = 120
TINY = {"model": "multvae", "hidden_size": 16, "latent_size": 4, "batch_size": 64,
        "device": "cpu", "warmup": 0, "patience": "none", "eval_batch_size": 1000,
        "val_metric": "ndcg@100", "test_metrics": ["ndcg@100", "recall@20"]}


@pytest.fixture(scope="module")
def split_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "split"
    clustered_split(n_items=N_ITEMS).save(path)
    return path


def write_spec(path, *, epochs, n_trials, params, **top):
    lines = [f"{k} = {json.dumps(v)}" for k, v in {"n_trials": n_trials, **top}.items()]
    lines += ["[fixed]"] + [f"{k} = {json.dumps(v)}" for k, v in {**TINY, "epochs": epochs}.items()]
    for name, table in params.items():
        lines += [f"[params.{name}]"] + [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def sweep_cmd(spec, split_dir, out, *extra):
    return [sys.executable, "-m", "evcf_fast", "sweep", str(spec), "--data", str(split_dir),
            "--out", str(out), "--quiet", *extra]


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("spec, match", [
    ({"params": {"lr": {"low": 1e-3, "high": 1e-2}}, "colour": 1}, r"unknown key.*'colour'"),
    ({"params": {"learning_rate": {"low": 1e-3, "high": 1e-2}}}, "unknown override key"),
    ({"params": {"lr": {"low": 1e-2, "high": 1e-3}}}, r"\[params.lr\] low must be < high"),
    ({"params": {"lr": {"low": 0.0, "high": 1e-3, "log": True}}}, "> 0 with log"),
    ({"params": {"lr": {"low": 1e-3, "high": 1e-2}}, "sampler": "grid"}, "needs `choices`"),
    ({"params": {"lr": {"choices": []}}}, "non-empty list"),
    ({"params": {}}, "nothing to search"),
    ({"params": {"lr": {"low": 1e-3, "high": 1e-2}}, "sampler": "cmaes"}, "sampler must be one"),
    ({"params": {"lr": {"low": 1e-3, "high": 1e-2}}, "preset": "nope"}, "unknown preset"),
])
def test_bad_specs_name_the_file_and_key(spec, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SweepSpec.from_dict(spec, source="s.toml")
    with pytest.raises((ValueError, TypeError), match="^s.toml: "):
        SweepSpec.from_dict(spec, source="s.toml")


def test_spec_file_parses_ranges_and_choices(tmp_path):
    path = write_spec(tmp_path / "s.toml", epochs=3, n_trials=4,
                      params={"lr": {"low": 1e-4, "high": 1e-2, "log": True},
                              "hidden_size": {"low": 8, "high": 32, "step": 8},
                              "dropout": {"choices": [0.0, 0.5]}})
    spec = SweepSpec.load(path)
    by_name = {p.name: p for p in spec.params}
    assert by_name["hidden_size"].is_int and not by_name["lr"].is_int
    assert by_name["lr"].log and by_name["dropout"].choices == (0.0, 0.5)
    assert spec.fixed["epochs"] == 3 and spec.n_trials == 4
    (tmp_path / "bad.toml").write_text("n_trials = [\n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        SweepSpec.load(tmp_path / "bad.toml")


def test_pruning_happens_and_trials_are_run_folders(split_dir, tmp_path):
    spec = SweepSpec.from_dict({
        "n_trials": 8, "sampler": "random", "seed": 3, "pruner": "median", "startup_trials": 2,
        "warmup_epochs": 0, "fixed": {**TINY, "epochs": 5},
        "params": {"lr": {"low": 1e-7, "high": 3e-2, "log": True}}})
    study = run_sweep(spec, data=split_dir, out=tmp_path / "sw")
    states = [t.state.name for t in study.trials]
    assert "PRUNED" in states and states.count("COMPLETE") >= 2
    assert len(states) == 8
    for t in study.trials:
        run = Path(t.user_attrs["run_dir"])
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        if t.state.name == "PRUNED":   # stopped early, as its intermediate values say
            assert len(log) == max(t.intermediate_values) < 5 and not (run / "test.json").exists()
        else:
            assert len(log) == 5 and (run / "test.json").exists()
            assert t.value == pytest.approx(max(r["val_ndcg@100"] for r in log))
        assert [r["val_ndcg@100"] for r in log] == pytest.approx(
            [t.intermediate_values[e] for e in sorted(t.intermediate_values)])
    # the report: best trials and both plots
    assert main(["sweep", "--report", "--out", str(tmp_path / "sw")]) == 0
    report = tmp_path / "sw" / "report"
    assert (report / "history.png").stat().st_size > 0
    assert (report / "importance.png").stat().st_size > 0
    best = json.loads((report / "best_trials.json").read_text())
    assert best[0]["value"] == max(t.value for t in study.trials if t.value is not None)


def test_two_processes_share_one_sqlite_study(split_dir, tmp_path):
    spec = write_spec(tmp_path / "s.toml", epochs=4, n_trials=10, sampler="random",
                      pruner="none", params={"lr": {"low": 1e-3, "high": 3e-2, "log": True}})
    out = tmp_path / "shared"
    out.mkdir()
    procs = [subprocess.Popen(sweep_cmd(spec, split_dir, out), env=env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()[-2000:]
    study = load_study(out=out)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    # the budget is shared: 10, plus at most one trial the other process had already started
    assert 10 <= len(done) <= 11 and len(done) == len(study.trials)
    numbers = [t.number for t in done]
    runs = [t.user_attrs["run_dir"] for t in done]
    assert len(set(numbers)) == len(numbers) and len(set(runs)) == len(runs)
    assert len({t.user_attrs["worker"] for t in done}) == 2    # both processes ran trials
    for run in runs:
        assert (Path(run) / "test.json").exists()
    assert sorted(p.name for p in (out / "trials").iterdir()) == sorted(Path(r).name
                                                                        for r in runs)


def test_a_killed_sweep_resumes(split_dir, tmp_path):
    epochs = 40
    spec = write_spec(tmp_path / "s.toml", epochs=epochs, n_trials=2, sampler="random",
                      pruner="none", params={"lr": {"low": 1e-3, "high": 3e-2, "log": True}})
    out = tmp_path / "killed"
    proc = subprocess.Popen(sweep_cmd(spec, split_dir, out, "--heartbeat", "1"), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = out / "trials" / "trial-0000" / "log.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (not log.exists() or
                                      len(log.read_text().splitlines()) < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(log.read_text().splitlines())
    assert 3 <= done_before < epochs
    time.sleep(3)   # past the grace period of two heartbeats
    assert main(["sweep", str(spec), "--data", str(split_dir), "--out", str(out), "--quiet",
                 "--heartbeat", "1"]) == 0
    study = load_study(out=out)
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"
    assert retried[0].params == study.trials[0].params
    assert retried[0].user_attrs["run_dir"].endswith("trial-0000")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))  # continued, not redone
    assert sorted(retried[0].intermediate_values) == list(range(1, epochs + 1))


class _Killed(BaseException):
    """Stands for SIGKILL: not an Exception, so Optuna leaves the trial RUNNING, as a kill does."""


def test_a_kill_between_checkpoint_and_log_keeps_the_whole_curve(split_dir, tmp_path, monkeypatch):
    # The window CI once hit: epoch 3 is in last.pt but not yet in log.jsonl nor reported to
    # Optuna. The retried trial must still report every epoch exactly once.
    from evcf_fast.train import logs

    epochs = 6
    spec = SweepSpec.from_dict({"n_trials": 1, "sampler": "random", "pruner": "none",
                                "fixed": {**TINY, "epochs": epochs},
                                "params": {"lr": {"low": 1e-3, "high": 3e-2, "log": True}}})
    out = tmp_path / "window"
    append = logs.RunLog.append

    def append_then_die(self, record):
        if record["epoch"] == 3:
            raise _Killed
        append(self, record)

    monkeypatch.setattr(logs.RunLog, "append", append_then_die)
    with pytest.raises(_Killed):
        run_sweep(spec, data=split_dir, out=out, heartbeat=1)
    monkeypatch.setattr(logs.RunLog, "append", append)
    log = out / "trials" / "trial-0000" / "log.jsonl"
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2]
    time.sleep(3)   # past the grace period of two heartbeats
    run_sweep(spec, data=split_dir, out=out, heartbeat=1)
    study = load_study(out=out)
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].state.name == "COMPLETE"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1))
    curve = retried[0].intermediate_values
    assert sorted(curve) == list(range(1, epochs + 1))
    assert [curve[r["epoch"]] for r in records] == pytest.approx(
        [r["val_ndcg@100"] for r in records])
