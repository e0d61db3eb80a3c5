"""Extract the frames of a video into ``000001.png`` ... (6 digits, 1-based), streaming, atomic and resumable.

ffmpeg decodes to raw RGB24 on a pipe; each frame is written to a temporary file and renamed, so a kill never leaves
a broken frame. A rerun decodes again and skips frames already on disk (their bytes are left untouched).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from facelab.errors import FacelabError
from facelab.utils.lock import clean_temps
from facelab.utils.progress import Progress
from facelab.video.probe import VideoInfo, probe
from facelab.video.tools import QUIET, ffmpeg_path, find_ffmpeg, last_error_line, read_stderr, stderr_file
from facelab.workspace.images import write_image

log = logging.getLogger(__name__)
FRAME_FORMATS = ("png", "jpg")


@dataclass(frozen=True)
class ExtractResult:
    """What one extraction did: frames written, frames kept from an earlier run, total frames of the video."""

    out_dir: Path
    written: int
    skipped: int
    total: int
    seconds: float
    info: VideoInfo


def frame_name(index: int, fmt: str) -> str:
    """Name of 1-based frame ``index``: ``000001.png``."""
    return f"{index:06d}.{fmt}"


def extract_frames(video: str | os.PathLike, out_dir: str | os.PathLike, fps: float = 0, fmt: str = "png",
                   progress: Progress | None = None, force: bool = False, jpeg_quality: int = 95,
                   info: VideoInfo | None = None) -> ExtractResult:
    """Decode ``video`` into ``out_dir`` as uint8 RGB frames; ``fps`` 0 keeps every frame, else resamples.

    Frames already present are skipped unless ``force``; ``progress(1)`` is called per frame. ``info`` saves a
    second probe when the caller already has it.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in FRAME_FORMATS:
        raise FacelabError(f"frame format {fmt!r} is not supported; use png or jpg")
    if fps < 0:
        raise FacelabError(f"--fps must be 0 (keep the video's rate) or positive, got {fps}")
    start = time.perf_counter()
    info = info or probe(video)
    out = _prepare_dir(Path(out_dir), fmt)
    existing = set() if force else {p.name for p in out.iterdir() if p.is_file()}
    if not force and fps == 0 and all(frame_name(i, fmt) in existing for i in range(1, info.frame_count + 1)):
        if progress:
            progress(info.frame_count)
        return ExtractResult(out, 0, info.frame_count, info.frame_count, time.perf_counter() - start, info)
    written, total = _decode_loop(info, out, fps, fmt, existing, progress, jpeg_quality)
    return ExtractResult(out, written, total - written, total, time.perf_counter() - start, info)


def _prepare_dir(out: Path, fmt: str) -> Path:
    """Create ``out`` and remove the temporary frames an interrupted run left there: only this stage's own
    (:func:`facelab.utils.lock.clean_temps`), never a user's file that merely starts with ``.tmp-``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        clean_temps(out, (f".{fmt}",))
    except OSError as exc:
        raise FacelabError(f"cannot write frames into {out}: {exc.strerror}; choose a writable --output folder") from exc
    return out


def decode_command(info: VideoInfo, fps: float = 0) -> list[str]:
    """ffmpeg arguments that write every frame of ``info.path`` as raw RGB24 to stdout."""
    stream = ffmpeg.input(ffmpeg_path(info.path))[str(info.stream_index)]
    kwargs: dict = {"format": "rawvideo", "pix_fmt": "rgb24"}
    if fps > 0:
        stream = stream.filter("fps", fps=fps)
    else:
        kwargs["fps_mode"] = "passthrough"  # one output frame per decoded frame, none duplicated or dropped
    return ffmpeg.output(stream, "pipe:", **kwargs).compile(cmd=[find_ffmpeg(), *QUIET])


def _decode_loop(info: VideoInfo, out: Path, fps: float, fmt: str, existing: set[str], progress: Progress | None,
                 quality: int) -> tuple[int, int]:
    """Stream frames from ffmpeg and write the missing ones; returns (written, total)."""
    frame_bytes = info.width * info.height * 3
    written = total = 0
    cmd = decode_command(info, fps)
    log.debug("extract: %s", " ".join(cmd))
    with stderr_file() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                    bufsize=frame_bytes)
        except OSError as exc:
            raise FacelabError(f"cannot run ffmpeg on {info.path}: {exc}") from exc
        try:
            while True:
                buf = proc.stdout.read(frame_bytes)  # type: ignore[union-attr]
                if len(buf) < frame_bytes:
                    if buf:
                        raise FacelabError(f"ffmpeg stopped mid-frame on {info.path}; check the video")
                    break
                total += 1
                name = frame_name(total, fmt)
                if name not in existing:
                    frame = np.frombuffer(buf, np.uint8).reshape(info.height, info.width, 3)
                    write_image(out / name, frame, quality)
                    written += 1
                if progress:
                    progress(1)
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                proc.stdout.close()  # type: ignore[union-attr]
        if code != 0:
            raise FacelabError(f"ffmpeg failed decoding {info.path}: {last_error_line(read_stderr(err))}")
    if total == 0:
        raise FacelabError(f"no frames decoded from {info.path}; check the video")
    return written, total
