"""Hyperparameter search on Optuna: a search space in TOML, trials as normal run folders, pruning
on the per-epoch validation curve, any Optuna storage shared by several processes.

A spec file::

    preset = "multvae-liang"          # optional: the recipe the trials start from
    metric = "ndcg@100"               # objective: best validation value of this metric
    n_trials = 40                     # shared by every process of the study (complete + pruned)
    timeout = 3600                    # seconds per process; optional
    sampler = "tpe"                   # "tpe" | "random" | "grid" (grid: choices only)
    seed = 0
    pruner = "median"                 # "median" | "none"
    startup_trials = 5                # median pruner: trials that are never pruned
    warmup_epochs = 10                # median pruner: epochs before a trial can be pruned

    [fixed]                           # any ModelConfig/TrainConfig field, as `--set`
    epochs = 200                      # ("none" for None, e.g. patience = "none")
    device = "cuda"

    [params.lr]                       # float range (int bounds and step: an int range)
    low = 1e-4
    high = 1e-2
    log = true
    [params.hidden_size]              # a list of values
    choices = [200, 400, 600]

Trial n trains in ``OUT/trials/trial-000n`` (config.json, log.jsonl, best.pt, test.json), reports
its validation metric after each epoch to the pruner and returns the best one; the test metrics
are recorded as trial attributes for the report, never used for selection. The study lives in
``sqlite:///OUT/study.db`` unless another Optuna storage URL is given (PostgreSQL, MySQL, ...).
Processes refresh a heartbeat: a trial whose process was killed is marked failed by the next
process that starts a trial, and retried with the same parameters, resuming the killed run from
its last checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import warnings
from pathlib import Path

from .._checks import check_choice, check_float, check_int, must_be
from .._config import read_toml

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "none")
STUDY_NAME = "sweep"
_SPEC_KEYS = ("preset", "metric", "n_trials", "timeout", "sampler", "seed", "pruner",
              "startup_trials", "warmup_epochs", "fixed", "params")


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched field: a float/int range (``low``, ``high``, ``log``, ``step``) or choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(isinstance(v, int) and not isinstance(v, bool)
                                            for v in (self.low, self.high))

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.name, self.low, self.high, log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log,
                                   step=self.step)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A parsed search space and budget (see the module docstring for the file format)."""

    params: tuple[Param, ...]
    fixed: dict = dataclasses.field(default_factory=dict)
    preset: str | None = None
    metric: str = "ndcg@100"
    n_trials: int = 20
    timeout: float | None = None
    sampler: str = "tpe"
    seed: int = 0
    pruner: str = "median"
    startup_trials: int = 5
    warmup_epochs: int = 0

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "spec") -> SweepSpec:
        """Check and build a spec; errors name ``source`` and the offending key."""
        try:
            return cls._from_dict(d)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{source}: {exc}") from None

    @classmethod
    def _from_dict(cls, d: dict) -> SweepSpec:
        from .presets import get_preset, split_overrides

        unknown = sorted(set(d) - set(_SPEC_KEYS))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; expected some of {list(_SPEC_KEYS)}")
        fixed, raw_params = d.get("fixed", {}), d.get("params", {})
        if not isinstance(fixed, dict) or not isinstance(raw_params, dict):
            raise ValueError("[fixed] and [params] must be tables")
        # TOML has no null: "none" stands for None (patience = "none": never stop early)
        fixed = {k: None if isinstance(v, str) and v.lower() == "none" else v
                 for k, v in fixed.items()}
        split_overrides({**fixed, **{k: None for k in raw_params}})
        if d.get("preset") is not None:
            get_preset(d["preset"])
        params = tuple(_param(name, p) for name, p in raw_params.items())
        if not params:
            raise ValueError("no [params.NAME] table: nothing to search")
        kwargs = {k: d[k] for k in ("preset", "metric", "sampler", "pruner") if k in d}
        spec = cls(params=params, fixed=fixed, **kwargs,
                   n_trials=check_int(d.get("n_trials", 20), "n_trials", minimum=1),
                   timeout=check_float(d.get("timeout"), "timeout", positive=True,
                                       allow_none=True),
                   seed=check_int(d.get("seed", 0), "seed", minimum=0),
                   startup_trials=check_int(d.get("startup_trials", 5), "startup_trials",
                                            minimum=0),
                   warmup_epochs=check_int(d.get("warmup_epochs", 0), "warmup_epochs",
                                           minimum=0))
        check_choice(spec.sampler, "sampler", SAMPLERS)
        check_choice(spec.pruner, "pruner", PRUNERS)
        from ..metrics import parse_metrics

        parse_metrics((spec.metric,))
        if spec.sampler == "grid" and any(p.choices is None for p in params):
            raise ValueError("sampler='grid' needs `choices` for every parameter")
        return spec

    @classmethod
    def load(cls, path) -> SweepSpec:
        """Read a TOML spec file."""
        path = Path(path)
        d = read_toml(path)
        return cls.from_dict(d, source=str(path))


