"""Distributed training (evcf_fast.train.distributed): gloo on the CPU, ranks spawned by the tests.

The oracle is the single-process trainer: with the global-batch noise, a 2-rank run must follow
the 1-rank trajectory up to floating-point reduction order (float64: 1e-9 relative after 200
steps), distributed evaluation must equal the single-process evaluation of the same weights bit
for bit, and resumed or killed-and-restarted runs must equal uninterrupted ones.
"""

import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import _dist_workers as w
import numpy as np
import pytest
import torch
from _dist import free_port, run_ranks
from _train_data import clustered_split, one_torch_thread  # noqa: F401 (autouse fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from evcf_fast.train import distributed, launch
from evcf_fast.train.batches import DeviceRows, EpochBatches
from evcf_fast.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


# -- pieces, in one process ----------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 500), parts=st.integers(1, 17))
def test_split_range_is_a_contiguous_balanced_cover(n, parts):
    ranges = [distributed.split_range(n, parts, i) for i in range(parts)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    sizes = [hi - lo for lo, hi in ranges]
    assert sizes == sorted(sizes, reverse=True) and max(sizes) - min(sizes) <= 1
    assert sizes.count(max(sizes)) == (n % parts or parts)


def test_split_range_by_hand():
    assert [distributed.split_range(7, 3, i) for i in range(3)] == [(0, 3), (3, 5), (5, 7)]
    assert [distributed.split_range(1, 2, i) for i in range(2)] == [(0, 1), (1, 1)]


@pytest.mark.parametrize("world,batch_size", [(2, 25), (3, 7), (4, 10), (5, 2)])
def test_shards_reassemble_the_single_process_batches(world, batch_size):
    ds = clustered_split(n_train=62, n_items=30, seed=1)
    rows = DeviceRows(ds.train, "cpu")
    shared = distributed.SharedRows(ds.train, "cpu")
    gen = torch.Generator().manual_seed(5)
    full = list(EpochBatches.shuffled(rows, batch_size=batch_size, generator=gen))
    shards = []
    for r in range(world):
        gen = torch.Generator().manual_seed(5)
        shards.append(list(distributed.ShardedBatches(shared, batch_size=batch_size,
                                                      generator=gen, rank=r, world_size=world)))
    assert all(len(s) == len(full) for s in shards)
    for i, (x, _) in enumerate(full):
        dense = x.to_dense()
        parts = [s[i] for s in shards]
        kept = [p[0].to_dense() for p in parts if p[1].weight > 0]
        torch.testing.assert_close(torch.cat(kept), dense, rtol=0, atol=0)
        assert math.isclose(sum(p[1].weight for p in parts), 1.0)
        for xs, share in parts:
            assert share.n_global == dense.shape[0]
            assert share.nnz_global == int(dense.sum())
            block = dense[share.row_offset:share.row_offset + share.n_local]
            torch.testing.assert_close(xs.to_dense(), block, rtol=0, atol=0)
            assert share.nnz_offset == int(dense[:share.row_offset].sum())
            assert share.nnz_local == int(block.sum())
            if share.weight == 0:   # an empty shard computes the batch's last user
                assert share.row_offset == dense.shape[0] - 1 and dense.shape[0] < world


def test_global_batch_noise_slices_the_full_draw():
    from evcf_fast.models import layers

    share = distributed.Share(weight=0.4, n_global=5, row_offset=2, n_local=2, nnz_global=11,
                              nnz_offset=4, nnz_local=3)
    values = torch.rand(3, dtype=torch.float64) + 0.5
    torch.manual_seed(9)
    full_mask = layers.dropout(torch.ones(11, dtype=torch.float64), 0.5)
    full_eps = layers.standard_normal(torch.empty(5, 4, dtype=torch.float64))
    pseudo = layers.dropout(torch.ones(3, 6), 0.5)
    torch.manual_seed(9)
    with distributed.global_batch_noise(share):
        got_values = layers.dropout(values, 0.5)
        got_eps = layers.standard_normal(torch.empty(2, 4, dtype=torch.float64))
        got_pseudo = layers.dropout(torch.ones(3, 6), 0.5)
        with pytest.raises(RuntimeError, match="expected 2 rows"):
            layers.standard_normal(torch.empty(3, 4))
    assert layers.dropout is not None and layers.dropout.__name__ == "dropout"
    torch.testing.assert_close(got_values, values * full_mask[4:7], rtol=0, atol=0)
    torch.testing.assert_close(got_eps, full_eps[2:4], rtol=0, atol=0)
    torch.testing.assert_close(got_pseudo, pseudo, rtol=0, atol=0)


def test_missing_rendezvous_is_a_clear_error(monkeypatch):
    for k in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"MASTER_ADDR.*missing rendezvous"):
        launch.init_from_env(device="cpu")


