"""Markdown table and PNG plots of saved benchmark runs (``evcf bench report``).

The table describes the latest run: per benchmark its median, IQR and rounds, and its speed-up
against the in-run baselines of the same group (ours vs the NumPy/pandas/``torch.topk``
reference timed in the same session, so the number never depends on the machine). Two plots:

* ``history.png``: each benchmark across the saved runs, median divided by the run's calibration
  factor (machine speed relative to the first calibrated run) and by its own first value, so 1.0
  is "as fast as when first recorded" and a step up is a regression; one panel per group;
* ``speedup.png``: bars of the latest run's speed-ups against the in-run baselines.

Pairing with baselines (documented for benchmark authors in README.md): a benchmark with role
``"ours"`` is paired with every ``"baseline"`` of its group whose ``extra_info["baseline_for"]``
(when set) names it, and whose parametrize values agree on the parameters both have, except a
parameter that separates the baselines from ours (its values among the baselines never occur
among ours, such as ``layout="dense"`` vs ``"sparse"``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_dir
from .compare import format_time
from .results import BenchmarkResult, BenchmarkRun
from .stats import geometric_mean

HISTORY_PNG = "history.png"
SPEEDUP_PNG = "speedup.png"
REPORT_MD = "report.md"


@dataclass(frozen=True, kw_only=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    markdown: Path
    history_png: Path
    speedup_png: Path


def _variant_keys(ours: list[BenchmarkResult], bases: list[BenchmarkResult]) -> set[str]:
    # A parameter whose values among the baselines never occur among ours (layout "dense" vs
    # "sparse") is what makes them baselines: it must not have to agree when pairing.
    keys = set()
    for key in {k for b in ours + bases for k in (b.params or {})}:
        ours_values = {repr((b.params or {}).get(key)) for b in ours if key in (b.params or {})}
        base_values = {repr((b.params or {}).get(key)) for b in bases if key in (b.params or {})}
        if ours_values and base_values and not ours_values & base_values:
            keys.add(key)
    return keys


def _params_agree(a: dict | None, b: dict | None, ignore: set[str]) -> bool:
    if not a or not b:
        return True
    return all(a[k] == b[k] for k in (set(a) & set(b)) - ignore)


def _targets(baseline: BenchmarkResult) -> list[str] | None:
    targets = baseline.extra_info.get("baseline_for")
    if targets is None:
        return None
    return [targets] if isinstance(targets, str) else [str(t) for t in targets]


def baseline_pairs(run: BenchmarkRun) -> list[tuple[BenchmarkResult, BenchmarkResult]]:
    """``(ours, baseline)`` pairs of a run, following the pairing rule of the module docstring.

    Parameters
    ----------
    run : BenchmarkRun

    Returns
    -------
    list of (BenchmarkResult, BenchmarkResult)
        In the run's order of the ``ours`` benchmarks.
    """
    by_group: dict[str | None, list[BenchmarkResult]] = defaultdict(list)
    for b in run.benchmarks.values():
        by_group[b.group].append(b)
    variants = {g: _variant_keys([b for b in members if b.role == "ours"],
                                 [b for b in members if b.role == "baseline"])
                for g, members in by_group.items()}
    pairs = []
    for ours in run.benchmarks.values():
        if ours.role != "ours":
            continue
        for base in by_group[ours.group]:
            if base.role != "baseline":
                continue
            targets = _targets(base)
            names = {ours.base_name, ours.name, ours.fullname}
            if targets is not None and not names & set(targets):
                continue
            if _params_agree(ours.params, base.params, variants[ours.group]):
                pairs.append((ours, base))
    return pairs


def calibration_factors(runs: list[BenchmarkRun]) -> list[float | None]:
    """Machine speed of each run relative to the first run that has calibration benchmarks.

    Parameters
    ----------
    runs : list of BenchmarkRun
        Oldest first.

    Returns
    -------
    list of float or None
        Geometric mean of calibration-median ratios against the reference run (> 1: slower);
        None for runs without calibration benchmarks in common with the reference.
    """
    ref = next((r for r in runs if r.by_role("calibration")), None)
    if ref is None:
        return [None] * len(runs)
    out: list[float | None] = []
    for run in runs:
        ratios = [run.benchmarks[b.fullname].median / b.median for b in ref.by_role("calibration")
                  if b.fullname in run.benchmarks]
        out.append(float(geometric_mean(ratios)) if ratios else None)
    return out


def _short(b: BenchmarkResult) -> str:
    return b.name


def is_floor(b: BenchmarkResult) -> bool:
    """A reference bound, not a competitor: a baseline with ``extra_info["reference"]`` set
    (e.g. ``"floor"`` for the memory copy of the scores). The report shows it in grey, labelled
    as a reference, whichever side of 1 it falls."""
    return bool(b.extra_info.get("reference"))


def _markdown(runs: list[BenchmarkRun], factors: list[float | None],
              pairs: list[tuple[BenchmarkResult, BenchmarkResult]]) -> str:
    latest = runs[-1]
    speedups: dict[str, list[str]] = defaultdict(list)
    for ours, base in pairs:
        if is_floor(base):
            speedups[ours.fullname].append(
                f"{ours.median / base.median:.2f}x the time of {base.name} "
                f"({base.extra_info['reference']}, a reference)")
        else:
            speedups[ours.fullname].append(f"{base.median / ours.median:.2f}x vs {base.name}")
    meta = latest.metadata
    versions = meta.get("versions") or {}
    threads = meta.get("threads") or {}
    cpu = meta.get("cpu") or {}
    lines = ["# Benchmark report", "",
             f"Latest run **{latest.label}** ({latest.datetime}, {latest.machine}"
             + (f", {cpu.get('usable')} usable CPUs" if cpu.get("usable") else "") + ").", ""]
    if versions:
        lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".")
    if threads:
        shown = {k: v for k, v in threads.items() if k != "env"}
        lines.append("Threads: " + ", ".join(f"{k}={v}" for k, v in shown.items()) + ".")
    lines += ["", "Speed-up = baseline median / our median, both timed in this run "
              "(> 1: ours is faster). A reference (e.g. the memory-copy floor) is not a "
              "competitor: it is shown as our time relative to it.", "",
              "| group | benchmark | role | median | IQR | rounds | speed-up vs in-run baseline |",
              "|---|---|---|---:|---:|---:|---|"]
    for b in latest.benchmarks.values():
        lines.append(f"| {b.group or '-'} | {b.name} | {b.role} | {format_time(b.median)} | "
                     f"{format_time(b.iqr) if b.iqr > 0 else '0'} | {b.rounds} | "
                     f"{'; '.join(speedups.get(b.fullname, [])) or '-'} |")
    lines += ["", "## Runs", "",
              "Machine factor: calibration time relative to the first calibrated run "
              "(> 1: the machine was slower).", "",
              "| run | date | commit | dirty | benchmarks | machine factor |",
              "|---|---|---|---|---:|---:|"]
    for run, f in zip(runs, factors):
        lines.append(f"| {run.run_id} | {run.datetime[:19]} | {(run.commit or '?')[:10]} | "
                     f"{'yes' if run.dirty else 'no'} | {len(run.benchmarks)} | "
                     f"{'-' if f is None else f'{f:.2f}'} |")
    lines += ["", f"![history]({HISTORY_PNG})", "", f"![speed-up]({SPEEDUP_PNG})", ""]
    return "\n".join(lines)


def _plot_history(runs: list[BenchmarkRun], factors: list[float | None], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display; the report is written to files
    import matplotlib.pyplot as plt

    groups: dict[str, dict[str, list[float]]] = defaultdict(dict)
    names: dict[str, str] = {}
    for i, (run, f) in enumerate(zip(runs, factors)):
        for b in run.benchmarks.values():
            if b.role == "calibration":
                continue
            series = groups[b.group or "(no group)"].setdefault(b.fullname, [np.nan] * len(runs))
            series[i] = b.median / (f if f else 1.0)
            names[b.fullname] = b.name + (" (baseline)" if b.role == "baseline" else "")
    n = max(1, len(groups))
    fig, axes = plt.subplots(n, 1, figsize=(11, 1.0 + 3.0 * n), squeeze=False,
                             layout="constrained")  # constrained: room for suptitle and legends
    x = np.arange(len(runs))
    labels = [r.label for r in runs]
    for ax, (group, series) in zip(axes.flat, sorted(groups.items())):
        lo, hi = 0.8, 1.25  # never zoom in so far that a few percent of noise looks dramatic
        for fullname, ys in series.items():
            ys = np.asarray(ys)
            rel = ys / ys[np.isfinite(ys)][0]
            lo, hi = min(lo, np.nanmin(rel)), max(hi, np.nanmax(rel))
            style = "--" if names[fullname].endswith("(baseline)") else "-"
            ax.plot(x, rel, style, marker="o", ms=4, label=names[fullname])
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_ylim(lo / 1.05, hi * 1.05)
        ax.set_title(f"group: {group}", fontsize=10)
        ax.set_ylabel("time / first run\n(calibration-normalised)", fontsize=9)
        ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        ax.grid(alpha=0.3)
    if not groups:
        axes.flat[0].text(0.5, 0.5, "no benchmarks", ha="center", va="center")
    fig.suptitle("Benchmark history (lower is faster; 1.0 = first recorded)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_speedup(run: BenchmarkRun, pairs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    labels = [f"{o.group}: {o.name} vs {b.name}"
              + (f" ({b.extra_info['reference']}: reference)" if is_floor(b) else "")
              for o, b in pairs]
    width = 6.0 + 0.065 * max((len(x) for x in labels), default=0)  # long labels keep the bars
    fig, ax = plt.subplots(figsize=(width, 1.4 + 0.42 * max(1, len(pairs))))
    if pairs:
        speed = np.array([b.median / o.median for o, b in pairs])
        y = np.arange(len(pairs))[::-1]
        floors = [is_floor(b) for _, b in pairs]
        colors = ["0.75" if f else "tab:green" if s >= 1 else "tab:red"
                  for s, f in zip(speed, floors)]
        bars = ax.barh(y, speed, color=colors)
        for bar, floor in zip(bars, floors):
            if floor:
                bar.set_hatch("//")
                bar.set_edgecolor("0.45")
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", lw=0.8)
        for yi, s in zip(y, speed):
            ax.text(s, yi, f" {s:.2f}x", va="center", fontsize=8)
        lo, hi = min(speed.min(), 1.0) / 1.5, max(speed.max(), 1.0) * 2.5
        ax.set_xlim(lo, hi)
        grid = (10.0 ** np.arange(-3, 5)[:, None] * np.array([1, 2, 5])).ravel()
        ticks = [float(t) for t in grid if lo <= t <= hi]
        ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("speed-up = baseline median / our median (log scale)\ngrey hatched: a "
                      "reference bound, not a competitor")
    else:
        ax.text(0.5, 0.5, "no (ours, baseline) pairs in this run; mark baselines with\n"
                "benchmark.extra_info['role'] = 'baseline'", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(f"Speed-up against in-run baselines (run {run.label})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(runs: list[BenchmarkRun], out: str | Path, *,
                 overwrite: bool = False, inputs=()) -> ReportFiles:
    """Write ``report.md``, ``history.png`` and ``speedup.png`` for ``runs`` into ``out``.

    Parameters
    ----------
    runs : list of BenchmarkRun
        Oldest first; the table and the speed-up bars describe the last one.
    out : str or Path
        Output directory, written atomically.
    overwrite : bool
        Replace ``out`` if it exists (only a report folder of ours).
    inputs : iterable of path-likes
        Paths ``out`` must not be or hold (the result files read).

    Returns
    -------
    ReportFiles
    """
    if not runs:
        raise ValueError("no benchmark runs to report; save one with `make bench` first")
    out = Path(out)
    factors = calibration_factors(runs)
    pairs = baseline_pairs(runs[-1])
    with atomic_dir(out, overwrite=overwrite, kind="report", inputs=inputs) as tmp:
        (tmp / REPORT_MD).write_text(_markdown(runs, factors, pairs), encoding="utf-8")
        _plot_history(runs, factors, tmp / HISTORY_PNG)
        _plot_speedup(runs[-1], pairs, tmp / SPEEDUP_PNG)
    return ReportFiles(markdown=out / REPORT_MD, history_png=out / HISTORY_PNG,
                       speedup_png=out / SPEEDUP_PNG)
