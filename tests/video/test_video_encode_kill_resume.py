"""``video encode`` killed (SIGKILL) mid-encode at a seeded random point and rerun leaves the workspace of an
uninterrupted run, byte for byte: the same result.mp4 and result_mask.mp4 (x264 and the mp4 muxer are
deterministic for the same frames and settings) and no temporary or lock file anywhere."""

from __future__ import annotations

import random
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from killing import kill_when, leftovers, start_forked, tree_bytes

from facelab.cli.root import cli
from facelab.utils.atomic import TMP_PREFIX
from facelab.video import extract_frames
from facelab.video.synthetic import make_clip
from facelab.workspace import Workspace, read_image, write_image

pytestmark = pytest.mark.fault

FRAMES = 150  # enough that each output takes longer to encode than the kill takes to land
ARGS = ["video", "encode"]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A workspace with data_dst.mp4 (picture and tone) and its frames as merged/ and merged_mask/."""
    ws = Workspace(tmp_path_factory.mktemp("encode_kill") / "base")
    ws.init()
    make_clip(ws.root / "data_dst.mp4", seconds=FRAMES / 30, fps=30, size=(320, 240), audio=True)
    extract_frames(ws.root / "data_dst.mp4", ws.merged)
    for frame in sorted(ws.merged.glob("*.png")):
        write_image(ws.merged_mask / frame.name, np.where(read_image(frame)[:, :, 0] > 127, 255, 0).astype(np.uint8))
    return ws.root


def _encode(root: Path) -> None:
    res = CliRunner().invoke(cli, [*ARGS, "-w", str(root)], obj={})
    assert res.exit_code == 0, res.output


def test_killed_encode_resumes_to_the_same_bytes(base, tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for root in (killed, clean):
        shutil.copytree(base, root)
    _encode(clean)
    want = tree_bytes(clean)
    assert {"result.mp4", "result_mask.mp4"} <= set(want)
    # the n-th output under way (1: result.mp4, 2: result_mask.mp4), then a little later
    rng = random.Random(23)
    nth, delay = rng.randint(1, 2), rng.uniform(0.0, 0.03)
    seen: set[str] = set()

    def encoding() -> bool:
        seen.update(p.name for p in killed.glob(f"{TMP_PREFIX}*.mp4"))
        return len(seen) >= nth

    code = kill_when(start_forked([*ARGS, "-w", str(killed)]), encoding, delay)
    assert code == -signal.SIGKILL
    assert not (killed / "result_mask.mp4").exists()  # killed before the last output was done
    assert [n for n in leftovers(killed) if n.endswith(".mp4")]  # and the output under way left its temporary
    _encode(killed)
    assert tree_bytes(killed) == want
    assert leftovers(killed) == []
