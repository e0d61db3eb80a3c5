"""``probe(path) -> VideoInfo``: size, exact frame rate, exact frame count, duration and audio of a video file.

Everything comes from one ffmpeg run that stream-copies the first video stream into the ``framecrc`` muxer: the
input header (printed on stderr) gives size, codecs and audio; the per-packet lines give the exact frame count
(containers that state a wrong count in their header do not fool it) and the exact rate as a fraction of the
stream time base (``24000/1001`` rather than the rounded ``23.98`` ffmpeg prints).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg

from facelab.errors import FacelabError
from facelab.video.tools import QUIET, check_input_file, ffmpeg_path, find_ffmpeg, last_error_line

_STREAM = re.compile(r"^\s*Stream #0:(\d+)\S*: (Video|Audio|Subtitle|Data|Attachment): (\w+)(.*)$")
_SIZE = re.compile(r", (\d{1,5})x(\d{1,5})[ ,]")
_RATE = re.compile(r", ([\d.]+)(k?) (?:tbr|fps)\b")
_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")
_TB = re.compile(r"^#tb \d+: (\d+)/(\d+)", re.M)
#: Rates ffmpeg prints rounded to two decimals, and what they stand for.
_NTSC = {"23.98": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "47.95": Fraction(48000, 1001),
         "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001)}


@dataclass(frozen=True)
class VideoInfo:
    """What facelab needs to know about a video. ``width``/``height`` are of decoded (rotation-applied) frames."""

    path: Path
    width: int
    height: int
    fps: float
    fps_fraction: str  # exact, e.g. "24000/1001"
    frame_count: int  # counted packet by packet, never taken from the header
    duration: float  # seconds
    video_codec: str
    has_audio: bool
    audio_codec: str | None
    rotation: int = 0  # degrees the player turns the picture (ffmpeg applies it when decoding)
    stream_index: int = 0  # index of the video stream in the container (``-map 0:<index>``)

    def as_dict(self) -> dict:
        return {"path": str(self.path), "size": f"{self.width}x{self.height}", "fps": round(self.fps, 3),
                "fps_fraction": self.fps_fraction, "frames": self.frame_count, "duration_s": round(self.duration, 3),
                "video_codec": self.video_codec, "audio": self.audio_codec or "none", "rotation": self.rotation}


@dataclass(frozen=True)
class _Header:
    video_index: int
    video_codec: str
    width: int
    height: int
    rate_text: str | None
    rotation: int
    audio_codec: str | None
    duration: float | None


def probe(path: str | os.PathLike) -> VideoInfo:
    """Probe ``path``; :class:`FacelabError` naming the file when it is missing, empty, not a video or has no
    video stream."""
    path = check_input_file(path)
    header = parse_header(_run_header(path), path)
    stdout, code, stderr = _run_packets(path, header.video_index)
    if code != 0:
        raise FacelabError(f"ffmpeg cannot read {path}: {last_error_line(stderr)}; check or re-export the video")
    count, rate, packets_duration = parse_packets(stdout, header.rate_text)
    if count == 0:
        raise FacelabError(f"video {path} has no frames; check or re-export the video")
    if rate is None:
        raise FacelabError(f"cannot tell the frame rate of {path}; re-export it with a constant frame rate")
    w, h = (header.height, header.width) if header.rotation % 180 == 90 else (header.width, header.height)
    duration = header.duration if header.duration is not None else (packets_duration or count / float(rate))
    return VideoInfo(path=path, width=w, height=h, fps=float(rate), fps_fraction=f"{rate.numerator}/{rate.denominator}",
                     frame_count=count, duration=duration, video_codec=header.video_codec,
                     has_audio=header.audio_codec is not None, audio_codec=header.audio_codec,
                     rotation=header.rotation, stream_index=header.video_index)


def _run_header(path: Path) -> str:
    """ffmpeg's input header for ``path`` (stderr of ``ffmpeg -i``, which exits non-zero by design)."""
    try:
        proc = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-i", ffmpeg_path(path)], capture_output=True,
                              text=True, errors="replace", timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise FacelabError(f"cannot run ffmpeg on {path}: {exc}") from exc
    stderr = proc.stderr
    if "Input #0" not in stderr:
        raise FacelabError(f"{path} is not a video ffmpeg can read ({last_error_line(stderr)}); "
                           "check the file or convert it to .mp4")
    return stderr.split("At least one output file", 1)[0]


