"""The merge stage on real faces: paste-back accuracy, every mode and mask mode, copies, resume, ranges."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from merge_testkit import detect_landmarks, make_clip  # noqa: E402

from facelab.merge.config import MODES, MergeConfig, MergeSettings, settings_from_dict  # noqa: E402
from facelab.merge.predict import IdentityPredictor, ModelPredictor  # noqa: E402
from facelab.merge.stage import merge_frames  # noqa: E402
from facelab.workspace import MaskRecord, read_face, read_image, read_meta, update_meta, write_image  # noqa: E402

TINY = {"resolution": 32, "ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 8, "archi": "df"}


@pytest.fixture(scope="module")
def astro_lm(astronaut) -> np.ndarray:
    return detect_landmarks(astronaut)


@pytest.fixture(scope="module")
def tiny_predictor() -> ModelPredictor:
    from facelab.models import create_model

    torch.manual_seed(0)
    return ModelPredictor(create_model("saehd", TINY), torch.device("cpu"))


def test_raw_rgb_paste_back_of_unchanged_face_reproduces_frame(ws, astronaut, astro_lm):
    """Crop -> identity -> paste back with the inverse transform gives the frame back, closer than JPEG noise."""
    frames = make_clip(ws, astronaut, 1, astro_lm)
    face = read_face(ws.aligned("dst") / "000001_0.jpg")
    crop = cv2.warpAffine(astronaut, face.meta.mat, (256, 256), flags=cv2.INTER_LANCZOS4,
                          borderMode=cv2.BORDER_REPLICATE)
    jpeg_noise = np.abs(crop.astype(np.float64) - face.image).mean()
    assert 0.2 < jpeg_noise < 4.0  # the face file is a real JPEG of this very crop

    res = merge_frames(ws, None, MergeConfig(mode="raw-rgb", workers=0), predictor=IdentityPredictor(256, "whole_face"))
    assert (res.merged, res.faces) == (1, 1)
    out = read_image(ws.merged / "000001.png").astype(np.float64)
    mask = read_image(ws.merged_mask / "000001.png", grey=True)
    inside = cv2.erode(mask, np.ones((5, 5), np.uint8)) > 0
    assert 0.05 < inside.mean() < 0.5  # the pasted square covers the face, not the frame
    err = np.abs(out - read_image(frames[0])).max(axis=2)
    assert err[inside].mean() < jpeg_noise
    assert np.percentile(err[inside], 99) <= 8
    assert np.array_equal(out[mask == 0], astronaut[mask == 0].astype(np.float64))  # untouched outside


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_runs_on_a_tiny_model(ws, astronaut, astro_lm, tiny_predictor, mode):
    make_clip(ws, astronaut, 2, astro_lm)
    cfg = MergeConfig(mode=mode, mask_mode="learned-prd*learned-dst", workers=0, erode=8, blur=40, motion_blur=60,
                      sharpen_mode="gaussian", sharpen_amount=30, color="rct")
    res = merge_frames(ws, None, cfg, predictor=tiny_predictor)
    assert res.merged == 2
    out = read_image(ws.merged / "000002.png")
    frame = read_image(ws.frames("dst") / "000002.png")
    if mode == "raw-predict":
        assert out.shape == (32, 32, 3)
        return
    assert out.shape == frame.shape
    changed = np.abs(out.astype(int) - frame).max(axis=2) > 0
    if mode == "original":
        assert not changed.any()
    else:
        ys, xs = np.nonzero(changed)
        lm = astro_lm + np.array([1.0, 0.0])
        assert changed.any()
        assert xs.min() >= lm[:, 0].min() - 80 and xs.max() <= lm[:, 0].max() + 80  # only around the face
        assert ys.min() >= lm[:, 1].min() - 120 and ys.max() <= lm[:, 1].max() + 80


MASK_MODES_TO_RUN = ["full", "dst", "learned-prd", "learned-dst", "learned-prd*learned-dst",
                     "learned-prd+learned-dst", "stored:wsol", "stored:wsol*learned-prd",
                     "stored:wsol*learned-prd*learned-dst"]


def test_every_mask_mode_runs_and_stored_masks_are_used(ws, astronaut, astro_lm, tiny_predictor):
    make_clip(ws, astronaut, 1, astro_lm)
    path = ws.aligned("dst") / "000001_0.jpg"
    meta = read_meta(path)
    half = np.zeros((64, 64), np.float32)
    half[:, :32] = 1.0  # left half of the face file
    update_meta(path, meta.with_mask(MaskRecord.from_array("wsol", "wsol", half, meta.size)))
    areas = {}
    for mm in MASK_MODES_TO_RUN:
        merge_frames(ws, None, MergeConfig(mask_mode=mm, workers=0, blur=0, color="none"),
                     predictor=tiny_predictor, force=True)
        mask = read_image(ws.merged_mask / "000001.png", grey=True) > 0
        areas[mm] = mask.sum()
        assert mask.any(), mm
    assert areas["full"] > 1.3 * areas["dst"] and areas["full"] > 1.5 * areas["stored:wsol"]
    assert areas["stored:wsol*learned-prd"] <= areas["stored:wsol"] * 1.01
    # the stored mask is the left half of the face file: its pixels lie left of the face centre
    merge_frames(ws, None, MergeConfig(mask_mode="stored:wsol", workers=0, blur=0, color="none"),
                 predictor=tiny_predictor, force=True)
    ys, xs = np.nonzero(read_image(ws.merged_mask / "000001.png", grey=True) > 127)
    assert xs.max() < astro_lm[27:36, 0].mean() + 3


def test_missing_stored_mask_is_a_clear_error(ws, astronaut, astro_lm, tiny_predictor):
    from facelab.errors import FacelabError

    make_clip(ws, astronaut, 1, astro_lm)
    with pytest.raises(FacelabError, match="no stored mask 'sat'"):
        merge_frames(ws, None, MergeConfig(mask_mode="stored:sat", workers=0), predictor=tiny_predictor)


def test_frames_without_faces_are_byte_identical_copies_and_counted(ws, astronaut, astro_lm, tiny_predictor):
    frames = make_clip(ws, astronaut, 4, astro_lm, faces_at={1})
    jpg = ws.frames("dst") / "000005.jpg"
    write_image(jpg, astronaut)  # a JPEG frame without faces is re-encoded losslessly
    res = merge_frames(ws, None, MergeConfig(workers=0), predictor=tiny_predictor)
    assert (res.frames, res.merged, res.copied_no_face) == (5, 1, 4)
    for i in (0, 2, 3):
        assert (ws.merged / frames[i].name).read_bytes() == frames[i].read_bytes()
        assert not read_image(ws.merged_mask / frames[i].name, grey=True).any()
    assert np.array_equal(read_image(ws.merged / "000005.png"), read_image(jpg))
    assert (ws.merged / "000002.png").read_bytes() != frames[1].read_bytes()


def test_resume_skips_finished_frames_and_force_redoes_them(ws, astronaut, astro_lm, tiny_predictor):
    make_clip(ws, astronaut, 3, astro_lm)
    first = merge_frames(ws, None, MergeConfig(workers=0), predictor=tiny_predictor)
    assert first.merged == 3
    done = ws.merged / "000002.png"
    stamp = done.stat().st_mtime_ns
    (ws.merged / "000003.png").unlink()
    calls = []
    second = merge_frames(ws, None, MergeConfig(workers=0), predictor=tiny_predictor,
                          progress=lambda n=1, **kw: calls.append(n))
    assert (second.merged, second.skipped_done) == (1, 2)
    assert done.stat().st_mtime_ns == stamp and (ws.merged / "000003.png").exists()
    assert sum(calls) == 3
    third = merge_frames(ws, None, MergeConfig(workers=0), predictor=tiny_predictor, force=True)
    assert (third.merged, third.skipped_done) == (3, 0)


def test_frame_range_overrides_apply_only_inside_the_range(ws, astronaut, astro_lm, tiny_predictor):
    make_clip(ws, astronaut, 3, astro_lm)
    settings = settings_from_dict({"defaults": {"mode": "overlay", "workers": 0, "color": "none"},
                                   "ranges": [{"frames": "2-2", "mode": "original"}]})
    merge_frames(ws, None, settings, predictor=tiny_predictor)
    for i, expect_changed in ((1, True), (2, False), (3, True)):
        out = read_image(ws.merged / f"{i:06d}.png")
        frame = read_image(ws.frames("dst") / f"{i:06d}.png")
        assert bool(np.any(out != frame)) is expect_changed, i


def test_worker_processes_give_the_same_frames_as_inline(ws, astronaut, astro_lm, tiny_predictor):
    make_clip(ws, astronaut, 3, astro_lm)
    merge_frames(ws, None, MergeConfig(workers=0), predictor=tiny_predictor)
    inline = [(ws.merged / f"{i:06d}.png").read_bytes() for i in (1, 2, 3)]
    res = merge_frames(ws, None, MergeConfig(workers=2), predictor=tiny_predictor, force=True)
    assert res.merged == 3 and res.render_seconds > 0
    assert [(ws.merged / f"{i:06d}.png").read_bytes() for i in (1, 2, 3)] == inline


def test_settings_object_accepts_plain_config(ws, astronaut, astro_lm):
    make_clip(ws, astronaut, 1, astro_lm)
    res = merge_frames(ws, None, MergeSettings(MergeConfig(mode="original", workers=0)),
                       predictor=IdentityPredictor(64, "whole_face"))
    assert res.merged == 1


def test_face_scale_and_offsets_move_the_pasted_face(ws, astronaut, astro_lm):
    from facelab.align import face_transform, matrix_scale

    make_clip(ws, astronaut, 1, astro_lm)
    r = 64
    face_px = r / matrix_scale(face_transform(astro_lm, r, "whole_face"))  # face square side in frame pixels

    def mask_of(**kw):
        merge_frames(ws, None, MergeConfig(mask_mode="full", blur=0, color="none", workers=0, **kw),
                     predictor=IdentityPredictor(r, "whole_face"), force=True)
        m = read_image(ws.merged_mask / "000001.png", grey=True) > 127
        ys, xs = np.nonzero(m)
        return m.sum(), xs.mean(), ys.mean()

    area, cx, cy = mask_of()
    _, cx2, cy2 = mask_of(offset_x=10.0)
    assert np.hypot(cx2 - cx, cy2 - cy) == pytest.approx(0.10 * face_px, rel=0.1)
    area_small, _, _ = mask_of(face_scale=25)
    assert area_small / area == pytest.approx(1 / 1.25 ** 2, rel=0.05)


def test_two_faces_of_one_frame_are_both_merged(ws, astronaut, grace_hopper, astro_lm, tiny_predictor):
    from merge_testkit import write_face_for

    ws.init()
    frame = np.concatenate([astronaut, grace_hopper[:512, :512]], axis=1)
    path = ws.frames("dst") / "000001.png"
    write_image(path, frame)
    hopper_lm = detect_landmarks(grace_hopper[:512, :512]) + np.array([512.0, 0.0])
    write_face_for(ws, path, frame, astro_lm, face_index=0)
    write_face_for(ws, path, frame, hopper_lm, face_index=1)
    res = merge_frames(ws, None, MergeConfig(workers=0, color="rct"), predictor=tiny_predictor)
    assert (res.merged, res.faces) == (1, 2)
    mask = read_image(ws.merged_mask / "000001.png", grey=True) > 0
    out = read_image(ws.merged / "000001.png")
    for lm in (astro_lm, hopper_lm):
        cx, cy = lm[27:36].mean(0).astype(int)
        assert mask[cy, cx] and np.any(out[cy - 5:cy + 5, cx - 5:cx + 5] != frame[cy - 5:cy + 5, cx - 5:cx + 5])
    assert not mask[:, 480:540].any()  # nothing between the two faces
