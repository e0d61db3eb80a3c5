"""``video extract`` killed at a seeded random point and rerun gives the very bytes of an uninterrupted run; a full
disk is one line and a non-zero exit."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess

import pytest
from click.testing import CliRunner
from killing import files_at_least, kill_when, leftovers, start_forked, tree_bytes

from facelab.cli.root import cli
from facelab.video.synthetic import make_clip

pytestmark = pytest.mark.fault

FRAMES = 60


def test_killed_video_extract_resumes_to_the_same_bytes(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", seconds=FRAMES / 30, fps=30, size=(320, 240), audio=False)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for ws in (killed, clean):
        ws.mkdir()
        shutil.copy(clip, ws / "data_dst.mp4")
    at = random.Random(7).randint(1, FRAMES // 2)
    proc = start_forked(["video", "extract", "data_dst", "-w", str(killed)])
    assert kill_when(proc, files_at_least(killed / "data_dst", "0*.png", at)) == -signal.SIGKILL
    assert len(list((killed / "data_dst").glob("0*.png"))) < FRAMES
    for ws in (killed, clean):
        res = CliRunner().invoke(cli, ["video", "extract", "data_dst", "-w", str(ws)], obj={})
        assert res.exit_code == 0, res.output
    frames = tree_bytes(clean / "data_dst")
    assert len(frames) == FRAMES  # frames only: no temporaries, no lock file
    assert tree_bytes(killed / "data_dst") == frames
    assert leftovers(killed) == []


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
    log = tmp_path / "stderr.txt"
    proc = start_forked(["video", "extract", "data_dst", "-w", str(ws)], log=log)
    proc.join(120)
    stderr = log.read_text()
    assert proc.exitcode not in (0, None), stderr
    assert "Traceback" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("Error")]
    assert len(errors) == 1, stderr
