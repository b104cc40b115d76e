"""Atomic writes (evcf_fast._io): complete result or nothing, never a half-written one."""

import os
import stat

import pytest

from evcf_fast._io import MARKER, atomic_dir, atomic_file


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
