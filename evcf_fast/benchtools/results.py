"""Load and validate pytest-benchmark result files (``--benchmark-json``, ``--benchmark-autosave``).

The file format is pytest-benchmark's (ionelmc/pytest-benchmark, ``session.py``/``stats.py``):
a top-level ``version``, ``datetime``, ``machine_info``, ``commit_info`` and a list of
``benchmarks``, each with ``name``, ``fullname``, ``group``, ``params``, ``extra_info`` and
``stats`` (``median``, ``iqr``, ``rounds``, ... and, only under ``--benchmark-save-data``, the
per-round times ``data``, already divided by ``iterations``). ``bench/conftest.py`` adds our own
block under ``"evcf_fast"`` (see :mod:`evcf_fast.benchtools.metadata`).

Roles. A benchmark is one of

* ``"calibration"``: in group ``"calibration"`` (:mod:`evcf_fast.benchtools.calibration`);
* ``"baseline"``: an in-run reference implementation (NumPy, pandas, ``torch.topk``), marked by
  ``benchmark.extra_info["role"] = "baseline"`` or by an ``extra_info["baseline_for"]`` entry (a
  test name or list of names it is the baseline of), or, when ``extra_info`` says nothing, by a
  test-function name containing the word ``baseline``, ``reference`` or ``ref``
  (``test_ndcg_numpy_reference``);
* ``"ours"``: everything else, and anything with ``extra_info["role"] = "ours"``.

Only ``"ours"`` benchmarks are *tracked* (can fail ``evcf bench compare``), unless
``extra_info["track"]`` is false.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataFormatError
from .calibration import CALIBRATION_GROUP
from .metadata import METADATA_KEY, METADATA_SCHEMA

# pytest-benchmark JSON layouts we understand: 3.x wrote the same keys as 4.x and 5.x.
SUPPORTED_MAJOR_VERSIONS = (3, 4, 5)
ROLES = ("ours", "baseline")
_BASELINE_WORDS = frozenset({"baseline", "reference", "ref"})
_REQUIRED_TOP = ("version", "datetime", "benchmarks")
_REQUIRED_BENCH = ("name", "fullname", "stats")
_REQUIRED_STATS = ("median", "iqr", "q1", "q3", "rounds")


@dataclass(frozen=True, kw_only=True)
class BenchmarkResult:
    """One benchmark of one run; times are seconds per call."""

    fullname: str                      # unique within a run: "bench/test_x.py::test_f[20]"
    name: str                          # "test_f[20]"
    group: str | None
    params: dict | None                # parametrize values, e.g. {"k": 20}
    median: float
    iqr: float
    q1: float
    q3: float
    rounds: int
    iterations: int
    # per-round times; None when saved without --benchmark-save-data
    data: np.ndarray | None = field(repr=False, compare=False)
    extra_info: dict

    @property
    def base_name(self) -> str:
        """The test function name without the parametrize id (``test_f`` for ``test_f[20]``)."""
        return self.name.split("[", 1)[0]

    @property
    def role(self) -> str:
        """``"calibration"``, ``"baseline"`` or ``"ours"`` (see the module docstring)."""
        if self.group == CALIBRATION_GROUP:
            return "calibration"
        role = self.extra_info.get("role")
        if role is not None:
            return role
        if "baseline_for" in self.extra_info:
            return "baseline"
        words = set(re.split(r"[_\W]+", self.base_name.lower()))
        return "baseline" if words & _BASELINE_WORDS else "ours"

    @property
    def tracked(self) -> bool:
        """Whether a regression of this benchmark fails ``evcf bench compare``."""
        return self.role == "ours" and bool(self.extra_info.get("track", True))


@dataclass(frozen=True, kw_only=True)
class BenchmarkRun:
    """One saved benchmark session."""

    path: Path
    datetime: str                      # ISO 8601, as pytest-benchmark writes it
    version: str                       # pytest-benchmark version that wrote the file
    commit: str | None
    dirty: bool | None
    branch: str | None
    machine: str
    metadata: dict                     # our "evcf_fast" block ({} when absent)
    benchmarks: dict[str, BenchmarkResult]   # by fullname, in file order

    @property
    def run_id(self) -> str:
        """pytest-benchmark's counter (``0003``) for autosaved files, else the file stem."""
        stem = self.path.stem
        head = stem.split("_", 1)[0]
        return head if head.isdigit() else stem

    @property
    def label(self) -> str:
        """Short human label: run id, commit and a ``+`` when the tree was dirty."""
        commit = (self.commit or "?")[:8] + ("+" if self.dirty else "")
        return f"{self.run_id} {commit}"

    def by_role(self, role: str) -> list[BenchmarkResult]:
        return [b for b in self.benchmarks.values() if b.role == role]


