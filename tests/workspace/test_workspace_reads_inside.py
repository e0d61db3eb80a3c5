"""No stage opens a file outside the workspace because a face file says so: ``open`` calls are watched (the
"open" audit event) while merge and the mask stages run on face files whose source frame points outside."""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
import torch
from badfaces import outside, plant
from click.testing import CliRunner
from facekit import face_landmarks

from facelab.cli.root import cli
from facelab.workspace import read_image, write_image

sys.path.insert(0, str(Path(__file__).parents[1] / "masks"))
sys.path.insert(0, str(Path(__file__).parents[1] / "merge"))
from merge_testkit import make_clip  # noqa: E402
from test_masks_bad_faces import write_faces  # noqa: E402

pytestmark = pytest.mark.fault

_WATCH: list[list[str]] = []  # the open() paths of the running watch (a hook cannot be removed once added)


def _hook(event: str, args: tuple) -> None:
    if event == "open" and _WATCH and isinstance(args[0], (str, bytes, os.PathLike)):
        _WATCH[-1].append(os.fsdecode(args[0]))


sys.addaudithook(_hook)


def opened_during(run) -> list[Path]:
    """Absolute paths of every file ``run()`` opened (through Python)."""
    _WATCH.append([])
    try:
        run()
    finally:
        paths = _WATCH.pop()
    return [Path(os.path.abspath(p)) for p in paths]


def library_roots() -> list[Path]:
    """Where libraries may read: the Python install, the venv, site-packages, the temp folder, the kernel's, the
    project's source."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages(),
             *(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")),
             tempfile.gettempdir(), str(Path(torch.__file__).parents[1]), "/dev", "/proc", "/sys",
             str(Path(__file__).parents[2])}  # the project's own source (warnings read their source lines)
    return [Path(r).resolve() for r in roots if r]


def outside_reads(opened: list[Path], ws_root: Path, test_dir: Path) -> list[Path]:
    """Opened paths that are neither in the workspace nor in a library folder; anything else in the test's own
    folder (where the planted outside frames live) counts as outside even though it is under the temp folder."""
    ws_root, test_dir = ws_root.resolve(), test_dir.resolve()
    roots = library_roots()
    bad = []
    for p in opened:
        real = p.resolve()
        if real.is_relative_to(ws_root):
            continue
        if real.is_relative_to(test_dir) or not any(real.is_relative_to(r) for r in roots):
            bad.append(real)
    return bad


@pytest.fixture
def hostile_ws(ws, astronaut, tmp_path):
    """Destination frames and face files (whole face, 96 px) where three face files point outside the workspace:
    to a real frame beside it, through ``..`` and by an absolute path, and at /etc/passwd."""
    away = tmp_path / "outside"
    away.mkdir()
    lm = face_landmarks(astronaut)
    paths = write_faces(ws, astronaut, lm, n=7)
    for i in (4, 5, 6):
        write_image(away / f"{i:06d}.png", read_image(ws.frames("dst") / f"{i:06d}.png"))
    plant(paths[3], **outside("../outside/000004.png"))
    plant(paths[4], **outside(str(away / "000005.png")))
    plant(paths[5], **outside("/etc/passwd"))
    return ws


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args), obj={})


def test_mask_train_and_apply_open_nothing_outside_the_workspace(hostile_ws, tmp_path):
    ws = hostile_ws
    base = ["-w", str(ws.root), "--device", "cpu"]
    results = []
    opened = opened_during(lambda: results.append(_cli("mask", "train", *base, "--steps", "2", "--size", "32",
                                                       "--batch", "4", "--keep-going")))
    opened += opened_during(lambda: results.append(_cli("mask", "apply", *base, "--keep-going")))
    assert [r.exit_code for r in results] == [0, 0], [r.output for r in results]
    assert any(p.is_relative_to(ws.root.resolve()) for p in opened)  # the watch saw the workspace reads
    assert outside_reads(opened, ws.root, tmp_path) == []
    assert Path("/etc/passwd") not in opened


def test_merge_opens_nothing_outside_the_workspace(ws, astronaut, tmp_path):
    frames = make_clip(ws, astronaut, 4, face_landmarks(astronaut))
    away = tmp_path / "outside"
    away.mkdir()
    for f in frames:
        write_image(away / f.name, read_image(f))
    plant(ws.aligned("dst") / "000002_0.jpg", **outside("../outside/000002.png"))
    plant(ws.aligned("dst") / "000003_0.jpg", **outside(str(away / "000003.png")))
    plant(ws.aligned("dst") / "000004_0.jpg", **outside("/etc/passwd"))
    results = []
    opened = opened_during(lambda: results.append(_cli("merge", "-w", str(ws.root), "--mode", "original",
                                                       "--workers", "0", "--device", "cpu")))
    assert results[0].exit_code == 1 and "000003_0.jpg" in results[0].output, results[0].output
    assert outside_reads(opened, ws.root, tmp_path) == []
    assert any(p.name == "000001.png" for p in opened)


def test_the_watch_sees_a_read_outside(tmp_path, ws):
    away = tmp_path / "outside"
    away.mkdir()
    (away / "x.txt").write_text("x")
    opened = opened_during(lambda: (away / "x.txt").read_text())
    assert outside_reads(opened, ws.root, tmp_path) == [(away / "x.txt").resolve()]
