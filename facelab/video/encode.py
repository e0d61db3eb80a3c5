"""Encode a folder of frames into an H.264 video, taking frame rate and the first audio track from a reference.

Frames stream to ffmpeg's stdin as raw RGB24, one at a time. Odd frame sizes are padded to even (yuv420p needs it).
The output is written under a temporary name beside the target and renamed when ffmpeg has finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import subprocess
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg

from facelab.errors import FacelabError
from facelab.utils.atomic import atomic_path
from facelab.utils.config import build_config
from facelab.utils.progress import Progress
from facelab.video.probe import VideoInfo, probe, rate_from_text
from facelab.video.tools import QUIET, ffmpeg_path, find_ffmpeg, last_error_line, read_stderr, stderr_file
from facelab.workspace.images import list_images, read_image

log = logging.getLogger(__name__)
FRAME_EXTS = (".png", ".jpg", ".jpeg")
#: Containers that take H.264.
OUTPUT_EXTS = (".mp4", ".mkv", ".mov", ".m4v")
#: Audio codecs an .mp4/.mov takes as they are; others are re-encoded to AAC.
MP4_AUDIO = ("aac", "mp3", "alac", "ac3", "eac3", "opus")
_BITRATE = re.compile(r"^\d+(\.\d+)?[kKmM]?$")


@dataclass(frozen=True)
class EncodeSettings:
    """How to encode. ``bitrate`` (e.g. "8M") replaces ``crf``; ``lossless`` replaces both (qp 0, yuv444p)."""

    crf: int = 18
    bitrate: str | None = None
    lossless: bool = False
    preset: str = "medium"

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be within 0..51, got {self.crf}")
        if self.bitrate is not None and not _BITRATE.match(self.bitrate):
            raise ValueError(f"bitrate must look like 8M or 5000k, got {self.bitrate!r}")


@dataclass(frozen=True)
class EncodeResult:
    """What was written; ``width``/``height`` are the video's (odd sides padded to even unless lossless)."""

    out_path: Path
    frames: int
    width: int
    height: int
    fps_fraction: str
    audio: str  # "copy <codec>", "aac" or "none"
    seconds: float


def list_frames(frames_dir: str | os.PathLike) -> list[Path]:
    """Frame images (.png/.jpg) in ``frames_dir`` in name order; error naming the folder when there are none."""
    folder = Path(frames_dir)
    if not folder.is_dir():
        raise FacelabError(f"frame folder {folder} does not exist; run the stage that writes it or pass --input")
    frames = [p for p in list_images(folder) if p.suffix.lower() in FRAME_EXTS]
    if not frames:
        raise FacelabError(f"no .png/.jpg frames in {folder}; run the stage that writes them or pass --input")
    numbers = sorted(int(p.stem) for p in frames if p.stem.isdigit())
    if numbers and numbers[-1] - numbers[0] + 1 != len(numbers):
        log.warning("%s: %d frame(s) missing between %06d and %06d; the video will be shorter than its source",
                    folder, numbers[-1] - numbers[0] + 1 - len(numbers), numbers[0], numbers[-1])
    return frames


def resolve_rate(fps: float | str | None, reference: VideoInfo | None, out_path: Path) -> Fraction:
    """The output frame rate: ``fps`` when given, else the reference video's exact rate."""
    if fps is not None:
        rate = rate_from_text(str(fps))
        if rate is None:
            raise FacelabError(f"--fps {fps!r} is not a positive number")
        return rate
    if reference is None:
        raise FacelabError(f"no frame rate for {out_path}: pass --fps or --reference (e.g. data_dst.mp4)")
    return Fraction(reference.fps_fraction)


def audio_mode(reference: VideoInfo | None, out_path: Path) -> str:
    """"none", "copy <codec>" (the container takes it as is) or "aac" (re-encode)."""
    if reference is None or not reference.has_audio:
        return "none"
    codec = reference.audio_codec or ""
    if out_path.suffix.lower() == ".mkv" or codec in MP4_AUDIO:
        return f"copy {codec}"
    return "aac"


