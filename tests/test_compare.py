"""evcf_fast.compare and its kernels (evcf_fast.kernels.significance) against oracles.

* t-test and Wilcoxon p-values are checked against ``scipy.stats.ttest_rel`` and
  ``scipy.stats.wilcoxon(zero_method="wilcox")`` called on the same differences;
* the randomisation test against an exact enumeration of all 2**n sign flips (n <= 12, within
  Monte-Carlo error) and, count for count, against a pure-Python float64 re-implementation that
  reads the same SplitMix64 stream and adds in the documented order;
* the bootstrap against a pure-Python re-implementation of its draws;
* Holm-Bonferroni against hand-computed families;
* every documented error with ``match=``.
"""

import itertools
import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.stats as stats
from hypothesis import given, settings
from hypothesis import strategies as st

from evcf_fast.compare import CORRECTIONS, TESTS, ComparisonReport, compare, holm
from evcf_fast.kernels import significance as sig
from evcf_fast.metrics import EvaluationResult, evaluate

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


# ---------------------------------------------------------------------------------------------
# pure-Python oracles of the kernels (written from the module docstring, not from the code)


def mix64(z: int) -> int:
    z &= MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def stream(seed: int, tag: int, r: int, n_words: int) -> list[int]:
    key = mix64(seed ^ tag)
    start = mix64(key + r)
    return [mix64(start + (t + 1) * GAMMA) for t in range(n_words)]