def _param(name: str, p) -> Param:
    where = f"[params.{name}]"
    if not isinstance(p, dict):
        raise ValueError(f"{where} must be a table with low/high or choices, got {p!r}")
    extra = sorted(set(p) - {"low", "high", "log", "step", "choices"})
    if extra:
        raise ValueError(f"{where}: unknown key(s) {extra}; expected low, high, log, step or "
                         f"choices")
    if "choices" in p:
        if set(p) != {"choices"} or not isinstance(p["choices"], list) or not p["choices"]:
            raise ValueError(f"{where}: `choices` must be a non-empty list, alone in its table")
        return Param(name, choices=tuple(p["choices"]))
    if "low" not in p or "high" not in p:
        raise ValueError(f"{where}: needs `low` and `high` (or `choices`)")
    low, high = (check_float(p[k], f"params.{name}.{k}") for k in ("low", "high"))
    if not low < high:
        raise ValueError(must_be(f"{where} low", f"< high={high}", low))
    if p.get("log") and low <= 0:
        raise ValueError(must_be(f"{where} low", "> 0 with log = true", low))
    return Param(name, low=p["low"], high=p["high"], log=bool(p.get("log", False)),
                 step=p.get("step"))


# -- the study -----------------------------------------------------------------------------------

def default_storage(out) -> str:
    """``sqlite:///OUT/study.db`` (absolute path)."""
    return f"sqlite:///{Path(out).resolve() / 'study.db'}"


def open_study(spec: SweepSpec, *, out, storage: str | None = None,
               study_name: str = STUDY_NAME, heartbeat: float = 60.0):
    """Create or load the Optuna study of a sweep (several processes may share it).

    Each process that opens the study gets a worker index (0 for the first); its sampler is
    seeded with ``spec.seed + index``, so a single process is reproducible and concurrent
    processes do not draw the same parameters.
    """
    import optuna

    Path(out).mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(out)
    kwargs = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    with _creation_lock(out), warnings.catch_warnings():
        # heartbeats and the retry callback are "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        rdb = optuna.storages.RDBStorage(url, heartbeat_interval=max(1, int(heartbeat)),
                                         grace_period=max(2, int(2 * heartbeat)),
                                         **_retry_callback(), **kwargs)
        pruner = (optuna.pruners.NopPruner() if spec.pruner == "none" else
                  optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials,
                                              n_warmup_steps=spec.warmup_epochs))
        study = optuna.create_study(storage=rdb, study_name=study_name, direction="maximize",
                                    pruner=pruner, load_if_exists=True)
        worker = int(study.user_attrs.get("workers", 0))
        study.set_user_attr("workers", worker + 1)
        study.set_user_attr("metric", spec.metric)
    seed = spec.seed + worker
    if spec.sampler == "grid":
        study.sampler = optuna.samplers.GridSampler(
            {p.name: list(p.choices) for p in spec.params}, seed=seed)
    elif spec.sampler == "random":
        study.sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        study.sampler = optuna.samplers.TPESampler(seed=seed)
    return study


def _retry_callback() -> dict:
    """The RDBStorage argument that retries a trial whose heartbeat stopped (Optuna >= 4.9 and
    older spellings)."""
    from optuna import storages

    if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):
        return {"heartbeat_stale_trial_callback":
                storages.RetryHeartbeatStaleTrialCallback(max_retry=3)}
    return {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=3)}


@contextlib.contextmanager
def _creation_lock(out):
    """An exclusive file lock in ``out`` while a process creates or joins the study: SQLite
    schema creation is not safe against a second process doing the same."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows): no lock, Optuna's own retry
        yield
        return
    with open(Path(out) / ".study.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def counted_trials(study) -> int:
    """Trials that use up the budget: complete and pruned ones."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _run_dir(out, number: int) -> Path:
    return Path(out).resolve() / "trials" / f"trial-{number:04d}"