def test_unreachable_rendezvous_times_out(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))  # nobody listens there
    t0 = time.monotonic()
    with pytest.raises(ValueError, match=r"rendezvous at 127\.0\.0\.1:\d+ failed for rank 1"):
        launch.init_from_env(device="cpu", timeout_s=3)
    assert time.monotonic() - t0 < 60


def test_torchrun_command():
    cmd = launch.torchrun_command(["train", "--out", "r"], nproc_per_node=2, max_restarts=1)
    assert cmd[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                       "--max-restarts=1", "-m", "evcf_fast", "train", "--out", "r"]
    with pytest.raises(ValueError, match="nproc_per_node"):
        launch.torchrun_command([], nproc_per_node=0)


# -- two ranks ----------------------------------------------------------------------------------

def _rel(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


EQUIV = [("multvae", "adamnormgrad"), ("multvae", "adam"), ("hvamp", "adamnormgrad"),
         ("hvamp", "adam")]


def test_two_ranks_follow_the_one_rank_trajectory(tmp_path):
    """float64, same global batch, global-batch noise: 200 steps (20 epochs x 10 batches, the
    last one a single user) agree within 1e-9 on losses and weights; float32 validation curves
    agree within their noise."""
    runs = [dict(model=m, optimizer=o, epochs=20, out=str(tmp_path / f"d_{m}_{o}"),
                 float64=True) for m, o in EQUIV]
    runs.append(dict(model="hvamp", optimizer="adamnormgrad", epochs=8,
                     out=str(tmp_path / "d32"), float64=False))
    two = run_ranks(w.fit_many, 2, runs, timeout=600)[0]
    for run, got in zip(runs, two):
        run = {**run, "out": str(Path(run["out"]).with_name("s" + Path(run["out"]).name[1:]))}
        ref = w.fit_run(**run)
        assert got["history"][-1]["step"] == ref["history"][-1]["step"]
        if run["float64"]:
            assert ref["history"][-1]["step"] == 200
            for g, r in zip(got["history"], ref["history"]):
                for key in ("loss", "nll", "kl", "val_ndcg@20"):
                    assert _rel(g[key], r[key]) < 1e-9, (run, g["epoch"], key)
            for name, t in ref["last"].items():
                assert _rel(got["last"][name], t) < 1e-9, (run, name)
            for key, v in ref["test"].items():
                assert abs(got["test"][key] - v) < 1e-9
        else:
            val_g = np.array([h["val_ndcg@20"] for h in got["history"]])
            val_r = np.array([h["val_ndcg@20"] for h in ref["history"]])
            # noise of a 40-user NDCG@20 is several 1e-2; float32 reduction order is far below
            assert np.abs(val_g - val_r).max() < 0.02
            assert _rel([h["loss"] for h in got["history"]],
                        [h["loss"] for h in ref["history"]]) < 1e-3


def _same_eval(a, b):
    mean_a, se_a, per_a, n_a = a
    mean_b, se_b, per_b, n_b = b
    assert mean_a == mean_b and se_a == se_b
    np.testing.assert_array_equal(n_a, n_b)
    assert per_a.keys() == per_b.keys()
    for k in per_a:
        np.testing.assert_array_equal(per_a[k], per_b[k])   # NaN == NaN here


def test_distributed_evaluation_is_exactly_single_process():
    metrics = ("ndcg@10", "recall@5", "recall@20")
    # 37 users: blocks of 7 (6 blocks: 2/2/2), 16 (3 blocks: 1/1/1), 20 (2 blocks: rank 2 idle)
    out = run_ranks(w.evaluate_both, 3, 4, (7, 16, 20), metrics)
    for rank_out in out:
        for case in rank_out:
            _same_eval(case["got"], case["ref"])
    assert [case["local_users"] for case in (o[2] for o in out)] == [20, 17, 0]
    assert [o[0]["local_users"] for o in out] == [14, 14, 9]


def test_resume_of_a_distributed_run(tmp_path):
    """Killed after 3 epochs and resumed (same world size): bit for bit the uninterrupted run;
    resumed on one rank (another world size): the same trajectory within 1e-9 (float64)."""
    seq = run_ranks(w.resume_sequence, 2, str(tmp_path))[0]
    full, resumed = seq["full"], seq["resumed"]
    assert resumed["history"] == full["history"]
    for name, t in full["last"].items():
        assert torch.equal(resumed["last"][name], t), name
    assert resumed["test"] == full["test"]
    one = w.fit_run(model="hvamp", optimizer="adamnormgrad", float64=True, epochs=6,
                    out=tmp_path / "part_copy", resume=True)
    assert [h["epoch"] for h in one["history"]] == list(range(1, 7))
    for g, r in zip(one["history"][3:], full["history"][3:]):
        assert _rel(g["loss"], r["loss"]) < 1e-9
    for name, t in full["last"].items():
        assert _rel(one["last"][name], t) < 1e-9, name


def test_bad_setups_fail_on_every_rank_and_write_nothing(tmp_path):
    out = run_ranks(w.bad_inputs, 2, str(tmp_path))
    for rank, errors in enumerate(out):
        kind, msg = errors["too_many_ranks"]
        assert kind == "ValueError" and "world size 2 is larger than the number of training " \
            "users (1)" in msg
        kind, msg = errors["too_few_val_users"]
        assert kind == "ValueError" and "validation users (1)" in msg
        kind, msg = errors["fingerprint"]
        assert kind == "IncompatibleDatasetError" and "fingerprint mismatch" in msg
        assert "rank 1 differs from rank 0 in ['dataset']" in msg
        kind, msg = errors["config"]
        assert kind == "IncompatibleDatasetError" and "['train_config']" in msg
        kind, msg = errors["dense"]
        assert kind == "ValueError" and "input must be 'sparse' in a distributed run" in msg
    assert not any(tmp_path.iterdir()), "a failed setup left files behind"


# -- torchrun: kill -9 and restart --------------------------------------------------------------

def _train_argv(data_dir, out, epochs):
    return ["train", "--data", str(data_dir), "--out", str(out), "--model", "multvae",
            "--epochs", str(epochs), "--batch-size", "50", "--device", "cpu", "--quiet",
            "--set", "hidden_size=16", "--set", "latent_size=8", "--set", "warmup=3",
            "--set", "val_metric=ndcg@20", "--set", 'test_metrics=["ndcg@10","recall@5"]',
            "--set", "eval_batch_size=64", "--dist-timeout", "60"]


def _rank_pid(tag, rank):
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"EVCF_TEST_TAG={tag}".encode() in env and f"RANK={rank}".encode() in env \
                and b"TORCHELASTIC_RESTART_COUNT=0" in env:
            cmd = (entry / "cmdline").read_bytes()
            if b"evcf_fast" in cmd and b"torch.distributed.run" not in cmd:
                return int(entry.name)
    return None


def _launch(argv, tag):
    env = {**os.environ, "EVCF_TEST_TAG": tag, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "evcf_fast", *argv], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _same_run(a: Path, b: Path):
    for name in ("last.pt", "best.pt"):
        sa, sb = load_checkpoint(a / name)["model_state"], load_checkpoint(b / name)["model_state"]
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), (name, k)
    assert (a / "test.json").read_text() == (b / "test.json").read_text()
    import json

    def log(p):
        return [{k: v for k, v in json.loads(line).items() if "seconds" not in k}
                for line in (p / "log.jsonl").read_text().splitlines()]
    assert log(a) == log(b)