def py_sign_flip_counts(diffs, tol, n_permutations, seed):
    """Count for count what the kernel must return: float64 sums in the documented order."""
    m, n = diffs.shape
    d = diffs.tolist()

    def kept_sum(c, bits):  # groups of 8 users: 0.0 + kept values; then 0.0 + group parts
        s = 0.0
        for g0 in range(0, n, 8):
            part = 0.0
            for u in range(g0, min(n, g0 + 8)):
                if bits[u]:
                    part += d[c][u]
            s += part
        return s

    total = [kept_sum(c, [1] * n) for c in range(m)]
    counts = [0] * m
    for p in range(n_permutations):
        words = stream(seed, int(sig.SIGN_FLIP_TAG), p, (n + 63) // 64)
        bits = [(words[u // 64] >> (u % 64)) & 1 for u in range(n)]
        for c in range(m):
            stat = abs(2.0 * kept_sum(c, bits) - total[c])
            if stat >= abs(total[c]) - tol[c]:
                counts[c] += 1
    return np.array(counts)


def py_bootstrap_counts(n, r, seed):
    words = stream(seed, int(sig.BOOTSTRAP_TAG), r, n)
    counts = np.zeros(n, np.int64)
    for w in words:
        counts[(w * n) >> 64] += 1  # the high half of the 128-bit product
    return counts


def exact_randomization_p(d, tol):
    """Two-sided p-value over all 2**n sign assignments (the observed one included)."""
    d = np.asarray(d, float)
    observed = abs(d.sum())
    hits = sum(abs(np.dot(signs, d)) >= observed - tol
               for signs in itertools.product((1.0, -1.0), repeat=d.size))
    return hits / 2**d.size


# ---------------------------------------------------------------------------------------------
# helpers


def systems_from(x, names=None, metrics=("ndcg@100", "recall@20")):
    """x[s, j, u] -> {name: {metric: values}}."""
    names = names or [f"s{i}" for i in range(x.shape[0])]
    return {name: {m: x[s, j] for j, m in enumerate(metrics)} for s, name in enumerate(names)}


def random_systems(seed=0, n_systems=4, n_users=300, effect=0.05):
    rng = np.random.default_rng(seed)
    base = rng.random((2, n_users))
    x = np.stack([np.clip(base + k * effect + 0.2 * rng.standard_normal((2, n_users)), 0, 1)
                  for k in range(n_systems)])
    return systems_from(x)


def eval_case(seed, n_users=60, n_items=200, *, heldout_seed=None, recall_denominator="min"):
    """An EvaluationResult of random scores; about every sixth user has no held-out items."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n_users, n_items)).astype(np.float32)
    hrng = np.random.default_rng(1000 if heldout_seed is None else heldout_seed)
    rows = [np.sort(hrng.choice(n_items, 0 if u % 6 == 5 else hrng.integers(1, 15),
                                replace=False)) for u in range(n_users)]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    heldout = sp.csr_matrix((np.ones(indptr[-1], np.float32),
                             np.concatenate(rows).astype(np.int32), indptr),
                            shape=(n_users, n_items))
    return evaluate(scores, heldout, metrics=("ndcg@20", "recall@20", "hitrate@5"),
                    recall_denominator=recall_denominator)


# ---------------------------------------------------------------------------------------------
# the randomisation kernel


@pytest.mark.parametrize("n", [1, 7, 64, 150, 200])
@pytest.mark.parametrize("discrete", [False, True])
def test_sign_flip_counts_match_python_exactly(n, discrete):
    """Same stream, same summation order: identical counts (ties included)."""
    rng = np.random.default_rng(n)
    if discrete:  # hitrate-like differences in {-1, 0, 1}: many exact ties
        d = rng.integers(-1, 2, (4, n)).astype(float)
    else:
        d = rng.standard_normal((4, n)) * 0.1 + 0.01
    d[3] = 0.0  # an all-zero column: every permutation counts
    tol = 1e-9 * np.abs(d).sum(axis=1)
    got = sig.sign_flip_counts(np.ascontiguousarray(d), tol, 300, 12345)
    np.testing.assert_array_equal(got, py_sign_flip_counts(d, tol, 300, 12345))


@pytest.mark.parametrize("n, seed", [(6, 0), (9, 1), (12, 2)])
def test_randomization_matches_exact_enumeration(n, seed):
    """All 2**n sign flips enumerated; 200,000 random flips agree within Monte-Carlo error."""
    rng = np.random.default_rng(seed)
    d = np.stack([rng.integers(-4, 5, n) / 8.0,  # dyadic: sums are exact, ties are real
                  rng.standard_normal(n) + 0.3,
                  rng.integers(0, 2, n).astype(float)])
    tol = 1e-9 * np.abs(d).sum(axis=1)
    n_perm = 200_000
    counts = sig.sign_flip_counts(np.ascontiguousarray(d), tol, n_perm, seed)
    for c in range(d.shape[0]):
        exact = exact_randomization_p(d[c], tol[c])
        mc = (counts[c] + 1) / (n_perm + 1)
        assert abs(mc - exact) <= 5 * math.sqrt(exact * (1 - exact) / n_perm) + 1e-5, (c, exact)


def test_sign_flip_counts_do_not_depend_on_task_split():
    """The parallel split (which follows the thread count) never changes a count."""
    rng = np.random.default_rng(3)
    d = np.ascontiguousarray(rng.standard_normal((5, 777)) * 0.05)
    tol = 1e-9 * np.abs(d).sum(axis=1)
    ref = sig._sign_flip_counts(d, tol, 1000, np.uint64(9), 1000)
    for per_task in (1, 7, 256, 333):
        got = sig._sign_flip_counts(d, tol, 1000, np.uint64(9), per_task)
        np.testing.assert_array_equal(got, ref)


def test_kernels_do_not_depend_on_numba_thread_count():
    import numba

    rng = np.random.default_rng(4)
    d = np.ascontiguousarray(rng.standard_normal((6, 3001)))
    tol = 1e-9 * np.abs(d).sum(axis=1)
    before = numba.get_num_threads()
    out = []
    try:
        for k in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(k)
            out.append((sig.sign_flip_counts(d, tol, 2000, 3), sig.bootstrap_means(d, 40, 3)))
    finally:
        numba.set_num_threads(before)
    for counts, means in out[1:]:
        np.testing.assert_array_equal(counts, out[0][0])
        np.testing.assert_array_equal(means, out[0][1])  # bit for bit


def test_sign_flip_stream_is_documented_splitmix64():
    """The first outputs of Vigna's splitmix64.c seeded with 0, in Python and in Numba."""
    assert mix64(GAMMA) == 0xE220A8397B1DCDAF
    assert mix64(2 * GAMMA) == 0x6E789E6AA1B965F4
    assert int(sig.mix64(np.uint64(GAMMA))) == 0xE220A8397B1DCDAF


# ---------------------------------------------------------------------------------------------
# the bootstrap kernel


@pytest.mark.parametrize("n", [1, 13, 100, 4099])
def test_bootstrap_means_match_python(n):
    """The same users are drawn as by the documented stream; means agree to rounding."""
    rng = np.random.default_rng(n)
    d = np.ascontiguousarray(rng.standard_normal((5, n)))
    n_res = 21  # two tasks, the second one partial
    got = sig.bootstrap_means(d, n_res, 77)
    assert got.shape == (n_res, 5)
    for r in range(n_res):
        counts = py_bootstrap_counts(n, r, 77)
        assert counts.sum() == n
        np.testing.assert_allclose(got[r], (d * counts).sum(axis=1) / n, rtol=1e-12,
                                   atol=1e-15)


def test_bootstrap_overflow_is_reported(monkeypatch):
    monkeypatch.setattr(sig, "_bootstrap_means", lambda d, r, s: (np.zeros((r, 1)), True))
    with pytest.raises(OverflowError, match="drew one user 256 times"):
        sig.bootstrap_means(np.zeros((1, 3)), 2, 0)


def test_bootstrap_spread_matches_standard_error():
    rng = np.random.default_rng(5)
    d = np.ascontiguousarray(rng.standard_normal((1, 20_000)))
    means = sig.bootstrap_means(d, 2000, 1)[:, 0]
    se = d.std(ddof=1) / math.sqrt(d.shape[1])
    assert abs(means.mean() - d.mean()) < 0.2 * se
    assert abs(means.std() / se - 1) < 0.1


# ---------------------------------------------------------------------------------------------
# compare: p-values against scipy, Holm, intervals


def test_ttest_and_wilcoxon_equal_scipy():
    systems = random_systems(0)
    report = compare(systems, n_permutations=500, n_bootstrap=0)
    base = systems["s0"]
    for name in ("s1", "s2", "s3"):
        for m in ("ndcg@100", "recall@20"):
            cell = report[name, m]
            d = systems[name][m] - base[m]
            assert cell.p_value["t-test"] == pytest.approx(
                stats.ttest_rel(systems[name][m], base[m]).pvalue, rel=1e-12, abs=1e-300)
            assert cell.p_value["wilcoxon"] == pytest.approx(
                stats.wilcoxon(d, zero_method="wilcox").pvalue, rel=1e-12, abs=1e-300)
            assert cell.diff == pytest.approx(d.mean(), abs=1e-15)
            assert cell.mean == pytest.approx(systems[name][m].mean(), abs=1e-15)
            assert cell.stderr == pytest.approx(
                systems[name][m].std(ddof=1) / math.sqrt(d.size), rel=1e-12)


def test_wilcoxon_with_many_zero_differences_equals_scipy():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 400).astype(float)  # hitrate: most differences are exactly 0
    b = np.where(rng.random(400) < 0.1, 1 - a, a)
    report = compare({"a": {"hit@5": a}, "b": {"hit@5": b}}, n_permutations=100,
                     n_bootstrap=0)
    assert report["b", "hit@5"].p_value["wilcoxon"] == pytest.approx(
        stats.wilcoxon(b - a, zero_method="wilcox").pvalue, rel=1e-12)


@pytest.mark.parametrize("n", [12, 30])
def test_wilcoxon_small_samples_equal_scipy_row_by_row(n):
    """Small n: scipy picks exact, permutation or normal per input; each row gets its own."""
    rng = np.random.default_rng(n)
    base = rng.random(n)
    systems = {"base": {"m": base},
               "ties": {"m": base + rng.integers(-2, 3, n) / 10},  # zeros and ties
               "clean": {"m": base + rng.standard_normal(n) * 0.1 + 0.05}}  # neither
    report = compare(systems, n_permutations=100, n_bootstrap=0)
    for name in ("ties", "clean"):
        d = systems[name]["m"] - base
        assert report[name, "m"].p_value["wilcoxon"] == pytest.approx(
            stats.wilcoxon(d, zero_method="wilcox").pvalue, rel=1e-12)


def test_randomization_p_value_from_kernel_counts():
    systems = random_systems(2, n_systems=3)
    report = compare(systems, n_permutations=999, n_bootstrap=0, seed=4)
    d = np.stack([systems[s][m] - systems["s0"][m]
                  for s in ("s1", "s2") for m in ("ndcg@100", "recall@20")])
    counts = py_sign_flip_counts(d, 1e-9 * np.abs(d).sum(axis=1), 999, 4)
    got = [report[s, m].p_value["randomization"] for s in ("s1", "s2")
           for m in ("ndcg@100", "recall@20")]
    np.testing.assert_array_equal(got, (counts + 1) / 1000)


def test_all_zero_differences_give_p_one():
    x = np.linspace(0, 1, 50)
    report = compare({"a": {"m": x}, "b": {"m": x.copy()}}, n_permutations=200,
                     n_bootstrap=100)
    cell = report["b", "m"]
    assert cell.p_value == {"t-test": 1.0, "wilcoxon": 1.0, "randomization": 1.0}
    assert cell.diff == 0.0 and cell.ci_low == 0.0 and cell.ci_high == 0.0
    assert not any(cell.significant.values())


def test_holm_hand_computed():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> max(0.06, 0.04)=0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.2]), [0.5, 0.4])
    np.testing.assert_allclose(holm([0.6, 0.7, 0.01]), [1.0, 1.0, 0.03])  # capped at 1
    np.testing.assert_allclose(holm([0.02, 0.02]), [0.04, 0.04])


