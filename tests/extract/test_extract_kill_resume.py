"""``extract`` killed (SIGKILL) at a seeded random point, or between the two faces of one frame, and then rerun
writes the very face files of an uninterrupted run: none missing, none doubled, no temporaries, no lock left."""

from __future__ import annotations

import os
import random
import shutil
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from killing import files_at_least, kill_when, leftovers, start_forked

from facelab.cli.root import cli
from facelab.workspace import Workspace, write_image

pytestmark = pytest.mark.fault

FRAMES = 5
ARGS = ["extract", "data_dst", "--size", "64", "--workers", "0"]


def _pair(astronaut: np.ndarray, grace: np.ndarray, height: int = 224) -> np.ndarray:
    """Astronaut (left) and Grace Hopper (right) side by side: two faces dlib finds in one frame."""
    a = cv2.resize(astronaut, (height, height), interpolation=cv2.INTER_AREA)
    g = cv2.resize(grace, (round(grace.shape[1] * height / grace.shape[0]), height), interpolation=cv2.INTER_AREA)
    return np.hstack([a, g])


@pytest.fixture(scope="module")
def base(tmp_path_factory, astronaut, grace_hopper) -> Path:
    """A workspace holding FRAMES two-face frames in data_dst/."""
    ws = Workspace(tmp_path_factory.mktemp("extract_kill") / "base")
    ws.init()
    pair = _pair(astronaut, grace_hopper)
    for i in range(FRAMES):
        write_image(ws.frames("dst") / f"{i + 1:06d}.png", np.roll(pair, 3 * i, axis=1))
    return ws.root


def _extract(root: Path) -> None:
    res = CliRunner().invoke(cli, [*ARGS, "-w", str(root)], obj={})
    assert res.exit_code == 0, res.output


def _aligned(root: Path) -> dict[str, bytes]:
    """Every file in data_dst/aligned/ (face files and the resume record) with its bytes."""
    folder = Workspace(root).aligned("dst")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def clean(base, tmp_path_factory) -> dict[str, bytes]:
    """The aligned folder of an uninterrupted run."""
    root = tmp_path_factory.mktemp("extract_clean") / "ws"
    shutil.copytree(base, root)
    _extract(root)
    out = _aligned(root)
    assert sum(name.endswith("_1.jpg") for name in out) >= 3  # most frames hold two faces
    return out


def _kill_after_first_face_of(frame: str) -> None:
    """In the forked run: SIGKILL itself right after writing the first face file of ``frame`` (so the frame's
    other face is never written)."""
    import facelab.extract.writer as writer

    real = writer.write_face

    def write_face(path, image, meta, **kw):
        real(path, image, meta, **kw)
        if meta.source_frame.endswith(frame):
            os.kill(os.getpid(), signal.SIGKILL)

    writer.write_face = write_face


def _resume_matches(root: Path, clean: dict[str, bytes]) -> None:
    aligned = Workspace(root).aligned("dst")
    assert (aligned / ".facelab.lock").exists()  # the killed run's lock: the rerun takes it over
    _extract(root)
    assert _aligned(root) == clean
    assert leftovers(root) == []


def test_killed_at_a_random_point_resumes_to_the_same_faces(base, clean, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(base, root)
    faces = sum(name.endswith(".jpg") for name in clean)
    at = random.Random(5).randint(1, faces - 1)
    proc = start_forked([*ARGS, "-w", str(root)])
    assert kill_when(proc, files_at_least(Workspace(root).aligned("dst"), "0*_*.jpg", at)) == -signal.SIGKILL
    left = sorted(p.name for p in Workspace(root).aligned("dst").glob("0*_*.jpg"))
    assert at <= len(left) < faces
    _resume_matches(root, clean)


def test_killed_between_the_faces_of_one_frame_resumes_to_the_same_faces(base, clean, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(base, root)
    proc = start_forked([*ARGS, "-w", str(root)], setup=lambda: _kill_after_first_face_of("000002.png"))
    proc.join(60)
    assert proc.exitcode == -signal.SIGKILL
    left = {p.name for p in Workspace(root).aligned("dst").glob("000002_*.jpg")}
    assert len(left) == 1 and {"000002_0.jpg", "000002_1.jpg"} <= set(clean)  # one of the frame's two faces
    _resume_matches(root, clean)