def encode_command(size: tuple[int, int], rate: Fraction, out_tmp: Path, settings: EncodeSettings,
                   reference: VideoInfo | None, audio: str, frames: int | None = None) -> list[str]:
    """ffmpeg arguments reading raw RGB24 frames of ``size`` (w, h) from stdin and writing ``out_tmp``.

    With audio, the output lasts as long as the ``frames`` at ``rate`` (the audio is cut to it, never a frame
    dropped because the audio track ends a little early); without ``frames``, the shorter stream ends it.
    """
    w, h = size
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", framerate=f"{rate}")
    v = video.video
    if (w % 2 or h % 2) and not settings.lossless:  # yuv420p needs even sides; lossless yuv444p does not
        v = v.filter("pad", "ceil(iw/2)*2", "ceil(ih/2)*2")
    kwargs: dict = {"vcodec": "libx264", "preset": settings.preset}
    if settings.lossless:
        kwargs.update(qp=0, pix_fmt="yuv444p")
    elif settings.bitrate is not None:
        kwargs.update({"b:v": settings.bitrate, "pix_fmt": "yuv420p"})
    else:
        kwargs.update(crf=settings.crf, pix_fmt="yuv420p")
    streams = [v]
    if audio != "none" and reference is not None:
        streams.append(ffmpeg.input(ffmpeg_path(reference.path))["a:0"])
        kwargs.update({"acodec": "copy"} if audio.startswith("copy") else {"acodec": "aac", "b:a": "192k"})
        if frames is not None:
            kwargs["t"] = f"{(frames + 0.5) / rate:.6f}"
        else:
            kwargs["shortest"] = None
    if out_tmp.suffix.lower() in (".mp4", ".mov", ".m4v"):
        kwargs["movflags"] = "+faststart"
    out = ffmpeg.output(*streams, ffmpeg_path(out_tmp), **kwargs).overwrite_output()
    return out.compile(cmd=[find_ffmpeg(), *QUIET])


def encode_frames(frames_dir: str | os.PathLike, out_path: str | os.PathLike,
                  reference_video: str | os.PathLike | None = None, fps: float | str | None = None,
                  crf: int | None = None, bitrate: str | None = None, lossless: bool | None = None,
                  progress: Progress | None = None, *, settings: EncodeSettings | None = None) -> EncodeResult:
    """Encode every frame in ``frames_dir`` (all the same size) to ``out_path`` with libx264.

    Frame rate: ``fps`` or the reference's; audio: the reference's first track, copied when the container takes it.
    Quality: ``settings`` (default :class:`EncodeSettings`) with ``crf`` / ``bitrate`` / ``lossless`` overriding it
    when not None.
    """
    start = time.perf_counter()
    overrides = {"crf": crf, "bitrate": bitrate, "lossless": lossless}
    settings = build_config(EncodeSettings, dataclasses.asdict(settings or EncodeSettings()), overrides,
                            source="encode setting")
    out_path = Path(out_path)
    if out_path.suffix.lower() not in OUTPUT_EXTS:
        raise FacelabError(f"cannot write H.264 into {out_path}; name the output .mp4, .mkv, .mov or .m4v")
    frames = list_frames(frames_dir)
    reference = probe(reference_video) if reference_video is not None else None
    rate = resolve_rate(fps, reference, out_path)
    first = read_image(frames[0])
    h, w = first.shape[:2]
    audio = audio_mode(reference, out_path)
    with atomic_path(out_path) as tmp:
        cmd = encode_command((w, h), rate, tmp, settings, reference, audio, len(frames))
        log.debug("encode: %s", " ".join(cmd))
        _pipe_frames(cmd, frames, (h, w), out_path, progress)
    if not settings.lossless:  # padded to even sides for yuv420p
        w, h = w + w % 2, h + h % 2
    return EncodeResult(out_path, len(frames), w, h, f"{rate.numerator}/{rate.denominator}", audio,
                        time.perf_counter() - start)


def _pipe_frames(cmd: list[str], frames: list[Path], shape: tuple[int, int], out_path: Path,
                 progress: Progress | None) -> None:
    """Run ffmpeg ``cmd`` and write each frame to its stdin; errors name the frame or the output."""
    with stderr_file() as err:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err)
        except OSError as exc:
            raise FacelabError(f"cannot run ffmpeg for {out_path}: {exc}") from exc
        try:
            for path in frames:
                img = read_image(path)
                if img.shape[:2] != shape:
                    raise FacelabError(f"frame {path} is {img.shape[1]}x{img.shape[0]}, the others "
                                       f"{shape[1]}x{shape[0]}; resize or remove it")
                try:
                    proc.stdin.write(img.tobytes())  # type: ignore[union-attr]
                except BrokenPipeError:
                    break  # ffmpeg quit; its message is read below
                if progress:
                    progress(1)
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()  # type: ignore[union-attr]
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            raise FacelabError(f"ffmpeg failed writing {out_path}: {last_error_line(read_stderr(err))}")
