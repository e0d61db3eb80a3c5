"""Occluder pasting, hull-minus-map maths, and `mask train/apply/remove` on a workspace of real faces."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from facelab.align import face_transform, transform_points
from facelab.cli.root import cli
from facelab.masks import MASK_SOURCES
from facelab.masks.learner import hull_minus, mask_iou, pick_threshold, synth_batch
from facelab.masks.occluders import paste_occluder
from facelab.workspace.faces import FaceMeta, read_face, read_meta, write_face


def _landmarks(image: np.ndarray) -> np.ndarray:
    import dlib
    import face_recognition_models

    det = dlib.get_frontal_face_detector()
    pred = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    r = max(det(image, 1), key=lambda r: r.width())
    return np.array([[p.x, p.y] for p in pred(image, r).parts()], np.float64)


@pytest.fixture(scope="module")
def real_faces(astronaut, grace_hopper):
    """(image, frame landmarks) of the two package photos."""
    return [(img, _landmarks(img)) for img in (astronaut, grace_hopper)]


def _write_workspace(ws, real_faces, size=128):
    for i in range(6):
        img, lm = real_faces[i % 2]
        if i >= 2:  # small shifts make more distinct crops
            shift = np.float32([[1, 0, 3 * i], [0, 1, -2 * i]])
            img = cv2.warpAffine(img, shift, img.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
            lm = lm + [3 * i, -2 * i]
        mat = face_transform(lm, size, "whole_face")
        face = cv2.warpAffine(img, mat, (size, size), flags=cv2.INTER_AREA)
        meta = FaceMeta.create(source_frame=f"data_dst/{i:06d}.png", frame_size=img.shape[1::-1], face_index=0,
                               face_type="whole_face", size=size, box=(0, 0, 10, 10), landmarks_frame=lm,
                               landmarks_face=transform_points(lm, mat), matrix=mat, detector="dlib-hog",
                               landmarks_backend="dlib68")
        write_face(ws.aligned("dst") / f"{i:06d}_0.png", face, meta)


def test_paste_occluder_known_mask_and_coverage(astronaut):
    rng = np.random.default_rng(0)
    face = np.zeros((64, 64, 3), np.float32)
    hull = np.zeros((64, 64), np.float32)
    hull[10:54, 14:50] = 1
    src = [astronaut.astype(np.float32) / 255.0]
    for _ in range(5):
        img, occ = paste_occluder(face, hull, src, rng, cover=(0.1, 0.45))
        share = (occ * hull).sum() / hull.sum()
        assert 0.1 <= share <= 0.45
        assert np.all(img[occ == 0] == 0)  # pixels off the occluder are untouched
        assert img[occ == 1].max() > 0
    x, y, occs, hulls = synth_batch(face[None], hull[None], src, rng, 16, occluded_share=0.5)
    assert x.shape == (16, 64, 64, 3) and set(y.tolist()) <= {0, 1}
    assert all(bool(o.any()) == bool(lab) for o, lab in zip(occs, y, strict=True))
    real = np.ones((1, 64, 64, 3), np.float32)  # a face a person tagged "occluded": label 1, mask unknown
    x, y, occs, _ = synth_batch(face[None], hull[None], src, rng, 40, occluded_share=1.0, real_occluded=real)
    from_real = x.reshape(40, -1).min(1) == 1.0
    assert 5 < from_real.sum() < 35 and (y == 1).all() and not occs[from_real].any()


def test_hull_minus_iou_and_threshold():
    hull = np.zeros((1, 4, 4), np.float32)
    hull[0, :, :2] = 1  # 8 px
    score = np.zeros((1, 4, 4), np.float32)
    score[0, :2, 0] = 0.9  # an occluder on 2 hull pixels
    target = hull.copy()
    target[0, :2, 0] = 0
    assert mask_iou(hull_minus(hull, score, 0.5), target)[0] == 1.0
    assert mask_iou(hull, target)[0] == pytest.approx(6 / 8)
    assert pick_threshold(score, hull, target) < 0.9
    assert mask_iou(np.zeros((1, 2, 2)), np.zeros((1, 2, 2)))[0] == 1.0


def test_mask_train_apply_remove_round_trip(ws, real_faces):
    _write_workspace(ws, real_faces)
    runner = CliRunner()
    base = ["--workspace", str(ws.root)]
    tags = ws.root / "hand.txt"
    tags.write_text("# faces with a hand over them\n000005_0.png\n")
    res = runner.invoke(cli, ["mask", "train", *base, "--method", "bas", "--steps", "6", "--refine-steps", "2",
                              "--batch", "4", "--device", "cpu", "--occluded-list", str(tags)])
    assert res.exit_code == 0, res.output
    assert json.loads((ws.model("mask_bas") / "config.json").read_text())["tagged_occluded"] == 1
    assert (ws.model("mask_bas") / "ckpt_last.pt").is_file() and (ws.model("mask_bas") / "config.json").is_file()
    before = (ws.aligned("dst") / "000000_0.png").read_bytes()
    res = runner.invoke(cli, ["mask", "apply", *base, "--side", "dst", "--name", "wsol", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    for p in sorted(ws.aligned("dst").glob("*.png")):
        face = read_face(p)
        rec = face.meta.mask("wsol")
        assert rec is not None and rec.source == "bas"
        m = rec.to_face(face.meta.size)
        hull = MASK_SOURCES.create("hull", face.meta)
        assert m.shape == (128, 128)
        assert float((m * (1 - hull)).max()) < 0.5  # never outside the landmark hull
        assert float(m.sum()) > 0.3 * float(hull.sum())
    assert np.array_equal(read_face(ws.aligned("dst") / "000000_0.png").image,
                          cv2.imdecode(np.frombuffer(before, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1])
    res = runner.invoke(cli, ["mask", "apply", *base, "--side", "dst", "--name", "wsol", "--device", "cpu"])
    assert "skipped" in res.output and "6" in res.output  # resume: nothing redone
    res = runner.invoke(cli, ["mask", "remove", *base, "--side", "dst", "--name", "wsol"])
    assert res.exit_code == 0, res.output
    assert all(read_meta(p).mask("wsol") is None for p in ws.aligned("dst").glob("*.png"))


def test_mask_errors_are_one_line(ws, real_faces):
    runner = CliRunner()
    res = runner.invoke(cli, ["mask", "apply", "--workspace", str(ws.root), "--device", "cpu"])
    assert res.exit_code == 1 and "mask train" in res.output
    res = runner.invoke(cli, ["mask", "train", "--workspace", str(ws.root), "--device", "cpu"])
    assert res.exit_code == 1 and "extract" in res.output
    _write_workspace(ws, real_faces)
    (ws.root / "tags.txt").write_text("nope.png\n")
    res = runner.invoke(cli, ["mask", "train", "--workspace", str(ws.root), "--device", "cpu", "--steps", "1",
                              "--occluded-list", str(ws.root / "tags.txt")])
    assert res.exit_code == 1 and "nope.png" in res.output


def test_grow_and_pick_setting_prefers_a_dilation_that_removes_the_occluder():
    from facelab.masks.learner import grow, occluder_kept, pick_setting

    hulls = np.zeros((2, 16, 16), np.float32)
    hulls[:, 2:14, 2:14] = 1
    occs = np.zeros_like(hulls)
    occs[1, 4:10, 4:10] = 1  # image 1 is occluded, image 0 clean
    scores = np.zeros_like(hulls)
    scores[1, 5:9, 5:9] = 0.8  # the map finds the occluder's core only: one pixel short on every side
    g = grow(scores, 1)
    assert g[1, 4:10, 4:10].min() == pytest.approx(0.8) and g[1, 3, 3] == 0
    t, d = pick_setting(scores, hulls, occs)
    assert d == 1 and t < 0.8
    pred = hull_minus(hulls, grow(scores, d), t)
    assert occluder_kept(pred, hulls, occs)[1] == 0.0
    assert mask_iou(pred, hulls * (1 - occs)).tolist() == [1.0, 1.0]
