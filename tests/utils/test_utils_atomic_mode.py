"""Atomic writes give new files the mode a plain open() would (mkstemp alone makes them owner-only)."""

from __future__ import annotations

import os
import stat

import pytest

from facelab.errors import FacelabError
from facelab.utils.atomic import TMP_PREFIX, atomic_path, atomic_write_bytes


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_file_mode_follows_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        plain = tmp_path / "plain.bin"
        plain.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask


def test_atomic_path_failure_leaves_old_file_and_no_temp(tmp_path):
    target = tmp_path / "v.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".mp4" and tmp.name.startswith(TMP_PREFIX)
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    with pytest.raises(FacelabError, match="somefile"):
        (tmp_path / "somefile").write_text("x")
        atomic_write_bytes(tmp_path / "somefile" / "sub" / "x.bin", b"x")
