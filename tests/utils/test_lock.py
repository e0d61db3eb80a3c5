"""Folder locks: a second process refuses naming the first; a killed holder's lock is taken over; a lock is
released on normal exit and on an exception; stages clean their own leftover temporaries under the lock."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from facelab.errors import FacelabError
from facelab.utils.lock import LOCK_NAME, clean_temps, folder_lock

pytestmark = pytest.mark.fault

ROOT = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time\nfrom facelab.utils.lock import folder_lock\n"
        "with folder_lock(sys.argv[1], 'holder'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(float(sys.argv[2]))\n"
        "    if sys.argv[3] == 'raise':\n"
        "        raise RuntimeError('boom')\n")


def _hold(folder: Path, seconds: float = 60.0, end: str = "exit") -> subprocess.Popen:
    """A second real process that holds the lock of ``folder`` for ``seconds`` (then exits or raises)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds), end], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def test_second_process_refuses_naming_the_first(tmp_path):
    folder = tmp_path / "merged"
    holder = _hold(folder)
    try:
        with pytest.raises(FacelabError) as err:
            with folder_lock(folder, "merge"):
                pass
        msg = str(err.value)
        assert str(holder.pid) in msg and str(folder) in msg and "\n" not in msg
        doc = (folder / LOCK_NAME).read_text()
        assert str(holder.pid) in doc and os.uname().nodename in doc  # pid, hostname (and start time) on disk
    finally:
        holder.kill()
        holder.wait()


def test_killed_holder_lock_is_taken_over_with_a_log_line(tmp_path, caplog):
    folder = tmp_path / "model"
    holder = _hold(folder)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (folder / LOCK_NAME).is_file()  # the kill left the file; the OS dropped the flock
    with caplog.at_level(logging.INFO, logger="facelab.utils.lock"):
        with folder_lock(folder, "train"):
            assert str(os.getpid()) in (folder / LOCK_NAME).read_text()
    assert any(str(holder.pid) in r.getMessage() for r in caplog.records)
    assert not (folder / LOCK_NAME).exists()


@pytest.mark.parametrize("end, code", [("exit", 0), ("raise", 1)])
def test_lock_released_when_the_holder_ends(tmp_path, caplog, end, code):
    folder = tmp_path / "aligned"
    holder = _hold(folder, seconds=0.0, end=end)
    assert holder.wait(timeout=30) == code
    assert not (folder / LOCK_NAME).exists()
    with caplog.at_level(logging.INFO, logger="facelab.utils.lock"):
        with folder_lock(folder, "extract"):
            pass
    assert not caplog.records  # nothing stale to take over


def test_lock_released_on_exception_in_process(tmp_path):
    folder = tmp_path / "f"
    with pytest.raises(RuntimeError):
        with folder_lock(folder, "merge"):
            raise RuntimeError("boom")
    with folder_lock(folder, "merge"):
        assert (folder / LOCK_NAME).is_file()
    assert not (folder / LOCK_NAME).exists()


def test_clean_temps_removes_only_our_temporaries(tmp_path):
    ours = [tmp_path / ".tmp-ab_c1234.jpg", tmp_path / ".tmp-zz9yx8w7.png"]
    theirs = [tmp_path / ".tmp-notes.txt", tmp_path / ".tmp-ab_c1234.txt", tmp_path / "x.tmp-ab_c1234.jpg",
              tmp_path / "000001.jpg", tmp_path / ".tmp-short.jpg"]
    (tmp_path / ".tmp-dir12345.jpg").mkdir()
    for p in ours + theirs:
        p.write_bytes(b"x")
    removed = clean_temps(tmp_path, (".jpg", ".png"))
    assert sorted(removed) == sorted(ours)
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)
    assert (tmp_path / ".tmp-dir12345.jpg").is_dir()


