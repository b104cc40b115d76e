"""Bootstrap intervals of median ratios (evcf_fast.benchtools.stats).

Oracles: a per-replicate Python loop of resampling for the direct bootstrap, the empirical
distribution of that loop for the closed-form rank method, and hand-computed degenerate cases.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evcf_fast.benchtools import stats


def _loop_bootstrap_medians(x, n_boot, seed):
    """Oracle: one resample per replicate, in the same random stream order."""
    rng = np.random.default_rng(seed)
    x = np.asarray(x, dtype=np.float64)
    return np.array([np.median(x[rng.integers(0, x.size, size=x.size)]) for _ in range(n_boot)])


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), n_boot=st.integers(1, 300), seed=st.integers(0, 2**31))
def test_direct_bootstrap_matches_loop_oracle(n, n_boot, seed):
    x = np.random.default_rng(seed + 1).lognormal(size=n)
    got = stats.bootstrap_medians(x, n_boot=n_boot, seed=seed, method="direct")
    np.testing.assert_array_equal(got, _loop_bootstrap_medians(x, n_boot, seed))


def test_direct_bootstrap_chunks_like_one_block(monkeypatch):
    """Chunking (to bound memory) must not change the replicates."""
    x = np.random.default_rng(3).random(50) + 0.1
    whole = stats.bootstrap_medians(x, n_boot=400, seed=5, method="direct")
    monkeypatch.setattr(stats, "_CHUNK", 120)  # forces chunks of 2 replicates
    np.testing.assert_array_equal(stats.bootstrap_medians(x, n_boot=400, seed=5, method="direct"),
                                  whole)


@pytest.mark.parametrize("n", [301, 300])  # odd: exact; even: comonotone approximation
def test_rank_method_matches_resampling_distribution(n):
    """The closed-form rank distribution against the quantiles of direct resampling."""
    x = np.random.default_rng(n).lognormal(sigma=0.3, size=n)
    xs = np.sort(x)
    direct = stats.bootstrap_medians(x, n_boot=6000, seed=1, method="direct")
    rank = stats.bootstrap_medians(x, n_boot=6000, seed=2, method="rank")
    qs = [0.025, 0.1, 0.5, 0.9, 0.975]
    # compare in rank units: the sample's order statistics are the natural scale
    spread = np.sqrt(n) / 2  # sd of the bootstrap median's rank
    np.testing.assert_allclose(np.searchsorted(xs, np.quantile(rank, qs)),
                               np.searchsorted(xs, np.quantile(direct, qs)), atol=0.35 * spread)


def test_auto_switches_to_rank_method_for_long_samples():
    x = np.random.default_rng(0).lognormal(size=5001)
    auto = stats.bootstrap_medians(x, n_boot=1000, seed=4)
    np.testing.assert_array_equal(auto, stats.bootstrap_medians(x, n_boot=1000, seed=4,
                                                                method="rank"))
    assert np.all(np.isin(auto, x))  # odd n: every bootstrap median is a sample value


def test_constant_samples_give_degenerate_interval():
    """Hand case: every round 2 ms vs every round 4 ms is a ratio of exactly 2 with no spread."""
    ci = stats.median_ratio_ci([4e-3] * 9, [2e-3] * 7, confidence=0.9)
    assert (ci.ratio, ci.low, ci.high) == (2.0, 2.0, 2.0)
    assert ci.has_interval


def test_median_ratio_ci_point_and_coverage():
    rng = np.random.default_rng(7)
    base = 1e-3 * rng.lognormal(sigma=0.1, size=40)
    cand = 1.5e-3 * rng.lognormal(sigma=0.1, size=40)
    ci = stats.median_ratio_ci(cand, base, confidence=0.95, seed=0)
    assert ci.ratio == pytest.approx(np.median(cand) / np.median(base))
    assert ci.low < ci.ratio < ci.high
    assert ci.low < 1.5 < ci.high  # the true ratio
    narrow = stats.median_ratio_ci(cand, base, confidence=0.5, seed=0)
    assert ci.low <= narrow.low and narrow.high <= ci.high


def test_percentile_interval_and_geometric_mean_hand_cases():
    ci = stats.percentile_interval(np.arange(1, 102, dtype=float), point=51.0, confidence=0.9)
    assert (ci.low, ci.high) == pytest.approx((6.0, 96.0))  # 5th and 95th percentiles of 1..101
    assert stats.geometric_mean([2.0, 8.0]) == pytest.approx(4.0)
    assert not stats.RatioCI(ratio=1.0, low=np.nan, high=np.nan).has_interval


@pytest.mark.parametrize("x, match", [
    ([], "non-empty 1-d array"),
    ([[1.0, 2.0]], "non-empty 1-d array"),
    ([1.0, -1.0], "finite times > 0"),
    ([1.0, np.nan], "finite times > 0"),
    ([0.0, 1.0], "finite times > 0"),
])
def test_bad_samples_are_rejected(x, match):
    with pytest.raises(ValueError, match=match):
        stats.bootstrap_medians(x)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="n_boot must be >= 1, got 0"):
        stats.bootstrap_medians([1.0], n_boot=0)
    with pytest.raises(ValueError, match="method must be one of"):
        stats.bootstrap_medians([1.0], method="bca")
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 1.5"):
        stats.median_ratio_ci([1.0], [1.0], confidence=1.5)
    with pytest.raises(TypeError, match="confidence must be a float, got bool"):
        stats.check_confidence(True)
    with pytest.raises(ValueError, match="candidate must hold finite times"):
        stats.median_ratio_ci([-1.0], [1.0])
