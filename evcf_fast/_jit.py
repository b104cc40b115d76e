"""First use of the Numba kernels: compile (or load from the cache) before timed work, and say so.

Every kernel is ``cache=True``: the first process to call a kernel with new argument types
compiles it (seconds to tens of seconds) and writes the machine code to Numba's cache; later
processes load it in milliseconds. :func:`ensure_compiled` gets the code for exactly the argument
types of a call, before a progress bar starts, so that compile time never shows up as a slow
per-user rate; when it has to compile it prints one note per process on stderr. Only the
signatures a call needs are compiled (``evcf warmup`` compiles all of them ahead of time).

This module imports numba lazily and touches two private Numba attributes (the cache index);
if they move, it falls back to printing the note whenever machine code is not yet loaded.
"""

from __future__ import annotations

import sys
import time

_noted = False


def cache_dir(dispatcher) -> str:
    """Where Numba keeps (or would keep) the machine code of ``dispatcher``."""
    try:
        return str(dispatcher.stats.cache_path)
    except Exception:  # pragma: no cover - depends on the Numba version
        return "Numba's cache directory (NUMBA_CACHE_DIR)"


def _on_disk(dispatcher, sig) -> bool:
    """Whether Numba's cache holds machine code for ``sig`` (a cheap index lookup)."""
    try:
        cache = dispatcher._cache
        key = cache._index_key(sig, dispatcher.targetctx.codegen())
        return cache._cache_file._load_index().get(key) is not None
    except Exception:  # pragma: no cover - private API moved: assume it must compile
        return False


def note(dispatcher, *, stream=None) -> None:
    """Print the first-use compilation note once per process."""
    global _noted
    if _noted:
        return
    _noted = True
    print(f"evcf: compiling Numba kernels for first use (a minute or more on a busy "
          f"machine; once: the machine code is cached in {cache_dir(dispatcher)} and later "
          f"runs load it; `evcf warmup` does this ahead of time)", file=stream or sys.stderr,
          flush=True)


def needs_compiling(dispatcher, *args) -> bool:
    """True when calling ``dispatcher(*args)`` would compile (no loaded or cached code)."""
    sig = tuple(dispatcher.typeof_pyval(a) for a in args)
    if sig in dispatcher.overloads:
        return False
    return not _on_disk(dispatcher, sig)


_pool_started = False


def start_numba_threads() -> int:
    """Start Numba's thread pool (once per process) without changing torch's thread count;
    returns Numba's thread count.

    With the OpenMP threading layer, Numba and a CPU build of torch share one libgomp, and
    starting Numba's pool sets OpenMP's default team size to Numba's thread count (all cores).
    Torch reads that value, so from then on every torch op ran on all cores whatever the user
    had set (``OMP_NUM_THREADS=1``, ``torch.set_num_threads``): on this 2-core machine, with
    one other job running, 200 products of a 200 x 3,500 by 3,500 x 600 float32 matrix then
    took 6.4 CPU-seconds instead of 1.1. Starting the pool here and putting torch's count back
    keeps both as configured. Call it before the first parallel kernel of a process that uses
    torch (the trainer does; torch imported afterwards reads Numba's count).
    """
    global _pool_started
    import numba

    if _pool_started:
        return numba.get_num_threads()
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    n = numba.get_num_threads()  # launches the pool
    if before is not None and torch.get_num_threads() != before:
        torch.set_num_threads(before)
    _pool_started = True
    return n


def ensure_compiled(dispatcher, *args, announce: bool = True) -> float:
    """Load or compile ``dispatcher``'s machine code for the types of ``args``; never runs it.

    Returns the seconds spent (0.0 when it was already loaded in this process). Prints the
    first-use note (once per process) when it has to compile and ``announce`` is true.
    """
    start_numba_threads()
    sig = tuple(dispatcher.typeof_pyval(a) for a in args)
    if sig in dispatcher.overloads:
        return 0.0
    if announce and not _on_disk(dispatcher, sig):
        note(dispatcher)
    t0 = time.perf_counter()
    dispatcher.compile(sig)
    return time.perf_counter() - t0


def cold(dispatcher) -> bool:
    """True when ``dispatcher`` has no machine code loaded and none in the cache, for any types."""
    if dispatcher.overloads:
        return False
    try:
        return not dispatcher._cache._cache_file._load_index()
    except Exception:  # pragma: no cover - private API moved
        return True


def note_if_cold(*dispatchers) -> None:
    """The first-use note when any of ``dispatchers`` has never been compiled on this machine
    (for a chain of kernels whose argument types are only known along the way)."""
    for d in dispatchers:
        if cold(d):
            note(d)
            return
