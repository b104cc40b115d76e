"""Validation of the systems and metrics to compare, and pairing of their users."""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from .._checks import check_choice, check_float, must_be, type_name
from ..metrics import EvaluationResult
from .report import TESTS

# inputs


def _check_systems(systems):
    if not isinstance(systems, Mapping):
        raise TypeError(must_be("systems", "a mapping of system name to EvaluationResult or "
                                "to per-user metric values", type_name(systems)))
    if len(systems) < 2:
        raise ValueError(must_be("systems", "a mapping of at least 2 systems",
                                 f"{len(systems)}"))
    names, values, n_rows, results = [], {}, {}, {}
    for name, system in systems.items():
        if not isinstance(name, str) or not name:
            raise TypeError(must_be("system names", "non-empty strings", repr(name)))
        if isinstance(system, EvaluationResult):
            results[name] = system
            per_user = {metric: np.asarray(v, float) for metric, v in system.per_user.items()}
        elif isinstance(system, Mapping):
            per_user = {}
            for metric, v in system.items():
                if not isinstance(metric, str):
                    raise TypeError(must_be(f"metric names of system {name!r}", "str",
                                            type_name(metric)))
                arr = np.asarray(v)
                if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.floating)
                                         or np.issubdtype(arr.dtype, np.integer)
                                         or arr.dtype == bool):
                    raise TypeError(must_be(f"per-user values of {name!r}[{metric!r}]",
                                            "a 1-D array of numbers",
                                            f"{arr.ndim}-D {arr.dtype}"))
                per_user[metric] = arr.astype(float, copy=False)
        else:
            raise TypeError(must_be(f"systems[{name!r}]", "an EvaluationResult or a mapping of "
                                    "metric name to per-user values", type_name(system)))
        if not per_user:
            raise ValueError(must_be(f"systems[{name!r}]", "at least one metric", "none"))
        lengths = {v.shape[0] for v in per_user.values()}
        if len(lengths) != 1:
            raise ValueError(must_be(f"per-user values of system {name!r}",
                                     "arrays of one length", f"lengths {sorted(lengths)}"))
        names.append(name)
        values[name] = per_user
        n_rows[name] = lengths.pop()
    return names, values, n_rows, results


def _norm(metric: str) -> str:
    return metric.strip().lower()


def metric_kind(metric) -> str | None:
    """The registry kind of a ``"name@k"`` metric ("accuracy", "list" or "global"), or None
    for a name the registry does not know (a column of a per-user file may be any name)."""
    from ..metrics.spec import METRICS as REGISTRY

    known = REGISTRY.get(_norm(str(metric)).split("@")[0])
    return None if known is None else known.kind


def check_per_user(metrics: Iterable[str]) -> None:
    """Refuse metrics with one value per system (coverage, Gini, entropy): the tests pair users,
    so they need a value per user."""
    for m in metrics:
        if metric_kind(m) == "global":
            raise ValueError(f"{m} has one value per system, not one per user, so no paired "
                             f"test applies to it; compare per-user metrics (accuracy, avgpop, "
                             f"novelty) and read {m} from `evcf evaluate` or "
                             f"EvaluationResult.aggregate")


def _check_metrics(metrics, values, names, baseline) -> list[str]:
    available = list(values[baseline])
    by_norm = {_norm(m): m for m in available}
    if metrics is None:
        chosen = available
    else:
        if isinstance(metrics, str) or not isinstance(metrics, Iterable):
            metrics = [metrics]
        chosen = []
        for m in metrics:
            if not isinstance(m, str):
                m = str(m)  # e.g. a MetricSpec: str() is its "name@k" spelling
            key = m if m in values[baseline] else by_norm.get(_norm(m))
            if key is None:
                check_per_user([m])
                raise ValueError(f"unknown metric {m!r}; expected one of {available} (the "
                                 f"metrics of baseline {baseline!r})")
            if key not in chosen:
                chosen.append(key)
        if not chosen:
            raise ValueError(must_be("metrics", "at least one metric name", "an empty list"))
    for name in names:
        missing = [m for m in chosen if m not in values[name]]
        if missing:
            raise ValueError(f"system {name!r} has no per-user values for {missing}; it has "
                             f"{list(values[name])}. Pass metrics= to compare the metrics "
                             f"every system has")
    return chosen


def _check_tests(tests) -> tuple[str, ...]:
    if isinstance(tests, str):
        tests = (tests,)
    if not isinstance(tests, Iterable):
        raise TypeError(must_be("tests", f"a str or a sequence of {list(TESTS)}",
                                type_name(tests)))
    chosen = []
    for t in tests:
        check_choice(t, "tests", TESTS)
        if t not in chosen:
            chosen.append(t)
    if not chosen:
        raise ValueError(must_be("tests", f"at least one of {list(TESTS)}", "none"))
    return tuple(t for t in TESTS if t in chosen)  # registry order: stable table columns


