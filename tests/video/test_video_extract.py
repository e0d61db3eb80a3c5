"""extract_frames(): every frame, pixels as OpenCV decodes them, atomic writes, resume, resampling."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.errors import FacelabError
from facelab.utils.atomic import TMP_PREFIX
from facelab.video import extract_frames, frame_name, probe
from facelab.video.synthetic import make_clip
from facelab.workspace import read_image


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("extract") / "clip.mp4", seconds=2, fps=25, size=(64, 48))


def _opencv_frames(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def test_extract_every_frame_with_opencv_pixels(clip, tmp_path):
    calls = []
    result = extract_frames(clip, tmp_path / "frames", progress=calls.append)
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [frame_name(i, "png") for i in range(1, 51)] and names[0] == "000001.png"
    assert (result.total, result.written, result.skipped) == (50, 50, 0)
    assert sum(calls) == 50
    reference = _opencv_frames(clip)
    assert len(reference) == 50
    for i in (0, 17, 49):
        ours = read_image(tmp_path / "frames" / frame_name(i + 1, "png")).astype(np.int16)
        # both decode the same H.264 stream; only the YUV->RGB rounding may differ
        assert np.abs(ours - reference[i]).max() <= 3
        assert np.abs(ours - reference[i]).mean() < 1.0


def test_extract_resumes_after_interruption(clip, tmp_path):
    out = tmp_path / "frames"
    extract_frames(clip, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for i in (3, 20, 50):
        (out / frame_name(i, "png")).unlink()
    (out / f"{TMP_PREFIX}abc_1234.png").write_bytes(b"half a frame")  # what a kill mid-write leaves
    (out / f"{TMP_PREFIX}mine.png").write_bytes(b"a user's file")  # not a name facelab writes: kept
    result = extract_frames(clip, out)
    assert (result.written, result.skipped, result.total) == (3, 47, 50)
    assert (out / f"{TMP_PREFIX}mine.png").read_bytes() == b"a user's file"
    (out / f"{TMP_PREFIX}mine.png").unlink()
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(after) == sorted(before)  # full count, no temporary file left
    assert after == before  # untouched frames identical; rewritten frames decode identically


def test_extract_finished_folder_skips_decoding(clip, tmp_path):
    out = tmp_path / "frames"
    extract_frames(clip, out)
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    result = extract_frames(clip, out)
    assert (result.written, result.skipped) == (0, 50)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp
    forced = extract_frames(clip, out, force=True)
    assert (forced.written, forced.skipped) == (50, 0)


def test_extract_jpg_and_resampled_rate(clip, tmp_path):
    jpg = extract_frames(clip, tmp_path / "jpg", fmt="jpg")
    assert jpg.total == 50 and (tmp_path / "jpg" / "000050.jpg").is_file()
    half = extract_frames(clip, tmp_path / "half", fps=12.5)
    assert half.total == 25
    assert read_image(tmp_path / "half" / "000001.png").shape == (48, 64, 3)


def test_extract_odd_size(tmp_path):
    odd = make_clip(tmp_path / "odd.mp4", seconds=0.2, fps=25, size=(641, 359), audio=False)
    result = extract_frames(odd, tmp_path / "f")
    assert result.total == probe(odd).frame_count == 5
    assert read_image(tmp_path / "f" / "000005.png").shape == (359, 641, 3)


def test_extract_bad_arguments(clip, tmp_path):
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("x")
    with pytest.raises(FacelabError, match="somefile.txt"):
        extract_frames(clip, blocker / "sub")
    with pytest.raises(FacelabError, match="png or jpg"):
        extract_frames(clip, tmp_path / "f", fmt="bmp")
    with pytest.raises(FacelabError, match="fps"):
        extract_frames(clip, tmp_path / "f", fps=-1)


def test_killed_extract_leaves_only_whole_frames_and_resumes(clip, tmp_path):
    """SIGKILL a real extraction mid-way: every frame on disk is whole, and a rerun completes it identically."""
    out = tmp_path / "killed"
    script = ("import sys, time\nfrom facelab.video import extract_frames\n"
              "extract_frames(sys.argv[1], sys.argv[2], progress=lambda n: time.sleep(0.05))\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(clip), str(out)],
                            cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("0*.png"))) < 8 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(out.glob("0*.png"))
    assert 8 <= len(done) < 50  # really interrupted part-way (the sleeps make the run take >2 s)
    for path in done:
        read_image(path)  # whole and decodable
    result = extract_frames(clip, out)
    assert result.total == 50 and result.skipped == len(done) and not list(out.glob(TMP_PREFIX + "*"))
    clean = tmp_path / "clean"
    extract_frames(clip, clean)
    for i in range(1, 51):
        name = frame_name(i, "png")
        assert np.array_equal(read_image(out / name), read_image(clean / name)), name
