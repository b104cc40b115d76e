"""Bootstrap confidence intervals for ratios of medians of benchmark rounds.

A benchmark run keeps the time of every round (pytest-benchmark ``--benchmark-save-data``). The
ratio of medians candidate/baseline gets a percentile-bootstrap interval (Efron & Tibshirani,
*An Introduction to the Bootstrap*, 1993, ch. 13): each replicate resamples the rounds of both
runs with replacement, independently, and takes the ratio of the two medians. The calibration
ratio of a run pair is the geometric mean of the ratios of its calibration workloads, and the
normalised ratio of a benchmark is its ratio divided by that, replicate by replicate, so its
interval carries the noise of the calibration too.

Bootstrap medians are drawn exactly by resampling when that is cheap, and for long samples from
the closed-form distribution of the bootstrap median's rank (Efron 1979, "Bootstrap methods:
another look at the jackknife", section 3): with the sample sorted, the median of a resample of
size n is at most x_(j) exactly when at least ceil(n/2) draws land at or below position j, a
Binomial(n, j/n) event. That costs O(n) instead of O(n * n_boot).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from .._checks import check_choice, is_real, must_be, type_name

N_BOOT = 2000
# Above this many elements (n * n_boot) direct resampling gives way to the rank distribution.
_DIRECT_LIMIT = 4_000_000
_CHUNK = 1_000_000


@dataclass(frozen=True, kw_only=True)
class RatioCI:
    """A ratio with its confidence interval (``low``/``high`` are NaN when no rounds were kept)."""

    ratio: float
    low: float
    high: float

    @property
    def has_interval(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))


def _check_sample(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array of times, got shape {x.shape}")
    if not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError(f"{name} must hold finite times > 0")
    return x


def _direct_medians(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    n = x.size
    out = np.empty(n_boot)
    step = max(1, _CHUNK // n)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = np.median(x[idx], axis=1)
    return out


def _rank_medians(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    xs = np.sort(x)
    n = xs.size
    j = np.arange(1, n + 1)

    def order_stat(k: int, u: np.ndarray) -> np.ndarray:
        # P(k-th smallest of the resample <= xs[j-1]) = P(Binomial(n, j/n) >= k)
        cdf = sps.binom.sf(k - 1, n, j / n)
        cdf[-1] = 1.0
        return xs[np.minimum(np.searchsorted(cdf, u, side="left"), n - 1)]

    u = rng.random(n_boot)
    if n % 2:
        return order_stat((n + 1) // 2, u)
    # Even n: the median averages two neighbouring order statistics; drawing both from the same
    # uniform (comonotone) is exact in the limit and within one rank of exact for finite n.
    return 0.5 * (order_stat(n // 2, u) + order_stat(n // 2 + 1, u))


def bootstrap_medians(x, *, n_boot: int = N_BOOT, seed: int | np.random.Generator = 0,
                      method: str = "auto") -> np.ndarray:
    """Bootstrap replicates of the median of ``x``.

    Parameters
    ----------
    x : array_like of shape (n,)
        Per-round times (> 0).
    n_boot : int
        Number of replicates.
    seed : int or numpy.random.Generator
        Seed (or generator) of the resampling.
    method : {"auto", "direct", "rank"}
        ``"direct"`` resamples, ``"rank"`` draws from the closed-form rank distribution,
        ``"auto"`` picks ``"direct"`` when ``n * n_boot`` is at most 4 million.

    Returns
    -------
    ndarray of shape (n_boot,), float64
    """
    x = _check_sample(x, "x")
    if n_boot < 1:
        raise ValueError(must_be("n_boot", ">= 1", n_boot))
    check_choice(method, "method", ("auto", "direct", "rank"))
    rng = np.random.default_rng(seed)
    if method == "direct" or (method == "auto" and x.size * n_boot <= _DIRECT_LIMIT):
        return _direct_medians(x, n_boot, rng)
    return _rank_medians(x, n_boot, rng)


def ratio_replicates(candidate, baseline, *, n_boot: int = N_BOOT,
                     seed: int | np.random.Generator = 0) -> np.ndarray:
    """Bootstrap replicates of ``median(candidate) / median(baseline)`` (independent resamples).

    Parameters
    ----------
    candidate, baseline : array_like of shape (n,) and (m,)
        Per-round times of the same benchmark in two runs.
    n_boot : int
        Number of replicates.
    seed : int or numpy.random.Generator

    Returns
    -------
    ndarray of shape (n_boot,), float64
    """
    rng = np.random.default_rng(seed)
    cand = bootstrap_medians(candidate, n_boot=n_boot, seed=rng)
    base = bootstrap_medians(baseline, n_boot=n_boot, seed=rng)
    return cand / base


def percentile_interval(replicates, *, point: float, confidence: float) -> RatioCI:
    """Equal-tailed percentile interval of bootstrap ``replicates`` around ``point``.

    Parameters
    ----------
    replicates : array_like of shape (n_boot,)
    point : float
        The point estimate (computed on the full samples, not the replicates).
    confidence : float
        In (0, 1), for example 0.95.

    Returns
    -------
    RatioCI
    """
    check_confidence(confidence)
    alpha = 1.0 - confidence
    low, high = np.quantile(np.asarray(replicates, dtype=np.float64), [alpha / 2, 1 - alpha / 2])
    return RatioCI(ratio=float(point), low=float(low), high=float(high))


def check_confidence(confidence: float) -> float:
    """Validate a confidence level (``0 < confidence < 1``) and return it as a float."""
    if not is_real(confidence):
        raise TypeError(must_be("confidence", "a float", type_name(confidence)))
    if not 0.0 < confidence < 1.0:
        raise ValueError(must_be("confidence", "in (0, 1)", confidence))
    return float(confidence)


def median_ratio_ci(candidate, baseline, *, confidence: float = 0.95, n_boot: int = N_BOOT,
                    seed: int = 0) -> RatioCI:
    """Ratio of medians ``candidate / baseline`` with a percentile-bootstrap interval.

    Parameters
    ----------
    candidate, baseline : array_like
        Per-round times of the same benchmark in two runs.
    confidence : float
        Confidence level of the interval.
    n_boot : int
        Number of bootstrap replicates.
    seed : int
        Seed; the same inputs and seed give the same interval.

    Returns
    -------
    RatioCI
    """
    cand = _check_sample(candidate, "candidate")
    base = _check_sample(baseline, "baseline")
    reps = ratio_replicates(cand, base, n_boot=n_boot, seed=seed)
    return percentile_interval(reps, point=np.median(cand) / np.median(base),
                               confidence=confidence)


def geometric_mean(ratios, axis: int = 0) -> np.ndarray:
    """Geometric mean along ``axis`` (the calibration ratio of several workloads)."""
    return np.exp(np.mean(np.log(np.asarray(ratios, dtype=np.float64)), axis=axis))
