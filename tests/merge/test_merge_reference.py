"""Merge maths against small ports of DeepFaceLab's (core/imagelib/blursharpen.py, color_transfer.py and the order
of merger/MergeMasked.py), and values worked out by hand."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelab.imageops import color as ct
from facelab.merge import filters, render
from facelab.merge.config import MergeConfig
from facelab.merge.masks import refine_mask

R = 32

# ---------------------------------------------------------------------------------------------------------------
# ports


def _dfl_blursharpen(img, mode, kernel_size, amount):
    """Sharpen with a delta-minus-box kernel or a weighted Gaussian difference; blur with decaying median passes."""
    k = kernel_size + (1 - kernel_size % 2)
    if amount > 0:
        if mode == "box":
            delta = np.zeros((k, k), np.float32)
            delta[k // 2, k // 2] = 1.0
            kernel = delta + (delta - np.full((k, k), 1.0 / k ** 2, np.float32)) * amount
            return cv2.filter2D(img, -1, kernel)
        if mode == "gaussian":
            low = cv2.GaussianBlur(img, (k, k), 0)
            return cv2.addWeighted(img, 1.0 + 0.5 * amount, low, -0.5 * amount, 0)
        return img
    return _dfl_median_loop(img, -amount, 10)


def _dfl_median_loop(img, n, unit):
    """The loop shared by blur (unit 10) and denoise (unit 100): n falls by 10 a pass."""
    while n > 0:
        med = cv2.medianBlur(img, 5)
        if n // unit != 0:
            img = med
        else:
            p = (n % unit) / unit
            img = img * (1.0 - p) + med * p
        n = max(n - 10, 0)
    return img


def _dfl_channel_hist_match(source, template, threshold=255):
    """Quantile matching over the exact values present (np.unique), source CDF scaled by threshold / 255."""
    _, idx, s_counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    t_values, t_counts = np.unique(template.ravel(), return_counts=True)
    s_q = threshold * np.cumsum(s_counts) / s_counts.sum()
    t_q = 255.0 * np.cumsum(t_counts) / t_counts.sum()
    return np.interp(s_q, t_q, t_values)[idx.ravel()].reshape(source.shape)


def _dfl_color_hist_match(src, tpl, threshold=255):
    return np.stack([_dfl_channel_hist_match(src[..., c], tpl[..., c], threshold) for c in range(3)], -1)


def _dfl_masked_hist_match(prd, dst, area, threshold):
    """The hist-match mode with masked_hist_match: pixels outside the mask become white in both crops."""
    m = area[..., None]
    white = 1.0 - m
    return _dfl_color_hist_match(np.minimum(prd * m + white, 1.0), np.minimum(dst * m + white, 1.0), threshold)


def _dfl_area(refined, r):
    """MergeMasked's mask of the colour statistics: the refined mask resized to R (cubic), 1 wherever above 0."""
    m = cv2.resize(refined, (r, r), interpolation=cv2.INTER_CUBIC)
    return (m > 0).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# fixtures


def _crop8(img, box):
    """An 8-bit-valued float crop (k / 255, k <= 250) at R x R, as decoded frames are."""
    y0, y1, x0, x1 = box
    c = cv2.resize(img[y0:y1, x0:x1], (R, R), interpolation=cv2.INTER_AREA)
    return (np.minimum(c, 250) / 255.0).astype(np.float32)


@pytest.fixture(scope="module")
def face(astronaut, grace_hopper):
    yy, xx = np.mgrid[:R, :R]
    wrk = (((xx - R / 2 + 0.5) ** 2 + (yy - R / 2 + 0.5) ** 2) <= 10 ** 2).astype(np.float32)
    return render.FaceInput(
        face_index=0, face_type="whole_face", landmarks=np.zeros((68, 2)),
        face_mat=np.array([[0.5, 0.0, -8.0], [0.0, 0.5, -8.0]]),
        dst=_crop8(grace_hopper, (80, 400, 120, 400)), pred=_crop8(astronaut, (40, 220, 160, 340)),
        prd_mask=wrk, dst_mask=wrk)


