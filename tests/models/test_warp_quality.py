"""Source-face quality of the warp model: occluders and bad landmarks found over a set of real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelab.align import face_transform, frontal_landmarks, transform_points, warp_to_face
from facelab.models.warp.quality import (
    REGIONS,
    QualityConfig,
    assess,
    lip_contrast,
    procrustes_shapes,
    region_masks,
    robust_z,
    shape_scores,
)

SIZE = 128
N_FACES = 20


def _variants(image: np.ndarray, landmarks: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` aligned whole faces (SIZE px, uint8) of one photo under small rotations, scales, shifts and
    brightness changes of the frame, with landmark noise of a detector (0.5 px)."""
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    faces, lms = [], []
    for _ in range(n):
        mat = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-6, 6), rng.uniform(0.95, 1.05))
        mat[:, 2] += rng.uniform(-0.03, 0.03, 2) * (w, h)
        frame = cv2.warpAffine(image, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = np.clip(frame.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-10, 10), 0, 255)
        lm = transform_points(landmarks, mat) + rng.normal(0, 0.5, (68, 2))
        to_face = face_transform(lm, SIZE, "whole_face")
        faces.append(warp_to_face(frame.astype(np.uint8), to_face, SIZE))
        lms.append(transform_points(lm, to_face))
    return np.stack(faces), np.stack(lms)


