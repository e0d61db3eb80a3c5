"""encode_frames(): H.264 with the reference's rate and audio, odd sizes, quality modes, atomic output."""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest

from facelab.errors import FacelabError
from facelab.video import EncodeSettings, encode_frames, extract_frames, find_ffmpeg, probe
from facelab.video.synthetic import make_clip
from facelab.workspace import read_image, write_image


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 2 s 25 fps clip with a tone and its 50 extracted frames."""
    root = tmp_path_factory.mktemp("encode")
    clip = make_clip(root / "clip.mp4", seconds=2, fps=25, size=(64, 48), audio=True)
    extract_frames(clip, root / "frames")
    return clip, root / "frames"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_round_trip_keeps_count_rate_audio_and_pixels(source, tmp_path):
    clip, frames = source
    calls = []
    result = encode_frames(frames, tmp_path / "out.mp4", reference_video=clip, progress=calls.append)
    assert sum(calls) == 50 and result.audio == "copy aac" and result.fps_fraction == "25/1"
    info = probe(tmp_path / "out.mp4")
    assert (info.frame_count, info.fps_fraction, info.width, info.height) == (50, "25/1", 64, 48)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.duration == pytest.approx(2.0, abs=0.05)
    back = extract_frames(tmp_path / "out.mp4", tmp_path / "back")
    assert back.total == 50
    for i in (1, 25, 50):
        name = f"{i:06d}.png"
        assert _psnr(read_image(frames / name), read_image(tmp_path / "back" / name)) > 30
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_no_audio_reference_and_explicit_fps(source, tmp_path):
    _, frames = source
    silent = make_clip(tmp_path / "silent.mp4", seconds=1, fps=10, audio=False)
    r = encode_frames(frames, tmp_path / "a.mp4", reference_video=silent)
    assert r.audio == "none"
    info = probe(tmp_path / "a.mp4")
    assert (info.frame_count, info.fps_fraction, info.has_audio) == (50, "10/1", False)
    r = encode_frames(frames, tmp_path / "b.mkv", fps="30000/1001")
    assert probe(tmp_path / "b.mkv").fps_fraction == "30000/1001" and r.audio == "none"
    with pytest.raises(FacelabError, match="--fps or --reference"):
        encode_frames(frames, tmp_path / "c.mp4")


def test_odd_frame_size_is_padded(tmp_path):
    for i in range(3):
        write_image(tmp_path / "in" / f"{i + 1:06d}.png", np.full((359, 641, 3), 40 * i, np.uint8))
    r = encode_frames(tmp_path / "in", tmp_path / "odd.mp4", fps=25)
    info = probe(tmp_path / "odd.mp4")
    assert (r.width, r.height) == (info.width, info.height) == (642, 360)
    assert info.frame_count == 3
    lossless = encode_frames(tmp_path / "in", tmp_path / "odd_ll.mp4", fps=25, lossless=True)
    assert (probe(tmp_path / "odd_ll.mp4").width, lossless.height) == (641, 359)


def test_quality_modes_order_file_sizes(source, tmp_path):
    _, frames = source
    sizes = {}
    for name, settings in {"crf40": EncodeSettings(crf=40), "crf10": EncodeSettings(crf=10),
                           "lossless": EncodeSettings(lossless=True)}.items():
        encode_frames(frames, tmp_path / f"{name}.mp4", fps=25, settings=settings)
        sizes[name] = (tmp_path / f"{name}.mp4").stat().st_size
    assert sizes["crf40"] < sizes["crf10"] < sizes["lossless"]
    cap = cv2.VideoCapture(str(tmp_path / "lossless.mp4"))
    ok, bgr = cap.read()
    cap.release()
    assert ok and _psnr(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), read_image(frames / "000001.png")) > 40
    low = encode_frames(frames, tmp_path / "low.mp4", fps=25, bitrate="20k")
    high = encode_frames(frames, tmp_path / "high.mp4", fps=25, settings=EncodeSettings(crf=0), bitrate="2M")
    assert low.out_path.stat().st_size < high.out_path.stat().st_size
    with pytest.raises(ValueError):
        EncodeSettings(crf=52)
    with pytest.raises(ValueError):
        EncodeSettings(bitrate="fast")
    with pytest.raises(FacelabError, match="crf must be within"):
        encode_frames(frames, tmp_path / "bad.mp4", fps=25, crf=99)


def test_audio_reencoded_when_container_refuses_it(source, tmp_path):
    """PCM audio cannot go into mp4 as it is: it becomes AAC."""
    clip, frames = source
    wav_ref = tmp_path / "pcm.mov"
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(clip), "-c:v", "copy",
                    "-c:a", "pcm_s16le", str(wav_ref)], check=True)
    assert probe(wav_ref).audio_codec == "pcm_s16le"
    r = encode_frames(frames, tmp_path / "out.mp4", reference_video=wav_ref)
    assert r.audio == "aac" and probe(tmp_path / "out.mp4").audio_codec == "aac"


def test_encode_errors_leave_nothing_behind(source, tmp_path):
    clip, frames = source
    mixed = tmp_path / "mixed"
    write_image(mixed / "000001.png", np.zeros((48, 64, 3), np.uint8))
    write_image(mixed / "000002.png", np.zeros((40, 64, 3), np.uint8))
    with pytest.raises(FacelabError, match="000002.png"):
        encode_frames(mixed, tmp_path / "out.mp4", fps=25)
    assert list(tmp_path.glob("*.mp4")) == [] and list(tmp_path.glob(".tmp-*")) == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacelabError, match="no .png/.jpg frames"):
        encode_frames(tmp_path / "empty", tmp_path / "o.mp4", fps=25)
    with pytest.raises(FacelabError, match=".webm"):
        encode_frames(frames, tmp_path / "o.webm", fps=25)
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("x")
    with pytest.raises(FacelabError, match="somefile.txt"):
        encode_frames(frames, blocker / "sub" / "o.mp4", fps=25)


def test_missing_frames_are_reported(source, tmp_path, caplog):
    _, frames = source
    gappy = tmp_path / "gappy"
    gappy.mkdir()
    for i in (1, 2, 5, 6):
        (gappy / f"{i:06d}.png").write_bytes((frames / f"{i:06d}.png").read_bytes())
    with caplog.at_level("WARNING", logger="facelab.video.encode"):
        r = encode_frames(gappy, tmp_path / "o.mp4", fps=25)
    assert r.frames == 4 and probe(r.out_path).frame_count == 4
    assert "2 frame(s) missing between 000001 and 000006" in caplog.text
