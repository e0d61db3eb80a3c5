"""Synthetic clips made by ffmpeg itself (lavfi ``testsrc`` picture, ``sine`` tone): fixtures for tests and
benchmarks that need a real encoded video without shipping one."""

from __future__ import annotations

import os
from pathlib import Path

from facelab.video.tools import ffmpeg_path, run_ffmpeg


def make_clip(path: str | os.PathLike, seconds: float = 2.0, fps: int | str = 25, size: tuple[int, int] = (64, 48),
              audio: bool = True, video: bool = True) -> Path:
    """Write a ``testsrc`` clip of ``size`` (w, h) at ``fps`` with an optional 440 Hz AAC tone; returns ``path``.

    ``video=False`` makes an audio-only file. H.264 is encoded yuv444p when a side is odd (yuv420p cannot).
    """
    path = Path(path)
    if not video and not audio:
        raise ValueError("a clip needs video, audio or both")
    w, h = size
    args: list[str] = []
    if video:
        args += ["-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    if video:
        pix = "yuv444p" if w % 2 or h % 2 else "yuv420p"
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    run_ffmpeg([*args, "-y", ffmpeg_path(path)], str(path), timeout=120)
    return path
