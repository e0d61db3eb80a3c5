"""One lock per output folder, so two runs never write the same folder at once.

The lock is a file ``.facelab.lock`` in the folder holding the holder's pid, hostname, stage and start time, plus an
``fcntl.flock`` on it: the OS drops the flock when the holder dies (even by SIGKILL), so a lock file whose flock is
free is stale and is taken over with a log line. A second run refuses with one line naming the first's process and
the folder. Holding the lock, a stage may remove its own leftover temporary files (:func:`clean_temps`).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import re
import socket
from pathlib import Path
from typing import Any, Iterable, Iterator

from facelab.errors import FacelabError
from facelab.utils.atomic import TMP_PREFIX

log = logging.getLogger(__name__)
LOCK_NAME = ".facelab.lock"
#: Suffixes of the temporary files each stage writes through :mod:`facelab.utils.atomic`.
IMAGE_TEMPS = (".png", ".jpg", ".jpeg", ".json")
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


def _holder_text(stage: str) -> str:
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "stage": stage, "started": started}) + "\n"


def _read_holder(fd: int) -> dict[str, Any]:
    """The holder record in the lock file open as ``fd`` (empty when unreadable)."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        doc = json.loads(os.read(fd, 4096).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _describe(doc: dict[str, Any]) -> str:
    if not doc:
        return "another process"
    return (f"{doc.get('stage', 'a run')} (process {doc.get('pid', '?')} on {doc.get('host', '?')}, "
            f"started {doc.get('started', '?')})")


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, TypeError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _flock(fd: int, folder: Path) -> bool:
    """Take the flock of ``fd``; False when another process holds it. Filesystems without flock fall back on
    the recorded pid (alive on this host: held)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        log.debug("no flock in %s (%s); judging the lock by its pid", folder, exc.strerror)
        doc = _read_holder(fd)
        mine = doc.get("host") == socket.gethostname()
        return not (doc and (not mine or _pid_alive(doc.get("pid"))))


def _open_locked(path: Path, folder: Path, stage: str) -> int:
    """Open and flock ``path``; retried when the file was replaced meanwhile (a holder removes it on release)."""
    for _ in range(20):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        if not _flock(fd, folder):
            holder = _read_holder(fd)
            os.close(fd)
            raise FacelabError(f"{folder} is in use by {_describe(holder)}; wait for it to finish or stop "
                               f"that process, then run {stage} again")
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise FacelabError(f"cannot lock {folder}: its lock file keeps changing; check for other runs")


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, stage: str) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created when missing) while the block runs; yields the folder.

    Raises :class:`FacelabError` naming the holder and the folder when another process holds it.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(path, folder, stage)
    except FacelabError:
        raise
    except OSError as exc:
        raise FacelabError(f"cannot lock {folder}: {exc.strerror}; check that the folder is writable") from exc
    try:
        old = _read_holder(fd)
        if old:
            log.info("taking over the lock of %s left by %s, which is gone", folder, _describe(old))
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_text(stage).encode("utf-8"), 0)
        yield folder
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


@contextlib.contextmanager
def stage_folders(stage: str, *folders: str | os.PathLike | None,
                  temps: Iterable[str] = IMAGE_TEMPS) -> Iterator[None]:
    """Lock each of ``folders`` (None ones skipped) for ``stage``, then remove the leftover temporary files with
    suffixes ``temps`` that an interrupted run left in them."""
    with contextlib.ExitStack() as stack:
        locked = [stack.enter_context(folder_lock(f, stage)) for f in dict.fromkeys(folders) if f is not None]
        suffixes = tuple(temps)
        for folder in locked:
            removed = clean_temps(folder, suffixes)
            if removed:
                log.info("%s: removed %d temporary file(s) an interrupted run left in %s", stage, len(removed),
                         folder)
        yield


def temp_pattern(suffixes: Iterable[str]) -> re.Pattern[str]:
    """The names :func:`facelab.utils.atomic.atomic_path` gives temporary files with one of ``suffixes``."""
    ends = "|".join(re.escape(s) for s in suffixes)
    return re.compile(rf"^{re.escape(TMP_PREFIX)}[a-z0-9_]{{8}}(?:{ends})$")


def clean_temps(folder: str | os.PathLike, suffixes: Iterable[str]) -> list[Path]:
    """Remove this project's leftover temporary files with ``suffixes`` in ``folder`` (files only, no recursion);
    call it only while holding the folder's lock. Returns what was removed."""
    folder = Path(folder)
    pattern = temp_pattern(suffixes)
    removed = []
    try:
        entries = list(folder.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise FacelabError(f"cannot list {folder}: {exc.strerror}") from exc
    for path in entries:
        if pattern.match(path.name) and path.is_file() and not path.is_symlink():
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise FacelabError(f"cannot remove the leftover {path}: {exc.strerror}; remove it by hand") from exc
            removed.append(path)
    return removed
