"""Augmentation maths: random warp field, affine parameters, flips, HSV, yaw bins (references: numpy, OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelab.train import augment as A

R = 64


@pytest.fixture(scope="module")
def img(astronaut) -> np.ndarray:
    return cv2.resize(astronaut, (R, R), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


@pytest.mark.parametrize("res", [32, 64, 96, 128])
@pytest.mark.parametrize("div", A.CELL_DIVISORS)
def test_zero_jitter_warp_is_identity(res, div, img):
    n = div + 1
    mapx, mapy = A.warp_field(np.zeros((n, n)), np.zeros((n, n)), res)
    ys, xs = np.mgrid[0:res, 0:res]
    np.testing.assert_allclose(mapx, xs, atol=1e-5)
    np.testing.assert_allclose(mapy, ys, atol=1e-5)
    if res == R:
        out = cv2.remap(img, mapx, mapy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        np.testing.assert_allclose(out, img, atol=1e-5)


def test_control_point_offset_moves_that_point():
    n, cell = 5, 16  # R = 64, cell R/4
    ox, oy = np.zeros((n, n)), np.zeros((n, n))
    ox[2, 2], oy[2, 2] = 3.0, -2.0
    mapx, mapy = A.warp_field(ox, oy, R)
    # grid point (2, 2) sits at pixel 2*cell - 0.5 (pixel centres, even cell): bilinear weight (1 - 0.5/cell)^2
    np.testing.assert_allclose(mapx[31:33, 31:33] - np.arange(31, 33)[None, :], 3.0 * (1 - 0.5 / cell) ** 2, atol=1e-4)
    np.testing.assert_allclose(mapy[31:33, 31:33] - np.arange(31, 33)[:, None], -2.0 * (1 - 0.5 / cell) ** 2, atol=1e-4)
    # bilinear falloff: zero one cell away and beyond
    assert np.abs(mapx[:, :16] - np.arange(16)[None, :]).max() < 1e-4
    assert np.abs(mapy[48:, :] - np.arange(48, R)[:, None]).max() < 1e-4


def test_random_warp_jitter_statistics():
    rng = np.random.default_rng(0)
    disp = []
    for _ in range(300):
        mapx, _ = A.random_warp_field(rng, R)
        disp.append(mapx - np.arange(R)[None, :])
    disp = np.stack(disp)
    # border control points are fixed: the outermost pixels (half a pixel inside the grid) barely move
    border = np.abs(np.concatenate([disp[:, :, 0], disp[:, :, -1]])).mean()
    assert border < 0.05 * np.abs(disp[:, :, R // 2]).mean()
    # the warp is random but bounded: jitter std 0.24 cell, cells up to R/2
    assert 0.5 < disp.std() < 0.24 * R / 2


def test_affine_matrix_known_transforms(img):
    rot = A.affine_matrix(R, 90.0, 1.0, 0.0, 0.0)
    out = cv2.warpAffine(img, rot, (R, R), flags=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(out, np.rot90(img, 1))  # counter-clockwise on screen, as cv2
    m = A.affine_matrix(R, 0.0, 2.0, 5.0, -3.0)
    c = (R - 1) / 2
    pts = np.array([[c, c], [0.0, 0.0], [10.0, 20.0]])
    expect = (pts - c) * 2.0 + c + [5.0, -3.0]
    np.testing.assert_allclose(pts @ m[:, :2].T + m[:, 2], expect, atol=1e-9)


def test_random_affine_ranges():
    rng = np.random.default_rng(1)
    angles, scales, shifts = [], [], []
    for _ in range(2000):
        m = A.random_affine(rng, R)
        s = np.hypot(m[0, 0], m[0, 1])
        angles.append(np.degrees(np.arctan2(m[0, 1], m[0, 0])))
        scales.append(s)
        c = (R - 1) / 2
        centre = m[:, :2] @ [c, c] + m[:, 2]
        shifts.append((centre - c) / R)
    angles, scales, shifts = np.array(angles), np.array(scales), np.array(shifts)
    assert -10 <= angles.min() < -9.5 and 9.5 < angles.max() <= 10
    assert 1 / 1.15 <= scales.min() < 0.88 and 1.14 < scales.max() <= 1.15
    assert np.abs(shifts).max() <= 0.05 and np.abs(shifts).max() > 0.049


def test_flip_probability():
    rng = np.random.default_rng(2)
    flips = [A.random_params(rng, R, flip=True, warp=False).flip for _ in range(3000)]
    assert 0.37 < np.mean(flips) < 0.43
    assert not any(A.random_params(rng, R, flip=False, warp=True).flip for _ in range(200))


def test_composed_warp_equals_affine_when_warp_is_identity(img):
    rng = np.random.default_rng(3)
    affine = A.random_affine(rng, R)
    ys, xs = np.mgrid[0:R, 0:R].astype(np.float32)
    fx, fy = A.compose_warp_affine(xs, ys, affine)
    out = cv2.remap(img, fx, fy, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    ref = cv2.warpAffine(img, affine, (R, R), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    assert np.abs(out - ref).max() < 0.02  # warpAffine rounds coordinates to 1/32 px
    inv = cv2.invertAffineTransform(affine)
    np.testing.assert_allclose(fx, inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2], atol=1e-4)


def test_composed_warp_equals_two_steps(img):
    """Same geometry as DeepFaceLab's remap-then-warpAffine, in one resampling."""
    rng = np.random.default_rng(4)
    p = A.random_params(rng, R, flip=False, warp=True)
    fx, fy = A.compose_warp_affine(p.mapx, p.mapy, p.affine)
    ys, xs = np.mgrid[0:R, 0:R].astype(np.float64)
    inv = cv2.invertAffineTransform(p.affine)
    qx, qy = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2], inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    inside = (qx >= 0) & (qx <= R - 1) & (qy >= 0) & (qy <= R - 1)
    ref_x = cv2.remap(p.mapx, qx.astype(np.float32), qy.astype(np.float32), cv2.INTER_LINEAR)
    np.testing.assert_allclose(fx[inside], ref_x[inside], atol=1e-3)