@pytest.mark.parametrize("correction", CORRECTIONS)
def test_correction_family_is_per_metric_and_test(correction):
    systems = random_systems(3, n_systems=5, effect=0.02)
    report = compare(systems, correction=correction, n_permutations=300, n_bootstrap=0)
    others = ["s1", "s2", "s3", "s4"]
    for m in report.metrics:
        for t in report.tests:
            raw = np.array([report[s, m].p_value[t] for s in others])
            adj = np.array([report[s, m].p_adjusted[t] for s in others])
            want = {"holm": holm(raw), "bonferroni": np.minimum(1, 4 * raw), "none": raw}
            np.testing.assert_allclose(adj, want[correction], rtol=1e-15)
            sig_ = [report[s, m].significant[t] for s in others]
            assert sig_ == [bool(a <= report.alpha) for a in adj]


def test_bootstrap_interval_covers_the_difference():
    systems = random_systems(4, n_systems=2, n_users=2000)
    report = compare(systems, n_bootstrap=2000, n_permutations=10, confidence=0.9)
    for m in report.metrics:
        c = report["s1", m]
        se = (systems["s1"][m] - systems["s0"][m]).std(ddof=1) / math.sqrt(2000)
        assert c.ci_low < c.diff < c.ci_high
        assert (c.ci_high - c.ci_low) / (2 * 1.645 * se) == pytest.approx(1, abs=0.1)


