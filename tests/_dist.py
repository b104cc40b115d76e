"""Run a function on W local ranks of a gloo process group (spawned processes, 127.0.0.1 only).

``run_ranks(fn, world_size, *args)`` starts ``world_size`` spawned processes, each joins the group
through :func:`evcf_fast.train.launch.init_from_env` (the env:// variables torchrun sets) and
calls ``fn(*args)``; the return values come back in rank order. A rank that fails re-raises its
error in the caller; a run past ``timeout`` seconds is killed, so nothing hangs.
"""

import multiprocessing as mp
import os
import socket
import tempfile
import traceback
from pathlib import Path

import torch


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank, world_size, port, fn, args, result_dir, timeout_s):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)})
    torch.set_num_threads(1)
    from evcf_fast.train import launch

    out = Path(result_dir) / f"rank{rank}.pt"
    try:
        launch.init_from_env(device="cpu", timeout_s=timeout_s)
        value = fn(*args)
        torch.save({"ok": True, "value": value}, out)
    except BaseException as exc:  # reported to the test process
        torch.save({"ok": False, "type": type(exc).__name__, "message": str(exc),
                    "traceback": traceback.format_exc()}, out)
    finally:
        launch.shutdown()


def run_ranks(fn, world_size, *args, timeout=240, collective_timeout_s=60.0,
              expect_error=False):
    """Values of ``fn(*args)`` per rank; with ``expect_error``, each rank's (type, message)."""
    ctx = mp.get_context("spawn")
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        procs = [ctx.Process(target=_rank_main, args=(r, world_size, port, fn, args, tmp,
                                                      collective_timeout_s))
                 for r in range(world_size)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout)
        alive = [p for p in procs if p.is_alive()]
        for p in alive:
            p.kill()
            p.join()
        assert not alive, f"{len(alive)} rank(s) still running after {timeout} s: killed"
        results = []
        for r in range(world_size):
            path = Path(tmp) / f"rank{r}.pt"
            assert path.exists(), f"rank {r} exited with {procs[r].exitcode} and no result"
            results.append(torch.load(path, weights_only=False))
    if expect_error:
        return [(res.get("type"), res.get("message")) for res in results]
    for r, res in enumerate(results):
        assert res["ok"], f"rank {r} failed:\n{res['traceback']}"
    return [res["value"] for res in results]


def _pool_main(rank, world_size, port, threads, setup, args, commands, done):
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)})
    torch.set_num_threads(threads)
    from evcf_fast.train import launch

    try:
        launch.init_from_env(device="cpu", timeout_s=120)
        state = setup(*args)
        done.put((rank, "ready"))
        while (fn := commands.get()) is not None:
            done.put((rank, fn(state)))
    except BaseException:
        done.put((rank, "error: " + traceback.format_exc()))
    finally:
        launch.shutdown()


class RankPool:
    """``world_size`` long-lived spawned ranks (``threads`` torch threads each) for timing:
    ``setup(*args)`` runs once per rank, then ``pool.run(fn)`` calls ``fn(state)`` on every rank
    and returns rank 0's value when all ranks are done."""

    def __init__(self, world_size, setup, *args, threads=1, timeout=300):
        ctx = mp.get_context("spawn")
        self.world_size, self.timeout = world_size, timeout
        self.commands = [ctx.Queue() for _ in range(world_size)]
        self.done = ctx.Queue()
        port = free_port()
        self.procs = [ctx.Process(target=_pool_main, args=(r, world_size, port, threads, setup,
                                                           args, self.commands[r], self.done))
                      for r in range(world_size)]
        for p in self.procs:
            p.start()
        self._collect()

    def _collect(self):
        values = {}
        for _ in range(self.world_size):
            rank, value = self.done.get(timeout=self.timeout)
            if isinstance(value, str) and value.startswith("error: "):
                self.close()
                raise RuntimeError(f"rank {rank} failed:\n{value[7:]}")
            values[rank] = value
        return values[0]

    def run(self, fn):
        for q in self.commands:
            q.put(fn)
        return self._collect()

    def close(self):
        for q in self.commands:
            q.put(None)
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
