"""probe(): exact frame count and rate, audio, rotation and one-line errors on bad files."""

from __future__ import annotations

import subprocess
from fractions import Fraction

import cv2
import pytest

from facelab.errors import FacelabError
from facelab.video import find_ffmpeg, probe
from facelab.video.probe import parse_header, parse_packets, rate_from_text
from facelab.video.synthetic import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("probe") / "clip.mp4", seconds=2, fps=25, size=(64, 48), audio=True)


def test_probe_matches_opencv_and_lavfi_settings(clip):
    info = probe(clip)
    cap = cv2.VideoCapture(str(clip))
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    cap.release()
    assert (info.width, info.height) == (64, 48)
    assert info.frame_count == decoded == 50
    assert info.fps_fraction == "25/1" and info.fps == 25.0
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.video_codec == "h264" and info.rotation == 0


@pytest.mark.parametrize("fps, expected", [("30000/1001", "30000/1001"), ("24", "24/1")])
def test_probe_exact_rate_in_mp4_and_mkv(tmp_path, fps, expected):
    for ext in ("mp4", "mkv"):  # mkv stores 1/1000 s time stamps: the rate must still come out exact
        info = probe(make_clip(tmp_path / f"c.{ext}", seconds=1, fps=fps, audio=False))
        assert info.fps_fraction == expected, ext
        assert not info.has_audio and info.audio_codec is None


def test_probe_counts_frames_when_the_header_lies(tmp_path, clip):
    """An mp4 whose duration was cut by the muxer: the count comes from the packets, not the header."""
    short = tmp_path / "short.mp4"
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(clip), "-frames:v", "17",
                    "-c", "copy", "-an", str(short)], check=True)
    assert probe(short).frame_count == 17


def test_probe_rotation_swaps_size(tmp_path, clip):
    rotated = tmp_path / "rot.mp4"
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-display_rotation:v:0", "90",
                    "-i", str(clip), "-c", "copy", str(rotated)], check=True)
    info = probe(rotated)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)


def test_probe_errors_name_the_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    audio = make_clip(tmp_path / "tone.m4a", seconds=0.5, video=False)
    cases = {tmp_path / "missing.mp4": "does not exist", empty: "empty", text: "not a video",
             audio: "no video stream", tmp_path: "not a file"}
    for path, words in cases.items():
        with pytest.raises(FacelabError, match=words) as err:
            probe(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_rate_from_text():
    assert rate_from_text("23.98") == Fraction(24000, 1001)
    assert rate_from_text("29.97") == Fraction(30000, 1001)
    assert rate_from_text("25") == 25
    assert rate_from_text("12.5") == Fraction(25, 2)
    assert rate_from_text("0") is None and rate_from_text("x") is None and rate_from_text(None) is None


HEADER = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'a.mp4':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 663 kb/s
  Stream #0:0[0x1](und): Video: mjpeg (Baseline), yuvj420p, 100x100, 90k tbr, 90k tbn (attached pic)
  Stream #0:1[0x2](und): Audio: mp3 (mp3float) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 125 kb/s (default)
  Stream #0:2[0x3](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 533 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)
    Side data:
      displaymatrix: rotation of -90.00 degrees
  Stream #0:3[0x4](und): Audio: aac (LC), 48000 Hz, stereo, fltp, 125 kb/s
"""


def test_parse_header_skips_cover_art_and_reads_rotation():
    h = parse_header(HEADER)
    assert (h.video_index, h.video_codec, h.width, h.height) == (2, "h264", 1920, 1080)
    assert h.rate_text == "29.97" and h.rotation == 270
    assert h.audio_codec == "mp3"  # the first audio track
    assert h.duration == pytest.approx(62.5)


def test_parse_packets_exact_and_coarse_time_base():
    mp4 = "#tb 0: 1/24000\n" + "".join(f"0, {i * 1001}, {i * 1001}, 1001, 10, 0x0\n" for i in range(10))
    assert parse_packets(mp4) == (10, Fraction(24000, 1001), pytest.approx(10 * 1001 / 24000))
    mkv = "#tb 0: 1/1000\n" + "".join(f"0, {round(i * 1000 / 30)}, {round(i * 1000 / 30)}, 33, 10, 0x0\n"
                                      for i in range(30))
    assert parse_packets(mkv, "30")[1] == 30
    assert parse_packets(mkv, None)[1] == 30  # the measured spacing alone, limited to a /1001 denominator


def test_snap_rate():
    from facelab.video.probe import snap_rate

    assert snap_rate(Fraction(29000, 967)) == 30
    assert snap_rate(Fraction(23976, 1000)) == Fraction(24000, 1001)
    assert snap_rate(Fraction(125, 10)) == Fraction(25, 2)  # 12.5 fps is neither: kept
