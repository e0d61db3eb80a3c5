"""Atomic file writes: write a temporary file in the same folder, then ``os.replace``.

A crash or kill leaves either the old file or the new one, never half of one. Temporary names start with ``.tmp-``
so stages can ignore (and clean) leftovers.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from facelab.errors import FacelabError

TMP_PREFIX = ".tmp-"


def _file_mode() -> int:
    """The mode a plain ``open()`` would give a new file (0o666 less the umask); mkstemp's own is 0o600."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    ``suffix`` defaults to the target's suffix so tools that infer a format from the name (ffmpeg, OpenCV) work.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix if suffix is not None else path.suffix, dir=folder)
        os.close(fd)
        os.chmod(tmp, _file_mode())
    except OSError as exc:
        raise FacelabError(f"cannot write into {folder}: {exc.strerror}; check that the folder is writable") from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; raises :class:`FacelabError` naming the path on failure."""
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise FacelabError(f"cannot write {path}: {exc.strerror}") from exc


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
