"""Training curves of a run (``log.jsonl``) as a PNG: loss terms, KL weight, validation metric."""

from __future__ import annotations

from pathlib import Path

from .._io import atomic_file, read_jsonl


def read_log(run) -> list[dict]:
    """The per-epoch records of a run directory's ``log.jsonl``."""
    path = Path(run) / "log.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} not found; is {str(run)!r} a run directory "
                                f"written by `evcf train`?")
    records = read_jsonl(path)
    if not records:
        raise ValueError(f"{path} holds no epochs yet")
    for lineno, r in enumerate(records, start=1):
        missing = [k for k in ("epoch", "loss", "nll", "kl", "beta") if k not in r]
        if missing:
            raise ValueError(f"{path}:{lineno}: epoch record is missing {missing}; the file "
                             f"is damaged (it is written by `evcf train`)")
    return records


def plot_run(run, *, out=None) -> Path:
    """Write the training curves of ``run`` to a PNG.

    Parameters
    ----------
    run : str or Path
        Run directory.
    out : str or Path, optional
        PNG path; default ``RUN/curves.png``.

    Returns
    -------
    Path
        The PNG written (atomically).
    """
    # a bare Figure renders with the Agg canvas: no pyplot, no global backend switch, headless
    from matplotlib.figure import Figure

    records = read_log(run)
    metric_key = next((k for k in records[0] if k.startswith("val_")), None)
    epochs = [r["epoch"] for r in records]
    fig = Figure(figsize=(14, 4), layout="constrained")
    axes = fig.subplots(1, 3)
    ax = axes[0]
    for key, style in (("loss", "-"), ("nll", "--"), ("kl", ":")):
        ax.plot(epochs, [r[key] for r in records], style, label=key)
    ax.set(xlabel="epoch", ylabel="training objective (per user)", title="loss")
    ax.legend()
    axes[1].plot(epochs, [r["beta"] for r in records])
    axes[1].set(xlabel="epoch", ylabel="beta", title="KL weight")
    if metric_key is not None:
        ax = axes[2]
        ax.plot(epochs, [r[metric_key] for r in records])
        best = [r for r in records if r.get("best")]
        if best:
            top = max(best, key=lambda r: r[metric_key])
            ax.plot([top["epoch"]], [top[metric_key]], "o", label=f"best (epoch {top['epoch']})")
            ax.legend()
        ax.set(xlabel="epoch", ylabel=metric_key[4:], title="validation")
    fig.suptitle(Path(run).resolve().name)
    out = Path(out) if out is not None else Path(run) / "curves.png"
    run_files = [Path(run) / f for f in ("log.jsonl", "config.json", "last.pt", "best.pt",
                                         "test.json")]
    with atomic_file(out, inputs=run_files, what="--out") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return out
