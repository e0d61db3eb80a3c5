"""``merge`` killed at a seeded random point and rerun gives the very bytes of an uninterrupted run."""

from __future__ import annotations

import random
import shutil
import signal
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from killing import files_at_least, kill_when, leftovers, start_forked

sys.path.insert(0, str(Path(__file__).parent))
from merge_testkit import detect_landmarks, make_clip  # noqa: E402

from facelab.cli.root import cli  # noqa: E402
from facelab.workspace import Workspace  # noqa: E402

pytestmark = pytest.mark.fault

TINY = {"resolution": 32, "ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 8, "archi": "df"}
FRAMES = 8


def _outputs(ws: Workspace) -> dict[str, bytes]:
    """Merged frames and masks (merge.json holds the time of the run and is left out)."""
    return {f"{p.parent.name}/{p.name}": p.read_bytes() for folder in (ws.merged, ws.merged_mask)
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != "merge.json"}


def test_killed_merge_resumes_to_the_same_bytes(tmp_path, astronaut):
    from facelab.models import create_model
    from facelab.train.checkpoint import make_checkpoint, save_checkpoint

    base = Workspace(tmp_path / "base")
    torch.manual_seed(0)
    save_checkpoint(base.model("tiny"), make_checkpoint(create_model("saehd", TINY), {}, 0, {}), backups=0)
    small = astronaut[::2, ::2].copy()
    make_clip(base, small, FRAMES, detect_landmarks(small), faces_at=set(range(FRAMES)) - {4})
    killed, clean = Workspace(tmp_path / "killed"), Workspace(tmp_path / "clean")
    for ws in (killed, clean):
        shutil.copytree(base.root, ws.root)
    args = ["merge", "--device", "cpu", "--workers", "0", "--batch", "1"]
    at = random.Random(11).randint(1, FRAMES // 2)
    proc = start_forked([*args, "-w", str(killed.root)])
    assert kill_when(proc, files_at_least(killed.merged, "0*.png", at)) == -signal.SIGKILL
    assert len(list(killed.merged.glob("0*.png"))) < FRAMES
    for ws in (killed, clean):
        res = CliRunner().invoke(cli, [*args, "-w", str(ws.root)], obj={})
        assert res.exit_code == 0, res.output
    out = _outputs(clean)
    assert len(out) == 2 * FRAMES
    assert _outputs(killed) == out
    assert leftovers(killed.root) == []
