"""``video extract`` killed at a seeded random point and rerun gives the very bytes of an uninterrupted run; a full
disk is one line and a non-zero exit."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from facelab.cli.root import cli
from facelab.video.synthetic import make_clip

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 60


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def kill_when(proc: subprocess.Popen, folder: Path, pattern: str, count: int, timeout: float = 60.0) -> bool:
    """SIGKILL ``proc`` once ``folder`` holds ``count`` files matching ``pattern``; True when it was killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and len(list(folder.glob(pattern))) >= count:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait()
    return proc.returncode == -signal.SIGKILL


def run_main(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_killed_video_extract_resumes_to_the_same_bytes(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=FRAMES / 30, fps=30, size=(320, 240), audio=False)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for ws in (killed, clean):
        ws.mkdir()
        shutil.copy(clip, ws / "data_dst.mp4")
    at = random.Random(7).randint(1, FRAMES // 2)
    proc = run_main(["video", "extract", "data_dst", "-w", str(killed)])
    assert kill_when(proc, killed / "data_dst", "0*.png", at), proc.stderr.read().decode()
    assert len(list((killed / "data_dst").glob("0*.png"))) < FRAMES
    for ws in (killed, clean):
        res = CliRunner().invoke(cli, ["video", "extract", "data_dst", "-w", str(ws)], obj={})
        assert res.exit_code == 0, res.output
    assert folder_bytes(killed / "data_dst") == folder_bytes(clean / "data_dst")
    assert len(folder_bytes(clean / "data_dst")) == FRAMES  # frames only: no temporaries, no lock file


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs, when this test may mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_full_disk_is_one_line_and_a_non_zero_exit(tmp_path, tiny_disk):
    clip = make_clip(tmp_path / "big.mp4", seconds=1, fps=30, size=(320, 240), audio=False)
    ws = tiny_disk / "ws"
    ws.mkdir()
    shutil.copy(clip, ws / "data_dst.mp4")  # ~40 KiB; its 30 PNG frames do not fit in what is left
    proc = subprocess.run([sys.executable, "main.py", "video", "extract", "data_dst", "-w", str(ws)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1, proc.stderr