def _frame_ws(ws, astronaut, n: int = 1):
    from facelab.workspace import write_image

    for i in range(n):
        write_image(ws.frames("dst") / f"{i + 1:06d}.png", astronaut[::4, ::4])
    return ws


def _cli(*args: str):
    from facelab.cli.root import cli

    return CliRunner().invoke(cli, list(args), obj={})


def test_cli_merge_into_a_locked_folder_exits_1_with_one_line(ws, astronaut):
    _frame_ws(ws, astronaut)
    holder = _hold(ws.merged)
    try:
        res = _cli("merge", "-w", str(ws.root), "--mode", "original", "--workers", "0", "--device", "cpu")
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and str(holder.pid) in lines[0], res.output
    assert str(ws.merged) in lines[0] and "Traceback" not in res.output
    assert not list(ws.merged.glob("*.png"))


def test_cli_merge_cleans_its_own_leftovers(ws, astronaut):
    _frame_ws(ws, astronaut, 2)
    ws.merged.mkdir(parents=True, exist_ok=True)
    stale = [ws.merged / ".tmp-k1ll3d00.png", ws.merged_mask / ".tmp-k1ll3d01.png"]
    user = [ws.merged / "notes.txt", ws.merged / ".tmp-mine.png", ws.frames("dst") / ".tmp-k1ll3d02.png"]
    for p in stale + user:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half")
    res = _cli("merge", "-w", str(ws.root), "--mode", "original", "--workers", "0", "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert not any(p.exists() for p in stale) and all(p.exists() for p in user)
    assert sorted(p.name for p in ws.merged.glob("0*.png")) == ["000001.png", "000002.png"]


def test_cli_extract_cleans_its_own_leftovers(ws, astronaut):
    _frame_ws(ws, astronaut)
    aligned = ws.aligned("dst")
    aligned.mkdir(parents=True, exist_ok=True)
    stale = [aligned / ".tmp-k1ll3d00.jpg", aligned / ".tmp-k1ll3d01.json"]
    user = [aligned / "keep.txt", aligned / ".tmp-mine.jpg"]
    for p in stale + user:
        p.write_bytes(b"half")
    res = _cli("extract", "data_dst", "-w", str(ws.root), "--workers", "0", "--size", "64")
    assert res.exit_code == 0, res.output
    assert not any(p.exists() for p in stale) and all(p.exists() for p in user)


def test_cli_encode_cleans_its_own_leftovers(ws, astronaut):
    from facelab.workspace import write_image

    for i in range(3):
        write_image(ws.merged / f"{i + 1:06d}.png", np.ascontiguousarray(astronaut[::8, ::8]))
    stale = ws.root / ".tmp-k1ll3d00.mp4"
    user = [ws.root / ".tmp-notes.txt", ws.root / "keep.mp4", ws.root / ".tmp-mine.mp4"]
    for p in [stale, *user]:
        p.write_bytes(b"half")
    res = _cli("video", "encode", "-w", str(ws.root), "--fps", "5")
    assert res.exit_code == 0, res.output
    assert not stale.exists() and all(p.exists() for p in user) and ws.result.is_file()


def test_video_extract_into_a_locked_folder_exits_1(ws, tmp_path):
    from facelab.video.synthetic import make_clip

    make_clip(ws.root / "data_dst.mp4", seconds=0.2, size=(32, 32), audio=False)
    holder = _hold(ws.frames("dst"))
    try:
        res = _cli("video", "extract", "data_dst", "-w", str(ws.root))
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 1 and str(holder.pid) in res.output, res.output
    assert not list(ws.frames("dst").glob("*.png"))


def test_mask_train_into_a_locked_model_folder_exits_1(ws):
    folder = ws.model("mask_bas")
    holder = _hold(folder)
    try:
        res = _cli("mask", "train", "-w", str(ws.root), "--method", "bas", "--device", "cpu")
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 1 and str(holder.pid) in res.output and str(folder) in res.output, res.output
    assert "Traceback" not in res.output
