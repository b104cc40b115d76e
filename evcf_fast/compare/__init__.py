"""Paired significance tests between recommender systems evaluated on the same users.

:func:`compare` takes the per-user metric values of two or more systems (``EvaluationResult``
objects from :func:`evcf_fast.metrics.evaluate`, or plain mappings of metric name to per-user
values), pairs them user by user and reports, for every system and metric, the mean and its
standard error, the difference to a baseline system with a paired bootstrap confidence interval,
and the p-values of up to three paired tests with a multiple-comparison correction. The
:class:`ComparisonReport` prints as Markdown, LaTeX or JSON and marks significant differences,
like ranx's ``compare`` (Bassani, "ranx: A Blazing-Fast Python Library for Ranking Evaluation
and Comparison", ECIR 2022).

What is computed, per (system, metric), with ``d_u = value_u(system) - value_u(baseline)`` over
the ``n`` users evaluated in every system:

* **mean, stderr**: over those ``n`` users (so, after ``intersect=True``, possibly fewer users
  than in each system's own ``EvaluationResult.mean``); stderr = std(ddof=1) / sqrt(n).
* **diff**: the mean of ``d``; **ci**: the percentile interval of the mean of ``d`` over
  ``n_bootstrap`` paired bootstrap resamples of the users (the same resampled users for every
  system and metric; Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13).
* **"t-test"**: ``scipy.stats.ttest_rel`` (two-sided).
* **"wilcoxon"**: ``scipy.stats.wilcoxon(d, zero_method="wilcox")`` (two-sided, scipy's
  ``method="auto"``): users with a zero difference are dropped before ranking, as in Wilcoxon's
  original test, R's ``wilcox.test`` and scipy's default. Ranking metrics give many exact zeros
  (users that both systems miss entirely); the test is then about the users where the systems
  differ.
* **"randomization"**: Fisher's randomisation test of the mean difference, the paired
  permutation test that flips the sign of each user's difference at random (Fisher, *The Design
  of Experiments*, 1935; Smucker, Allan & Carterette, "A comparison of statistical significance
  tests for information retrieval evaluation", CIKM 2007). Two-sided, p =
  ``(count + 1) / (n_permutations + 1)`` with ``count`` the random sign flips whose
  ``|sum of signed differences|`` reaches the observed ``|sum of differences|`` (within
  ``1e-9 * sum |d|``, so that exact ties are not lost to rounding). Counting the observed
  assignment once keeps the test valid and p above 0 (Phipson & Smyth, 2010). The flips come from
  a counter-based SplitMix64 stream per permutation (:mod:`evcf_fast.kernels.significance`), so
  results depend on ``seed`` only, never on the number of threads.
* Degenerate differences: all ``d_u == 0`` gives p = 1 in every test. Constant non-zero
  differences give an infinite t statistic (p = 0 for the t-test).
* **correction**: ``"holm"`` (Holm, "A simple sequentially rejective multiple test procedure",
  1979), ``"bonferroni"`` or ``"none"``, applied per test **and per metric** over the
  ``n_systems - 1`` comparisons with the baseline (the family is "which systems differ from the
  baseline on this metric, by this test"). ``significant`` is ``adjusted p <= alpha``.

Users are matched by id: row ``i`` of a system is user ``i`` unless ``users`` gives ids. A user is
evaluated in a system when none of the compared metrics is NaN there (``EvaluationResult`` has
NaN exactly for users without held-out items). Systems evaluated on different users are an
error unless ``intersect=True``, which keeps the users evaluated in every system and reports how
many were dropped. Users are put in increasing id order before the random tests, so the order
of rows does not change any result.

Example
-------
>>> from evcf_fast.compare import compare                       # doctest: +SKIP
>>> report = compare({"multvae": res_a, "vamp": res_b, "hvamp": res_c},  # doctest: +SKIP
...                  baseline="multvae", metrics=["ndcg@100", "recall@20"])
>>> print(report.to_markdown())                                 # doctest: +SKIP
>>> report["vamp", "ndcg@100"].p_adjusted["randomization"]      # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

from .._checks import check_bool, check_choice, check_int, must_be, type_name
from ..metrics import EvaluationResult
from .inputs import (
    _align,
    _check_metrics,
    _check_open_unit,
    _check_same_definitions,
    _check_same_heldout,
    _check_systems,
    _check_tests,
)
from .report import CORRECTIONS, TESTS, TIE_RTOL, ComparisonCell, ComparisonReport
from .stats import _P_VALUE_FUNCS, _adjust, _bootstrap_ci, holm

__all__ = ["TESTS", "CORRECTIONS", "TIE_RTOL", "ComparisonCell", "ComparisonReport", "compare",
           "holm"]

# ---------------------------------------------------------------------------------------------
# the verb


def compare(systems: Mapping[str, EvaluationResult | Mapping[str, np.ndarray]], *,
            baseline: str | None = None,
            metrics: str | Iterable[str] | None = None,
            tests: str | Iterable[str] = ("t-test", "wilcoxon", "randomization"),
            alpha: float = 0.05, correction: str = "holm",
            n_permutations: int = 10_000, n_bootstrap: int = 10_000,
            confidence: float = 0.95, seed: int = 0,
            users: Mapping[str, np.ndarray] | None = None, intersect: bool = False,
            n_threads: int | None = None) -> ComparisonReport:
    """Compare systems evaluated on the same users with paired tests (see the module docstring).

    Parameters
    ----------
    systems : mapping of str to EvaluationResult or to a mapping of metric name to values
        Two or more systems by name, in the order of the tables. Plain per-user values are 1-D
        float arrays of equal length per system; NaN marks a user the system did not evaluate.
    baseline : str, optional
        The system every other one is compared with; default: the first.
    metrics : str or iterable of str, optional
        Metric names as the systems spell them (``"ndcg@100"``; case and surrounding spaces
        ignored); default: every metric of the baseline. Each must exist in every system.
    tests : str or iterable of str
        Any of :data:`TESTS`.
    alpha : float
        Significance level in (0, 1), applied to the corrected p-values.
    correction : str
        One of :data:`CORRECTIONS`; the family is the comparisons with the baseline, per metric
        and test.
    n_permutations : int
        Random sign flips of the randomisation test, >= 1.
    n_bootstrap : int
        Bootstrap resamples of the confidence interval, >= 0 (0: no interval).
    confidence : float
        Coverage of the interval, in (0, 1).
    seed : int
        In [0, 2**64): fixes the sign flips and the resamples.
    users : mapping of str to array, optional
        Per system (any subset), the id of each row; default ``0, 1, ..., n_rows - 1``. Ids
        are ints or strings, unique within a system.
    intersect : bool
        Compare on the users evaluated in every system instead of raising when they differ.
    n_threads : int, optional
        Numba threads for the randomisation test and the bootstrap (results do not depend on
        it); default: Numba's current setting.

    Returns
    -------
    ComparisonReport

    Raises
    ------
    TypeError, ValueError
        Bad arguments (the message names the argument), fewer than two systems, an unknown
        baseline or metric, systems evaluated on different users (without ``intersect``),
        systems evaluated with different held-out data or recall definitions, or fewer than
        two users left to compare.
    """
    names, values, n_rows, results = _check_systems(systems)
    if baseline is None:
        baseline = names[0]
    elif not isinstance(baseline, str):
        raise TypeError(must_be("baseline", "a str or None", type_name(baseline)))
    elif baseline not in values:
        raise ValueError(must_be("baseline", f"one of the systems {names}", repr(baseline)))
    metric_names = _check_metrics(metrics, values, names, baseline)
    tests = _check_tests(tests)
    alpha = _check_open_unit(alpha, "alpha")
    confidence = _check_open_unit(confidence, "confidence")
    correction = check_choice(correction, "correction", CORRECTIONS)
    n_permutations = check_int(n_permutations, "n_permutations", minimum=1)
    n_bootstrap = check_int(n_bootstrap, "n_bootstrap", minimum=0)
    seed = check_int(seed, "seed", minimum=0, maximum=2**64 - 1)
    intersect = check_bool(intersect, "intersect")
    if n_threads is not None:
        import numba

        n_threads = check_int(n_threads, "n_threads", minimum=1,
                              maximum=numba.config.NUMBA_NUM_THREADS)
    _check_same_definitions(results, metric_names)

    keep, n_users, n_dropped, dropped = _align(names, values, n_rows, metric_names, users,
                                               baseline=baseline, intersect=intersect)
    _check_same_heldout(results, keep)
    # x[s, j, u]: system s, metric j, user u (users in increasing id order)
    x = np.empty((len(names), len(metric_names), n_users))
    for s, name in enumerate(names):
        for j, metric in enumerate(metric_names):
            x[s, j] = values[name][metric][keep[name]]
    mean = x.mean(axis=2)
    stderr = x.std(axis=2, ddof=1) / math.sqrt(n_users)

    b = names.index(baseline)
    others = [s for s in range(len(names)) if s != b]
    # diffs[k * n_metrics + j]: comparison k (others[k] - baseline), metric j
    diffs = np.ascontiguousarray((x[others] - x[b][None]).reshape(-1, n_users))
    shape = (len(others), len(metric_names))
    p_raw = {t: _P_VALUE_FUNCS[t](diffs, n_permutations=n_permutations, seed=seed,
                                  n_threads=n_threads).reshape(shape) for t in tests}
    p_adj = {t: _adjust(p, correction) for t, p in p_raw.items()}
    if n_bootstrap and others:
        ci_low, ci_high = _bootstrap_ci(diffs, n_bootstrap=n_bootstrap, confidence=confidence,
                                        seed=seed, n_threads=n_threads)
        ci_low, ci_high = ci_low.reshape(shape), ci_high.reshape(shape)
    else:
        ci_low = ci_high = np.full(shape, np.nan)
    diff = diffs.mean(axis=1).reshape(shape)

    cells = []
    for s, name in enumerate(names):
        k = others.index(s) if s != b else None
        for j, metric in enumerate(metric_names):
            if k is None:
                cells.append(ComparisonCell(
                    system=name, metric=metric, is_baseline=True, mean=float(mean[s, j]),
                    stderr=float(stderr[s, j]), diff=0.0, ci_low=math.nan, ci_high=math.nan,
                    p_value={}, p_adjusted={}, significant={}))
                continue
            cells.append(ComparisonCell(
                system=name, metric=metric, is_baseline=False, mean=float(mean[s, j]),
                stderr=float(stderr[s, j]), diff=float(diff[k, j]),
                ci_low=float(ci_low[k, j]), ci_high=float(ci_high[k, j]),
                p_value={t: float(p_raw[t][k, j]) for t in tests},
                p_adjusted={t: float(p_adj[t][k, j]) for t in tests},
                significant={t: bool(p_adj[t][k, j] <= alpha) for t in tests}))
    return ComparisonReport(
        systems=tuple(names), baseline=baseline, metrics=tuple(metric_names), tests=tests,
        alpha=alpha, correction=correction, confidence=confidence,
        n_permutations=n_permutations, n_bootstrap=n_bootstrap, seed=seed, n_users=n_users,
        n_dropped=n_dropped, dropped=dropped, cells=tuple(cells))
