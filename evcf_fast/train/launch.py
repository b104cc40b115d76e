"""Joining a torch.distributed process group, and the one-machine torchrun launcher (issue 10).

``torchrun`` (or ``evcf train --nproc-per-node N``, which runs it) starts the ranks with the env://
variables (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``);
:func:`init_from_env` joins the group with a bounded timeout (gloo on the CPU, NCCL with one GPU
per local rank) and returns the context the trainer uses (:mod:`evcf_fast.train.distributed`).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import torch

from .._checks import check_float, check_int, must_be
from .config import DIST_TIMEOUT_S
from .distributed import DistContext, LocalContext
from .evaluation import resolve_device

DEFAULT_TIMEOUT_S = DIST_TIMEOUT_S  # rendezvous and every collective
RENDEZVOUS_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def launched() -> bool:
    """True inside a process started by torchrun (or with the env:// variables set by hand)."""
    return "WORLD_SIZE" in os.environ or "RANK" in os.environ


def restarted() -> bool:
    """True when torchrun restarted this worker group after a failure."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def init_from_env(*, device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S) -> LocalContext:
    """Join the process group described by torchrun's environment variables.

    Returns :class:`LocalContext` outside torchrun or for a world of one, else a
    :class:`DistContext` (gloo on the CPU, NCCL on CUDA with one GPU per local rank).

    Raises
    ------
    ValueError
        Incomplete rendezvous variables, a bad world size, or a rendezvous that failed or timed
        out after ``timeout_s`` seconds.
    """
    import torch.distributed as dist

    check_float(timeout_s, "timeout_s", positive=True)
    if not launched():
        return LocalContext()
    if dist.is_initialized():
        return DistContext()
    missing = [k for k in RENDEZVOUS_ENV if not os.environ.get(k)]
    if missing:
        raise ValueError(f"distributed launch: environment variable(s) {missing} not set (a "
                         f"missing rendezvous); launch with `torchrun --nproc-per-node N -m "
                         f"evcf_fast train ...` or `evcf train --nproc-per-node N ...`")
    world = check_int(_env_int("WORLD_SIZE"), "WORLD_SIZE", minimum=1)
    if world == 1:
        return LocalContext()
    dev = resolve_device(device)
    if dev.type == "cuda":
        local_rank = _env_int("LOCAL_RANK", 0)
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK={local_rank} but this node has "
                             f"{torch.cuda.device_count()} GPU(s); use --nproc-per-node <= "
                             f"{torch.cuda.device_count()}")
        torch.cuda.set_device(local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s)
    try:
        dist.init_process_group(backend, store=_attempt_store(world, timeout), timeout=timeout,
                                rank=_env_int("RANK"), world_size=world)
    except Exception as exc:
        raise ValueError(f"distributed rendezvous at {os.environ['MASTER_ADDR']}:"
                         f"{os.environ['MASTER_PORT']} failed for rank {os.environ['RANK']} of "
                         f"{world} within {timeout_s:g} s ({exc})") from exc
    return DistContext()


def _attempt_store(world: int, timeout):
    """The rendezvous store, under a prefix per torchrun attempt.

    torchrun's agent keeps one store across worker-group restarts; without a prefix a restarted
    group can read the previous group's (dead) gloo addresses and fail to connect.
    """
    import torch.distributed as dist

    host, port = os.environ["MASTER_ADDR"], _env_int("MASTER_PORT")
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(host, port, world, is_master=not agent_store and _env_int("RANK") == 0,
                          timeout=timeout, wait_for_workers=False)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"evcf_fast/attempt_{attempt}", store)


def _env_int(name: str, default: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None and default is not None:
        return default
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValueError(must_be(f"environment variable {name}", "an integer", repr(raw))) \
            from None


def shutdown() -> None:
    """Leave the process group (if one was joined)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(argv: list[str], *, nproc_per_node: int, max_restarts: int = 0) -> list[str]:
    """The one-machine ``torchrun`` command running ``python -m evcf_fast`` with ``argv``."""
    check_int(nproc_per_node, "nproc_per_node", minimum=1)
    check_int(max_restarts, "max_restarts", minimum=0)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc_per_node}", f"--max-restarts={max_restarts}",
            "-m", "evcf_fast", *argv]


def launch_local(argv: list[str], *, nproc_per_node: int, max_restarts: int = 0) -> int:
    """Run ``evcf ARGV`` on ``nproc_per_node`` local processes through torchrun; its exit status."""
    return subprocess.call(torchrun_command(argv, nproc_per_node=nproc_per_node,
                                            max_restarts=max_restarts))
