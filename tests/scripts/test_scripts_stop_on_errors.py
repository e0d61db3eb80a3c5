"""The step scripts stop when a stage reports failed items (exit 1), so a batch never trains on a third of the
faces; `--keep-going` passed through lets a script accept the skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from facelab.workspace import Workspace, write_image
from facelab.workspace.faces import list_faces

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def _script(name: str, ws: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, WORKSPACE=str(ws), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    return subprocess.run(["bash", str(SCRIPTS / name), *args], env=env, capture_output=True, text=True, timeout=300)


def test_extract_script_stops_on_failed_frames_unless_keep_going(tmp_path: Path, astronaut: np.ndarray) -> None:
    ws = Workspace(tmp_path / "workspace")
    ws.init()
    write_image(ws.frames("src") / "000001.png", cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA))
    (ws.frames("src") / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    proc = _script("4_extract_faces_src.sh", ws.root, "--size", "64", "--workers", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "000002.png" in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in list_faces(ws.aligned("src"))] == ["000001_0.jpg"]  # finished what it could
    proc = _script("4_extract_faces_src.sh", ws.root, "--size", "64", "--workers", "0", "--keep-going")
    assert proc.returncode == 0, proc.stdout + proc.stderr
