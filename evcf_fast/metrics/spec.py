"""What can be measured: the metric registry, metric strings, cut-off checks and IDCG tables.

This is the bottom of :mod:`evcf_fast.metrics`: it imports nothing else of the package, so every
other file (validation, both backends, the result) can read the same registry and the same
discount tables. The kernels' metric codes (:mod:`evcf_fast.kernels.ranking`) are mapped to names
only here, and error messages list the known names from the registry so they cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .._checks import check_int, must_be, type_name

RECALL_DENOMINATORS = ("min", "heldout")
MAP_DENOMINATORS = ("min", "heldout", "hits")
EMPTY_USERS = ("skip", "zero", "raise")
TIES = ("lower_first", "higher_first", "average")
RELEVANCE = ("binary", "linear", "exponential")
NAN_POLICIES = ("raise", "neg_inf")
BACKENDS = ("auto", "numba", "torch")
TIE_RULE = "equal scores: lower item index ranks first"


@dataclass(frozen=True)
class _MetricDef:
    code: int  # the kernel's metric code (evcf_fast.kernels.ranking / .conventions); -1: a list
    title: str
    definition: str
    kind: str = "accuracy"  # "accuracy" (per user, from hits), "list" (per user, from the top-k
    # list and training popularity) or "global" (one value from every user's top-k list)


#: The metric registry: name -> definition. Metric strings are ``"name@k"``.
METRICS: dict[str, _MetricDef] = {
    "ndcg": _MetricDef(0, "NDCG", "DCG@k / IDCG over min(n_heldout, k), discount 1/log2(r+1)"),
    "recall": _MetricDef(1, "Recall", "hits@k / min(k, n_heldout) (or / n_heldout)"),
    "precision": _MetricDef(2, "Precision", "hits@k / k"),
    "hitrate": _MetricDef(3, "HitRate", "1 if hits@k > 0 else 0"),
    "mrr": _MetricDef(4, "MRR", "1 / rank of the first hit within k, 0 if none"),
    "map": _MetricDef(5, "MAP", "sum over hit ranks r <= k of precision@r / min(k, n_heldout) "
                                "(or / n_heldout, or / hits)"),
    "rprec": _MetricDef(6, "R-Precision", "hits within rank min(k, n_heldout) / n_heldout"),
    "f1": _MetricDef(7, "F1", "2 P R / (P + R), P = precision@k, R = recall@k; 0 without hits"),
    "coverage": _MetricDef(-1, "Coverage", "distinct items in the top-k lists / n_items",
                           "global"),
    "avgpop": _MetricDef(-1, "AvgPop", "mean training popularity (users) of the top-k items",
                         "list"),
    "novelty": _MetricDef(-1, "Novelty", "mean -log2(popularity / n_train_users) of the top-k "
                          "items (popularity at least 1)", "list"),
    "gini": _MetricDef(-1, "Gini", "Gini index of how often each item is in a top-k list",
                       "global"),
    "entropy": _MetricDef(-1, "Entropy", "Shannon entropy (nats) of how often each item is in "
                          "a top-k list", "global"),
}
_ALIASES = {"hit": "hitrate", "r-precision": "rprec"}


def _known_names() -> list[str]:
    return sorted([*METRICS, *_ALIASES])


@dataclass(frozen=True, order=True)
class MetricSpec:
    """One metric at one cut-off, e.g. ``MetricSpec("ndcg", 100)``; ``str()`` gives ``"ndcg@100"``.

    Parameters
    ----------
    name : str
        A key of :data:`METRICS` (or the alias ``"hit"`` for ``"hitrate"``).
    k : int
        The cut-off, >= 1 (checked against ``n_items`` when evaluating).
    """

    name: str
    k: int

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise TypeError(must_be("metric name", "a str", type_name(self.name)))
        name = _ALIASES.get(self.name.lower(), self.name.lower())
        if name not in METRICS:
            raise ValueError(f"unknown metric {self.name!r}; expected one of {_known_names()}")
        k = check_int(self.k, f"cut-off k of {name!r}", minimum=1)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "k", k)

    def __str__(self) -> str:
        return f"{self.name}@{self.k}"

    @classmethod
    def parse(cls, text: str) -> MetricSpec:
        """Parse ``"name@k"`` (case-insensitive, surrounding spaces ignored)."""
        if not isinstance(text, str):
            raise TypeError(must_be("metrics", "strings like 'ndcg@100' or MetricSpec",
                                    type_name(text)))
        name, at, k = text.strip().partition("@")
        key = name.strip().lower()
        if key not in METRICS and key not in _ALIASES:
            raise ValueError(f"unknown metric {text!r}; expected one of {_known_names()} "
                             f"with a cut-off, e.g. 'ndcg@100'")
        if not at:
            raise ValueError(f"metric {text!r} needs a cut-off: write it as '{key}@k', e.g. "
                             f"'{key}@100'")
        try:
            k_int = int(k.strip())
        except ValueError:
            raise ValueError(f"metric {text!r} has cut-off {k.strip()!r}; expected a positive "
                             f"integer, e.g. 'ndcg@100'") from None
        return cls(name.strip(), k_int)


def parse_metrics(metrics: str | MetricSpec | Iterable[str | MetricSpec]) -> tuple[MetricSpec, ...]:
    """Parse metric strings once: ``"ndcg@100"`` or a sequence of them (duplicates dropped).

    Raises
    ------
    ValueError
        Unknown metric name (the message lists the known ones), missing or bad cut-off, or an
        empty sequence.
    """
    if isinstance(metrics, (str, MetricSpec)):
        metrics = (metrics,)
    specs: list[MetricSpec] = []
    for m in metrics:
        spec = m if isinstance(m, MetricSpec) else MetricSpec.parse(m)
        if spec not in specs:
            specs.append(spec)
    if not specs:
        raise ValueError("metrics is empty; expected at least one, e.g. ('ndcg@100',)")
    return tuple(specs)


def _check_ks(specs: tuple[MetricSpec, ...], n_items: int) -> None:
    """Every cut-off fits the catalogue (a MetricSpec alone only knows k >= 1)."""
    for s in specs:
        if s.k > n_items:
            raise ValueError(must_be("k", f"in [1, n_items={n_items}]", f"{s} (k={s.k})"))


def _kernel_args(specs: tuple[MetricSpec, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(ks, codes) as the kernels take them: int64 cut-offs and registry codes, in spec order
    (accuracy metrics only: beyond-accuracy metrics come from the top-k lists)."""
    acc = [s for s in specs if METRICS[s.name].kind == "accuracy"]
    ks = np.array([s.k for s in acc], np.int64)
    codes = np.array([METRICS[s.name].code for s in acc], np.int64)
    return ks, codes


def _accuracy(specs: tuple[MetricSpec, ...]) -> tuple[MetricSpec, ...]:
    return tuple(s for s in specs if METRICS[s.name].kind == "accuracy")


def _beyond(specs: tuple[MetricSpec, ...]) -> tuple[MetricSpec, ...]:
    return tuple(s for s in specs if METRICS[s.name].kind != "accuracy")


def _tables(k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """discount[r] = 1 / log2(r + 2) and idcg[r] = discount[:r + 1].sum(), shared by all paths."""
    discount = 1.0 / np.log2(np.arange(2, k_max + 2, dtype=np.float64))
    return discount, np.cumsum(discount)
