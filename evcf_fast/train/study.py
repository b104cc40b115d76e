"""``evcf study SPEC.toml``: several models, presets and sweeps on one dataset, run in order and
reported together.

A spec file (paths relative to the spec file's folder)::

    data = "data/ml1m"                # a split prepared by `evcf prepare`
    out = "studies/ml1m"              # runs/, sweeps/, report/ (`--out` overrides)

    [set]                             # fields applied to every row (as `--set`); a sweep's
    device = "cpu"                    # [fixed] wins over them, except for `device`

    [[rows]]
    name = "popularity"
    model = "popularity"

    [[rows]]
    name = "EASE (lambda tuned on validation)"
    sweep = "ease.toml"               # a sweep spec: the row is its best trial on validation
    trials = 9                        # optional: overrides the sweep spec's n_trials

    [[rows]]
    name = "Mult-VAE (evcf-baseline)"
    preset = "evcf-baseline"
    set = { epochs = 400 }

Runs are resumable: a row whose run holds ``test.json`` is not redone, a killed run continues
from its last checkpoint, a sweep continues towards its trial budget. The report folder holds
``results.md`` (test NDCG@100/@20, Recall@20/@50 +- SE, the validation value, epochs, time, and
the command reproducing each row), ``results.json``, ``curves.png`` (the validation curves
overlaid) and ``per_user.npz`` (per-user test values of each row, for paired tests).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
from pathlib import Path

from .._checks import check_int
from .._config import read_toml

_ROW_KEYS = ("name", "model", "preset", "set", "sweep", "trials")
_STUDY_KEYS = ("data", "out", "set", "rows")


@dataclasses.dataclass(frozen=True)
class StudyRow:
    """One row: a training run (``model``/``preset`` and ``set``) or a sweep (``sweep``)."""

    name: str
    model: str | None = None
    preset: str | None = None
    overrides: dict = dataclasses.field(default_factory=dict)
    sweep: Path | None = None
    trials: int | None = None

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "row"


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """A parsed study file."""

    data: Path
    out: Path | None
    rows: tuple[StudyRow, ...]
    overrides: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict, *, base: Path = Path("."), source: str = "study") -> StudySpec:
        try:
            return cls._from_dict(d, base=Path(base))
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{source}: {exc}") from None

    @classmethod
    def _from_dict(cls, d: dict, *, base: Path) -> StudySpec:
        from .presets import get_preset, split_overrides

        unknown = sorted(set(d) - set(_STUDY_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; expected some of {list(_STUDY_KEYS)}")
        if "data" not in d:
            raise ValueError("`data` (the prepared split directory) is required")
        overrides = _nulls(d.get("set", {}))
        split_overrides(overrides)
        rows = []
        for i, r in enumerate(d.get("rows", [])):
            where = f"rows[{i}]"
            if not isinstance(r, dict):
                raise ValueError(f"{where} must be a table ([[rows]])")
            extra = sorted(set(r) - set(_ROW_KEYS))
            if extra:
                raise ValueError(f"{where}: unknown key(s) {extra}; expected some of "
                                 f"{list(_ROW_KEYS)}")
            if not isinstance(r.get("name"), str) or not r["name"].strip():
                raise ValueError(f"{where}: `name` (a non-empty string) is required")
            if ("sweep" in r) == ("model" in r or "preset" in r):
                raise ValueError(f"{where} ({r['name']!r}): give either `sweep` or "
                                 f"`model`/`preset`")
            if r.get("preset") is not None:
                get_preset(r["preset"])
            row_set = _nulls(r.get("set", {}))
            split_overrides(row_set)
            if "sweep" in r and row_set:
                raise ValueError(f"{where}: `set` does not apply to a sweep row; put the fields "
                                 f"in the sweep's [fixed] table")
            rows.append(StudyRow(
                name=r["name"], model=r.get("model"), preset=r.get("preset"),
                overrides=row_set, sweep=_path(base, r["sweep"]) if "sweep" in r else None,
                trials=check_int(r.get("trials"), f"{where}.trials", minimum=1,
                                 allow_none=True)))
        if not rows:
            raise ValueError("no [[rows]]: nothing to run")
        slugs = [r.slug for r in rows]
        dup = sorted({s for s in slugs if slugs.count(s) > 1})
        if dup:
            raise ValueError(f"row names must differ (as folder names): {dup} repeat")
        return cls(data=_path(base, d["data"]), out=_path(base, d["out"]) if "out" in d else None,
                   rows=tuple(rows), overrides=overrides)

    @classmethod
    def load(cls, path) -> StudySpec:
        path = Path(path)
        d = read_toml(path)
        return cls.from_dict(d, base=path.parent, source=str(path))


def _path(base: Path, name) -> Path:
    """``name`` relative to the spec's folder, normalised ("a/b/../c" -> "a/c")."""
    if not isinstance(name, str):
        raise TypeError(f"paths must be strings, got {name!r}")
    return Path(os.path.normpath(base / name))


def _nulls(table) -> dict:
    if not isinstance(table, dict):
        raise ValueError(f"`set` must be a table, got {table!r}")
    return {k: None if isinstance(v, str) and v.lower() == "none" else v
            for k, v in table.items()}


# -- running -------------------------------------------------------------------------------------

