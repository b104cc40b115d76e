"""The data engine's settings, importable without Polars or NumPy (the CLI registers from them).

:class:`SplitConfig` holds the split's parameters (STYLE 10.6) and is the one home of their
defaults, the Liang et al. (WWW 2018) / EVCF notebook's (PAPER_SPEC 1.1): keep ratings ``> 3.5``,
users with ``>= 5`` of them, seed 98765, 20% of each held-out user's items as targets, and the
notebook's exact legacy ``RandomState`` draws. Every library function that takes these
parameters uses ``SplitConfig.<field>`` as its default. :data:`INPUT_FORMATS` and
:data:`PREPARE_FORMATS` name the ``format`` choices of the readers and of ``prepare``.
"""

from __future__ import annotations

import dataclasses

from .._checks import check_bool, check_float, check_int, is_real, must_be, type_name
from .._config import ConfigMixin

#: The largest seed ``numpy.random.RandomState`` accepts.
MAX_SEED = 2**32 - 1

#: ``format`` values of :func:`evcf_fast.data.readers.read_interactions` (the readers' format
#: table, ``evcf_fast.data.readers.FORMATS``, is checked against this at import)
INPUT_FORMATS = ("auto", "movielens", "netflix", "csv", "tsv", "parquet")
#: ``format`` values of :func:`evcf_fast.data.pipeline.prepare`: the readers' formats and the
#: authors' pre-split layout
PREPARE_FORMATS = (*INPUT_FORMATS, "presplit")
#: What the readers and the split do with a null, NaN or infinite rating: stop with an error
#: naming the file and line, or drop the row and count it (``meta["counts"]``, ``evcf info``)
INVALID_RATINGS = ("error", "drop")
#: How id columns are typed: ``"auto"`` (integers when every id is an integer, strings when none
#: is; integer-looking ids mixed with a few others are an error) or ``"string"`` (always text)
ID_TYPES = ("auto", "string")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SplitConfig(ConfigMixin):
    """Parameters of :func:`evcf_fast.data.split.strong_generalization_split`.

    Attributes
    ----------
    n_heldout : int
        Validation users, and test users (10,000 for ML-20M, 40,000 for Netflix).
    min_rating : float or None
        Keep rows with ``rating > min_rating`` (strictly); None keeps every row (implicit data).
    min_user_count : int
        Keep users with at least this many interactions after the rating filter.
    seed : int
        Seed of the user permutation and of the fold-in / held-out draws.
    heldout_fraction : float
        Share of each held-out user's items that become targets (``int(f * n)``), in [0, 1).
    exact : bool
        True: the notebook's legacy ``RandomState`` draws, bit-identical. False ("fast"): one
        vectorised draw, statistically equivalent but not identical to the notebook.
    """

    n_heldout: int
    min_rating: float | None = 3.5
    min_user_count: int = 5
    seed: int = 98765
    heldout_fraction: float = 0.2
    exact: bool = True

    def __post_init__(self):
        self._set("n_heldout", check_int(self.n_heldout, "n_heldout", minimum=0))
        if self.min_rating is not None and not is_real(self.min_rating):
            raise TypeError(must_be("min_rating", "a number or None", type_name(self.min_rating)))
        self._set("min_rating", check_float(self.min_rating, "min_rating", allow_none=True))
        self._set("min_user_count", check_int(self.min_user_count, "min_user_count", minimum=1))
        self._set("seed", check_int(self.seed, "seed", minimum=0, maximum=MAX_SEED))
        fraction = check_float(self.heldout_fraction, "heldout_fraction")
        if not 0.0 <= fraction < 1.0:
            raise ValueError(must_be("heldout_fraction", "in [0, 1)", self.heldout_fraction))
        self._set("heldout_fraction", fraction)
        check_bool(self.exact, "exact")

