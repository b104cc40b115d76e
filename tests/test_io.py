"""Atomic writes (evcf_fast._io): complete result or nothing, never a half-written one."""

import os
import stat
from pathlib import Path

import pytest

from evcf_fast._io import MARKER, atomic_dir, atomic_file, check_output


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_dir_appears_only_on_success(tmp_path):
    out = tmp_path / "ds"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_existing_without_overwrite(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="already exists; pass overwrite"):
        with atomic_dir(out):
            pass
    assert (out / "old.txt").read_text() == "old"


def test_atomic_dir_overwrite_replaces_and_failure_keeps_old(tmp_path):
    out = tmp_path / "ds"
    with atomic_dir(out, kind="dataset") as tmp:  # overwrite replaces only folders of ours
        (tmp / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("interrupted")
    assert (out / "old.txt").read_text() == "old"        # the old result survives a failed rewrite
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_atomic_outputs_get_umask_permissions_not_owner_only(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "d"):
            pass
        with atomic_file(tmp_path / "f.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "d") == 0o755
    assert _mode(tmp_path / "f.json") == 0o644


def test_atomic_file_failure_keeps_old_content(tmp_path):
    out = tmp_path / "f.txt"
    out.write_text("old")
    with pytest.raises(ValueError, match="bad"):
        with atomic_file(out) as tmp:
            tmp.write_text("half")
            raise ValueError("bad")
    assert out.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    with pytest.raises(FileExistsError, match="output file .* already exists"):
        with atomic_file(out, overwrite=False):
            pass


def test_stale_temporaries_of_dead_processes_are_swept(tmp_path):
    """Issue 9: after kill -9, `.NAME.tmp-PID-*` stays; the next write of NAME removes it, but
    never one of a running process or of another name."""
    dead = tmp_path / ".f.json.tmp-999999999-abc"
    dead.write_text("half")
    dead_dir = tmp_path / ".ds.tmp-999999999-xyz"
    dead_dir.mkdir()
    (dead_dir / "a.npy").write_text("half")
    alive = tmp_path / f".f.json.tmp-{os.getppid()}-abc"  # our parent process is running
    alive.write_text("busy")
    other = tmp_path / ".g.json.tmp-999999999-abc"
    other.write_text("not this name")
    with atomic_file(tmp_path / "f.json") as tmp:
        tmp.write_text("{}")
    assert not dead.exists() and alive.exists() and other.exists()
    with atomic_dir(tmp_path / "ds"):
        pass
    assert not dead_dir.exists()


def test_atomic_file_cleans_up_when_the_final_rename_fails(tmp_path, monkeypatch):
    """Issue 9: the temporary is removed whatever fails, the rename included."""
    def refuse(src, dst):
        raise PermissionError(f"cannot replace {dst}")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError, match="cannot replace"):
        with atomic_file(tmp_path / "f.json") as tmp:
            tmp.write_text("{}")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_rename_failure_keeps_the_old_output(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    with atomic_dir(out, kind="dataset") as tmp:
        (tmp / "old.txt").write_text("old")
    real = os.replace
    calls = []

    def second_fails(src, dst):
        if Path(dst) == out and not calls:
            calls.append(src)
            raise OSError("disk full")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError, match="disk full"):
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert (out / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize("make, match", [
    (lambda d: (d / "x").mkdir(), r"refusing to overwrite output directory .*: expected a folder "
                                  r"written by evcf_fast .*found an empty folder"),
    (lambda d: (d / "x").write_text("abc"), r"found a file of 3 bytes"),
    (lambda d: (d / "x").symlink_to(d), r"found a symbolic link"),
])
def test_overwrite_refuses_what_is_not_ours(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(FileExistsError, match=match):
        with atomic_dir(tmp_path / "x", overwrite=True):
            pass
    assert (tmp_path / "x").exists() or (tmp_path / "x").is_symlink()


def test_output_may_not_be_or_hold_an_input(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "r.csv").write_text("x")
    for out in (tmp_path / "raw", tmp_path / "raw" / "r.csv", tmp_path):
        with pytest.raises(ValueError, match="would overwrite the input"):
            check_output(out, overwrite=True, inputs=[tmp_path / "raw" / "r.csv"])
    # a new folder inside an input folder is fine (it replaces nothing)
    check_output(tmp_path / "raw" / "new", overwrite=True, inputs=[tmp_path / "raw"])


def test_previous_output_moved_aside_by_a_killed_process_is_restored(tmp_path):
    """kill -9 between moving the old folder aside and renaming the new one in: the next write
    puts the old one back (it is the only copy) before deciding anything."""
    aside = tmp_path / ".ds.old-999999999-abc" / "x"
    aside.mkdir(parents=True)
    (aside / MARKER).write_text("dataset\n")
    (aside / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="already exists"):
        with atomic_dir(tmp_path / "ds"):
            pass
    assert (tmp_path / "ds" / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_unwritable_or_impossible_output_is_refused_before_any_work(tmp_path, monkeypatch):
    """Issue 9: an unwritable --out was reported only after the whole parse and split."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"cannot create output directory .*f/sub.*: "
                                                  r".*f' is a file, expected a folder"):
        check_output(tmp_path / "f" / "sub" / "ds", overwrite=False)
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # root ignores permissions
    with pytest.raises(PermissionError, match=r"cannot write output directory .*ds.*: the folder "
                                              r".* is not writable"):
        check_output(tmp_path / "new" / "ds", overwrite=False)