def test_swapping_system_and_baseline_keeps_two_sided_p_values():
    """Negating every difference is exact in floats, so even the counts are identical."""
    systems = random_systems(6, n_systems=2)
    ab = compare(systems, baseline="s0", n_permutations=700, n_bootstrap=0)
    ba = compare(systems, baseline="s1", n_permutations=700, n_bootstrap=0)
    for m in ab.metrics:
        assert ab["s1", m].p_value == pytest.approx(ba["s0", m].p_value, rel=1e-12)
        assert ab["s1", m].diff == pytest.approx(-ba["s0", m].diff, abs=1e-15)


def test_results_do_not_depend_on_thread_count():
    import numba

    systems = random_systems(7, n_systems=4, n_users=5000)
    reports = [compare(systems, n_permutations=3000, n_bootstrap=500, n_threads=k).to_dict()
               for k in sorted({1, numba.config.NUMBA_NUM_THREADS})]
    assert all(r == reports[0] for r in reports)
    # ... and the caller's thread setting is restored
    before = numba.get_num_threads()
    compare(systems, n_permutations=10, n_bootstrap=10, n_threads=1)
    assert numba.get_num_threads() == before


def test_seed_changes_only_the_random_parts():
    systems = random_systems(8, n_systems=2)
    a = compare(systems, n_permutations=500, n_bootstrap=500, seed=1)
    b = compare(systems, n_permutations=500, n_bootstrap=500, seed=2)
    c = a["s1", "ndcg@100"], b["s1", "ndcg@100"]
    assert c[0].p_value["t-test"] == c[1].p_value["t-test"]
    assert c[0].ci_low != c[1].ci_low
    assert a.to_dict() == compare(systems, n_permutations=500, n_bootstrap=500,
                                  seed=1).to_dict()


# ---------------------------------------------------------------------------------------------
# compare: users


def test_evaluation_results_skip_the_same_users():
    a, b = eval_case(0), eval_case(1)
    assert a.n_skipped == 10
    report = compare({"a": a, "b": b}, n_permutations=200, n_bootstrap=100)
    assert report.metrics == ("ndcg@20", "recall@20", "hitrate@5")
    assert report.n_users == a.n_evaluated and report.n_dropped == 0
    for m in report.metrics:
        assert report["a", m].mean == pytest.approx(a.mean[m], rel=1e-12)
        assert report["b", m].stderr == pytest.approx(b.stderr[m], rel=1e-12)


