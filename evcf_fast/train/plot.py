"""Training curves of one or more runs (``log.jsonl``) as a PNG.

Four panels share the epoch axis (integer ticks): the reconstruction term (NLL), the KL term on
its own scale, the KL weight beta and the validation metric (its best epoch marked). Several runs
are overlaid, one colour per run; the title names each run's model, dataset and test NDCG@100
(from ``test.json``, when the run has finished).
"""

from __future__ import annotations

import json
from pathlib import Path

from .._io import atomic_file
from .logs import read_log

__all__ = ["plot_run", "plot_runs", "read_log", "run_label"]


def run_label(run) -> str:
    """``NAME: model on dataset, test ndcg@100 V`` from the run's config.json and test.json."""
    run = Path(run)
    name = run.resolve().name
    parts = []
    try:
        cfg = json.loads((run / "config.json").read_text())
        model = cfg["model_config"]
        what = model["model"] + (" (gated)" if model.get("gated") else "")
        parts.append(what + (f" on {Path(cfg['data']).name}" if cfg.get("data") else ""))
    except (OSError, ValueError, KeyError):
        pass
    try:
        test = json.loads((run / "test.json").read_text())
        ndcg = test["metrics"]["ndcg@100"]["mean"]
        parts.append(f"test NDCG@100 {ndcg:.4f}")
    except (OSError, ValueError, KeyError, TypeError):
        parts.append("no test result yet")
    return f"{name}: " + ", ".join(parts)


def plot_runs(runs, *, out=None) -> Path:
    """Write the training curves of one or more runs to one PNG.

    Parameters
    ----------
    runs : sequence of str or Path
        Run directories (``evcf train --out``).
    out : str or Path, optional
        PNG path; default ``RUN/curves.png`` for a single run, required for several.

    Returns
    -------
    Path
        The PNG written (atomically).
    """
    # a bare Figure renders with the Agg canvas: no pyplot, no global backend switch, headless
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    runs = [Path(r) for r in runs]
    if not runs:
        raise ValueError("runs must name at least one run directory, got none")
    if out is None:
        if len(runs) > 1:
            raise ValueError(f"{len(runs)} runs need --out FILE.png (the default RUN/curves.png "
                             f"is for a single run)")
        out = runs[0] / "curves.png"
    logs = [_plottable(r, read_log(r)) for r in runs]
    fig = Figure(figsize=(13, 7.5), layout="constrained")
    axes = fig.subplots(2, 2, sharex=True).ravel()
    panels = (("nll", "reconstruction (NLL per user)", "NLL"),
              ("kl", "KL term (per user, its own scale)", "KL"),
              ("beta", "KL weight beta", "beta"),
              (None, "validation metric", None))
    colours = [f"C{i % 10}" for i in range(len(runs))]
    for run, records, colour in zip(runs, logs, colours):
        name = run.resolve().name
        epochs = [r["epoch"] for r in records]
        metric_key = next((k for k in records[0] if k.startswith("val_")), None)
        for ax, (key, title, ylabel) in zip(axes, panels):
            if key is None:
                if metric_key is None:
                    continue
                key, ylabel = metric_key, metric_key[4:]
                best = [r for r in records if r.get("best")]
                if best:
                    top = max(best, key=lambda r: r[key])
                    ax.plot([top["epoch"]], [top[key]], "o", color=colour, markersize=7,
                            label=f"{name} best: epoch {top['epoch']}, {top[key]:.4f}")
            marker = "." if len(epochs) <= 30 else None
            ax.plot(epochs, [r[key] for r in records], color=colour, marker=marker,
                    label=name if key != metric_key else None)
            ax.set(title=title, ylabel=ylabel)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in (axes[0], axes[3]):  # runs named once; the best epochs on the metric panel
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    for ax in axes[2:]:
        ax.set_xlabel("epoch")
    fig.suptitle("\n".join(run_label(r) for r in runs), fontsize="medium")
    out = Path(out)
    # never write over what a run folder holds (`--out RUN/last.pt` would destroy a checkpoint)
    run_files = [r / f for r in runs for f in ("log.jsonl", "log.csv", "config.json", "last.pt",
                                               "best.pt", "test.json", "test_per_user.parquet")]
    with atomic_file(out, inputs=run_files, what="--out") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return out


def _plottable(run: Path, records: list[dict]) -> list[dict]:
    """``records`` if every one holds what the panels draw; else a ValueError naming the line."""
    for number, r in enumerate(records, start=1):
        missing = [k for k in ("epoch", "loss", "nll", "kl", "beta")
                   if not isinstance(r, dict) or k not in r]
        if missing:
            raise ValueError(f"{run / 'log.jsonl'}:{number}: epoch record is missing {missing}; "
                             f"the file is damaged (it is written by `evcf train`)")
    return records


def plot_run(run, *, out=None) -> Path:
    """Write the training curves of one run; see :func:`plot_runs`."""
    return plot_runs([run], out=out)