def _run_packets(path: Path, index: int) -> tuple[str, int, str]:
    stream = ffmpeg.input(ffmpeg_path(path))[str(index)]
    cmd = ffmpeg.output(stream, "-", c="copy", format="framecrc").compile(cmd=[find_ffmpeg(), *QUIET])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise FacelabError(f"cannot run ffmpeg on {path}: {exc}") from exc
    return proc.stdout, proc.returncode, proc.stderr


def parse_header(text: str, path: Path | str = "<video>") -> _Header:
    """Parse the ``Input #0`` block ffmpeg prints: first real video stream, first audio stream, duration."""
    video: tuple[int, str, str] | None = None
    audio_codec: str | None = None
    rotation = 0
    in_video = False
    for line in text.splitlines():
        m = _STREAM.match(line)
        if m:
            index, kind, codec, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4)
            in_video = False
            if kind == "Video" and video is None and "(attached pic)" not in rest:
                video, in_video = (index, codec, rest), True
            elif kind == "Audio" and audio_codec is None:
                audio_codec = codec
            continue
        r = _ROTATION.search(line)
        if r and in_video:
            rotation = int(round(float(r.group(1)))) % 360
    if video is None:
        raise FacelabError(f"{path} has no video stream (audio or data only); give a file with video")
    index, codec, rest = video
    size = _SIZE.search(rest + ",")
    if not size:
        raise FacelabError(f"cannot tell the frame size of {path}; re-export the video")
    rates = _RATE.findall(rest)
    rate_text = None
    if rates:
        value, kilo = rates[-1]  # tbr (the last one) is the rate ffmpeg itself uses
        rate_text = str(float(value) * 1000) if kilo else value
    d = _DURATION.search(text)
    duration = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3)) if d else None
    return _Header(index, codec, int(size.group(1)), int(size.group(2)), rate_text, rotation, audio_codec, duration)


def parse_packets(text: str, rate_text: str | None = None) -> tuple[int, Fraction | None, float | None]:
    """Packet count, exact rate and span in seconds from ``framecrc`` text.

    The mean spacing of presentation times is the measured rate. The exact rate is the time base over the packet
    duration when they agree (mp4: 1/24000 and 1001 ticks give 24000/1001); else ffmpeg's own guess
    ``rate_text`` when it agrees within 1 % (coarse 1/1000 time bases of mkv/webm); else the measured rate, snapped
    to a whole or NTSC (x/1001) rate when that is near.
    """
    tb = _TB.search(text)
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    guess = rate_from_text(rate_text)
    if not tb or not lines or int(tb.group(1)) <= 0:
        return len(lines), guess, None
    tb_num, tb_den = int(tb.group(1)), int(tb.group(2))
    durations: Counter[int] = Counter()
    pts = []
    for ln in lines:
        fields = [f.strip() for f in ln.split(",")]
        if len(fields) >= 4 and fields[2].lstrip("-").isdigit() and fields[3].isdigit():
            pts.append(int(fields[2]))
            durations[int(fields[3])] += 1
    step = durations.most_common(1)[0][0] if durations else 0
    exact = Fraction(tb_den, tb_num * step) if step > 0 else None
    if len(pts) < 2 or max(pts) == min(pts):
        return len(lines), exact or guess, None
    measured = Fraction(tb_den * (len(pts) - 1), tb_num * (max(pts) - min(pts)))
    span = len(pts) / float(measured)
    for candidate, tolerance in ((exact, 1000), (guess, 100)):
        if candidate is not None and abs(candidate - measured) <= measured / tolerance:
            return len(lines), candidate, span
    return len(lines), snap_rate(measured), span


def snap_rate(measured: Fraction) -> Fraction:
    """The nearest of N/1 and N*1000/1001 when within 0.2 % of ``measured``, else ``measured`` simplified."""
    whole = Fraction(max(1, round(measured)))
    ntsc = Fraction(max(1, round(measured * Fraction(1001, 1000))) * 1000, 1001)
    best = min((whole, ntsc), key=lambda c: abs(c - measured))
    return best if abs(best - measured) <= measured / 500 else measured.limit_denominator(1001)


def rate_from_text(text: str | None) -> Fraction | None:
    """A rate ffmpeg printed ("25", "23.98", "29.97") as an exact fraction."""
    if not text:
        return None
    if text in _NTSC:
        return _NTSC[text]
    try:
        rate = Fraction(text).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        return None
    return rate if rate > 0 else None
