"""Locate ffmpeg and run it with its errors turned into one-line :class:`FacelabError` messages.

``ffmpeg`` on PATH wins when it is recent enough (5.1+, for ``-fps_mode``); otherwise the static binary inside
the ``imageio-ffmpeg`` wheel is used, so facelab works offline with no system ffmpeg at all. ``ffprobe`` is never
needed: :mod:`facelab.video.probe` reads ``ffmpeg``'s own output, so probing gives the same answer on every machine.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Sequence

from facelab.errors import FacelabError

MIN_VERSION = (5, 1)
#: Arguments every ffmpeg call starts with: quiet, never reads the terminal.
QUIET = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")


def _version(exe: str) -> tuple[int, int] | None:
    """(major, minor) of an ffmpeg binary, None when it does not run or says no number."""
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if re.search(r"version N-\d", out):  # a build from git master: newer than any release
        return (99, 0)
    m = re.search(r"version \D*(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


@functools.cache
def find_ffmpeg() -> str:
    """Path of the ffmpeg binary to use (PATH first when >= 5.1, else imageio-ffmpeg's)."""
    on_path = shutil.which("ffmpeg")
    if on_path and (_version(on_path) or (0, 0)) >= MIN_VERSION:
        return on_path
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise FacelabError(
            f"no usable ffmpeg ({exc}); install ffmpeg 5.1+ on PATH or `pip install imageio-ffmpeg`"
        ) from exc


def ffmpeg_path(path: str | os.PathLike) -> str:
    """``path`` as ffmpeg cannot mistake it: ``file:`` and the absolute path, so a colon is never taken for a
    protocol (``co:lon/x.mp4``) and a leading ``-`` never for an option."""
    return "file:" + os.path.abspath(os.fspath(path))


def last_error_line(stderr: str) -> str:
    """The most telling line of ffmpeg's stderr (the last non-empty one), shortened to fit one line."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return "ffmpeg failed without a message"
    line = lines[-1]
    return line if len(line) <= 200 else line[:197] + "..."


def run_ffmpeg(args: Sequence[str], what: str, timeout: float | None = None) -> str:
    """Run ``ffmpeg *QUIET *args`` to completion; returns its stdout as text. ``what`` names the file for errors."""
    cmd = [find_ffmpeg(), *QUIET, *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        raise FacelabError(f"cannot run ffmpeg on {what}: {exc}") from exc
    if proc.returncode != 0:
        raise FacelabError(f"ffmpeg failed on {what}: {last_error_line(proc.stderr)}")
    return proc.stdout


def stderr_file() -> IO[bytes]:
    """A temporary file for a streaming ffmpeg's stderr (a pipe could fill up and stall the stream)."""
    return tempfile.TemporaryFile(mode="w+b")


def read_stderr(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


def check_input_file(path: str | os.PathLike) -> Path:
    """Fail early, naming ``path``, when it is missing, a folder or empty."""
    path = Path(path)
    if not path.exists():
        raise FacelabError(f"video {path} does not exist; check the path")
    if not path.is_file():
        raise FacelabError(f"video {path} is not a file; give a video file")
    if path.stat().st_size == 0:
        raise FacelabError(f"video {path} is empty (0 bytes); copy the video again")
    return path
