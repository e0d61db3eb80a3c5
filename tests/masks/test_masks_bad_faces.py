"""One bad face file never stops `mask train` / `mask apply`: NaN in ``extra``, degenerate landmarks and a source
frame outside the workspace are counted, named skips; the others are used; the exit code says so."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from badfaces import DEGENERATE, NAN_EXTRA, outside, plant
from click.testing import CliRunner
from facekit import face_landmarks

from facelab.align import face_transform, transform_points
from facelab.cli.root import cli
from facelab.masks.learner import MaskLearnConfig, create_learner
from facelab.masks.workspace_masks import apply_masks, save_mask_model, train_mask_model
from facelab.workspace import write_image
from facelab.workspace.faces import FaceMeta, read_meta, write_face

pytestmark = pytest.mark.fault

SIZE = 96


@pytest.fixture(scope="module")
def astronaut_lm(astronaut):
    return face_landmarks(astronaut)


def write_faces(ws, image: np.ndarray, lm: np.ndarray, n: int = 6) -> list:
    """``n`` face files of ``image`` (shifted a little each) with their frames in data_dst/."""
    paths = []
    for i in range(n):
        shift = np.float32([[1, 0, 3 * i], [0, 1, -2 * i]])
        frame = cv2.warpAffine(image, shift, image.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
        lm_i = lm + [3 * i, -2 * i]
        write_image(ws.frames("dst") / f"{i + 1:06d}.png", frame)
        mat = face_transform(lm_i, SIZE, "whole_face")
        meta = FaceMeta.create(source_frame=f"data_dst/{i + 1:06d}.png", frame_size=frame.shape[1::-1],
                               face_index=0, face_type="whole_face", size=SIZE, box=(150, 80, 330, 280),
                               landmarks_frame=lm_i, landmarks_face=transform_points(lm_i, mat), matrix=mat,
                               detector="dlib-hog", landmarks_backend="dlib68")
        path = ws.aligned("dst") / f"{i + 1:06d}_0.png"
        write_face(path, cv2.warpAffine(frame, mat, (SIZE, SIZE), flags=cv2.INTER_AREA), meta)
        paths.append(path)
    return paths


@pytest.fixture
def masked_ws(ws, astronaut, astronaut_lm):
    """Six faces and an (untrained) mask learner; face 2 has NaN in ``extra``, face 3 degenerate landmarks."""
    paths = write_faces(ws, astronaut, astronaut_lm)
    torch.manual_seed(0)
    cfg = MaskLearnConfig(size=32)
    save_mask_model(ws.model("mask_bas"), create_learner(cfg), None, 0.5, 0, cfg, {})
    plant(paths[1], **NAN_EXTRA)
    plant(paths[2], **DEGENERATE)
    return ws


def _apply(ws, *extra: str):
    return CliRunner().invoke(cli, ["mask", "apply", "-w", str(ws.root), "--device", "cpu", *extra], obj={})


def test_apply_stage_skips_the_bad_faces_and_masks_the_others(masked_ws):
    bad = {i: (masked_ws.aligned("dst") / f"{i:06d}_0.png").read_bytes() for i in (2, 3)}
    res = apply_masks(masked_ws, "dst", "bas", "wsol", torch.device("cpu"))
    assert [f.split(":")[0] for f in res["failures"]] == ["000002_0.png", "000003_0.png"]
    assert res["errors"] == 2 and res["masked"] == 4
    for i in (1, 4, 5, 6):
        assert read_meta(masked_ws.aligned("dst") / f"{i:06d}_0.png").mask("wsol") is not None
    for i, before in bad.items():  # left as they were
        assert (masked_ws.aligned("dst") / f"{i:06d}_0.png").read_bytes() == before


def test_apply_command_exits_1_with_one_line_and_0_with_keep_going(masked_ws):
    res = _apply(masked_ws)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    last = [ln for ln in res.output.splitlines() if ln.strip()][-1]
    assert "000002_0.png" in last and "--keep-going" in last
    res = _apply(masked_ws, "--keep-going")
    assert res.exit_code == 0, res.output
    assert "000002_0.png" in res.output


def test_train_skips_faces_whose_frame_is_outside_and_trains_on_the_rest(ws, astronaut, astronaut_lm, tmp_path):
    paths = write_faces(ws, astronaut, astronaut_lm, n=7)
    away = tmp_path / "outside"
    away.mkdir()
    write_image(away / "000007.png", astronaut)
    plant(paths[4], **outside("../../../outside/000007.png"))
    plant(paths[5], **outside("/etc/passwd"))
    plant(paths[6], **outside("../outside/000007.png"))
    cfg = MaskLearnConfig(size=32, steps=2, batch_size=4)
    res = train_mask_model(ws, "dst", cfg, torch.device("cpu"))
    assert sorted(f.split(":")[0] for f in res["failures"]) == ["000005_0.png", "000006_0.png", "000007_0.png"]
    assert res["faces"] == 4 and all("workspace" in f.split(":", 1)[1] for f in res["failures"])
    cmd = CliRunner().invoke(cli, ["mask", "train", "-w", str(ws.root), "--device", "cpu", "--steps", "2",
                                   "--size", "32", "--batch", "4"], obj={})
    assert cmd.exit_code == 1 and "Traceback" not in cmd.output and "000006_0.png" in cmd.output
    cmd = CliRunner().invoke(cli, ["mask", "train", "-w", str(ws.root), "--device", "cpu", "--steps", "2",
                                   "--size", "32", "--batch", "4", "--keep-going"], obj={})
    assert cmd.exit_code == 0, cmd.output