def _paint_hand(face: np.ndarray, lm: np.ndarray, centre: np.ndarray, seed: int) -> np.ndarray:
    """A skin-coloured hand-like blob (a palm and four fingers, shaded, soft-edged) painted over ``centre``."""
    rng = np.random.default_rng(seed)
    eye_dist = float(np.linalg.norm(lm[45] - lm[36]))
    mask = np.zeros(face.shape[:2], np.float32)
    c = centre + (0.0, 0.25 * eye_dist)
    cv2.ellipse(mask, (int(c[0]), int(c[1])), (int(0.45 * eye_dist), int(0.35 * eye_dist)), 0, 0, 360, 1.0, -1)
    for k in range(4):
        x = c[0] + (k - 1.5) * 0.22 * eye_dist
        top = (x + rng.uniform(-2, 2), c[1] - 0.75 * eye_dist)
        cv2.ellipse(mask, (int(top[0]), int(top[1])), (int(0.09 * eye_dist), int(0.5 * eye_dist)),
                    float(rng.uniform(-8, 8)), 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0)[..., None]
    cheek = face[int(lm[29, 1]) - 3:int(lm[29, 1]) + 3, int(lm[2, 0]) + 6:int(lm[2, 0]) + 12].reshape(-1, 3)
    skin = np.median(cheek, 0).astype(np.float32) * 1.08
    ys = np.arange(face.shape[0], dtype=np.float32)[:, None, None]
    shading = 1.0 + 0.15 * np.sin(ys / 6.0)  # knuckle-like bands
    hand = np.clip(skin[None, None] * shading, 0, 255)
    return np.clip(face * (1 - mask) + hand * mask, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def face_sets(astronaut, grace_hopper) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per photo, N_FACES aligned variants (uint8 faces, landmarks); faces 3 and 11 have a painted hand, over the
    mouth and over the image-left eye."""
    from facekit import face_landmarks

    out = {}
    for name, photo, seed in (("astronaut", astronaut, 1), ("hopper", grace_hopper, 2)):
        faces, lms = _variants(photo, face_landmarks(photo), N_FACES, seed)
        faces[3] = _paint_hand(faces[3], lms[3], lms[3, 48:60].mean(0), seed=3)
        faces[11] = _paint_hand(faces[11], lms[11], lms[11, 36:42].mean(0) - (0.0, 0.2 * np.linalg.norm(
            lms[11, 45] - lms[11, 36])), seed=4)
        out[name] = (faces, lms)
    return out


@pytest.mark.parametrize("name", ["astronaut", "hopper"])
def test_assess_flags_the_occluded_faces_and_keeps_the_rest(face_sets, name):
    faces, lms = face_sets[name]
    quality = assess(faces, lms, SIZE)
    flagged = set(np.flatnonzero(~quality.usable).tolist())
    assert flagged == {3, 11}, quality.reasons
    assert quality.usable.dtype == bool and quality.score.shape == (N_FACES,)
    assert np.all((quality.score >= 0) & (quality.score <= 1))
    assert np.all(quality.score[quality.usable] > 0.5) and np.all(quality.score[~quality.usable] <= 0.5)
    assert quality.region_z.shape == (N_FACES, len(REGIONS)) and quality.regions == REGIONS
    assert "occluded:" in quality.reasons[3] and "occluded:" in quality.reasons[11]
    assert "occluded:lips" in quality.reasons[3]  # the hand over the mouth hides the lips
    eye = REGIONS.index("left_eye")
    assert quality.region_z[11, eye] >= QualityConfig().region_z
    assert all(r == "" for i, r in enumerate(quality.reasons) if i not in (3, 11))


def test_assess_accepts_float_images_and_other_sizes(face_sets):
    faces, lms = face_sets["astronaut"]
    as_float = assess(faces.astype(np.float32) / 255.0, lms, SIZE)
    np.testing.assert_array_equal(as_float.usable, assess(faces, lms, SIZE).usable)
    # images at twice the size, landmarks still given for the SIZE crop
    big = np.stack([cv2.resize(f, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_CUBIC) for f in faces])
    assert set(np.flatnonzero(~assess(big, lms, SIZE).usable).tolist()) == {3, 11}


def test_badly_placed_landmarks_are_flagged(face_sets):
    faces, lms = face_sets["astronaut"]
    keep = [i for i in range(N_FACES) if i not in (3, 11)]
    faces, lms = faces[keep], lms[keep].copy()
    width = np.linalg.norm(lms[5, 16] - lms[5, 0])
    lms[5, 0:6] += (0.12 * width, 0.0)  # one side of the jaw line drawn inside the cheek
    quality = assess(faces, lms, SIZE)
    assert "landmarks" in quality.reasons[5]
    assert not quality.usable[5] and quality.usable.sum() == len(keep) - 1
    residual_z, model_z = shape_scores(procrustes_shapes(lms), 4)
    assert residual_z.shape == model_z.shape == (len(keep),)
    assert np.argmax(residual_z) == 5 and np.median(np.abs(np.delete(residual_z, 5))) < 1.0


def test_small_sets_are_not_judged(face_sets):
    faces, lms = face_sets["astronaut"]
    quality = assess(faces[:5], lms[:5], SIZE)
    assert quality.usable.all() and np.all(quality.score == 1.0) and quality.reasons == ("",) * 5
    with pytest.raises(ValueError):
        assess(faces, lms[:-1], SIZE)


def test_lip_contrast_sees_the_lips_and_not_a_hand(face_sets):
    faces, lms = face_sets["hopper"]
    clean = lip_contrast(faces[0], lms[0])
    covered = lip_contrast(faces[3], lms[3])
    assert clean.shape == (2,) and np.all(clean > 2.0)  # lips are redder than the skin around them
    assert covered.min() < 0.5 * clean.min() and covered.max() < 0.7 * clean.max()


def test_region_masks_tile_the_face_without_eyes_and_mouth_openings():
    lm = frontal_landmarks(64)
    masks = region_masks(lm, 64)
    assert masks.shape == (len(REGIONS), 64, 64) and masks.dtype == bool
    assert masks.sum(0).max() == 1  # disjoint
    assert all(m.sum() > 20 for m in masks)
    eye = np.round(lm[36:42].mean(0)).astype(int)
    assert not masks[:, eye[1], eye[0]].any()
    nose = np.round(lm[30]).astype(int)
    assert masks[REGIONS.index("nose"), nose[1], nose[0]]


def test_robust_z_ignores_outliers_and_respects_the_floor():
    values = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 50.0])
    z = robust_z(values)
    assert abs(z[:5]).max() < 2.0 and z[5] > 100
    assert robust_z(np.ones(5), floor=0.5).tolist() == [0.0] * 5
    np.testing.assert_allclose(robust_z(np.array([1.0, 2.0]), np.array([1.0, np.nan, 3.0])), [-1 / 1.4826, 0.0])


def test_grey_footage_skips_the_lip_check_and_still_finds_the_hands(face_sets):
    faces, lms = face_sets["astronaut"]
    grey = np.stack([cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB) for f in faces])
    quality = assess(grey, lms, SIZE)
    assert np.all(quality.lips == 1.0)  # no colour: lips not judged
    assert set(np.flatnonzero(~quality.usable).tolist()) == {3, 11}
    assert all("lips" not in r for r in quality.reasons)
