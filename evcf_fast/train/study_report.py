"""The report folder of ``evcf study``: a Markdown table, JSON, overlaid validation curves and the
per-user test values of every row (for paired significance tests)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from .._io import atomic_file

TABLE_METRICS = ("ndcg@100", "ndcg@20", "recall@20", "recall@50")


def per_user_values(run, *, metrics=TABLE_METRICS, device="cpu") -> dict[str, np.ndarray]:
    """Per-user test values of a run's best checkpoint (float64, NaN for skipped users)."""
    from ..metrics import evaluate
    from .inference import part_scores

    scores, fold_in, heldout = part_scores(run, part="test", device=device)
    res = evaluate(scores, heldout, exclude=fold_in, metrics=tuple(metrics))
    return {m: np.asarray(res.per_user[m], np.float64) for m in metrics}


def paired_tests(per_user: dict[str, dict[str, np.ndarray]], *, against: str) -> dict | None:
    """Paired significance of every row against the row ``against``, per metric.

    :func:`evcf_fast.compare.compare` on the per-user test values of the rows (all rows are
    evaluated on the same test users; users without held-out items are NaN and left out):
    the difference of means and the Fisher randomisation p-value, Holm-adjusted over the rows
    compared with ``against``. ``{row: {metric: {"diff": d, "p": p}}}``, or None when there is
    nothing to compare.
    """
    from ..compare import compare

    if against not in per_user or len(per_user) < 2:
        return None
    metrics = sorted(set.intersection(*(set(v) for v in per_user.values())))
    if not metrics:
        return None
    report = compare(per_user, baseline=against, metrics=metrics, tests=("randomization",),
                     n_bootstrap=0, intersect=True)
    return {row: {m: {"diff": report[row, m].diff,
                      "p": report[row, m].p_adjusted["randomization"]} for m in metrics}
            for row in per_user if row != against}


def _pm(v) -> str:
    if not v or v[0] is None:
        return "-"
    return f"{v[0]:.4f} +- {v[1]:.4f}"


def _seconds(s) -> str:
    if s is None:
        return ""
    return f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min"


def _sig(tests, row: str, metric: str = "ndcg@100") -> str:
    if tests is None:
        return "n/a"
    t = tests.get(row, {}).get(metric)
    return "-" if t is None else f"{t['diff']:+.4f} (p {t['p']:.2g})"


def markdown_table(results: list[dict], *, tests_best=None, tests_ease=None) -> str:
    """The study table: one row per study row, test metrics +- SE, validation, epochs, time."""
    head = ("| model | test NDCG@100 | NDCG@20 | Recall@20 | Recall@50 | validation | "
            "vs best (NDCG@100, p) | vs EASE (p) | epochs (best) | time |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        val = ", ".join(f"{k} {v:.4f}" for k, v in r["validation"].items())
        time = _seconds(r["seconds"])
        if r.get("sweep_seconds") is not None:
            time += f" (sweep {_seconds(r['sweep_seconds'])})"
        lines.append(f"| {r['name']} | {_pm(r['test'].get('ndcg@100'))} | "
                     f"{_pm(r['test'].get('ndcg@20'))} | {_pm(r['test'].get('recall@20'))} | "
                     f"{_pm(r['test'].get('recall@50'))} | {val} | "
                     f"{_sig(tests_best, r['name'])} | {_sig(tests_ease, r['name'])} | "
                     f"{r['epochs']} ({r['best_epoch']}) | {time} |")
    return "\n".join(lines)


def plot_curves(results: list[dict], out) -> Path:
    """Validation curves of every row on one axis; closed-form rows as horizontal lines."""
    from matplotlib.figure import Figure

    from .plot import read_log

    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    longest = max(r["epochs"] for r in results)
    metric = None
    for r in results:
        records = read_log(r["run"])
        key = next(k for k in records[0] if k.startswith("val_"))
        metric = key[4:]
        if len(records) == 1:
            ax.hlines(records[0][key], 1, max(longest, 2), linestyles="--",
                      label=f"{r['name']} (closed form)",
                      colors=f"C{results.index(r) % 10}")
        else:
            ax.plot([x["epoch"] for x in records], [x[key] for x in records], label=r["name"],
                    color=f"C{results.index(r) % 10}")
    ax.set(xlabel="epoch", ylabel=f"validation {metric}", title="validation curves")
    ax.legend(fontsize="small")
    with atomic_file(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out)


def write_study_report(results: list[dict], out_dir, *, header: str = "",
                       device="cpu") -> tuple[str, Path]:
    """results.md, results.json, curves.png and per_user.npz in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_user = {r["name"]: per_user_values(r["run"], device=device) for r in results}
    best = max(results, key=lambda r: r["test"]["ndcg@100"][0] or -math.inf)["name"]
    ease = next((r["name"] for r in results if r["model"] == "ease"), None)
    tests_best = paired_tests(per_user, against=best)
    tests_ease = paired_tests(per_user, against=ease) if ease is not None else None
    table = markdown_table(results, tests_best=tests_best, tests_ease=tests_ease)
    commands = "\n".join(f"- {r['name']}: `{r['command']}`" for r in results)
    text = (f"{header}\n\n{table}\n\ntest metrics: mean +- standard error over the test users; "
            f"validation: the best epoch's value (model selection); best row: {best}; "
            f"vs best / vs EASE: difference of test NDCG@100 means and the paired Fisher "
            f"randomisation p-value (10,000 sign flips, Holm-adjusted over the rows)\n\n"
            f"![validation curves](curves.png)\n\nreproduce each row:\n\n{commands}\n")
    with atomic_file(out_dir / "results.md") as tmp:
        tmp.write_text(text.lstrip())
    with atomic_file(out_dir / "results.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
    buf = io.BytesIO()
    np.savez(buf, **{f"{name}|{m}": v for name, vals in per_user.items()
                     for m, v in vals.items()})
    with atomic_file(out_dir / "per_user.npz") as tmp:
        tmp.write_bytes(buf.getvalue())
    plot_curves(results, out_dir / "curves.png")
    return text, out_dir
