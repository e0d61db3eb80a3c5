import cv2
import numpy as np
import pytest
from facekit import face_landmarks
from scipy import ndimage

from facelab.align import face_transform, hull_mask, transform_points, warp_to_face
from facelab.evaluate import metrics as M

SIZE = 128


@pytest.fixture(scope="module")
def astro_lm(astronaut) -> np.ndarray:
    return face_landmarks(astronaut)


@pytest.fixture(scope="module")
def grace_lm(grace_hopper) -> np.ndarray:
    return face_landmarks(grace_hopper)


def test_inner_face_mask_is_the_hull_of_brows_eyes_nose_mouth(astronaut, astro_lm):
    mask = M.inner_face_mask(astro_lm, astronaut.shape[:2])
    assert mask.dtype == bool and mask.shape == astronaut.shape[:2]
    hull = cv2.convexHull(astro_lm[17:].astype(np.float32))
    assert mask.sum() == pytest.approx(cv2.contourArea(hull), rel=0.05)
    x, y = np.round(astro_lm[30]).astype(int)  # nose tip inside
    assert mask[y, x]
    for jaw in (0, 8, 16):  # the jaw line is left out
        x, y = np.round(astro_lm[jaw]).astype(int)
        assert not mask[y, x]
    with pytest.raises(ValueError):
        M.inner_face_mask(astro_lm[:60], astronaut.shape[:2])


def test_laplacian_variance_matches_a_float64_reference(astronaut, astro_lm):
    grey = astronaut.astype(np.float64) @ [0.299, 0.587, 0.114] / 255.0
    mask = M.inner_face_mask(astro_lm, grey.shape)
    kernel = np.array([[2.0, 0.0, 2.0], [0.0, -8.0, 0.0], [2.0, 0.0, 2.0]])  # OpenCV's ksize=3 Laplacian
    ref = ndimage.convolve(grey, kernel, mode="mirror")[mask].var()
    assert M.laplacian_variance(grey, mask) == pytest.approx(ref, rel=1e-9)
    assert M.laplacian_variance(np.full_like(grey, 0.3), mask) == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ValueError):
        M.laplacian_variance(grey, np.zeros_like(mask))
    with pytest.raises(ValueError):
        M.laplacian_variance(grey, mask[:10])


def test_sharpness_ratio_is_one_on_itself_and_falls_with_blur(astronaut, astro_lm):
    assert M.sharpness_ratio(astronaut, astronaut, astro_lm) == pytest.approx(1.0)
    ratios = [M.sharpness_ratio(cv2.GaussianBlur(astronaut, (0, 0), s), astronaut, astro_lm)
              for s in (0.5, 1.0, 2.0, 3.0)]
    assert np.all(np.diff(ratios) < 0)
    assert 0.3 < ratios[0] < 0.8  # sigma 0.5 already halves the Laplacian variance of a crisp still
    assert 0.05 < ratios[1] < 0.3
    assert ratios[3] < 0.02


def test_sharpness_ratio_scales_with_contrast_squared(grace_hopper, grace_lm):
    dst = grace_hopper.astype(np.float32) / 255.0
    flat = 0.5 * dst + 0.25  # half the contrast, any offset: a quarter of the variance
    assert M.sharpness_ratio(flat, grace_hopper, grace_lm) == pytest.approx(0.25, rel=1e-5)
    with pytest.raises(ValueError):
        M.sharpness_ratio(grace_hopper[:100], grace_hopper, grace_lm)


def test_crop_side_in_frame_is_the_crop_edge_in_frame_pixels(grace_lm):
    for face_type in ("full", "whole_face"):
        mat = face_transform(grace_lm, 256, face_type)
        corners = transform_points(np.array([(0.0, 0.0), (256.0, 0.0)]), mat, invert=True)
        side = M.crop_side_in_frame(grace_lm, 256, face_type)
        assert side == pytest.approx(np.linalg.norm(corners[1] - corners[0]))
        assert M.crop_side_in_frame(grace_lm, 64, face_type) == pytest.approx(side)  # a property of the face
    assert M.crop_side_in_frame(grace_lm, 128, "whole_face") > M.crop_side_in_frame(grace_lm, 128, "full")


