"""Landmark masks, head pose and landmark-track smoothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facelab.align import (
    MEAN_FACE_3D,
    estimate_pose,
    expand_eyebrows,
    eyes_mouth_mask,
    frontal_landmarks,
    hull_mask,
    smooth_landmarks,
)


def test_hull_mask_covers_landmarks_and_brows_pushed_up():
    size = 256
    lm = frontal_landmarks(size, "whole_face")
    mask = hull_mask(lm, size)
    assert mask.dtype == np.float32 and mask.shape == (size, size)
    assert set(np.unique(mask)) <= {0.0, 1.0}
    xy = np.round(lm).astype(int)
    assert mask[xy[:, 1], xy[:, 0]].all()  # every landmark inside
    # brows pushed up: there is face above the highest brow point, none above the pushed brows
    brow_top = lm[17:27, 1].min()
    pushed_top = expand_eyebrows(lm)[17:27, 1].min()
    assert pushed_top < brow_top - 5
    rows = np.nonzero(mask.any(1))[0]
    assert rows[0] == pytest.approx(pushed_top, abs=2)
    assert rows[-1] == pytest.approx(lm[:, 1].max(), abs=2)
    # area of the hull against the polygon area of the landmark convex hull (hull is larger by the brow band)
    import cv2

    plain = cv2.contourArea(cv2.convexHull(lm.astype(np.float32)))
    assert plain < mask.sum() < 1.4 * plain
    # no brow expansion: the mask stops at the brows
    tight = hull_mask(lm, size, eyebrows_expand=0.0)
    assert np.nonzero(tight.any(1))[0][0] == pytest.approx(brow_top, abs=2)


def dfl_eyes_mouth_mask(lm: np.ndarray, size: int, face_mask: np.ndarray) -> np.ndarray:
    """A port of DeepFaceLab's eye mask + mouth mask (integer landmarks, inner lips), clipped, times the
    binarised full-face mask."""
    import cv2

    pts = lm.astype(int)
    out = np.zeros((size, size), np.float32)
    for part in (pts[36:42], pts[42:48], pts[60:]):
        hull = np.zeros((size, size), np.float32)
        cv2.fillConvexPoly(hull, cv2.convexHull(part), (1,))
        d = size // 32
        hull = cv2.dilate(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)), iterations=1)
        blur = size // 16
        blur = blur + (1 - blur % 2)
        out += cv2.GaussianBlur(hull, (blur, blur), 0)  # eyes (one mask of both) + mouth
    return np.clip(out, 0, 1) * (face_mask != 0)


def test_eyes_mouth_mask_matches_deepfacelab_port():
    size = 256
    lm = frontal_landmarks(size, "whole_face")
    lm[62:65, 1] -= 6  # open the mouth: the inner lips enclose an area
    lm[66:68, 1] += 6
    lm[65, 1] += 6
    soft_face = hull_mask(lm, size) * 0.4  # a soft stored mask: DeepFaceLab binarises it
    em = eyes_mouth_mask(lm, size, soft_face)
    want = dfl_eyes_mouth_mask(lm, size, soft_face)
    assert np.abs(em - want).mean() < 0.005 and np.abs(em - want).max() < 0.35  # sub-pixel hull edges
    assert em.max() == pytest.approx(1.0)
    for corner in (48, 54):  # outer mouth corners lie outside the inner-lip hull and its small dilation
        x, y = np.round(lm[corner]).astype(int)
        assert em[y, x] < 0.5


def test_eyes_mouth_mask_inside_hull_and_on_features():
    size = 256
    lm = frontal_landmarks(size, "whole_face")
    em = eyes_mouth_mask(lm, size)
    hull = hull_mask(lm, size)
    assert em.dtype == np.float32 and em.shape == (size, size)
    assert em.max() <= 1.0 and em.min() >= 0.0
    assert (em[hull == 0] == 0).all()
    for idx in (list(range(36, 42)), list(range(42, 48)), list(range(60, 68))):
        cx, cy = np.round(lm[idx].mean(0)).astype(int)
        assert em[cy, cx] > 0.5
    nose = np.round(lm[30]).astype(int)
    assert em[nose[1], nose[0]] < 0.1  # nose tip is not eyes or mouth
    assert 0.02 < em.mean() < 0.25 * hull.mean() + 0.1


def _project(rot: np.ndarray, size: int, distance: float = 600.0) -> np.ndarray:
    pts = MEAN_FACE_3D @ rot.T
    z = pts[:, 2] + distance
    return np.stack([size * pts[:, 0] / z + size / 2, size * pts[:, 1] / z + size / 2], 1)


def test_pose_frontal_is_zero():
    size = 256
    assert np.abs(estimate_pose(_project(np.eye(3), size), size)).max() < 1e-4
    # the orthographic frontal template also reads as frontal
    assert np.abs(estimate_pose(frontal_landmarks(size), size)).max() < 0.08


@pytest.mark.parametrize("angle", [0.35, -0.6])
def test_pose_recovers_known_rotations(angle):
    size = 256
    c, s = math.cos(angle), math.sin(angle)
    yaw = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    pitch = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    roll = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    np.testing.assert_allclose(estimate_pose(_project(yaw, size), size), (0, angle, 0), atol=1e-3)
    np.testing.assert_allclose(estimate_pose(_project(pitch, size), size), (angle, 0, 0), atol=1e-3)
    np.testing.assert_allclose(estimate_pose(_project(roll, size), size), (0, 0, angle), atol=1e-3)
    # sign convention: positive yaw moves the nose toward image left
    if angle > 0:
        assert _project(yaw, size)[30, 0] < size / 2


def _jittery_track(t: int = 60, noise: float = 1.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    base = frontal_landmarks(256)
    motion = np.linspace(0, 30, t)[:, None, None] * np.array([1.0, 0.5])  # slow pan
    clean = base[None] + motion
    noisy = clean + np.random.default_rng(seed).normal(0, noise, clean.shape)
    return clean, noisy


@pytest.mark.parametrize("method", ["savgol", "one-euro"])
def test_smoothing_reduces_jitter(method):
    clean, noisy = _jittery_track()
    out = smooth_landmarks(noisy, method)
    assert out.shape == noisy.shape
    err_in = np.sqrt(((noisy - clean) ** 2).mean())
    err_out = np.sqrt(((out - clean)[5:] ** 2).mean())
    assert err_out < 0.7 * err_in
    jitter_in = np.abs(np.diff(noisy, axis=0) - np.diff(clean, axis=0)).mean()
    jitter_out = np.abs(np.diff(out, axis=0) - np.diff(clean, axis=0)).mean()
    assert jitter_out < 0.5 * jitter_in


def test_savgol_keeps_quadratic_motion_exactly_and_matches_scipy():
    from scipy.signal import savgol_filter

    t = np.arange(20, dtype=np.float64)
    track = np.zeros((20, 68, 2))
    track[..., 0] = (0.3 * t ** 2 - 2 * t + 5)[:, None]
    track[..., 1] = (4 * t)[:, None]
    np.testing.assert_allclose(smooth_landmarks(track, "savgol", window=7, polyorder=2), track, atol=1e-9)
    noisy = track + np.random.default_rng(1).normal(0, 1, track.shape)
    np.testing.assert_allclose(smooth_landmarks(noisy, "savgol", window=9, polyorder=3),
                               savgol_filter(noisy, 9, 3, axis=0, mode="interp"), atol=1e-12)


def test_one_euro_hand_computed_first_steps():
    seq = np.zeros((3, 1, 2))
    seq[1:] = 1.0
    out = smooth_landmarks(seq, "one-euro", fps=10.0, min_cutoff=1.0, beta=0.0)
    te, tau = 0.1, 1.0 / (2 * math.pi * 1.0)
    a = 1.0 / (1.0 + tau / te)
    assert out[0, 0, 0] == 0.0
    assert out[1, 0, 0] == pytest.approx(a)
    assert out[2, 0, 0] == pytest.approx(a + (1 - a) * a)


def test_smoothing_edge_cases():
    short = np.random.default_rng(0).normal(0, 1, (2, 68, 2))
    np.testing.assert_allclose(smooth_landmarks(short, "savgol"), short)  # too short to filter
    assert smooth_landmarks(short[:1], "one-euro").shape == (1, 68, 2)
    np.testing.assert_allclose(smooth_landmarks(short, "none"), short)
    with pytest.raises(ValueError):
        smooth_landmarks(short, "kalman")
    with pytest.raises(ValueError):
        smooth_landmarks(short[0], "savgol")
