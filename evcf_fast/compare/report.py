"""The comparison report: per (system, metric) cells, the test registry, and its Markdown, LaTeX
and JSON forms."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .._checks import check_bool, check_int


@dataclass(frozen=True)
class _TestDef:
    title: str  # in legends and table headers
    mark: str  # Markdown / plain-text mark of a significant difference
    latex: str  # the same mark in LaTeX math mode


#: The test registry: name -> how it is reported. Order is the order of table columns.
TESTS: dict[str, _TestDef] = {
    "t-test": _TestDef("paired t-test", "†", r"\dagger"),
    "wilcoxon": _TestDef("Wilcoxon signed-rank test", "‡", r"\ddagger"),
    "randomization": _TestDef("Fisher randomisation test", "*", "*"),
}
CORRECTIONS = ("holm", "bonferroni", "none")
WILCOXON_ZERO_METHOD = "wilcox"
TIE_RTOL = 1e-9  # randomisation: statistics within TIE_RTOL * sum|d| of the observed one tie
_P_VALUE_RULE = "(count + 1) / (n_permutations + 1)"
_CORRECTION_TITLES = {"holm": "Holm-Bonferroni", "bonferroni": "Bonferroni", "none": "no"}


@dataclass(frozen=True, kw_only=True)

class ComparisonCell:
    """One system on one metric, compared with the baseline.

    ``diff``, ``ci_low``/``ci_high`` and the p-value dicts describe ``system - baseline``; for
    the baseline itself ``diff`` is 0.0, the interval NaN and the dicts empty. ``ci_low`` and
    ``ci_high`` are NaN when ``n_bootstrap=0``.
    """

    system: str
    metric: str
    is_baseline: bool
    mean: float
    stderr: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: dict[str, float]  # test -> raw two-sided p-value
    p_adjusted: dict[str, float]  # test -> p-value after the correction
    significant: dict[str, bool]  # test -> p_adjusted <= alpha

    @property
    def marks(self) -> str:
        """The marks of the tests that found this difference significant, e.g. ``"†*"``."""
        return "".join(TESTS[t].mark for t in TESTS if self.significant.get(t, False))


@dataclass(frozen=True, kw_only=True)
class ComparisonReport:
    """What :func:`compare` found; see :mod:`evcf_fast.compare` for the definitions.

    Attributes
    ----------
    systems : tuple of str
        In the order given (the baseline included).
    baseline : str
    metrics, tests : tuple of str
    alpha, confidence : float
    correction : str
        One of :data:`CORRECTIONS`, applied per test and metric over the comparisons with the
        baseline.
    n_permutations, n_bootstrap, seed : int
    n_users : int
        Users compared (evaluated in every system).
    n_dropped : int
        Users evaluated in some system but not in all (left out; non-zero only with
        ``intersect=True``).
    dropped : dict of str to int
        Per system, its evaluated users left out.
    cells : tuple of ComparisonCell
        One per (system, metric), system-major; also reachable as ``report[system, metric]``.
    """

    systems: tuple[str, ...]
    baseline: str
    metrics: tuple[str, ...]
    tests: tuple[str, ...]
    alpha: float
    correction: str
    confidence: float
    n_permutations: int
    n_bootstrap: int
    seed: int
    n_users: int
    n_dropped: int
    dropped: dict[str, int]
    cells: tuple[ComparisonCell, ...]

    def __getitem__(self, key: tuple[str, str]) -> ComparisonCell:
        for cell in self.cells:
            if (cell.system, cell.metric) == key:
                return cell
        raise KeyError(f"no cell {key!r}; expected (system, metric) with system in "
                       f"{list(self.systems)} and metric in {list(self.metrics)}")

    @property
    def n_comparisons(self) -> int:
        """Comparisons with the baseline per metric: the size of each correction family."""
        return len(self.systems) - 1

    def __str__(self) -> str:
        return self.to_markdown()

    # -- text ---------------------------------------------------------------------------------

    def legend(self) -> str:
        """One paragraph: what the marks, intervals and p-values mean."""
        tests = "; ".join(f"{TESTS[t].mark} {TESTS[t].title}" for t in self.tests)
        extra = []
        if "randomization" in self.tests:
            extra.append(f"Randomisation: {self.n_permutations:,} sign flips, p = "
                         f"{_P_VALUE_RULE}")
        if "wilcoxon" in self.tests:
            extra.append(f"Wilcoxon: zero_method={WILCOXON_ZERO_METHOD!r}")
        if self.n_bootstrap:
            extra.append(f"{self.confidence:.0%} CI: percentile bootstrap over users, "
                         f"{self.n_bootstrap:,} resamples")
        extra.append(f"seed {self.seed}")
        dropped = (f"; {self.n_dropped:,} users not evaluated in every system were dropped"
                   if self.n_dropped else "")
        return (f"Values are mean ± standard error over {self.n_users:,} users{dropped}. "
                f"↑/↓ mark a significantly higher/lower mean than the baseline "
                f"{self.baseline!r}, followed by the tests that found it ({tests}): "
                f"two-sided p ≤ {self.alpha:g} after {_CORRECTION_TITLES[self.correction]} "
                f"correction per metric and test over the {self.n_comparisons} comparison"
                f"{'s' if self.n_comparisons != 1 else ''} with the baseline. "
                f"{'; '.join(extra)}.")

    def to_markdown(self, *, digits: int = 4, details: bool = True) -> str:
        """A Markdown summary table (systems x metrics), its legend and, with ``details``, a
        table of differences, intervals and raw (corrected) p-values."""
        digits = check_int(digits, "digits", minimum=0, maximum=12)
        check_bool(details, "details")
        head = ["system", *self.metrics]
        rows = []
        for system in self.systems:
            label = f"{system} (baseline)" if system == self.baseline else system
            cells = [self[system, m] for m in self.metrics]
            rows.append([_md_escape(label)] + [
                f"{_fmt(c.mean, digits)} ± {_fmt(c.stderr, digits)}"
                + (f" {_arrow(c)}{c.marks}" if c.marks else "") for c in cells])
        out = [_md_table(head, rows, align="l" + "r" * len(self.metrics)), "", self.legend()]
        if details and self.n_comparisons:
            head = ["system", "metric", f"Δ vs {self.baseline}",
                    f"{self.confidence:.0%} CI"] + [f"p {t} (adj.)" for t in self.tests]
            rows = []
            for c in self.cells:
                if c.is_baseline:
                    continue
                rows.append([_md_escape(c.system), _md_escape(c.metric),
                             _fmt(c.diff, digits, sign=True), _ci(c, digits)]
                            + [_p_cell(c, t) for t in self.tests])
            out += ["", _md_table(head, rows, align="ll" + "r" * (len(head) - 2))]
        return "\n".join(out) + "\n"

    def to_latex(self, *, digits: int = 4, details: bool = True) -> str:
        """LaTeX ``table`` environments (needs ``\\usepackage{booktabs}``): the summary with the
        legend as caption and, with ``details``, differences, intervals and p-values."""
        digits = check_int(digits, "digits", minimum=0, maximum=12)
        check_bool(details, "details")
        lines = [r"\begin{table}[t]", r"\centering",
                 rf"\caption{{{_tex_escape(self.legend())}}}",
                 rf"\begin{{tabular}}{{l{'r' * len(self.metrics)}}}", r"\toprule",
                 " & ".join(["System"] + [_tex_escape(m) for m in self.metrics]) + r" \\",
                 r"\midrule"]
        for system in self.systems:
            label = _tex_escape(system) + (" (baseline)" if system == self.baseline else "")
            cells = []
            for m in self.metrics:
                c = self[system, m]
                text = rf"{_fmt(c.mean, digits)} $\pm$ {_fmt(c.stderr, digits)}"
                if c.marks:
                    arrow = {"↑": r"\uparrow", "↓": r"\downarrow", "": ""}[_arrow(c)]
                    marks = "".join(TESTS[t].latex for t in TESTS if c.significant.get(t))
                    text += f"$^{{{arrow}{marks}}}$"
                cells.append(text)
            lines.append(" & ".join([label] + cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        if details and self.n_comparisons:
            pct = f"{self.confidence:.0%}".replace("%", r"\%")
            lines += ["", r"\begin{table}[t]", r"\centering",
                      rf"\caption{{Differences to the baseline {_tex_escape(self.baseline)}: "
                      rf"mean difference, {pct} bootstrap interval and two-sided p-values "
                      rf"(after {_CORRECTION_TITLES[self.correction]} correction).}}",
                      rf"\begin{{tabular}}{{ll{'r' * (2 + len(self.tests))}}}", r"\toprule",
                      " & ".join(["System", "Metric", r"$\Delta$", rf"{pct} CI"]
                                 + [f"p {_tex_escape(t)} (adj.)" for t in self.tests])
                      + r" \\", r"\midrule"]
            for c in self.cells:
                if c.is_baseline:
                    continue
                ps = [f"{_fmt_p(c.p_value[t])} ({_fmt_p(c.p_adjusted[t])})"
                      + (f"$^{{{TESTS[t].latex}}}$" if c.significant[t] else "")
                      for t in self.tests]
                lines.append(" & ".join([_tex_escape(c.system), _tex_escape(c.metric),
                                         _fmt(c.diff, digits, sign=True),
                                         _tex_escape(_ci(c, digits))] + ps) + r" \\")
            lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        """JSON-able: the settings, the legend and ``results[system][metric]`` (NaN as None)."""
        results: dict[str, dict] = {}
        for c in self.cells:
            results.setdefault(c.system, {})[c.metric] = {
                "mean": _clean(c.mean), "stderr": _clean(c.stderr),
                "diff": _clean(c.diff),
                "ci": (None if c.is_baseline or math.isnan(c.ci_low)
                       else [_clean(c.ci_low), _clean(c.ci_high)]),
                "p_value": {t: _clean(p) for t, p in c.p_value.items()},
                "p_adjusted": {t: _clean(p) for t, p in c.p_adjusted.items()},
                "significant": dict(c.significant),
                "marks": (_arrow(c) + c.marks) if c.marks else "",
            }
        return {
            "baseline": self.baseline, "systems": list(self.systems),
            "metrics": list(self.metrics), "tests": list(self.tests),
            "alpha": self.alpha, "correction": self.correction,
            "correction_family": (f"per metric and test: the {self.n_comparisons} comparisons "
                                  f"of a system with the baseline"),
            "confidence": self.confidence, "n_permutations": self.n_permutations,
            "n_bootstrap": self.n_bootstrap, "seed": self.seed,
            "randomization_p_value": _P_VALUE_RULE,
            "wilcoxon_zero_method": WILCOXON_ZERO_METHOD,
            "marks": {t: TESTS[t].mark for t in self.tests},
            "n_users": self.n_users, "n_dropped": self.n_dropped, "dropped": dict(self.dropped),
            "legend": self.legend(),
            "results": results,
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """:meth:`to_dict` as strict JSON (no NaN)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)