# ---------------------------------------------------------------------------------------------------------------
# sharpening


@pytest.mark.parametrize("mode", ["box", "gaussian"])
@pytest.mark.parametrize("amount", [1, 7, 50, 100])
def test_sharpen_matches_deepfacelab(astronaut, mode, amount):
    img = astronaut[100:164, 180:244].astype(np.float32) / 255.0
    np.testing.assert_allclose(filters.blur_sharpen(img, mode, amount), _dfl_blursharpen(img, mode, 3, amount),
                               rtol=1e-5, atol=2e-5 * amount)


@pytest.mark.parametrize("amount", [-1, -25, -100])
def test_blur_matches_deepfacelab(astronaut, amount):
    img = astronaut[100:164, 180:244].astype(np.float32) / 255.0
    np.testing.assert_allclose(filters.blur_sharpen(img, "box", amount), _dfl_blursharpen(img, "box", 3, amount),
                               atol=1e-6)


def test_sharpen_of_a_point_by_hand():
    """A unit point on black: box 3x3 (1/9 each) at amount 9 gives 1 + 9 * 8/9 = 9 at the point and 9 * -1/9 = -1
    beside it; OpenCV's 3x3 Gaussian with sigma 0 is [1/4, 1/2, 1/4] squared (1/4 at the centre, 1/8 beside), so
    amount 8 gives 1 + 4 * 3/4 = 4 and 4 * -1/8 = -0.5. Not clipped: the paste-back clips."""
    img = np.zeros((9, 9, 3), np.float32)
    img[4, 4] = 1.0
    box = filters.blur_sharpen(img, "box", 9)
    assert box[4, 4, 0] == pytest.approx(9.0, abs=1e-5) and box[4, 5, 0] == pytest.approx(-1.0, abs=1e-5)
    gauss = filters.blur_sharpen(img, "gaussian", 8)
    assert gauss[4, 4, 0] == pytest.approx(4.0, abs=1e-5) and gauss[3, 4, 0] == pytest.approx(-0.5, abs=1e-5)


