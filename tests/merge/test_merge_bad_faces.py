"""One bad face file never stops merge: degenerate or huge landmarks, a source frame outside the workspace and an
unreadable frame are counted, named skips; every other frame is merged; the exit code says so."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from badfaces import DEGENERATE, HUGE, outside, plant  # noqa: E402
from merge_testkit import detect_landmarks, make_clip  # noqa: E402

from facelab.cli.root import cli  # noqa: E402
from facelab.merge.config import MergeConfig  # noqa: E402
from facelab.merge.predict import IdentityPredictor  # noqa: E402
from facelab.merge.stage import merge_frames  # noqa: E402
from facelab.workspace import read_image, write_image  # noqa: E402

pytestmark = pytest.mark.fault

BAD = ("000002_0.jpg", "000003_0.jpg", "000004_0.jpg", "000005_0.jpg")


@pytest.fixture
def bad_ws(ws, astronaut, tmp_path):
    """Seven frames with a face each: four face files are hostile, frame 6 cannot be decoded."""
    frames = make_clip(ws, astronaut, 7, detect_landmarks(astronaut))
    away = tmp_path / "outside"
    away.mkdir()
    write_image(away / "000004.png", read_image(frames[3]))
    aligned = ws.aligned("dst")
    plant(aligned / BAD[0], **DEGENERATE)
    plant(aligned / BAD[1], **HUGE)
    plant(aligned / BAD[2], **outside("../outside/000004.png"))
    plant(aligned / BAD[3], **outside(str(away / "000005.png")))
    frames[5].write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return ws


def _merge(ws, *extra: str):
    return CliRunner().invoke(cli, ["merge", "-w", str(ws.root), "--mode", "original", "--workers", "0",
                                    "--device", "cpu", *extra], obj={})


def test_merge_stage_counts_and_names_bad_items_and_merges_the_rest(bad_ws):
    ws = bad_ws
    res = merge_frames(ws, None, MergeConfig(mode="original", workers=0), predictor=IdentityPredictor(64, "whole_face"))
    names = [f.split(":")[0] for f in res.failures]
    assert sorted(names) == sorted([*BAD, "000006.png"])
    assert res.bad_face_files == 4
    assert "outside the workspace" in res.failures[names.index("000004_0.jpg")]
    merged = sorted(p.name for p in ws.merged.glob("*.png"))
    assert merged == ["000001.png", "000002.png", "000003.png", "000004.png", "000005.png", "000007.png"]
    assert res.merged + res.copied_no_face == 6


def test_merge_command_exits_1_with_one_line_naming_the_failures(bad_ws):
    res = _merge(bad_ws)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    last = [ln for ln in res.output.splitlines() if ln.strip()][-1]
    assert "5 " in last and "000002_0.jpg" in last and "--keep-going" in last
    assert (bad_ws.merged / "000007.png").is_file()  # finished what it could
    again = _merge(bad_ws)  # a rerun still says so
    assert again.exit_code == 1 and "Traceback" not in again.output


def test_merge_keep_going_exits_0_and_still_names_them(bad_ws):
    res = _merge(bad_ws, "--keep-going")
    assert res.exit_code == 0, res.output
    assert "000003_0.jpg" in res.output and "Traceback" not in res.output


def test_merge_without_bad_items_exits_0(ws, astronaut):
    make_clip(ws, astronaut, 2, detect_landmarks(astronaut))
    res = _merge(ws)
    assert res.exit_code == 0, res.output
    assert np.array_equal(read_image(ws.merged / "000001.png").shape, (512, 512, 3))
