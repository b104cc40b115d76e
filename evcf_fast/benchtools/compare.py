"""Compare two benchmark runs: ratios of medians with bootstrap intervals, calibration-normalised.

For every benchmark present in both runs we report ``median(candidate) / median(baseline)`` with
a percentile-bootstrap interval over the stored rounds, and the same ratio divided by the run
pair's calibration ratio (geometric mean over the ``"calibration"`` group, see
:mod:`evcf_fast.benchtools.calibration`), so that a uniformly slower machine cancels. The
normalised interval comes from a two-level bootstrap (Davison & Hinkley, *Bootstrap Methods and
their Application*, 1997, section 3.8): each replicate draws the calibration workloads with
replacement and then their rounds, so workloads that disagree widen it. A tracked
benchmark *regresses* when the lower bound of its judged ratio (normalised, unless calibration is
off or missing) exceeds ``1 + threshold``: slower by more than the threshold, beyond the noise of
the rounds. This replaces the fixed wall-clock limits of peers (Microsoft Recommenders'
``tests/performance``) with a machine-relative, noise-aware test (../shared/docs/PEERS.md, 3.7).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import is_real, must_be
from .results import BenchmarkResult, BenchmarkRun
from .stats import (
    N_BOOT,
    RatioCI,
    check_confidence,
    geometric_mean,
    percentile_interval,
    ratio_replicates,
)

VERDICTS = ("regression", "improvement", "ok", "untracked")


@dataclass(frozen=True, kw_only=True)
class ComparisonRow:
    """One benchmark present in both runs."""

    fullname: str
    group: str | None
    role: str
    tracked: bool
    baseline_median: float
    candidate_median: float
    raw: RatioCI                       # candidate / baseline
    normalised: RatioCI | None         # raw / calibration; None without calibration
    verdict: str                       # one of VERDICTS
    note: str = ""

    @property
    def judged(self) -> RatioCI:
        """The ratio the verdict is based on (normalised when available)."""
        return self.normalised if self.normalised is not None else self.raw


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """The outcome of :func:`compare_runs`."""

    baseline: BenchmarkRun
    candidate: BenchmarkRun
    threshold: float
    confidence: float
    calibration: RatioCI | None        # candidate/baseline speed of the calibration workloads
    calibration_parts: dict[str, float]
    rows: tuple[ComparisonRow, ...]
    missing: tuple[str, ...]           # in the baseline run only
    added: tuple[str, ...]             # in the candidate run only
    warnings: tuple[str, ...]

    @property
    def regressions(self) -> tuple[ComparisonRow, ...]:
        return tuple(r for r in self.rows if r.verdict == "regression")


def _replicates(cand: BenchmarkResult, base: BenchmarkResult, *, n_boot: int,
                rng: np.random.Generator) -> np.ndarray | None:
    if cand.data is None or base.data is None or cand.data.size < 2 or base.data.size < 2:
        return None
    return ratio_replicates(cand.data, base.data, n_boot=n_boot, seed=rng)


def _two_level_geomean(reps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Geometric means of ``reps`` (workloads x replicates), workloads resampled per replicate."""
    k, n_boot = reps.shape
    pick = rng.integers(0, k, size=(k, n_boot))
    return geometric_mean(reps[pick, np.arange(n_boot)], axis=0)


def _ci(point: float, reps: np.ndarray | None, confidence: float) -> RatioCI:
    if reps is None:
        return RatioCI(ratio=point, low=float("nan"), high=float("nan"))
    return percentile_interval(reps, point=point, confidence=confidence)


def _describes_work(value) -> bool:
    # ints, strings, booleans and None describe the work (sizes, k, dtype, device); floats and
    # containers are measurements (an NDCG reached, a peak RSS) that may differ from run to run
    return value is None or isinstance(value, (bool, int, str))


def _extra_diff(cand: BenchmarkResult, base: BenchmarkResult) -> str:
    keys = [k for k in sorted(set(cand.extra_info) | set(base.extra_info))
            if _describes_work(cand.extra_info.get(k)) and _describes_work(base.extra_info.get(k))
            and cand.extra_info.get(k) != base.extra_info.get(k)]
    diffs = [f"{k} {base.extra_info.get(k)!r}->{cand.extra_info.get(k)!r}" for k in keys[:3]]
    return ("extra_info differs: " + ", ".join(diffs)) if diffs else ""