def test_resolution_ceiling_falls_with_the_model_resolution(grace_hopper, grace_lm):
    side = M.crop_side_in_frame(grace_lm, 128, "whole_face")  # ~330 px
    ceilings = [M.resolution_ceiling(grace_hopper, grace_lm, side, r) for r in (320, 256, 192, 128, 96, 64)]
    assert all(0.0 < c < 1.0 for c in ceilings)
    assert np.all(np.diff(ceilings) < 0)
    assert M.resolution_ceiling(grace_hopper, grace_lm, side, 336) == 1.0
    assert M.resolution_ceiling(grace_hopper, grace_lm, side, 1024) == 1.0


def test_resolution_ceiling_is_the_ratio_of_the_resampled_frame(grace_hopper, grace_lm):
    side, r = 300.0, 96
    h, w = grace_hopper.shape[:2]
    img = grace_hopper.astype(np.float32) / 255.0
    small = cv2.resize(img, (round(w * r / side), round(h * r / side)), interpolation=cv2.INTER_AREA)
    back = np.round(np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1) * 255).astype(np.uint8)
    expected = M.sharpness_ratio(back, grace_hopper, grace_lm)
    assert M.resolution_ceiling(grace_hopper, grace_lm, side, r) == pytest.approx(expected, rel=1e-12)
    assert 0.05 < expected < 0.3
    with pytest.raises(ValueError):
        M.resolution_ceiling(grace_hopper, grace_lm, 0.0, r)


def _crop(image: np.ndarray, mat: np.ndarray, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    moved = mat.copy()
    moved[:, 2] += (dx, dy)
    return warp_to_face(image, moved, SIZE, cv2.INTER_CUBIC).astype(np.float32) / 255.0


def test_texture_jitter_low_for_smooth_motion_high_when_the_face_changes(astronaut, grace_hopper, astro_lm,
                                                                         grace_lm):
    mat_a, mat_g = face_transform(astro_lm, SIZE, "full"), face_transform(grace_lm, SIZE, "full")
    mask = hull_mask(transform_points(astro_lm, mat_a), SIZE) * hull_mask(transform_points(grace_lm, mat_g), SIZE)
    frames = 8
    drifting = np.stack([_crop(astronaut, mat_a, 0.4 * t, 0.2 * t) for t in range(frames)])
    alternating = np.stack([_crop(astronaut, mat_a) if t % 2 == 0 else _crop(grace_hopper, mat_g)
                            for t in range(frames)])
    still = np.stack([_crop(astronaut, mat_a)] * frames)
    smooth, swapping = M.texture_jitter(drifting, mask), M.texture_jitter(alternating, mask)
    assert M.texture_jitter(still, mask) == pytest.approx(0.0, abs=1e-9)
    assert smooth < 4.0
    assert swapping > 20.0
    assert swapping > 8 * smooth
    # a per-frame mask (T, S, S) equal to the shared one gives the same value
    assert M.texture_jitter(alternating, np.stack([mask] * frames)) == pytest.approx(swapping)


def test_texture_jitter_ignores_brightness_offsets(astronaut, astro_lm):
    mat = face_transform(astro_lm, SIZE, "full")
    crop = _crop(astronaut, mat).astype(np.float64)
    offsets = np.random.default_rng(0).uniform(-0.2, 0.2, 6)
    flicker = np.stack([crop + o for o in offsets])
    mask = np.ones((SIZE, SIZE), bool)
    assert M.texture_jitter(flicker, mask) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        M.texture_jitter(flicker[:2], mask)
    with pytest.raises(ValueError):
        M.texture_jitter(flicker, np.zeros_like(mask))
    with pytest.raises(ValueError):
        M.texture_jitter(flicker, mask[:64])
