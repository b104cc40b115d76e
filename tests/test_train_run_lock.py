"""One writer per run folder: a second run on a folder that a running process is writing is
refused (before it reads or writes anything), the lock goes with its process however it ends,
and a run that fails before writing leaves no trace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from _train_data import clustered_split, one_torch_thread, saved_clustered_split  # noqa: F401

from evcf_fast.errors import RunFolderBusyError
from evcf_fast.models import ModelConfig
from evcf_fast.train import TrainConfig, fit
from evcf_fast.train.run_folder import LOCK, run_folder_lock

pytest.importorskip("fcntl")

N_ITEMS = 150


def _configs(**train):
    mc = ModelConfig(model="multvae", n_items=N_ITEMS, hidden_size=16, latent_size=8)
    tc = TrainConfig(**{"epochs": 2, "batch_size": 60, "device": "cpu", "warmup": 0,
                        "max_beta": 0.2, "eval_batch_size": 40, **train})
    return mc, tc


@pytest.fixture(scope="module")
def data():
    return clustered_split(n_items=N_ITEMS, n_train=240, n_heldout=40)


def _snapshot(folder):
    """Every file but the lock (which its holder writes)."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()
            if p.name != LOCK}


def test_a_second_writer_is_refused_and_changes_nothing(data, tmp_path):
    mc, tc = _configs()
    run = tmp_path / "run"
    fit(data, model_config=mc, train_config=tc, out=run, progress=False)
    before = _snapshot(run)
    with run_folder_lock(run):   # as a running `evcf train` holds it
        with pytest.raises(RunFolderBusyError,
                           match=rf"run directory .*run' is being written by process "
                                 rf"{os.getpid()} on .*; wait for that run to end"):
            fit(data, model_config=mc, train_config=tc.__class__(**{**tc.to_dict(),
                                                                    "epochs": 3}),
                out=run, resume=True, progress=False)
        with pytest.raises(RunFolderBusyError):
            fit(data, model_config=mc, train_config=tc, out=run, progress=False)
    assert _snapshot(run) == before
    # released: the resume goes ahead
    res = fit(data, model_config=mc, train_config=tc.__class__(**{**tc.to_dict(), "epochs": 3}),
              out=run, resume=True, progress=False)
    assert res.epochs_run == 3


def test_a_closed_form_fit_takes_the_lock_too(data, tmp_path):
    """EASE on a large catalogue fits for minutes: its run folder is guarded the same way."""
    mc = ModelConfig(model="popularity", n_items=N_ITEMS)
    _, tc = _configs()
    run = tmp_path / "pop"
    with run_folder_lock(run):
        with pytest.raises(RunFolderBusyError, match=r"pop' is being written by process"):
            fit(data, model_config=mc, train_config=tc, out=run, progress=False)
        assert sorted(p.name for p in run.iterdir()) == [LOCK]
    fit(data, model_config=mc, train_config=tc, out=run, progress=False)
    assert (run / "test.json").exists()


def test_a_run_that_fails_before_writing_leaves_no_folder(data, tmp_path):
    mc, tc = _configs(batch_size=10_000)
    run = tmp_path / "new"
    with pytest.raises(ValueError, match="batch_size=10000 is larger than the number"):
        fit(data, model_config=mc, train_config=tc, out=run, progress=False)
    assert not run.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="batch_size=10000"):
        fit(data, model_config=mc, train_config=tc, out=empty, progress=False)
    assert empty.is_dir() and not any(empty.iterdir())   # the user's folder stays, empty


def test_the_lock_is_not_written_into_a_foreign_folder(data, tmp_path):
    mc, tc = _configs()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="refusing to write a run into --out"):
        fit(data, model_config=mc, train_config=tc, out=foreign, progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


HOLDER = textwrap.dedent("""
    import sys, time
    from evcf_fast.train.run_folder import run_folder_lock
    with run_folder_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(600)
""")


def test_the_lock_goes_with_a_killed_process_and_the_cli_says_who(data, tmp_path):
    """kill -9 releases it (flock): no stale lock to clear by hand."""
    run = tmp_path / "run"
    saved = saved_clustered_split(tmp_path / "data", n_items=N_ITEMS)
    evcf = [sys.executable, "-m", "evcf_fast", "train", "--data", str(saved), "--model",
            "multvae", "--set", "hidden_size=16", "--set", "latent_size=8", "--epochs", "1",
            "--batch-size", "60", "--device", "cpu", "--out", str(run), "--quiet"]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        res = subprocess.run(evcf, capture_output=True, text=True, timeout=300)
        assert res.returncode == 2
        assert f"is being written by process {holder.pid} on" in res.stderr
        assert "Traceback" not in res.stderr
        assert sorted(p.name for p in run.iterdir()) == [LOCK]   # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    time.sleep(0.1)
    res = subprocess.run(evcf, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (run / "test.json").exists()