def _objective(spec: SweepSpec, *, data, n_items: int, out, progress: bool):
    import optuna

    from . import checkpoint as ckpt
    from .plot import read_log
    from .presets import resolve
    from .zoo import fit

    key = f"val_{spec.metric}"

    def objective(trial) -> float:
        values = {p.name: p.suggest(trial) for p in spec.params}
        overrides = {**spec.fixed, **values, "val_metric": spec.metric}
        model_cfg, train_cfg = resolve(n_items=n_items, preset=spec.preset, overrides=overrides)
        # the number of the killed trial this one retries (the retry callback's system attribute;
        # read from the stored copy, since Optuna 5's Trial no longer exposes system_attrs)
        frozen = trial.study._storage.get_trial(trial._trial_id)
        retried = frozen.system_attrs.get("failed_trial")
        run = _run_dir(out, retried if retried is not None else trial.number)
        resume = (run / ckpt.LAST).exists() or (model_cfg.is_closed_form
                                                and (run / ckpt.BEST).exists())
        if run.exists() and not resume:
            shutil.rmtree(run)          # killed before its first checkpoint: start again
        trial.set_user_attr("run_dir", str(run))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        reported: set[int] = set()

        def report_curve():
            # The curve of a resumed run comes from its log, read once ``fit`` has rewritten it
            # from the checkpoint's history: the log may have lost the epoch the kill came after
            # (saved in last.pt, not yet appended), or hold one the checkpoint does not have.
            if (run / "log.jsonl").exists():
                for rec in read_log(run, warn=False):
                    if rec["epoch"] not in reported:
                        reported.add(rec["epoch"])
                        trial.report(rec[key], rec["epoch"])

        def on_epoch(record):
            if record["epoch"] - 1 not in reported and record["epoch"] > 1:
                report_curve()                     # first epoch after a resume: replay the past
            if record["epoch"] not in reported:
                reported.add(record["epoch"])
                trial.report(record[key], record["epoch"])
            if not model_cfg.is_closed_form and trial.should_prune():  # one fit: nothing to save
                raise optuna.TrialPruned(f"epoch {record['epoch']}: {spec.metric} "
                                         f"{record[key]:.5f}")

        result = fit(data, model_config=model_cfg, train_config=train_cfg, out=run,
                     resume=resume, progress=progress, on_epoch=on_epoch)
        report_curve()                  # a run that had already finished trains no epoch
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("epochs_run", result.epochs_run)
        if result.test is not None:
            trial.set_user_attr("test", {m: [result.test.mean[m], result.test.stderr[m]]
                                         for m in result.test.mean})
        return float(result.best_metric)

    return objective


def run_sweep(spec: SweepSpec, *, data, out, storage: str | None = None,
              study_name: str = STUDY_NAME, n_trials: int | None = None,
              timeout: float | None = None, heartbeat: float = 60.0, progress: bool = False):
    """Run trials until the study holds ``n_trials`` complete or pruned ones (over every process
    sharing it; processes that run trials at the same time may overshoot by their number minus
    one), starting no new trial after ``timeout`` seconds in this process.

    Parameters
    ----------
    spec : SweepSpec
    data : str or Path
        Prepared split directory (recorded in each trial's config.json).
    out : str or Path
        Sweep directory: ``trials/`` and, by default, ``study.db``.
    storage : str, optional
        An Optuna storage URL; default :func:`default_storage`.
    n_trials, timeout : optional
        Override the spec's budget.
    heartbeat : float
        Seconds between heartbeats; a trial silent for twice that is taken as killed.

    Returns
    -------
    optuna.Study
    """
    import optuna

    from ..data.dataset import SplitDataset
    from ..errors import NonFiniteLossError

    n_trials = check_int(spec.n_trials if n_trials is None else n_trials, "n_trials", minimum=1)
    timeout = spec.timeout if timeout is None else check_float(timeout, "timeout", positive=True)
    data = str(Path(data).resolve())
    n_items = SplitDataset.load(data).n_items
    study = open_study(spec, out=out, storage=storage, study_name=study_name,
                       heartbeat=heartbeat)
    if not progress:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    if counted_trials(study) >= n_trials:
        return study
    budget = optuna.study.MaxTrialsCallback(
        n_trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    study.optimize(_objective(spec, data=data, n_items=n_items, out=out, progress=progress),
                   timeout=timeout, callbacks=[budget], catch=(NonFiniteLossError,))
    return study


def load_study(*, out=None, storage: str | None = None, study_name: str = STUDY_NAME):
    """An existing study, for reports."""
    import optuna

    if storage is None:
        if out is None or not (Path(out) / "study.db").exists():
            raise FileNotFoundError(f"no study.db in {str(out)!r}; pass the sweep's --out or "
                                    f"--storage")
        storage = default_storage(out)
    return optuna.load_study(study_name=study_name, storage=storage)


def best_trials(study, *, top: int = 10) -> list:
    """Complete trials, best validation value first."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return sorted(done, key=lambda t: -t.value)[:top]
