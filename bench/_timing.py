"""Side-by-side timing inside one benchmark: contenders run in turn, so load from other jobs on
a shared machine falls on all of them alike and their ratio stays meaningful."""

from __future__ import annotations

import time

import numpy as np


def alternate(fns, rounds: int) -> list[float]:
    """Median seconds of each callable, timed in turn (a, b, c, a, b, c, ...) ``rounds`` times."""
    times = [[] for _ in fns]
    for _ in range(rounds):
        for q, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            times[q].append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times]
