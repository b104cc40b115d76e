"""``evcf sweep --report``: the best trials of a study as a table, and two plots.

``history.png``: every trial's best validation value in trial order (pruned trials at the last
value they reported, marked), with the best-so-far line; ``importance.png``: Optuna's parameter
importances (fANOVA) over the complete trials.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._io import atomic_file


def trial_rows(study, *, top: int = 10) -> list[dict]:
    """The ``top`` complete trials, best validation value first, as plain dicts."""
    from .sweep import best_trials

    rows = []
    for t in best_trials(study, top=top):
        test = t.user_attrs.get("test", {})
        rows.append({"trial": t.number, "value": t.value, "params": dict(t.params),
                     "best_epoch": t.user_attrs.get("best_epoch"),
                     "epochs_run": t.user_attrs.get("epochs_run"),
                     "test": test, "run_dir": t.user_attrs.get("run_dir")})
    return rows


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def report_text(study, *, top: int = 10) -> str:
    """Counts by state and the best trials as a Markdown table."""
    from collections import Counter

    states = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    metric = study.user_attrs.get("metric", "validation metric")
    lines = [f"study {study.study_name!r}: " + ", ".join(f"{n} {s}" for s, n in
                                                          sorted(states.items())), ""]
    rows = trial_rows(study, top=top)
    if not rows:
        return "\n".join(lines + ["no complete trial yet"])
    lines += [f"| trial | validation {metric} | test ndcg@100 | epochs (best) | parameters |",
              "|---:|---:|---:|---:|---|"]
    for r in rows:
        test = r["test"].get("ndcg@100")
        test = f"{test[0]:.4f} +- {test[1]:.4f}" if test else "-"
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(r["params"].items()))
        lines.append(f"| {r['trial']} | {r['value']:.5f} | {test} | {r['epochs_run']} "
                     f"({r['best_epoch']}) | {params} |")
    lines += ["", f"best run: {rows[0]['run_dir']}"]
    return "\n".join(lines)


def plot_history(study, out) -> Path:
    """Validation value per trial and best so far (PNG)."""
    from matplotlib.figure import Figure
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    done = [(t.number, t.value) for t in trials if t.state == TrialState.COMPLETE]
    pruned = [(t.number, max(t.intermediate_values.values())) for t in trials
              if t.state == TrialState.PRUNED and t.intermediate_values]
    if done:
        ax.plot(*zip(*done), "o", label="complete")
        best, line = float("-inf"), []
        for n, v in sorted(done):
            best = max(best, v)
            line.append((n, best))
        ax.step(*zip(*line), where="post", label="best so far")
    if pruned:
        ax.plot(*zip(*pruned), "x", color="grey", label="pruned (best reported)")
    ax.set(xlabel="trial", ylabel="best validation value", title="optimisation history")
    ax.legend()
    with atomic_file(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out)


def plot_importance(study, out) -> Path | None:
    """Parameter importances (PNG); None when fewer than two complete trials vary a parameter."""
    import optuna
    from matplotlib.figure import Figure

    try:
        importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):   # too few complete trials, or a single value per param
        return None
    if not importances:
        return None
    names = list(importances)[::-1]
    fig = Figure(figsize=(7, 0.5 * len(names) + 1.5), layout="constrained")
    ax = fig.subplots()
    ax.barh(names, [importances[n] for n in names])
    ax.set(xlabel="importance (fANOVA)", title="parameter importance")
    with atomic_file(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out)


def write_report(study, out_dir, *, top: int = 10) -> tuple[str, list[Path]]:
    """report.md, best_trials.json, history.png and importance.png in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = report_text(study, top=top)
    with atomic_file(out_dir / "report.md") as tmp:
        tmp.write_text(text + "\n")
    with atomic_file(out_dir / "best_trials.json") as tmp:
        tmp.write_text(json.dumps(trial_rows(study, top=top), indent=2) + "\n")
    paths = [out_dir / "report.md", out_dir / "best_trials.json",
             plot_history(study, out_dir / "history.png")]
    importance = plot_importance(study, out_dir / "importance.png")
    if importance is not None:
        paths.append(importance)
    return text, paths