def test_mismatched_users_are_an_error_naming_the_systems():
    x = np.random.default_rng(0).random((3, 100))
    systems = {"a": {"m": x[0]}, "b": {"m": x[1].copy()}, "c": {"m": x[2][:90]}}
    systems["b"]["m"][[3, 4]] = np.nan
    with pytest.raises(ValueError, match=r"different users: compared with the 100 users of "
                                         r"baseline 'a', 'b' lacks 2 and adds 0; 'c' lacks 10 "
                                         r"and adds 0\. Pass intersect=True to compare on the "
                                         r"88 users"):
        compare(systems)


def test_intersect_drops_and_reports_users():
    x = np.random.default_rng(0).random((3, 100))
    systems = {"a": {"m": x[0]}, "b": {"m": x[1].copy()}, "c": {"m": x[2][:90]}}
    systems["b"]["m"][[3, 4]] = np.nan
    report = compare(systems, intersect=True, n_permutations=100, n_bootstrap=0)
    assert report.n_users == 88 and report.n_dropped == 12
    assert report.dropped == {"a": 12, "b": 10, "c": 2}
    keep = np.setdiff1d(np.arange(90), [3, 4])
    assert report["b", "m"].mean == pytest.approx(x[1][keep].mean(), rel=1e-12)
    assert "12 users not evaluated in every system were dropped" in report.to_markdown()
    assert json.loads(report.to_json())["n_dropped"] == 12


def test_users_align_rows_by_id():
    """Shuffled rows with ids give exactly the results of the ordered rows."""
    systems = random_systems(9, n_systems=3, n_users=200)
    ref = compare(systems, n_permutations=500, n_bootstrap=300)
    rng = np.random.default_rng(0)
    shuffled, users = {}, {}
    for i, (name, vals) in enumerate(systems.items()):
        order = rng.permutation(200)
        shuffled[name] = {m: v[order] for m, v in vals.items()}
        users[name] = np.array([f"user{u:04d}" for u in order])
    got = compare(shuffled, users=users, n_permutations=500, n_bootstrap=300)
    assert got.to_dict() == ref.to_dict()


def test_metric_names_are_resolved_case_insensitively():
    systems = random_systems(10, n_systems=2)
    report = compare(systems, metrics=[" NDCG@100", "ndcg@100"], n_permutations=10,
                     n_bootstrap=0)
    assert report.metrics == ("ndcg@100",)
    assert report.tests == ("t-test", "wilcoxon", "randomization")
    only = compare(systems, tests="randomization", n_permutations=10, n_bootstrap=0)
    assert only.tests == ("randomization",) and set(only["s1", "recall@20"].p_value) == {
        "randomization"}


# ---------------------------------------------------------------------------------------------
# compare: tables


def significant_report():
    rng = np.random.default_rng(11)
    base = rng.random(400)
    systems = {"mult_vae": {"ndcg@100": base},
               "better": {"ndcg@100": base + 0.05 + 0.05 * rng.standard_normal(400)},
               "worse": {"ndcg@100": base - 0.05 + 0.05 * rng.standard_normal(400)},
               "same": {"ndcg@100": base + 0.05 * rng.standard_normal(400)}}
    return compare(systems, n_permutations=2000, n_bootstrap=500)


def test_markdown_marks_significant_differences():
    report = significant_report()
    md = report.to_markdown()
    assert isinstance(report, ComparisonReport) and str(report) == md
    summary = md.split("\n\n")[0].splitlines()  # the first table
    lines = {line.split(" | ")[0]: line for line in summary}
    assert "↑†‡*" in lines["| better"] and "↓†‡*" in lines["| worse"]
    assert "†" not in lines["| same"] and "(baseline)" in lines["| mult_vae (baseline)"]
    assert "Holm-Bonferroni correction per metric and test over the 3 comparisons" in md
    assert "p ≤ 0.05" in md and "2,000 sign flips" in md
    assert "| better | ndcg@100 | +0.0488 | [+0.04" in md  # details table
    assert "p t-test (adj.)" not in report.to_markdown(details=False)