def row_dir(out, row: StudyRow) -> Path:
    """Where a row runs: ``OUT/runs/<slug>`` or, for a sweep, ``OUT/sweeps/<slug>``."""
    return Path(out) / ("sweeps" if row.sweep is not None else "runs") / row.slug


def run_row(spec: StudySpec, row: StudyRow, *, out, progress: bool = False) -> Path:
    """Run (or finish) one row; return the run directory that represents it."""
    from ..data.dataset import SplitDataset
    from .presets import resolve
    from .zoo import fit

    where = row_dir(out, row)
    if row.sweep is not None:
        from .sweep import SweepSpec, best_trials, run_sweep

        sweep = SweepSpec.load(row.sweep)
        if spec.overrides:   # the sweep's own fields win, except the study's device
            device = {k: v for k, v in spec.overrides.items() if k == "device"}
            sweep = dataclasses.replace(sweep, fixed={**spec.overrides, **sweep.fixed, **device})
        study = run_sweep(sweep, data=spec.data, out=where, n_trials=row.trials,
                          progress=progress)
        best = best_trials(study, top=1)
        if not best:
            raise ValueError(f"row {row.name!r}: the sweep in {where} has no complete trial")
        return Path(best[0].user_attrs["run_dir"])
    if (where / "test.json").exists():
        return where
    overrides = {**spec.overrides, **row.overrides}
    if row.model is not None:
        overrides["model"] = row.model
    n_items = SplitDataset.load(spec.data).n_items
    model_cfg, train_cfg = resolve(n_items=n_items, preset=row.preset, overrides=overrides)
    resume = (where / "last.pt").exists() or (model_cfg.is_closed_form
                                              and (where / "best.pt").exists())
    fit(str(Path(spec.data).resolve()), model_config=model_cfg, train_config=train_cfg,
        out=where, resume=resume, progress=progress)
    return where


def run_study(spec: StudySpec, *, out=None, progress: bool = False, log=None) -> list[dict]:
    """Run every row in order (finished ones are skipped) and return their summaries.

    ``log`` (callable, optional) gets a line before and after each row.
    """
    out = Path(out if out is not None else spec.out or "study")
    results = []
    for i, row in enumerate(spec.rows, 1):
        if log:
            log(f"[{i}/{len(spec.rows)}] {row.name}")
        run = run_row(spec, row, out=out, progress=progress)
        results.append(row_summary(spec, row, run, out=out))
        if log:
            r = results[-1]["test"].get("ndcg@100")
            log(f"[{i}/{len(spec.rows)}] {row.name}: test ndcg@100 "
                f"{r[0]:.4f} +- {r[1]:.4f} ({run})" if r else f"{row.name}: done ({run})")
    return results


def _command(spec: StudySpec, row: StudyRow, run: Path, *, out) -> str:
    """The command line that trains the row's run again."""
    words = ["evcf", "train", "--data", str(spec.data), "--out", str(run)]
    if row.sweep is not None:
        words = ["evcf", "sweep", str(row.sweep), "--data", str(spec.data), "--out",
                 str(row_dir(out, row))] + (["--trials", str(row.trials)] if row.trials else [])
        from .sweep import best_trials, load_study

        best = best_trials(load_study(out=row_dir(out, row)), top=1)
        params = ", ".join(f"{k}={v}" for k, v in sorted(best[0].params.items())) if best else ""
        return " ".join(shlex.quote(w) for w in words) + f"   # best: {run.name}, {params}"
    if row.preset:
        words += ["--preset", row.preset]
    if row.model:
        words += ["--model", row.model]
    for k, v in {**spec.overrides, **row.overrides}.items():
        words += ["--set", f"{k}={_set_value(v)}"]
    return " ".join(shlex.quote(w) for w in words)


def _set_value(v) -> str:
    """``--set`` text of a value: JSON, except strings that ``--set`` reads back unchanged."""
    if isinstance(v, str):
        try:
            json.loads(v)
        except json.JSONDecodeError:
            if v.strip().lower() not in ("none", "true", "false"):
                return v
    return json.dumps(v)


def row_summary(spec: StudySpec, row: StudyRow, run: Path, *, out) -> dict:
    """Test metrics (mean, SE), best validation value and epoch, epochs, seconds of a row."""
    from .plot import read_log

    test = json.loads((run / "test.json").read_text())
    records = read_log(run)
    key = next(k for k in records[0] if k.startswith("val_"))
    best = max(records, key=lambda r: r[key])
    stored = json.loads((run / "config.json").read_text())
    sweep_seconds = None
    if row.sweep is not None:   # every trial of the sweep, pruned and killed ones included
        sweep_seconds = sum(r.get("seconds", 0.0) for log in
                            (row_dir(out, row) / "trials").glob("*/log.jsonl")
                            for r in read_log(log.parent, warn=False, allow_empty=True))
    return {"name": row.name, "run": str(run), "model": stored["model_config"]["model"],
            "test": {m: [v["mean"], v["stderr"]] for m, v in test["metrics"].items()},
            "validation": {key[4:]: best[key]}, "best_epoch": test.get("best_epoch"),
            "epochs": len(records), "seconds": sum(r.get("seconds", 0.0) for r in records),
            "sweep_seconds": sweep_seconds,
            "command": _command(spec, row, run, out=out)}
