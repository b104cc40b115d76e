"""Atomic writes: nothing is half-written, nothing of the user's is lost.

Output goes to a temporary sibling first and is renamed into place only when complete, so an
interrupted run leaves either the old result or nothing, never a partial one. Temporaries are
named ``.NAME.tmp-PID-XXXX`` (and ``.NAME.old-PID-XXXX`` for a replaced folder); one left behind
by a killed process (its PID no longer running) is swept the next time NAME is written.

``overwrite`` replaces only what this project wrote: a folder carrying the :data:`MARKER` file
(every folder written through :func:`atomic_dir` has one), or, for folders written before the
marker existed, a dataset folder (``meta.json`` with a ``format_version``), a run folder
(``config.json`` with ``model_config``) or a benchmark report folder (``report.md`` and
``history.png``). Anything else, and any input of the same command, is refused before any work,
naming the path and what was found there (:func:`check_output`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

#: Hidden file in every folder written by :func:`atomic_dir`; its text names the folder's kind.
MARKER = ".evcf_fast"

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)-")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def describe_path(path: Path) -> str:
    """What is at ``path``, in words, for a refusal message."""
    if path.is_symlink():
        return "a symbolic link"
    if path.is_file():
        return f"a file of {path.stat().st_size:,} bytes"
    if path.is_dir():
        try:
            entries = sorted(p.name for p in path.iterdir())
        except OSError:
            return "a folder that cannot be listed"
        if not entries:
            return "an empty folder"
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        return f"a folder of {len(entries)} entries ({shown})"
    return "something that is neither a file nor a folder"


def _json_has(file: Path, key: str) -> bool:
    try:
        d = json.loads(file.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(d, dict) and key in d


def written_by_us(path: str | os.PathLike) -> str | None:
    """The kind of evcf_fast output folder at ``path`` ("dataset", "run", ...), else None."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return None
    marker = path / MARKER
    if marker.is_file():
        try:
            return marker.read_text().strip() or "output"
        except OSError:
            return "output"
    if _json_has(path / "meta.json", "format_version"):
        return "dataset"
    if _json_has(path / "config.json", "model_config"):
        return "run"
    if (path / "report.md").is_file() and (path / "history.png").is_file():
        return "report"
    return None


