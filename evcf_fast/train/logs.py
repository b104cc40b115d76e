"""The per-epoch logs of a run folder: ``log.jsonl``, ``log.csv`` and TensorBoard events.

``log.jsonl`` and ``log.csv`` are appended to, one line per epoch, flushed as soon as the epoch
ends, so ``tail -f RUN/log.jsonl`` follows a run. A process killed while writing leaves a torn
last line: :func:`read_log` ignores it (and says so), and a resumed run rewrites both files from
the history stored in ``last.pt`` (the source of truth) before appending again. TensorBoard event
files go to ``RUN/tensorboard/`` when the ``tensorboard`` package is installed (the
``evcf_fast[tensorboard]`` extra); without it nothing is written and nothing is said.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path

from .._io import atomic_file

LOG = "log.jsonl"
CSV = "log.csv"
TENSORBOARD = "tensorboard"


def read_log(run, *, warn: bool = True, allow_empty: bool = False) -> list[dict]:
    """The per-epoch records of a run directory's ``log.jsonl``.

    A last line that is torn (no final newline, or not valid JSON: the process was killed while
    writing it) is ignored, with a note on stderr when ``warn``; a bad line before the last is an
    error naming the file and line. A log without a complete epoch (a run stopped during its
    first) is an error, or ``[]`` with ``allow_empty``.
    """
    path = Path(run) / LOG
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} not found; is {str(run)!r} a run directory "
                                f"written by `evcf train`?")
    text = path.read_text()
    lines = text.split("\n")
    complete, tail = lines[:-1], lines[-1]  # tail: text after the last newline ("" if none)
    records, torn = [], None
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(complete) and not tail:
                torn = number
                break
            raise ValueError(f"{path}:{number}: not a JSON record ({exc.msg})") from None
    if tail.strip():
        torn = len(complete) + 1
    if not records:
        if allow_empty:
            return []
        if torn is not None:
            raise ValueError(f"{path}:{torn}: not a JSON record (a torn line: the run was stopped "
                             f"while writing it); the file holds no complete epoch yet")
        raise ValueError(f"{path} holds no epochs yet")
    if torn is not None:
        _torn(path, torn, warn)
    return records


def _torn(path, number: int, warn: bool) -> None:
    if warn:
        print(f"note: {path}, line {number}: torn last line ignored (the run was stopped while "
              f"writing it)", file=sys.stderr)


def _csv_text(records: list[dict], *, header: bool) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if records:
        keys = list(records[0])
        if header:
            writer.writerow(keys)
        for r in records:
            writer.writerow([r.get(k) for k in keys])
    return buf.getvalue()


class RunLog:
    """Appends each epoch's record to the log files of ``run_dir``.

    Parameters
    ----------
    run_dir : Path
    history : list of dict
        The records already in the run (``last.pt``'s history when resuming, else empty); the
        files are rewritten atomically from it, which drops a torn line and any epoch the
        checkpoint does not have.
    tensorboard : bool
        Write TensorBoard events too when the package is installed.
    """

    def __init__(self, run_dir: Path, history: list[dict], *, tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.jsonl, self.csv = self.run_dir / LOG, self.run_dir / CSV
        with atomic_file(self.jsonl) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
        with atomic_file(self.csv) as tmp:
            tmp.write_text(_csv_text(history, header=True))
        self.csv_keys = list(history[0]) if history else None
        self.writer = _tensorboard_writer(self.run_dir / TENSORBOARD,
                                          purge_step=len(history) + 1) if tensorboard else None

    def append(self, record: dict) -> None:
        """Add one epoch to every log, flushed before returning."""
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(record) + "\n")
        header = self.csv_keys is None
        if header:
            self.csv_keys = list(record)
        with open(self.csv, "a", newline="") as f:
            f.write(_csv_text([{k: record.get(k) for k in self.csv_keys}], header=header))
        if self.writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) \
                        and key != "epoch" and math.isfinite(value):
                    self.writer.add_scalar(key, value, global_step=record["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _tensorboard_writer(folder: Path, *, purge_step: int):
    """A ``SummaryWriter`` when ``tensorboard`` is installed, else None."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder), purge_step=purge_step)
