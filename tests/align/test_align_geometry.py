"""Alignment geometry against hand-made transforms, skimage/OpenCV references and a real photo."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from facelab.align import (
    FACE_PADDING,
    FACE_TYPES,
    TEMPLATE_33,
    TEMPLATE_INDICES,
    canonical_face_type,
    face_transform,
    frontal_landmarks,
    invert_affine,
    matrix_scale,
    transform_points,
    umeyama,
    warp_to_face,
)
from facelab.errors import FacelabError


def similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]], np.float64)


def template_face_68(origin=(100.0, 80.0), side=200.0) -> np.ndarray:
    """68 landmarks whose 33 template points are exactly the unit template scaled by ``side`` at ``origin``."""
    lm = frontal_landmarks(256, "half") / 256.0  # unit-square frontal face
    lm[list(TEMPLATE_INDICES)] = TEMPLATE_33
    return lm * side + np.asarray(origin)


def test_umeyama_recovers_hand_made_similarity():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (33, 2))
    true = similarity(0.4, 1.7, 12.0, -30.0)
    dst = src @ true[:, :2].T + true[:, 2]
    got = umeyama(src, dst)
    assert got.shape == (3, 3)
    np.testing.assert_allclose(got[:2], true, atol=1e-9)
    np.testing.assert_allclose(got[2], [0, 0, 1])
    # without scale the rotation is still right and the scale is 1
    rigid = umeyama(src, dst, estimate_scale=False)
    assert matrix_scale(rigid[:2]) == pytest.approx(1.0)
    assert math.atan2(rigid[1, 0], rigid[0, 0]) == pytest.approx(0.4, abs=1e-9)


def test_umeyama_matches_skimage_on_noisy_points():
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(1)
    src = rng.uniform(0, 1, (40, 2))
    dst = src @ similarity(-1.1, 250.0, 300, 40)[:, :2].T + [300, 40] + rng.normal(0, 2.0, (40, 2))
    ref = SimilarityTransform.from_estimate(src, dst) if hasattr(SimilarityTransform, "from_estimate") else None
    if ref is None:
        ref = SimilarityTransform()
        ref.estimate(src, dst)
    np.testing.assert_allclose(umeyama(src, dst), ref.params, atol=1e-8)


def test_umeyama_never_reflects_and_rejects_degenerate():
    src = np.array([[0, 0], [3, 0], [0, 1], [1, 2], [4, 1]], np.float64)
    mirrored = src * [-1, 1]
    m = umeyama(src, mirrored)
    assert np.linalg.det(m[:2, :2]) > 0  # best proper similarity, not the mirror
    assert np.abs(transform_points(src, m) - mirrored).max() > 0.1
    with pytest.raises(ValueError):
        umeyama(np.ones((5, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError):
        umeyama(np.zeros((5, 2)), np.zeros((4, 2)))


def test_transform_points_matches_opencv_and_inverts():
    rng = np.random.default_rng(2)
    pts = rng.uniform(-50, 50, (20, 2))
    mat = np.array([[1.2, 0.3, 5.0], [-0.2, 0.9, -7.0]])
    ref = cv2.transform(pts[:, None, :], mat)[:, 0, :]
    np.testing.assert_allclose(transform_points(pts, mat), ref, atol=1e-9)
    np.testing.assert_allclose(transform_points(transform_points(pts, mat), mat, invert=True), pts, atol=1e-9)
    np.testing.assert_allclose(invert_affine(mat), cv2.invertAffineTransform(mat), atol=1e-9)


def test_half_face_maps_template_to_unit_square():
    size = 256
    lm = template_face_68(origin=(40.0, 30.0), side=200.0)
    mat = face_transform(lm, size, "half")
    np.testing.assert_allclose(transform_points(lm[list(TEMPLATE_INDICES)], mat), TEMPLATE_33 * size, atol=1e-6)
    assert matrix_scale(mat) == pytest.approx(size / 200.0)


@pytest.mark.parametrize("face_type", FACE_TYPES)
def test_face_type_crop_sizes_and_centres(face_type):
    """Crop side in frame pixels = template side * (1 + 2*sqrt(2)*padding); whole_face/head centre shifted up."""
    side, size = 200.0, 512
    lm = template_face_68(origin=(300.0, 200.0), side=side)
    mat = face_transform(lm, size, face_type)
    corners = transform_points(np.array([[0, 0], [size, 0], [size, size], [0, size]], float), mat, invert=True)
    crop_side = np.linalg.norm(corners[1] - corners[0])
    expected = side * (1.0 + 2.0 * math.sqrt(2.0) * FACE_PADDING[face_type])
    assert crop_side == pytest.approx(expected, rel=1e-9)
    assert np.linalg.norm(corners[2] - corners[1]) == pytest.approx(expected, rel=1e-9)  # square
    centre = corners.mean(0)
    shift = {"whole_face": 0.07, "head": 0.5}.get(face_type, 0.0)
    # upright frontal face: x centre at the template centre, y centre moved up by shift * template height
    head_dx = 0.0 if face_type != "head" else None
    if head_dx is not None:
        assert centre[0] == pytest.approx(300.0 + side / 2, abs=1e-6)
    assert centre[1] == pytest.approx(200.0 + side / 2 - shift * side, abs=1e-6)


def test_face_types_relative_sizes_documented():
    lm = template_face_68()
    scales = {ft: matrix_scale(face_transform(lm, 512, ft)) for ft in FACE_TYPES}
    # larger padding -> smaller face in the crop; full vs half is 1 + 2*sqrt(2)*0.2109375 = 1.5966
    assert scales["half"] / scales["full"] == pytest.approx(1.5966, abs=1e-3)
    assert scales["half"] / scales["whole_face"] == pytest.approx(2.1314, abs=1e-3)
    order = [scales[ft] for ft in FACE_TYPES]
    assert order == sorted(order, reverse=True)


def test_face_transform_is_equivariant_under_similarity():
    lm = template_face_68() + np.random.default_rng(3).normal(0, 1.5, (68, 2))
    s = similarity(0.7, 0.6, 120.0, -15.0)
    for ft in FACE_TYPES:
        m0 = face_transform(lm, 256, ft)
        m1 = face_transform(transform_points(lm, s), 256, ft)
        # m1 = m0 o s^-1: a frame point p maps the same as s(p) in the moved frame
        np.testing.assert_allclose(transform_points(transform_points(lm, s), m1), transform_points(lm, m0),
                                   atol=1e-6)


def test_scale_zooms_in():
    lm = template_face_68()
    assert matrix_scale(face_transform(lm, 256, "full", scale=1.25)) == pytest.approx(
        1.25 * matrix_scale(face_transform(lm, 256, "full")))


def test_face_type_names_and_errors():
    assert canonical_face_type("whole_face") == "whole_face"
    assert canonical_face_type("wf") == "whole_face"
    assert canonical_face_type("full_face") == "full"
    assert canonical_face_type("midfull_face") == "mid-full"
    with pytest.raises(FacelabError):
        canonical_face_type("avatar")
    with pytest.raises(ValueError):
        face_transform(np.zeros((5, 2)), 256, "full")


def _dlib_landmarks(image: np.ndarray, near: np.ndarray) -> np.ndarray:
    """dlib 68 landmarks of the detection whose centre is nearest ``near`` (x, y)."""
    dlib = pytest.importorskip("dlib")
    frm = pytest.importorskip("face_recognition_models")
    det = dlib.get_frontal_face_detector()
    pred = dlib.shape_predictor(frm.pose_predictor_model_location())
    rects = det(image, 1)
    assert len(rects) >= 1
    rect = min(rects, key=lambda r: np.hypot(r.center().x - near[0], r.center().y - near[1]))
    shape = pred(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


def test_real_photo_known_similarity_recovered_within_a_pixel(astronaut):
    """Warp the astronaut by a known similarity; the matrix from re-detected landmarks matches within 1 px."""
    canvas = cv2.copyMakeBorder(astronaut, 128, 128, 128, 128, cv2.BORDER_CONSTANT, value=(90, 90, 90))
    s = similarity(math.radians(17.0), 1.15, -40.0, 25.0)
    # rotate about the canvas centre, then scale and shift
    c = np.array(canvas.shape[1::-1], float) / 2
    s[:, 2] += c - s[:, :2] @ c
    moved = cv2.warpAffine(canvas, s, canvas.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(90, 90, 90))
    face_centre = np.array([128 + 222.0, 128 + 122.0])  # Eileen Collins' face in the padded photo
    lm0 = _dlib_landmarks(canvas, face_centre)
    lm1 = _dlib_landmarks(moved, transform_points(face_centre, s)[0])
    size = 256
    m0 = face_transform(lm0, size, "whole_face")
    m1 = face_transform(lm1, size, "whole_face")
    grid = np.array([[0, 0], [size, 0], [size, size], [0, size], [size / 2, size / 2]], float)
    # crop corners and centre as the recovered matrix places them, taken back to the original photo's pixels
    got = transform_points(transform_points(grid, m1, invert=True), s, invert=True)
    want = transform_points(grid, m0, invert=True)
    err = np.abs(got - want).max()
    assert err < 1.0, err
    a0 = warp_to_face(canvas, m0, size).astype(np.float32)
    a1 = warp_to_face(moved, m1, size).astype(np.float32)
    assert np.abs(a0 - a1)[32:-32, 32:-32].mean() < 12.0  # the same face, upright in both crops