def test_merge_sharpens_the_face_with_the_amount_as_is(face):
    cfg = MergeConfig(sharpen_mode="gaussian", sharpen_amount=30)
    np.testing.assert_allclose(render._post_fn(face, cfg)(face.pred), _dfl_blursharpen(face.pred, "gaussian", 3, 30),
                               rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# masked colour statistics


def test_color_mask_is_the_refined_mask_above_zero(face):
    refined = refine_mask(face.prd_mask, R, 0, 40)
    area = render.color_mask(MergeConfig(color_stats="zeros"), face.prd_mask, refined)
    np.testing.assert_array_equal(area, _dfl_area(refined, R))
    assert area.sum() > (face.prd_mask > 0.5).sum()  # the blurred mask reaches beyond the working mask
    assert render.color_mask(MergeConfig(color_stats="inside"), face.prd_mask, refined) is face.prd_mask


def test_color_stats_choices_are_checked():
    assert MergeConfig().color_stats == "inside"  # facelab's default; "zeros" is DeepFaceLab's rule
    with pytest.raises(ValueError, match="color_stats"):
        MergeConfig(color_stats="outside")


@pytest.mark.parametrize("color", ["rct", "mkl-m", "idt-m", "sot-m", "mix-m"])
def test_merge_colour_transfer_uses_the_area_and_zeros(face, color):
    refined = refine_mask(face.prd_mask, R, 0, 40)
    area = _dfl_area(refined, R)
    got = render._recolor_fn(face, MergeConfig(color=color, color_stats="zeros"), face.prd_mask,
                             refined)(face.pred, False)
    m3 = area[..., None]
    if color == "rct":
        # written out: Lab statistics of the crops with the Lab pixels outside the area zeroed, every pixel mapped
        t, s = ct.rgb_to_lab(face.pred), ct.rgb_to_lab(face.dst)
        t0, s0 = t * m3, s * m3
        lab = (t - t0.mean((0, 1))) * s0.std((0, 1)) / t0.std((0, 1)) + s0.mean((0, 1))
        ref = ct.lab_to_rgb(np.clip(lab, [0, -127, -127], [100, 127, 127]))
        np.testing.assert_allclose(got, ref, atol=1e-5)
    else:  # MergeMasked calls the transfer on image * area (sot-m: 30 directions a step); merge's rng is seeded 0
        base = {"mkl-m": "mkl", "idt-m": "idt", "sot-m": "sot-m", "mix-m": "mix-m"}[color]
        ref = ct.COLOR_TRANSFERS.create(base, face.pred * m3, face.dst * m3, rng=np.random.default_rng(0))
        np.testing.assert_allclose(got, ref, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# denoise


@pytest.mark.parametrize("power", [5, 15, 100, 137, 500])
def test_denoise_matches_deepfacelab(astronaut, power):
    img = astronaut[100:148, 180:244].astype(np.float32) / 255.0
    np.testing.assert_allclose(filters.denoise(img, power), _dfl_median_loop(img, power, 100), atol=1e-6)


def test_denoise_steps_down_by_ten_by_hand():
    """A lone spike: power 15 passes at 0.15 then 0.05 (the median of a lone spike is 0): 0.85 * 0.95 = 0.8075;
    power 100 is one full pass (spike gone) and nine fractional ones."""
    img = np.zeros((11, 11, 3), np.float32)
    img[5, 5] = 1.0
    assert filters.denoise(img, 15)[5, 5, 0] == pytest.approx(0.8075, abs=1e-6)
    assert filters.denoise(img, 5)[5, 5, 0] == pytest.approx(0.95, abs=1e-6)
    assert filters.denoise(img, 100)[5, 5, 0] == 0.0


# ---------------------------------------------------------------------------------------------------------------
# histogram matching


@pytest.mark.parametrize("threshold", [255, 238, 200])
def test_hist_match_matches_deepfacelab_on_8bit_images(face, threshold):
    np.testing.assert_allclose(filters.hist_match(face.pred, face.dst, threshold),
                               _dfl_color_hist_match(face.pred, face.dst, threshold), atol=1e-6)


def test_hist_match_below_the_first_template_quantile_by_hand():
    """Source 0..255 once each; template half 100, half 200. Value k has quantile 255 (k + 1) / 256; the template's
    quantiles are 127.5 (at 100) and 255 (at 200): k <= 127 clamps to 100, k = 191 (quantile 191.25) gives
    100 + 100 * 63.75 / 127.5 = 150, k = 255 gives 200."""
    src = np.arange(256, dtype=np.float32)[None] / 255.0
    tpl = np.repeat(np.array([100, 200], np.float32), 128)[None] / 255.0
    out = filters.channel_hist_match(src, tpl) * 255.0
    np.testing.assert_allclose(out[0, [0, 64, 127, 191, 255]], [100, 100, 100, 150, 200], atol=1e-4)


def test_seamless_hist_match_is_unmasked(face):
    refined = refine_mask(face.prd_mask, R, 0, 40)
    cfg = MergeConfig(mode="seamless-hist-match", color="none", hist_match_threshold=238)
    assert cfg.masked_hist_match
    got = render._recolor_fn(face, cfg, face.prd_mask, refined)(face.pred, True)
    np.testing.assert_allclose(got, _dfl_color_hist_match(face.pred, face.dst, 238), atol=1e-6)


@pytest.mark.parametrize("threshold", [255, 238])
def test_masked_hist_match_mode_matches_deepfacelab_inside_the_area(face, threshold):
    refined = refine_mask(face.prd_mask, R, 0, 40)
    area = _dfl_area(refined, R)
    cfg = MergeConfig(mode="hist-match", color="none", hist_match_threshold=threshold, color_stats="zeros")
    got = render._recolor_fn(face, cfg, face.prd_mask, refined)(face.pred, True)
    ref = _dfl_masked_hist_match(face.pred, face.dst, area, threshold)
    inside = area > 0
    np.testing.assert_allclose(got[inside], ref[inside], atol=1e-6)