def compare_runs(baseline: BenchmarkRun, candidate: BenchmarkRun, *, threshold: float = 0.15,
                 confidence: float = 0.95, calibrate: bool = True, n_boot: int = N_BOOT,
                 seed: int = 0) -> Comparison:
    """Compare ``candidate`` against ``baseline``, benchmark by benchmark.

    Parameters
    ----------
    baseline, candidate : BenchmarkRun
        Runs from :func:`evcf_fast.benchtools.results.load_run`.
    threshold : float
        Relative slowdown that counts as a regression (0.15: 15% slower), >= 0.
    confidence : float
        Level of the bootstrap intervals, in (0, 1).
    calibrate : bool
        Divide by the calibration ratio (when both runs have calibration benchmarks).
    n_boot : int
        Bootstrap replicates per ratio.
    seed : int
        Seed of the bootstrap; the same inputs give the same output.

    Returns
    -------
    Comparison
        Rows in the candidate's order, plus missing/added benchmark names and warnings.
    """
    if not is_real(threshold) or not 0.0 <= threshold < 10.0:
        raise ValueError(must_be("threshold", "a number in [0, 10)", repr(threshold)))
    confidence = check_confidence(confidence)
    if n_boot < 100:
        raise ValueError(must_be("n_boot", ">= 100 for a usable interval", n_boot))
    rng = np.random.default_rng(seed)
    common = [name for name in candidate.benchmarks if name in baseline.benchmarks]
    missing = tuple(n for n in baseline.benchmarks if n not in candidate.benchmarks)
    added = tuple(n for n in candidate.benchmarks if n not in baseline.benchmarks)
    warnings: list[str] = []
    if candidate.metadata.get("quick") or baseline.metadata.get("quick"):
        warnings.append("a run was made in quick mode (reduced sizes): timings are not comparable")
    if candidate.machine != baseline.machine:
        warnings.append(f"the runs come from different machines ({baseline.machine!r} vs "
                        f"{candidate.machine!r}): trust the normalised ratios only")

    # Calibration: geometric mean of the workloads' ratios, replicate by replicate. Each
    # replicate also resamples WHICH workloads enter the mean (a two-level bootstrap): when the
    # workloads disagree (a neighbour loaded memory but not the FPU) the machine factor is
    # uncertain, and the normalised intervals widen instead of inventing regressions.
    cal_names = [n for n in common if candidate.benchmarks[n].role == "calibration"]
    calibration, cal_reps, cal_parts = None, None, {}
    if calibrate and cal_names:
        reps, points, have_data = [], [], True
        for n in cal_names:
            c, b = candidate.benchmarks[n], baseline.benchmarks[n]
            points.append(c.median / b.median)
            cal_parts[c.name] = c.median / b.median
            r = _replicates(c, b, n_boot=n_boot, rng=rng)
            have_data &= r is not None
            reps.append(r)
        cal_reps = _two_level_geomean(np.stack(reps), rng) if have_data else None
        calibration = _ci(float(geometric_mean(points)), cal_reps, confidence)
    elif calibrate:
        warnings.append("no calibration benchmarks in both runs: ratios are not normalised "
                        "(run bench/test_bench_calibration.py in every session)")

    rows = []
    limit = 1.0 + threshold
    for name in common:
        c, b = candidate.benchmarks[name], baseline.benchmarks[name]
        point = c.median / b.median
        reps = _replicates(c, b, n_boot=n_boot, rng=rng)
        raw = _ci(point, reps, confidence)
        normalised = None
        if calibration is not None and c.role != "calibration":
            nreps = None if reps is None or cal_reps is None else reps / cal_reps
            normalised = _ci(point / calibration.ratio, nreps, confidence)
        judged = normalised if normalised is not None else raw
        notes = [_extra_diff(c, b)]
        if not judged.has_interval:
            notes.append("no interval (needs >= 2 stored rounds per run, saved with "
                         "--benchmark-save-data): judged on the medians alone")
            low, high = judged.ratio, judged.ratio
        else:
            low, high = judged.low, judged.high
        tracked = c.tracked and b.tracked
        if not tracked:
            verdict = "untracked"
        elif low > limit:
            verdict = "regression"
        elif high < 1.0 / limit:
            verdict = "improvement"
        else:
            verdict = "ok"
        rows.append(ComparisonRow(
            fullname=name, group=c.group, role=c.role, tracked=tracked,
            baseline_median=b.median, candidate_median=c.median, raw=raw, normalised=normalised,
            verdict=verdict, note="; ".join(n for n in notes if n)))
    return Comparison(baseline=baseline, candidate=candidate, threshold=float(threshold),
                      confidence=confidence, calibration=calibration,
                      calibration_parts=cal_parts, rows=tuple(rows), missing=missing, added=added,
                      warnings=tuple(warnings))


