"""Atomic writes: all-or-nothing, normal file permissions, one-line errors."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from varbench import files as atomic
from varbench.errors import VarbenchError


def test_write_replaces_whole_file_with_umask_permissions(tmp_path):
    target = tmp_path / "sub" / "r.json"
    atomic.write_json(target, {"a": 1})
    atomic.write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}") and '"a": 2' in target.read_text()
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode == 0o666 & ~atomic._umask()  # not mkstemp's 0600
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]  # no temp files left


def test_failure_inside_block_keeps_old_content(tmp_path):
    target = tmp_path / "f.bin"
    atomic.write_bytes(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic.open_write(target) as f:
            f.write(b"new")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_disk_full_is_one_line(tmp_path, monkeypatch):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(VarbenchError, match="no space left") as e:
        atomic.write_bytes(tmp_path / "x", b"data")
    assert "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())
