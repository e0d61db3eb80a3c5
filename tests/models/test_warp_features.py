"""Face features of the warp model: Procrustes shape, eye and mouth openness, pose, match costs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facelab.align import frontal_landmarks, transform_points
from facelab.models.warp.features import (
    FaceFeatures,
    MatchWeights,
    closedness,
    cost_matrix,
    describe,
    describe_many,
    eye_aspect_ratios,
    match_costs,
    mouth_openness,
    normalised_shape,
)

SIZE = 256


def _similarity(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), shift[0]],
                     [scale * math.sin(a), scale * math.cos(a), shift[1]]])


def _close_eye(lm: np.ndarray, eye: int) -> np.ndarray:
    """Lids of eye 0 (36-41) or 1 (42-47) moved onto the line between its corners (EAR 0)."""
    out = lm.copy()
    base = 36 + 6 * eye
    c1, c4 = out[base], out[base + 3]
    for i, t in ((1, 1 / 3), (2, 2 / 3), (4, 2 / 3), (5, 1 / 3)):
        out[base + i] = c1 + t * (c4 - c1)
    return out


def _open_mouth(lm: np.ndarray, amount: float) -> np.ndarray:
    """Lower lip (inner 65-67, outer 55-59) and chin moved down by ``amount`` of the mouth width."""
    out = lm.copy()
    drop = amount * np.linalg.norm(out[54] - out[48])
    out[[55, 56, 57, 58, 59, 65, 66, 67, 5, 6, 7, 8, 9, 10, 11], 1] += drop
    return out


def test_normalised_shape_is_similarity_invariant_zero_mean_unit_norm():
    lm = frontal_landmarks(SIZE) + np.random.default_rng(0).normal(0, 2.0, (68, 2))
    shape = normalised_shape(lm)
    assert shape.shape == (136,) and shape.dtype == np.float32
    xy = shape.reshape(68, 2)
    np.testing.assert_allclose(xy.mean(0), 0.0, atol=1e-6)
    assert np.linalg.norm(shape) == pytest.approx(1.0, abs=1e-5)
    moved = transform_points(lm, _similarity(25.0, 1.7, (40.0, -13.0)))
    np.testing.assert_allclose(normalised_shape(moved), shape, atol=1e-5)
    # a change of expression does change it
    assert np.linalg.norm(normalised_shape(_open_mouth(lm, 0.4)) - shape) > 0.03


def test_eye_aspect_ratio_open_vs_closed_and_scale_free():
    lm = frontal_landmarks(SIZE)
    ears = eye_aspect_ratios(lm)
    assert ears.shape == (2,) and np.all((ears > 0.25) & (ears < 0.35))  # an open eye
    closed = eye_aspect_ratios(_close_eye(lm, 0))
    assert closed[0] == pytest.approx(0.0, abs=1e-6) and closed[1] == pytest.approx(ears[1])
    np.testing.assert_allclose(eye_aspect_ratios(lm * 3.0 + 7.0), ears, rtol=1e-5)
    # half shut sits between
    half = (lm + _close_eye(lm, 1)) / 2
    assert 0.0 < eye_aspect_ratios(half)[1] < ears[1]
    np.testing.assert_allclose(closedness(np.array([0.3, 0.17, 0.05])), [0.0, 0.5, 1.0], atol=1e-9)


def test_mouth_openness_grows_with_the_gap():
    lm = frontal_landmarks(SIZE)
    closed = lm.copy()
    closed[[65, 66, 67]] = closed[[63, 62, 61]]
    assert mouth_openness(closed) == pytest.approx(0.0, abs=1e-9)
    values = [mouth_openness(_open_mouth(closed, a)) for a in (0.1, 0.2, 0.4)]
    assert values == sorted(values)
    assert values[-1] == pytest.approx(0.4, rel=0.05)  # the gap is the drop when the lips start together


def test_describe_frontal_and_batched():
    lm = frontal_landmarks(SIZE)
    one = describe(lm, SIZE)
    assert len(one) == 1 and one.shape.shape == (1, 136) and one.eyes.shape == (1, 2)
    assert one.mouth.shape == (1,) and one.pose.shape == (1, 3)
    assert np.abs(one.pose).max() < math.radians(5)
    lms = np.stack([lm, _close_eye(lm, 0), _open_mouth(lm, 0.3)])
    many = describe_many(lms, SIZE)
    assert len(many) == 3
    for i in range(3):
        single = describe(lms[i], SIZE)
        for field in ("shape", "eyes", "mouth", "pose"):
            np.testing.assert_allclose(getattr(many[i], field), getattr(single, field), atol=1e-6)
    assert len(FaceFeatures.concat([many, one])) == 4 and len(many[np.array([0, 2])]) == 2
    with pytest.raises(ValueError):
        describe_many(lm, SIZE)


def test_match_costs_prefer_the_same_face_and_weigh_closed_eyes():
    lm = frontal_landmarks(SIZE)
    src_lms = np.stack([lm, _close_eye(lm, 0), _open_mouth(lm, 0.15), _open_mouth(lm, 0.35)])
    src = describe_many(src_lms, SIZE)
    costs = match_costs(describe(lm, SIZE), src)
    assert costs.shape == (4,) and costs[0] == pytest.approx(0.0, abs=1e-6)
    assert costs[0] < costs[2] < costs[3]  # wider mismatch of the mouth costs more
    w = MatchWeights()
    assert costs[1] > w.closed_src  # a source blink on an open destination eye is heavily penalised
    # the reverse (destination blinks, source open) costs less
    reverse = match_costs(describe(_close_eye(lm, 0), SIZE), src)
    assert reverse[0] < costs[1]
    assert reverse[1] == pytest.approx(0.0, abs=1e-6)
    no_closed = MatchWeights(closed_src=0.0, closed_dst=0.0)
    assert match_costs(describe(lm, SIZE), src, no_closed)[1] < costs[1] - w.closed_src * 0.99


def test_neutral_shapes_remove_the_identity_offset():
    lm = frontal_landmarks(SIZE)
    src = describe_many(np.stack([lm, _open_mouth(lm, 0.3)]), SIZE)
    offset = np.random.default_rng(2).normal(0, 0.02, 136).astype(np.float32)
    dst = FaceFeatures(src.shape[1:] + offset, src.eyes[1:], src.mouth[1:], src.pose[1:])
    raw = match_costs(dst, src)
    neutral = match_costs(dst, src, dst_neutral=src.shape[0] + offset, src_neutral=src.shape[0])
    assert neutral[1] == pytest.approx(0.0, abs=1e-5) and raw[1] > 0.1
    matrix = cost_matrix(src, src, neutral=False)
    assert matrix.shape == (2, 2) and np.allclose(np.diag(matrix), 0.0, atol=1e-5)
    with pytest.raises(ValueError):
        match_costs(src, src)