def format_time(seconds: float) -> str:
    """A time with a unit that keeps three significant digits (``1.23 ms``)."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(ci: RatioCI | None) -> str:
    """``1.02 [0.97, 1.08]``, or the ratio alone when no interval exists, or ``-``."""
    if ci is None:
        return "-"
    if not ci.has_interval:
        return f"{ci.ratio:.2f} [n/a]"
    return f"{ci.ratio:.2f} [{ci.low:.2f}, {ci.high:.2f}]"


def _short(name: str) -> str:
    # "bench/test_bench_metrics.py::test_ndcg[20]" -> "test_bench_metrics.py::test_ndcg[20]"
    return name.rsplit("/", 1)[-1]


def format_comparison(cmp: Comparison, *, markdown: bool = False) -> str:
    """Render a :class:`Comparison` as a plain-text or Markdown table with a summary.

    Parameters
    ----------
    cmp : Comparison
    markdown : bool
        A GitHub-flavoured Markdown table instead of aligned plain text.

    Returns
    -------
    str
    """
    pct = int(round(cmp.confidence * 100))
    header = ["benchmark", "baseline", "candidate", f"ratio [{pct}% CI]",
              f"normalised [{pct}% CI]", "verdict"]
    body = []
    for r in cmp.rows:
        verdict = r.verdict if r.tracked else f"({r.role})"
        if r.verdict == "regression":
            verdict = "REGRESSION"
        if r.note:
            verdict += f" *{r.note}*" if markdown else f"  ({r.note})"
        body.append([_short(r.fullname), format_time(r.baseline_median),
                     format_time(r.candidate_median), format_ratio(r.raw),
                     format_ratio(r.normalised), verdict])
    lines = [f"{role + ':':<10} {run.label}  {run.datetime[:19]}  ({run.path.name})"
             for role, run in (("baseline", cmp.baseline), ("candidate", cmp.candidate))]
    if cmp.calibration is not None:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in cmp.calibration_parts.items())
        lines.append(f"calibration (candidate/baseline machine speed): "
                     f"{format_ratio(cmp.calibration)}  ({parts})")
    if markdown:
        lines = [f"- {line}" for line in lines]
        lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    else:
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header) - 1)]

        def fmt(row: list[str]) -> str:
            cells = [c.rjust(w) for c, w in zip(row[1:-1], widths[1:])]
            return "  ".join([row[0].ljust(widths[0]), *cells, row[-1]])

        lines += ["", fmt(header), fmt(["-" * w for w in widths] + ["-" * 7])]
        lines += [fmt(row) for row in body]
    lines.append("")
    bullet = "- " if markdown else ""
    for name in cmp.missing:
        lines.append(f"{bullet}missing in candidate (not compared): {_short(name)}")
    for name in cmp.added:
        lines.append(f"{bullet}added in candidate (no baseline yet): {_short(name)}")
    for w in cmp.warnings:
        lines.append(f"{bullet}warning: {w}")
    limit = f"{1 + cmp.threshold:.2f}x"
    if cmp.regressions:
        lines.append(f"{bullet}REGRESSION: {len(cmp.regressions)} tracked benchmark(s) slower than "
                     f"{limit} beyond noise (lower {pct}% bound of the judged ratio > {limit}):")
        for r in cmp.regressions:
            lines.append(f"{bullet}  {_short(r.fullname)}: {format_ratio(r.judged)}")
    else:
        n = sum(r.tracked for r in cmp.rows)
        lines.append(f"{bullet}no regression: none of {n} tracked benchmark(s) is slower than "
                     f"{limit} beyond noise ({pct}% confidence)")
    return "\n".join(lines)