# formatting


def _clean(x: float):
    return None if x is None or math.isnan(x) else float(x)


def _fmt(x: float, digits: int, *, sign: bool = False) -> str:
    if math.isnan(x):
        return "–"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    return f"{p:.1e}" if p < 1e-4 else f"{p:.4f}"


def _arrow(c: ComparisonCell) -> str:
    return "↑" if c.diff > 0 else "↓" if c.diff < 0 else ""


def _ci(c: ComparisonCell, digits: int) -> str:
    if math.isnan(c.ci_low):
        return "–"
    return f"[{_fmt(c.ci_low, digits, sign=True)}, {_fmt(c.ci_high, digits, sign=True)}]"


def _p_cell(c: ComparisonCell, test: str) -> str:
    mark = f" {TESTS[test].mark}" if c.significant[test] else ""
    return f"{_fmt_p(c.p_value[test])} ({_fmt_p(c.p_adjusted[test])}){mark}"


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _md_table(head: list[str], rows: list[list[str]], *, align: str) -> str:
    rule = ["---:" if a == "r" else ":---" for a in align]
    return "\n".join("| " + " | ".join(r) + " |" for r in [head, rule, *rows])


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
        "±": r"$\pm$", "†": r"$^\dagger$", "‡": r"$^\ddagger$", "≤": r"$\le$",
        "↑": r"$\uparrow$", "↓": r"$\downarrow$", "–": "--"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in text)
