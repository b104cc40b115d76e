"""The paired tests, the bootstrap interval and the multiple-comparison corrections."""

from __future__ import annotations

import warnings

import numpy as np

from .report import TIE_RTOL, WILCOXON_ZERO_METHOD

# ---------------------------------------------------------------------------------------------
# tests and corrections


def _all_zero(diffs: np.ndarray) -> np.ndarray:
    return ~np.any(diffs != 0, axis=1)


def _p_ttest(diffs, **_) -> np.ndarray:
    from scipy import stats

    with warnings.catch_warnings():  # zero variance: handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        zeros = np.broadcast_to(0.0, diffs.shape)
        p = np.asarray(stats.ttest_rel(diffs, zeros, axis=1).pvalue, float)
    p[_all_zero(diffs)] = 1.0
    return p


def _p_wilcoxon(diffs, **_) -> np.ndarray:
    from scipy import stats

    p = np.ones(diffs.shape[0])
    rows = np.flatnonzero(~_all_zero(diffs))
    with warnings.catch_warnings():  # scipy warns when it leaves the exact distribution
        warnings.simplefilter("ignore", UserWarning)
        if diffs.shape[1] > 50 and rows.size:
            # scipy's method="auto" is the normal approximation for every row: one vectorised
            # call gives each row's p-value of a call on that row alone
            d = diffs if rows.size == diffs.shape[0] else diffs[rows]
            p[rows] = stats.wilcoxon(d, zero_method=WILCOXON_ZERO_METHOD, axis=1).pvalue
        else:  # small n: "auto" looks at zeros and ties of the whole input, so one row a call
            for c in rows:
                p[c] = stats.wilcoxon(diffs[c], zero_method=WILCOXON_ZERO_METHOD).pvalue
    return p


def _p_randomization(diffs, *, n_permutations, seed, n_threads) -> np.ndarray:
    from ..kernels.significance import sign_flip_counts
    from ..metrics import numba_threads

    tol = TIE_RTOL * np.abs(diffs).sum(axis=1)
    with numba_threads(n_threads):
        counts = sign_flip_counts(diffs, tol, n_permutations, seed)
    return (counts + 1.0) / (n_permutations + 1.0)


_P_VALUE_FUNCS = {"t-test": _p_ttest, "wilcoxon": _p_wilcoxon,
                  "randomization": _p_randomization}


def _bootstrap_ci(diffs, *, n_bootstrap, confidence, seed, n_threads):
    from ..kernels.significance import bootstrap_means
    from ..metrics import numba_threads

    with numba_threads(n_threads):
        means = bootstrap_means(diffs, n_bootstrap, seed)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return low, high


def holm(p: np.ndarray) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values of one family (1-D): the i-th smallest p becomes
    ``max over j <= i of min(1, (m - j + 1) * p_(j))``."""
    p = np.asarray(p, float)
    m = p.size
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _adjust(p: np.ndarray, correction: str) -> np.ndarray:
    """p[k, j] (comparison k, metric j) adjusted per metric over the comparisons."""
    if correction == "none":
        return p.copy()
    if correction == "bonferroni":
        return np.minimum(1.0, p * p.shape[0])
    return np.stack([holm(p[:, j]) for j in range(p.shape[1])], axis=1)


# ---------------------------------------------------------------------------------------------