def _same_or_inside(a: Path, b: Path) -> bool:
    """True when ``a`` is ``b`` or lies inside it (paths resolved, links followed)."""
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def check_output(path: str | os.PathLike, *, overwrite: bool, inputs=(), folder: bool = True,
                 what: str | None = None) -> Path:
    """Check before any work that ``path`` may be written; return it as a Path.

    Parameters
    ----------
    path : path-like
        The file or folder to create.
    overwrite : bool
        Whether an existing output may be replaced (only one of ours, see the module docstring).
    inputs : iterable of path-likes
        The command's inputs: ``path`` must not be one of them, inside one, or hold one.
    folder : bool
        ``path`` is a folder (else a file).
    what : str
        How messages name ``path`` (e.g. ``"--out"``).

    Raises
    ------
    ValueError
        ``path`` is an input of the same command, or holds one.
    FileExistsError
        ``path`` exists and ``overwrite`` is false, or it is not an output of ours.
    IsADirectoryError, NotADirectoryError, PermissionError
        A file output names a folder; a parent is a file; the parent folder is not writable.
    """
    path = Path(path)
    what = what or ("output directory" if folder else "output file")
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(inp)
        # the output may not be an input, hold one, or replace a part of one
        if inp.exists() and (_same_or_inside(inp, path)
                             or (path.exists() and _same_or_inside(path, inp))):
            raise ValueError(f"{what} {str(path)!r} would overwrite the input {str(inp)!r} of "
                             f"the same command; choose another {what}")
    if path.exists() or path.is_symlink():
        found = describe_path(path)
        if folder:
            if not overwrite:
                raise FileExistsError(f"{what} {str(path)!r} already exists; pass overwrite "
                                      f"(--overwrite) to replace it")
            if written_by_us(path) is None:
                raise FileExistsError(
                    f"refusing to overwrite {what} {str(path)!r}: expected a folder written by "
                    f"evcf_fast (a dataset, run or report folder), found {found}; remove it "
                    f"yourself or choose another {what}")
        else:
            if path.is_dir():
                raise IsADirectoryError(f"{what} {str(path)!r} is a folder, expected a file "
                                        f"path")
            if not overwrite:
                raise FileExistsError(f"{what} {str(path)!r} already exists; pass overwrite "
                                      f"to replace it")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot create {what} {str(path)!r}: {str(parent)!r} is a file, "
                                 f"expected a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {what} {str(path)!r}: the folder {str(parent)!r} is "
                              f"not writable")
    return path


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def sweep_stale(path: str | os.PathLike) -> int:
    """Remove ``.NAME.tmp-PID-*`` / ``.NAME.old-PID-*`` siblings of ``path`` whose PID is gone.

    Returns how many were removed. Only our own naming for this very NAME is touched. A previous
    output moved aside (``.old-``) by a process killed before the new one was renamed in is put
    back at ``path`` when nothing is there, never deleted.
    """
    path = Path(path)
    parent = path.parent
    removed = 0
    try:
        entries = list(parent.iterdir())
    except OSError:
        return 0
    for p in entries:
        m = _TEMP.match(p.name)
        if m is None or m["name"] != path.name or _pid_alive(int(m["pid"])):
            continue
        if ".old-" in p.name and (p / "x").exists() and not (path.exists() or path.is_symlink()):
            # killed between moving the previous output aside and renaming the new one in:
            # the previous output is the only copy, put it back
            os.replace(p / "x", path)
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()
        removed += 1
    return removed


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False, kind: str = "output",
               inputs=(), what: str | None = None):
    """Yield a temporary directory that becomes ``path`` when the block ends without error.

    The folder gets a :data:`MARKER` file naming ``kind``. :func:`check_output` runs first, so an
    existing ``path`` that is not ours, or an input, is refused before any work.
    """
    path = check_output(path, overwrite=overwrite, inputs=inputs, folder=True, what=what)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp is owner-only; the result should not be
    try:
        (tmp / MARKER).write_text(kind + "\n")
        yield tmp
        # checked again: something may have appeared at path while the block ran
        check_output(path, overwrite=overwrite, inputs=inputs, folder=True, what=what)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    try:
        if path.exists():
            # Move the old one aside first so the rename below cannot fail half-way.
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-{os.getpid()}-",
                                        dir=path.parent))
            os.replace(path, old / "x")
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists() and (old / "x").exists():
            try:
                os.replace(old / "x", path)  # put the previous output back
            except OSError:
                # never delete it: say where it is (the next write of path restores it first)
                raise OSError(f"could not write {str(path)!r} and could not put the previous "
                              f"output back; it is in {str(old / 'x')!r}") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, overwrite: bool = True, inputs=(),
                what: str | None = None):
    """Yield a temporary file path in the same directory; it replaces ``path`` on success.

    A ``path`` that is a folder or an input of the same command is refused before any work;
    the temporary file is removed whatever fails, the final rename included.
    """
    path = check_output(path, overwrite=overwrite, inputs=inputs, folder=False, what=what)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp is owner-only; the result should not be
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike, *, kind: type = dict, what: str = "JSON file"):
    """Parse a JSON file; a ValueError naming the file and the line/column of a syntax error,
    or saying what type was expected, instead of a bare JSONDecodeError."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {str(path)!r} is not UTF-8 text: {exc.reason} at byte "
                         f"{exc.start}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {str(path)!r} is not valid JSON (line {exc.lineno} column "
                         f"{exc.colno}: {exc.msg}); the file is damaged") from None
    except RecursionError:
        raise ValueError(f"{what} {str(path)!r} is nested too deeply to be read") from None
    if kind is not None and not isinstance(value, kind):
        raise ValueError(f"{what} {str(path)!r} must hold a JSON {kind.__name__}, got "
                         f"{type(value).__name__}")
    return value


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """The JSON-object lines of ``path``; a ValueError naming the file and line otherwise."""
    path = Path(path)
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                  .splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"{str(path)}:{lineno}: not a JSON record ({exc}); the file is "
                             f"truncated or damaged") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{str(path)}:{lineno}: expected a JSON object, got "
                             f"{type(rec).__name__}")
        out.append(rec)
    return out