def test_latex_marks_significant_differences():
    tex = significant_report().to_latex()
    assert r"\begin{tabular}{lr}" in tex and r"\toprule" in tex
    assert r"$^{\uparrow\dagger\ddagger*}$" in tex and r"$^{\downarrow\dagger\ddagger*}$" in tex
    assert r"mult\_vae (baseline)" in tex and r"$\pm$" in tex
    assert tex.count(r"\begin{table}") == 2
    assert "±" not in tex and "†" not in tex  # no raw unicode marks
    no_ci = compare(two(), n_permutations=10, n_bootstrap=0).to_latex()
    assert no_ci.isascii() and " & -- & " in no_ci


def test_json_holds_every_number_and_the_marks():
    report = significant_report()
    data = json.loads(report.to_json())
    assert data["baseline"] == "mult_vae" and data["correction"] == "holm"
    assert data["marks"] == {"t-test": "†", "wilcoxon": "‡", "randomization": "*"}
    better = data["results"]["better"]["ndcg@100"]
    assert better["marks"] == "↑†‡*" and all(better["significant"].values())
    assert better["p_value"]["randomization"] == pytest.approx(1 / 2001)
    assert better["ci"][0] < better["diff"] < better["ci"][1]
    assert data["results"]["mult_vae"]["ndcg@100"]["ci"] is None
    assert report.to_dict() == data


def test_report_lookup_error():
    with pytest.raises(KeyError, match="no cell .*expected .system, metric."):
        significant_report()["nope", "ndcg@100"]


# ---------------------------------------------------------------------------------------------
# properties


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-3, 3), min_size=2, max_size=40),
       st.integers(0, 2**64 - 1))
def test_randomization_p_value_properties(ints, seed):
    d = np.array(ints, float) / 4.0
    a = np.zeros(d.size)
    report = compare({"a": {"m": a}, "b": {"m": d}}, n_permutations=199, n_bootstrap=0,
                     seed=seed)
    p = report["b", "m"].p_value["randomization"]
    assert 1 / 200 <= p <= 1
    if not d.any():
        assert p == 1.0
    for t in TESTS:
        assert 0 <= report["b", "m"].p_value[t] <= 1


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12))
def test_holm_properties(p):
    adj = holm(np.array(p))
    assert np.all(adj >= np.array(p) - 1e-15) and np.all(adj <= 1)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= 0)  # monotone in the raw p-values


# ---------------------------------------------------------------------------------------------
# errors


def two():
    x = np.linspace(0, 1, 20)
    return {"a": {"m": x}, "b": {"m": x[::-1].copy()}}


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(baseline="c"), ValueError, r"baseline must be one of the systems \['a', 'b'\], "
                                     r"got 'c'"),
    (dict(baseline=1), TypeError, "baseline must be a str or None, got int"),
    (dict(metrics=["ndcg@10"]), ValueError, r"unknown metric 'ndcg@10'; expected one of "
                                            r"\['m'\] \(the metrics of baseline 'a'\)"),
    (dict(metrics=[]), ValueError, "metrics must be at least one metric name"),
    (dict(metrics=["gini@10"]), ValueError, "gini@10 has one value per system, not one per "
                                            "user, so no paired test applies"),
    (dict(tests=["anova"]), ValueError, r"tests must be one of \['t-test', 'wilcoxon', "
                                        r"'randomization'\], got 'anova'"),
    (dict(tests=[]), ValueError, "tests must be at least one of"),
    (dict(tests=3), TypeError, "tests must be a str or a sequence of"),
    (dict(alpha=0.0), ValueError, r"alpha must be in \(0, 1\), got 0.0"),
    (dict(alpha=1.5), ValueError, r"alpha must be in \(0, 1\), got 1.5"),
    (dict(alpha="0.05"), TypeError, "alpha must be a float, got str"),
    (dict(confidence=1.0), ValueError, r"confidence must be in \(0, 1\), got 1.0"),
    (dict(correction="fdr"), ValueError, r"correction must be one of \['holm', "
                                         r"'bonferroni', 'none'\], got 'fdr'"),
    (dict(n_permutations=0), ValueError, "n_permutations must be >= 1, got 0"),
    (dict(n_permutations=10.0), TypeError, "n_permutations must be an int, got float"),
    (dict(n_bootstrap=-1), ValueError, "n_bootstrap must be >= 0, got -1"),
    (dict(seed=-1), ValueError, r"seed must be in \[0, 18446744073709551615\], got -1"),
    (dict(intersect=1), TypeError, r"intersect must be a bool .*, got 1 \(int\)"),
    (dict(n_threads=0), ValueError, "n_threads must be in"),
    (dict(users=[1, 2]), TypeError, "users must be a mapping of system name to user ids"),
    (dict(users={"z": np.arange(20)}), ValueError, r"users must be keyed by system names "
                                                   r"\['a', 'b'\], got unknown keys \['z'\]"),
    (dict(users={"a": np.arange(19)}), ValueError, r"users\['a'\] must be a 1-D array of 20 "
                                                   r"ids .*got shape \(19,\)"),
    (dict(users={"a": np.zeros(20)}), ValueError, r"users\['a'\] must be unique ids, got 19 "
                                                  "repeated"),
    (dict(users={"a": np.array([f"u{i}" for i in range(20)])}), TypeError,
     "users must be ids of one kind"),
])
def test_argument_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        compare(two(), **kwargs)