def test_apply_params_masks_and_flip(img):
    rng = np.random.default_rng(5)
    mask = np.zeros((R, R), np.float32)
    mask[16:48, 20:44] = 1.0
    for _ in range(20):
        p = A.random_params(rng, R, flip=True, warp=True)
        m = A.apply_params(mask, p, warp=False, is_mask=True)
        assert m.dtype == np.float32 and m.min() >= 0.0 and m.max() <= 1.0
        assert m[0].max() == 0.0  # constant border: nothing leaks in from outside
        im = A.apply_params(img, p, warp=True)
        assert im.shape == img.shape and 0.0 <= im.min() and im.max() <= 1.0
    p = A.SampleParams(A.affine_matrix(R, 0, 1, 0, 0), True, None, None)
    np.testing.assert_allclose(A.apply_params(img, p, warp=True), img[:, ::-1], atol=1e-5)


def test_random_hsv(img):
    rng = np.random.default_rng(6)
    assert A.random_hsv(img, rng, 0.0) is img
    out = A.random_hsv(img, rng, 0.1)
    assert out.shape == img.shape and out.min() >= 0.0 and out.max() <= 1.0
    hsv_in = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv_out = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
    sat = (hsv_in[..., 1] > 0.3) & (hsv_in[..., 2] > 0.3) & (hsv_out[..., 1] > 0.3)
    dh = (hsv_out[..., 0] - hsv_in[..., 0] + 180.0) % 360.0 - 180.0
    assert np.abs(np.median(dh[sat])) <= 360 * 0.1 / 2 + 1
    dv = np.median(hsv_out[..., 2] - hsv_in[..., 2])
    assert abs(dv) <= 0.05 + 1e-3


def test_yaw_bins():
    yaws = np.array([-3.0, -1.2, -1.19, 0.0, 0.001, 1.19, 5.0])
    bins = A.yaw_bins(yaws)
    flat = sorted(np.concatenate(bins).tolist())
    assert flat == list(range(len(yaws)))
    which = {int(i): b for b, idx in enumerate(bins) for i in idx}
    assert which[0] == which[1] == which[2] == 0  # beyond the range joins the outer bin
    assert which[5] == which[6] == len(bins) - 1
    assert which[3] == which[4]  # both fall in bin 64 of 128
