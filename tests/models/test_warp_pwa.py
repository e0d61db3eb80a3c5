"""Piecewise-affine warp of the warp model: shared mesh, anchors, identity and affine warps against OpenCV,
degenerate meshes, speed."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from facelab.align import face_transform, frontal_landmarks, hull_mask, transform_points, warp_to_face
from facelab.models.warp.pwa import (
    N_ANCHORS,
    anchor_points,
    mesh_triangles,
    signed_areas,
    swap_mask,
    warp_face,
    warp_to_landmarks,
)

SIZE = 256


def _psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    mse = float(((a - b) ** 2)[mask > 0].mean())
    return 10.0 * np.log10(1.0 / max(mse, 1e-12))


def _erode(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.erode(mask, np.ones((2 * px + 1, 2 * px + 1), np.uint8))


@pytest.fixture(scope="module")
def texture() -> np.ndarray:
    """A smooth random colour texture (SIZE, SIZE, 3) float32 spanning most of [0, 1]."""
    rng = np.random.default_rng(7)
    tex = cv2.GaussianBlur(rng.random((SIZE, SIZE, 3)).astype(np.float32), (0, 0), 2.0)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return tex.astype(np.float32)


@pytest.fixture(scope="module")
def real_face(astronaut) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut aligned to a whole_face crop: (image (SIZE, SIZE, 3) float32, landmarks (68, 2))."""
    from facekit import face_landmarks

    lm = face_landmarks(astronaut)
    mat = face_transform(lm, SIZE, "whole_face")
    face = warp_to_face(astronaut, mat, SIZE).astype(np.float32) / 255.0
    return face, transform_points(lm, mat)


def _affine(angle_deg: float, scale: float, shear: float, shift: tuple[float, float]) -> np.ndarray:
    mat = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), angle_deg, scale)
    mat[:, :2] = mat[:, :2] @ np.array([[1.0, shear], [0.0, 1.0]])
    mat[:, 2] += shift
    return mat


def test_mesh_is_upright_on_the_mean_face_and_covers_the_crop(texture):
    tri = mesh_triangles("whole_face")
    pts = anchor_points(frontal_landmarks(SIZE, "whole_face"), SIZE)
    assert pts.shape == (N_ANCHORS, 2) and tri.ndim == 2 and tri.shape[1] == 3
    assert tri.min() >= 0 and tri.max() == N_ANCHORS - 1  # every anchor is used
    assert (signed_areas(pts, tri) > 0).all()
    assert not tri.flags.writeable and mesh_triangles("wf") is mesh_triangles("whole_face")
    # the identity warp of the mean face reaches every pixel from an upright triangle, inside the image
    _, coverage = warp_face(texture, pts, pts, tri, SIZE)
    assert coverage.min() == 1.0


def test_anchors_follow_affine_maps_of_the_landmarks_and_border_stays():
    lm = frontal_landmarks(SIZE, "whole_face")
    mat = _affine(9.0, 1.1, 0.08, (5.0, -4.0))
    a, b = anchor_points(lm, SIZE), anchor_points(transform_points(lm, mat), SIZE)
    np.testing.assert_allclose(b[:77], transform_points(a[:77], mat), atol=1e-9)
    np.testing.assert_array_equal(a[77:], b[77:])
    assert a[68:77, 1].max() < lm[17:27, 1].min()  # forehead points sit above the brows
    corners = a[77:]
    assert corners.min() == 0.0 and corners.max() == SIZE - 1


def test_warp_onto_its_own_landmarks_returns_the_face(real_face):
    face, lm = real_face
    pts = anchor_points(lm, SIZE)
    warped, coverage = warp_face(face, pts, pts, mesh_triangles(), SIZE)
    assert warped.dtype == np.float32 and warped.shape == face.shape
    hull = hull_mask(lm, SIZE)
    assert _psnr(warped, face, hull) > 50.0
    assert coverage[hull > 0].min() == 1.0


@pytest.mark.parametrize("params", [(0.0, 1.0, 0.0, (6.0, -3.0)), (8.0, 1.08, 0.06, (4.0, -5.0)),
                                    (-12.0, 0.92, -0.05, (-3.0, 2.0))])