def _check_open_unit(value, name: str) -> float:
    value = check_float(value, name)
    if not 0.0 < value < 1.0:
        raise ValueError(must_be(name, "in (0, 1)", value))
    return value


def _check_same_definitions(results: dict[str, EvaluationResult], metrics: list[str]) -> None:
    """Recall values are comparable only under one recall denominator."""
    if not any(m.startswith("recall") for m in metrics):
        return
    denominators = {name: r.recall_denominator for name, r in results.items()}
    if len(set(denominators.values())) > 1:
        raise ValueError(f"systems were evaluated with different recall denominators "
                         f"{denominators}; their recall values are not comparable. Evaluate "
                         f"them with one recall_denominator")


def _check_same_heldout(results: dict[str, EvaluationResult], keep: dict[str, np.ndarray]):
    """Results of one split have the same held-out count per user; anything else means the
    systems were evaluated on different data."""
    names = list(results)
    if len(names) < 2:
        return
    first = np.asarray(results[names[0]].n_heldout)[keep[names[0]]]
    for name in names[1:]:
        other = np.asarray(results[name].n_heldout)[keep[name]]
        n_bad = int(np.count_nonzero(first != other))
        if n_bad:
            raise ValueError(f"systems {names[0]!r} and {name!r} have different held-out "
                             f"counts for {n_bad:,} of the {first.size:,} compared users: "
                             f"were they evaluated on the same split?")


def _align(names, values, n_rows, metrics, users, *, baseline, intersect):
    """Per system, the rows of the compared users in increasing id order."""
    if users is None:
        users = {}
    if not isinstance(users, Mapping):
        raise TypeError(must_be("users", "a mapping of system name to user ids, or None",
                                type_name(users)))
    unknown = [k for k in users if k not in values]
    if unknown:
        raise ValueError(must_be("users", f"keyed by system names {names}",
                                 f"unknown keys {unknown}"))
    ids, rows = {}, {}
    for name in names:
        n = n_rows[name]
        if name in users:
            uid = np.asarray(users[name])
            if uid.shape != (n,):
                raise ValueError(must_be(f"users[{name!r}]", f"a 1-D array of {n} ids (one "
                                         f"per row of the system)", f"shape {uid.shape}"))
            n_unique = np.unique(uid).size
            if n_unique != n:
                raise ValueError(must_be(f"users[{name!r}]", "unique ids",
                                         f"{n - n_unique} repeated"))
        else:
            uid = np.arange(n)
        evaluated = np.ones(n, bool)
        for m in metrics:
            v = values[name][m]
            if np.isinf(v).any():
                raise ValueError(must_be(f"per-user values of {name!r}[{m!r}]",
                                         "finite or NaN (not evaluated)",
                                         f"{int(np.isinf(v).sum())} infinite values"))
            evaluated &= ~np.isnan(v)
        r = np.flatnonzero(evaluated)
        order = np.argsort(uid[r], kind="stable")
        rows[name], ids[name] = r[order], uid[r][order]

    if len({ids[n].dtype.kind in "iub" for n in names}) > 1:
        raise TypeError(must_be("users", "ids of one kind (all integers or all strings)",
                                {n: str(ids[n].dtype) for n in names}))
    same = all(ids[n].shape == ids[baseline].shape and np.array_equal(ids[n], ids[baseline])
               for n in names)
    if same:
        common = ids[baseline]
        keep = rows
    else:
        common = ids[baseline]
        for n in names:
            common = np.intersect1d(common, ids[n], assume_unique=True)
        if not intersect:
            diffs = []
            for n in names:
                if n == baseline:
                    continue
                lacks = np.setdiff1d(ids[baseline], ids[n], assume_unique=True).size
                extra = np.setdiff1d(ids[n], ids[baseline], assume_unique=True).size
                if lacks or extra:
                    diffs.append(f"{n!r} lacks {lacks:,} and adds {extra:,}")
            raise ValueError(
                f"systems were evaluated on different users: compared with the "
                f"{ids[baseline].size:,} users of baseline {baseline!r}, "
                f"{'; '.join(diffs)}. Pass intersect=True to compare on the {common.size:,} "
                f"users evaluated in every system")
        keep = {n: rows[n][np.searchsorted(ids[n], common)] for n in names}
    n_users = int(common.size)
    if n_users < 2:
        raise ValueError(f"need at least 2 users evaluated in every system to compare "
                         f"paired values, got {n_users}")
    union = ids[names[0]]
    for n in names[1:]:
        union = np.union1d(union, ids[n])
    dropped = {n: int(ids[n].size - n_users) for n in names}
    return keep, n_users, int(union.size - n_users), dropped


# ---------------------------------------------------------------------------------------------