def _finite_nonneg(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def _parse_benchmark(path: Path, i: int, raw) -> BenchmarkResult:
    if not isinstance(raw, dict):
        raise DataFormatError(path, None, f"benchmarks[{i}] must be an object, got "
                                          f"{type(raw).__name__}")
    for key in _REQUIRED_BENCH:
        if key not in raw:
            raise DataFormatError(path, None, f"benchmarks[{i}] is missing key {key!r}")
    where = f"benchmarks[{i}] ({raw['fullname']!r})"
    stats = raw["stats"]
    if not isinstance(stats, dict):
        raise DataFormatError(path, None, f"{where}: stats must be an object, got "
                                          f"{type(stats).__name__}")
    for key in _REQUIRED_STATS:
        if key not in stats:
            raise DataFormatError(path, None, f"{where}: stats is missing key {key!r}")
        if not _finite_nonneg(stats[key]):
            raise DataFormatError(path, None, f"{where}: stats.{key} must be a finite number "
                                              f">= 0, got {stats[key]!r}")
    if stats["median"] <= 0:
        raise DataFormatError(path, None, f"{where}: stats.median must be > 0, got "
                                          f"{stats['median']!r}")
    rounds = stats["rounds"]
    if int(rounds) != rounds or rounds < 1:
        raise DataFormatError(path, None, f"{where}: stats.rounds must be an integer >= 1, got "
                                          f"{rounds!r}")
    iterations = stats.get("iterations", 1)
    if not _finite_nonneg(iterations) or int(iterations) != iterations or iterations < 1:
        raise DataFormatError(path, None, f"{where}: stats.iterations must be an integer >= 1, "
                              f"got {iterations!r}")
    data = stats.get("data")
    if data is not None:
        if (not isinstance(data, list) or len(data) != rounds
                or not all(_finite_nonneg(x) for x in data)):
            raise DataFormatError(path, None, f"{where}: stats.data must be a list of {rounds} "
                                              f"finite times >= 0 (one per round)")
        data = np.asarray(data, dtype=np.float64)
    extra = raw.get("extra_info")
    extra = {} if extra is None else extra
    if not isinstance(extra, dict):
        raise DataFormatError(path, None, f"{where}: extra_info must be an object, got "
                                          f"{type(extra).__name__}")
    role = extra.get("role")
    if role is not None and role not in ROLES:
        raise DataFormatError(path, None, f"{where}: extra_info role must be one of "
                                          f"{list(ROLES)}, got {role!r}")
    params = raw.get("params")
    return BenchmarkResult(
        fullname=str(raw["fullname"]), name=str(raw["name"]), group=raw.get("group"),
        params=params if isinstance(params, dict) else None,
        median=float(stats["median"]), iqr=float(stats["iqr"]), q1=float(stats["q1"]),
        q3=float(stats["q3"]), rounds=int(rounds), iterations=int(iterations),
        data=data, extra_info=extra)


def parse_run(raw, *, path: str | Path) -> BenchmarkRun:
    """Validate a decoded pytest-benchmark JSON document.

    Parameters
    ----------
    raw : object
        The decoded JSON.
    path : str or Path
        The file it came from (named in every error).

    Returns
    -------
    BenchmarkRun

    Raises
    ------
    DataFormatError
        When a key is missing, a value has the wrong type or range, the pytest-benchmark version
        is not one we understand, or two benchmarks share a fullname.
    """
    path = Path(path)
    if not isinstance(raw, dict):
        raise DataFormatError(path, None, f"expected a pytest-benchmark JSON object at top level, "
                                          f"got {type(raw).__name__}")
    for key in _REQUIRED_TOP:
        if key not in raw:
            raise DataFormatError(path, None, f"missing key {key!r} at top level; expected a "
                                              f"pytest-benchmark result file (--benchmark-json "
                                              f"or --benchmark-autosave)")
    version = str(raw["version"])
    major = version.split(".", 1)[0]
    if not major.isdigit() or int(major) not in SUPPORTED_MAJOR_VERSIONS:
        raise DataFormatError(path, None, f"unsupported pytest-benchmark version {version!r}; "
                                          f"expected major version in "
                                          f"{list(SUPPORTED_MAJOR_VERSIONS)}")
    meta = raw.get(METADATA_KEY)
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise DataFormatError(path, None, f"{METADATA_KEY!r} must be an object, got "
                                          f"{type(meta).__name__}")
    schema = meta.get("schema", METADATA_SCHEMA)
    if schema != METADATA_SCHEMA:
        raise DataFormatError(path, None, f"unsupported {METADATA_KEY} metadata schema {schema!r};"
                                          f" expected {METADATA_SCHEMA} (written by another "
                                          f"evcf_fast version?)")
    if not isinstance(raw["benchmarks"], list):
        raise DataFormatError(path, None, f"'benchmarks' must be a list, got "
                                          f"{type(raw['benchmarks']).__name__}")
    benchmarks: dict[str, BenchmarkResult] = {}
    for i, item in enumerate(raw["benchmarks"]):
        result = _parse_benchmark(path, i, item)
        if result.fullname in benchmarks:
            raise DataFormatError(path, None, f"benchmarks[{i}]: duplicate fullname "
                                              f"{result.fullname!r}")
        benchmarks[result.fullname] = result
    commit_info = _object(path, raw, "commit_info")
    git = _object(path, meta, "git", where=f"{METADATA_KEY}.")
    machine_info = _object(path, raw, "machine_info")
    cpu = _object(path, machine_info, "cpu", where="machine_info.")
    machine = " ".join(str(x) for x in (machine_info.get("node"), cpu.get("brand_raw")) if x)
    commit = git.get("commit") or commit_info.get("id")
    branch = git.get("branch") or commit_info.get("branch")
    dirty = git.get("dirty", commit_info.get("dirty"))
    for key, value, kind in (("commit", commit, str), ("branch", branch, str),
                             ("dirty", dirty, bool)):
        if value is not None and not isinstance(value, kind):
            raise DataFormatError(path, None, f"commit {key} must be a {kind.__name__} or null, "
                                              f"got {type(value).__name__} {value!r}")
    return BenchmarkRun(
        path=path, datetime=str(raw["datetime"]), version=version, commit=commit, dirty=dirty,
        branch=branch, machine=machine or "unknown", metadata=meta, benchmarks=benchmarks)


def _object(path: Path, parent: dict, key: str, *, where: str = "") -> dict:
    """``parent[key]`` as a dict ({} when absent or null); a DataFormatError for other types."""
    value = parent.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DataFormatError(path, None, f"{where}{key} must be an object, got "
                                          f"{type(value).__name__}")
    return value


def load_run(path: str | Path) -> BenchmarkRun:
    """Read and validate one pytest-benchmark JSON file.

    Parameters
    ----------
    path : str or Path
        A file written by ``pytest --benchmark-json`` or ``--benchmark-autosave``.

    Returns
    -------
    BenchmarkRun

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    DataFormatError
        When it is not valid JSON or not a pytest-benchmark result (see :func:`parse_run`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark result {str(path)!r} not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"not valid JSON: {exc.msg} (column {exc.colno})")\
            from None
    except RecursionError:
        raise DataFormatError(path, None, "JSON nested too deeply to be a pytest-benchmark "
                                          "result") from None
    return parse_run(raw, path=path)


def list_runs(storage: str | Path) -> list[BenchmarkRun]:
    """Every saved run under a pytest-benchmark storage folder, oldest first.

    Parameters
    ----------
    storage : str or Path
        The ``--benchmark-storage`` folder (runs live in one sub-folder per machine id).

    Returns
    -------
    list of BenchmarkRun
        Sorted by the ``datetime`` recorded in each file, then by path.
    """
    storage = Path(storage)
    if not storage.is_dir():
        raise FileNotFoundError(f"benchmark storage {str(storage)!r} not found; save runs there "
                                f"first with `make bench` (or `evcf bench run`)")
    runs = [load_run(p) for p in sorted(storage.rglob("*.json"))]
    return sorted(runs, key=lambda r: (r.datetime, str(r.path)))


def resolve_run(spec: str, *, storage: str | Path) -> BenchmarkRun:
    """Load a run named by a file path or by a prefix of its file name in ``storage``.

    Parameters
    ----------
    spec : str
        A path to a JSON file, or a file-name prefix such as ``0003`` (pytest-benchmark's counter).
    storage : str or Path
        The storage folder searched when ``spec`` is not an existing file.

    Returns
    -------
    BenchmarkRun
    """
    path = Path(spec)
    if path.is_file():
        return load_run(path)
    storage = Path(storage)
    matches = sorted(storage.rglob(f"{spec}*.json")) if storage.is_dir() else []
    if not matches:
        raise FileNotFoundError(f"no benchmark run {spec!r}: not a file and no "
                                f"{str(storage / '**' / (spec + '*.json'))!r}")
    if len(matches) > 1:
        names = ", ".join(str(m) for m in matches[:5])
        raise ValueError(f"run {spec!r} is ambiguous: it matches {len(matches)} files "
                         f"({names}); give a longer prefix or the path")
    return load_run(matches[0])