def test_kill_9_and_torchrun_restart_equal_the_uninterrupted_run(tmp_path):
    data_dir = tmp_path / "data"
    clustered_split(n_train=3000, n_heldout=100, n_items=60, per_user=12, seed=2).save(data_dir)
    epochs = 8
    tag = uuid.uuid4().hex
    killed = _launch(_train_argv(data_dir, tmp_path / "killed", epochs)
                     + ["--nproc-per-node", "2", "--max-restarts", "1"], tag)
    log = tmp_path / "killed" / "log.jsonl"
    deadline = time.monotonic() + 300
    done_at_kill = None
    while time.monotonic() < deadline and killed.poll() is None:
        n_done = len(log.read_text().splitlines()) if log.exists() else 0
        pid = _rank_pid(tag, 1)
        if n_done >= 2 and pid is not None:
            done_at_kill = n_done
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    try:
        out, err = killed.communicate(timeout=300)
    finally:
        killed.kill()
    assert done_at_kill is not None and done_at_kill < epochs, "the run ended before the kill"
    assert killed.returncode == 0, err[-3000:]
    # torchrun saw a worker die and restarted the group: the killed rank (-9), or, when its
    # peer notices first, the peer aborting on the broken connection (-6, SIGABRT from gloo)
    assert re.search(r"failed \(exitcode: -(9|6)\)", err), err[-3000:]
    assert "best epoch" in out

    plain = _launch(_train_argv(data_dir, tmp_path / "plain", epochs)
                    + ["--nproc-per-node", "2"], uuid.uuid4().hex)
    out, err = plain.communicate(timeout=300)
    assert plain.returncode == 0, err[-3000:]
    _same_run(tmp_path / "killed", tmp_path / "plain")

    # a distributed run's folder serves the single-process commands unchanged
    from evcf_fast.cli.main import main

    run = str(tmp_path / "killed")
    assert main(["recommend", "--run", run, "--user", "3100", "--k", "3", "--json"]) == 0
    assert main(["evaluate", "--run", run, "--part", "test", "--metrics", "ndcg@10"]) == 0
    assert main(["plot", run]) == 0 and (tmp_path / "killed" / "curves.png").exists()


def test_max_steps_caps_the_run_mid_epoch(tmp_path):
    mc, tc = w.configs("multvae", "adam", epochs=5, batch_size=64, max_steps=7)
    from evcf_fast.train.loop import fit

    out = fit(w.data(), model_config=mc, train_config=tc, out=tmp_path / "r", progress=False)
    assert [h["step"] for h in out.history] == [4, 7]   # 226 users: 4 steps per epoch
    assert out.epochs_run == 2 and (tmp_path / "r" / "test.json").exists()
    with pytest.raises(ValueError, match="max_steps"):
        w.configs("multvae", "adam", epochs=1, max_steps=0)


def test_cli_flags_and_launcher_errors(tmp_path, capsys):
    from evcf_fast.cli.main import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--nproc-per-node", "--max-restarts", "--dist-timeout", "--max-steps"):
        assert flag in out
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--nproc-per-node"]
    assert main(argv + ["0"]) == 2
    assert "nproc_per_node must be >= 1, got 0" in capsys.readouterr().err
    assert main(argv + ["2", "--max-restarts", "-1"]) == 2
    assert "max_restarts must be" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