@pytest.mark.parametrize("systems, exc, match", [
    ([1, 2], TypeError, "systems must be a mapping of system name to EvaluationResult"),
    ({"a": {"m": np.zeros(3)}}, ValueError, "systems must be a mapping of at least 2 systems, "
                                            "got 1"),
    ({"a": {"m": np.zeros(3)}, 2: {"m": np.zeros(3)}}, TypeError,
     "system names must be non-empty strings, got 2"),
    ({"a": {"m": np.zeros(3)}, "b": [0.0, 1.0]}, TypeError,
     r"systems\['b'\] must be an EvaluationResult or a mapping"),
    ({"a": {"m": np.zeros(3)}, "b": {}}, ValueError, r"systems\['b'\] must be at least one "
                                                     "metric"),
    ({"a": {"m": np.zeros(3)}, "b": {1: np.zeros(3)}}, TypeError,
     "metric names of system 'b' must be str, got int"),
    ({"a": {"m": np.zeros(3)}, "b": {"m": np.zeros((3, 2))}}, TypeError,
     r"per-user values of 'b'\['m'\] must be a 1-D array of numbers, got 2-D float64"),
    ({"a": {"m": np.zeros(3)}, "b": {"m": np.array(["x", "y", "z"])}}, TypeError,
     "must be a 1-D array of numbers, got 1-D <U1"),
    ({"a": {"m": np.zeros(3), "n": np.zeros(4)}, "b": {"m": np.zeros(3)}}, ValueError,
     r"per-user values of system 'a' must be arrays of one length, got lengths \[3, 4\]"),
    ({"a": {"m": np.zeros(3), "n": np.zeros(3)}, "b": {"m": np.zeros(3)}}, ValueError,
     r"system 'b' has no per-user values for \['n'\]; it has \['m'\]"),
    ({"a": {"m": np.zeros(3)}, "b": {"m": np.array([0, np.inf, 0])}}, ValueError,
     r"per-user values of 'b'\['m'\] must be finite or NaN \(not evaluated\), got 1 "
     "infinite values"),
    ({"a": {"m": np.array([0.0, np.nan])}, "b": {"m": np.array([1.0, np.nan])}}, ValueError,
     "need at least 2 users evaluated in every system to compare paired values, got 1"),
])
def test_system_errors(systems, exc, match):
    with pytest.raises(exc, match=match):
        compare(systems)


def test_different_recall_definitions_are_an_error():
    a, b = eval_case(0), eval_case(1, recall_denominator="heldout")
    with pytest.raises(ValueError, match="different recall denominators .*not comparable"):
        compare({"a": a, "b": b})
    compare({"a": a, "b": b}, metrics=["ndcg@20"], n_permutations=10, n_bootstrap=0)


def test_different_heldout_data_is_an_error():
    a, b = eval_case(0), eval_case(1, heldout_seed=5)
    with pytest.raises(ValueError, match=r"systems 'a' and 'b' have different held-out counts "
                                         r"for .* were they evaluated on the same split\?"):
        compare({"a": a, "b": b}, intersect=True)


@pytest.mark.parametrize("method, kwargs, match", [
    ("to_markdown", dict(digits=-1), "digits must be in"),
    ("to_latex", dict(details="yes"), r"details must be a bool .*, got .yes. \(str\)"),
])
def test_format_errors(method, kwargs, match):
    report = compare(two(), n_permutations=10, n_bootstrap=0)
    with pytest.raises((TypeError, ValueError), match=match):
        getattr(report, method)(**kwargs)


def test_evaluation_result_is_the_public_type():
    assert isinstance(eval_case(0), EvaluationResult)