def test_warp_onto_affinely_moved_landmarks_equals_warp_affine(texture, params):
    lm = frontal_landmarks(SIZE, "whole_face") + np.random.default_rng(1).normal(0.0, 1.5, (68, 2))
    mat = _affine(*params)
    dst_lm = transform_points(lm, mat)
    warped, coverage = warp_face(texture, anchor_points(lm, SIZE), anchor_points(dst_lm, SIZE), mesh_triangles(),
                                 SIZE)
    expected = cv2.warpAffine(texture, mat, (SIZE, SIZE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    inner = _erode(hull_mask(dst_lm, SIZE), 2)
    assert _psnr(np.clip(expected, 0, 1), warped, inner) > 40.0
    # and a plain cross-check that the warp moved the texture: the unwarped texture does not match
    assert _psnr(texture, warped, inner) < 25.0
    assert coverage[inner > 0].min() == 1.0


def test_warp_real_face_to_the_mean_face_and_back_keeps_it(real_face):
    face, lm = real_face
    mean = frontal_landmarks(SIZE, "whole_face")
    there, _ = warp_to_landmarks(face, lm, mean, SIZE)
    back, _ = warp_to_landmarks(there, mean, lm, SIZE)
    inner = _erode(hull_mask(lm, SIZE), 3)
    assert _psnr(back, face, inner) > 40.0  # two bicubic resamplings
    assert _psnr(there, face, inner) < _psnr(back, face, inner) - 5.0


def test_output_size_and_uint8_input(real_face):
    face, lm = real_face
    small_lm = (lm + 0.5) * 0.5 - 0.5
    warped, coverage = warp_to_landmarks((face * 255).round().astype(np.uint8), lm, small_lm, SIZE // 2)
    assert warped.shape == (SIZE // 2, SIZE // 2, 3) and coverage.shape == (SIZE // 2, SIZE // 2)
    expected = cv2.resize(face, (SIZE // 2, SIZE // 2), interpolation=cv2.INTER_AREA)
    assert _psnr(warped, expected, _erode(hull_mask(small_lm, SIZE // 2), 2)) > 35.0


def test_degenerate_and_flipped_triangles_are_handled(texture):
    lm = frontal_landmarks(SIZE, "whole_face")
    dst = lm.copy()
    dst[60:68] = dst[[60, 61, 62, 63, 64, 63, 62, 61]]  # inner lips closed: zero-area triangles
    dst[0:4, 0] += 60.0  # the near jaw pushed past the eye corner: triangles flip, as when the head turns
    src = lm.copy()
    src[36:42] = src[36:42].mean(0)  # a collapsed eye in the source
    tri = mesh_triangles()
    dst_pts, src_pts = anchor_points(dst, SIZE), anchor_points(src, SIZE)
    assert (signed_areas(dst_pts, tri) <= 0.5).sum() >= 3  # the case really has degenerate triangles
    warped, coverage = warp_face(texture, src_pts, dst_pts, tri, SIZE)
    assert np.isfinite(warped).all() and 0.0 <= warped.min() and warped.max() <= 1.0
    assert 0.5 < coverage.mean() < 1.0
    # away from the damage the warp is still the identity
    far = np.zeros((SIZE, SIZE), np.uint8)
    far[:, 150:] = 1
    far &= _erode(hull_mask(lm, SIZE).astype(np.uint8), 2)
    assert _psnr(warped, texture, far) > 45.0


def test_bad_inputs_raise(texture):
    pts = anchor_points(frontal_landmarks(SIZE), SIZE)
    tri = mesh_triangles()
    with pytest.raises(ValueError):
        anchor_points(np.zeros((67, 2)), SIZE)
    bad = pts.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError):
        warp_face(texture, pts, bad, tri, SIZE)
    with pytest.raises(ValueError):
        warp_face(texture, pts, pts[:-1], tri, SIZE)
    with pytest.raises(ValueError):
        warp_face(texture, pts, pts, tri + N_ANCHORS, SIZE)
    with pytest.raises(ValueError):  # all landmarks on one point: no similarity to fall back on
        same = pts.copy()
        same[:68] = 100.0
        warp_face(texture, same, same, tri, SIZE)


def test_swap_mask_is_the_destination_hull_times_coverage():
    lm = frontal_landmarks(SIZE)
    np.testing.assert_array_equal(swap_mask(lm, SIZE), hull_mask(lm, SIZE))
    coverage = np.ones((SIZE, SIZE), np.float32)
    coverage[:, :128] = 0.0
    mask = swap_mask(lm, SIZE, coverage)
    assert mask[:, :128].max() == 0.0 and mask[:, 128:].sum() == hull_mask(lm, SIZE)[:, 128:].sum()


def test_warp_face_takes_a_few_milliseconds_at_256(texture):
    lm = frontal_landmarks(SIZE)
    src = anchor_points(lm, SIZE)
    dst = anchor_points(lm + np.random.default_rng(3).normal(0, 2.0, lm.shape), SIZE)
    tri = mesh_triangles()
    warp_face(texture, src, dst, tri, SIZE)
    times = []
    for _ in range(15):
        start = time.perf_counter()
        warp_face(texture, src, dst, tri, SIZE)
        times.append(time.perf_counter() - start)
    assert float(np.median(times)) < 0.025  # about 3 ms on one core; loose for a busy test machine
