"""The value every evaluation returns: :class:`EvaluationResult`.

Kept apart from the backends so that the Numba path, the torch path and ``evaluate_topk`` build
the same object (means, standard errors, user counts) from their per-user arrays, and so that a
caller that only reads or combines results needs neither backend.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .spec import TIE_RULE, MetricSpec

_CONVENTIONS = ("recall_denominator", "map_denominator", "empty_users", "ties", "relevance")


@dataclass(frozen=True, kw_only=True)
class EvaluationResult:
    """Per-user metric values with their means and standard errors.

    Attributes
    ----------
    metrics : tuple of MetricSpec
        The evaluated metrics, in the order asked for.
    per_user : dict of str to ndarray
        ``str(spec)`` -> float64 array of shape (n_users,), NaN for skipped users (no held-out
        items). Read-only.
    n_heldout : ndarray
        int64 number of held-out items per user.
    recall_denominator, map_denominator, empty_users, ties, relevance : str
        The conventions of the evaluation (see :func:`evcf_fast.metrics.evaluate`).
    aggregate : dict of str to float
        Metrics with one value for all users (coverage, Gini, entropy), not per user.
    mean, stderr : dict of str to float
        Over evaluated users only (every user under ``empty_users="zero"``); ``stderr`` is NaN
        with fewer than two evaluated users and for aggregate metrics.
    """

    metrics: tuple[MetricSpec, ...]
    per_user: dict[str, np.ndarray]
    n_heldout: np.ndarray
    recall_denominator: str = "min"
    map_denominator: str = "min"
    empty_users: str = "skip"
    ties: str = "lower_first"
    relevance: str = "binary"
    aggregate: dict[str, float] = dataclasses.field(default_factory=dict)
    mean: dict[str, float] = dataclasses.field(init=False)
    stderr: dict[str, float] = dataclasses.field(init=False)

    def __post_init__(self):
        evaluated = self._evaluated()
        n = int(evaluated.sum())
        mean, stderr = {}, {}
        for name, values in self.per_user.items():
            values.setflags(write=False)
            v = values[evaluated]
            mean[name] = float(v.mean()) if n else math.nan
            stderr[name] = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        for name, value in self.aggregate.items():
            mean[name] = float(value)
            stderr[name] = math.nan
        self.n_heldout.setflags(write=False)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "stderr", stderr)

    @property
    def n_users(self) -> int:
        """Users (rows) in the evaluation, skipped ones included."""
        return int(self.n_heldout.shape[0])

    def _evaluated(self) -> np.ndarray:
        if self.empty_users == "zero":
            return np.ones(self.n_heldout.shape[0], bool)
        return self.n_heldout > 0

    @property
    def conventions(self) -> dict[str, str]:
        """The convention options of this evaluation, by name."""
        return {name: getattr(self, name) for name in _CONVENTIONS}

    @property
    def n_evaluated(self) -> int:
        """Users in the means: those with held-out items (every user under
        ``empty_users="zero"``)."""
        return int(self._evaluated().sum())

    @property
    def n_skipped(self) -> int:
        """Users without held-out items left out of the means (NaN per-user values)."""
        return self.n_users - self.n_evaluated

    @classmethod
    def concat(cls, results: Sequence[EvaluationResult]) -> EvaluationResult:
        """Combine results of consecutive user blocks into one (per-user arrays concatenated)."""
        results = list(results)
        if not results:
            raise ValueError("results is empty; expected at least one EvaluationResult")
        first = results[0]
        for r in results[1:]:
            if r.metrics != first.metrics or r.conventions != first.conventions:
                raise ValueError(
                    f"cannot concatenate results of different evaluations: metrics "
                    f"{[str(m) for m in first.metrics]} with {first.conventions} vs "
                    f"{[str(m) for m in r.metrics]} with {r.conventions}")
            if r.aggregate or first.aggregate:
                raise ValueError(
                    f"cannot concatenate results with aggregate metrics "
                    f"{sorted(first.aggregate)}: they depend on every user's list; evaluate "
                    f"all users at once")
        per_user = {name: np.concatenate([r.per_user[name] for r in results])
                    for name in first.per_user}
        return cls(metrics=first.metrics, per_user=per_user,
                   n_heldout=np.concatenate([r.n_heldout for r in results]),
                   **first.conventions)

    def table(self) -> str:
        """A readable table of means and standard errors plus the user counts."""
        width = max(len("metric"), *(len(str(m)) for m in self.metrics))
        header = f"{'metric':<{width}}  {'mean':>9}  {'stderr':>9}"
        if any(m.name == "recall" for m in self.metrics):
            header += ("   recall@k = hits / min(k, n_heldout)" if self.recall_denominator == "min"
                       else "   recall@k = hits / n_heldout")
        lines = [header]
        for m in self.metrics:
            name = str(m)
            lines.append(f"{name:<{width}}  {self.mean[name]:>9.5f}  {self.stderr[name]:>9.5f}")
        empty = int((self.n_heldout == 0).sum())
        note = (f"{empty} without held-out items counted as 0" if self.empty_users == "zero"
                else f"{self.n_skipped} skipped (no held-out items)")
        lines.append(f"{self.n_users} users: {self.n_evaluated} evaluated, {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def write_per_user(self, path, *, user_ids=None) -> None:
        """Per-user values as Parquet (atomically): ``user`` (row in the part), ``user_id``
        (raw id, when ``user_ids`` has one per row), ``n_heldout`` and one float64 column per
        metric (NaN for users without held-out items). Read it back with
        ``polars.read_parquet`` (or pyarrow/pandas) for paired tests between runs."""
        import polars as pl

        from .._io import atomic_file

        columns = {"user": np.arange(self.n_users, dtype=np.int64)}
        if user_ids is not None and len(user_ids) == self.n_users:
            columns["user_id"] = np.asarray(user_ids)
        columns["n_heldout"] = np.asarray(self.n_heldout)
        columns.update({name: np.asarray(v) for name, v in self.per_user.items()})
        with atomic_file(path) as tmp:
            pl.DataFrame(columns).write_parquet(tmp)

    def to_dict(self) -> dict:
        """JSON-able summary: means, standard errors (NaN as None), counts and definitions."""
        def clean(x: float):
            return None if math.isnan(x) else x
        return {
            "metrics": {str(m): {"mean": clean(self.mean[str(m)]),
                                 "stderr": clean(self.stderr[str(m)])} for m in self.metrics},
            "n_users": self.n_users,
            "n_evaluated": self.n_evaluated,
            "n_skipped": self.n_skipped,
            **self.conventions,
            "tie_rule": TIE_RULE if self.ties == "lower_first" else self.ties,
        }
