"""``mask apply`` (which rewrites the face files in place) killed (SIGKILL) at a seeded random point and rerun
leaves the face files of an uninterrupted run, byte for byte: every face masked once, none corrupt, no temporary
or lock file anywhere."""

from __future__ import annotations

import random
import shutil
import signal

import pytest
import torch
from click.testing import CliRunner
from killing import kill_when, leftovers, replaced_at_least, start_forked, tree_bytes

from facelab.cli.root import cli
from facelab.masks.learner import MaskLearnConfig, create_learner
from facelab.masks.workspace_masks import save_mask_model
from facelab.workspace import Workspace
from facelab.workspace.faces import list_faces, read_meta

pytestmark = pytest.mark.fault

ARGS = ["mask", "apply", "--device", "cpu"]


@pytest.fixture
def base(tmp_path, aligned_faceset) -> Workspace:
    """data_dst/aligned holding the 16 real faces of the shared face set, and an (untrained) mask learner."""
    ws = Workspace(tmp_path / "base")
    ws.init()
    for faces in aligned_faceset:
        shutil.copytree(faces, ws.aligned("dst"), dirs_exist_ok=True)
    torch.manual_seed(0)
    cfg = MaskLearnConfig(size=32)
    save_mask_model(ws.model("mask_bas"), create_learner(cfg), None, 0.5, 0, cfg, {})
    return ws


def _apply(ws: Workspace) -> None:
    res = CliRunner().invoke(cli, [*ARGS, "-w", str(ws.root)], obj={})
    assert res.exit_code == 0, res.output


def test_killed_mask_apply_resumes_to_the_same_face_files(base, tmp_path):
    killed, clean = Workspace(tmp_path / "killed"), Workspace(tmp_path / "clean")
    for ws in (killed, clean):
        shutil.copytree(base.root, ws.root)
    _apply(clean)
    want = tree_bytes(clean.root)
    faces = list_faces(killed.aligned("dst"))
    assert len(faces) >= 12 and all(read_meta(p).mask("wsol") for p in list_faces(clean.aligned("dst")))
    rng = random.Random(29)
    at, delay = rng.randint(1, len(faces) - 2), rng.uniform(0.0, 0.02)
    code = kill_when(start_forked([*ARGS, "-w", str(killed.root)]), replaced_at_least(faces, at), delay)
    assert code == -signal.SIGKILL
    masked = sum(read_meta(p).mask("wsol") is not None for p in faces)
    assert at <= masked < len(faces)
    _apply(killed)
    assert tree_bytes(killed.root) == want
    assert leftovers(killed.root) == []
