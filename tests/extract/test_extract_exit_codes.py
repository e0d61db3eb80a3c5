"""Errors are never reported as success: an extract run in which frames failed (a full disk, a corrupt frame)
counts and names them, finishes the others and exits 1, or 0 when told --keep-going."""

from __future__ import annotations

import errno

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from facelab.cli.root import cli
from facelab.extract import stage as extract_stage
from facelab.workspace import write_image
from facelab.workspace.faces import list_faces

pytestmark = pytest.mark.fault


@pytest.fixture
def src_ws(ws, astronaut):
    """Three frames of the astronaut in data_src/ and one that cannot be decoded."""
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    for i in range(3):
        write_image(ws.frames("src") / f"{i + 1:06d}.png", np.roll(small, 4 * i, axis=1))
    (ws.frames("src") / "000004.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return ws


@pytest.fixture
def full_disk(monkeypatch):
    """Writing the faces of frame 000002 fails as on a full disk."""
    real = extract_stage.write_faces

    def write_faces(image, faces, source_frame, *args, **kwargs):
        if source_frame.endswith("000002.png"):
            raise OSError(errno.ENOSPC, "No space left on device", "data_src/aligned/000002_0.jpg")
        return real(image, faces, source_frame, *args, **kwargs)

    monkeypatch.setattr(extract_stage, "write_faces", write_faces)


def _extract(ws, *extra: str):
    return CliRunner().invoke(cli, ["extract", "--side", "src", "-w", str(ws.root), "--size", "64", "--workers", "0",
                                    *extra], obj={})


def test_failed_frames_make_extract_exit_1_with_one_line(src_ws, full_disk):
    res = _extract(src_ws)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    last = [ln for ln in res.output.splitlines() if ln.strip()][-1]
    assert "2 failed" in last and "000002.png" in last and "000004.png" in last and "--keep-going" in last
    assert "No space left on device" in last
    assert sorted(p.name for p in list_faces(src_ws.aligned("src"))) == ["000001_0.jpg", "000003_0.jpg"]


def test_keep_going_exits_0_and_a_rerun_retries_the_failed_frames(src_ws, full_disk, monkeypatch):
    res = _extract(src_ws, "--keep-going")
    assert res.exit_code == 0, res.output
    assert "000002.png" in res.output
    monkeypatch.undo()  # the disk has room again
    res = _extract(src_ws)
    assert res.exit_code == 1 and "1 failed" in res.output  # the corrupt frame is still named
    assert "000002_0.jpg" in {p.name for p in list_faces(src_ws.aligned("src"))}
