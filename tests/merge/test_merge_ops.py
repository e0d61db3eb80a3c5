"""Pure functions of the merge: masks, blending geometry, filters, colour-statistics shift, config parsing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelab.errors import FacelabError
from facelab.merge import blend, filters
from facelab.merge.config import MergeConfig, parse_frames, settings_from_dict
from facelab.merge.masks import MaskInputs, build_mask, parse_mask_mode, refine_mask, seamless_mask

# ---------------------------------------------------------------------------------------------------------------
# masks


def _dfl_refine(mask: np.ndarray, r: int, erode: int, blur: int) -> np.ndarray:
    """DeepFaceLab's mask processing written out step by step at 4R (the reference)."""
    m = cv2.resize(mask, (4 * r, 4 * r), interpolation=cv2.INTER_CUBIC)
    m = np.pad(m, r)
    if erode > 0:
        m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (erode, erode)), iterations=1)
    elif erode < 0:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (-erode, -erode)), iterations=1)
    clip = r + blur // 2
    m[:clip, :] = 0
    m[-clip:, :] = 0
    m[:, :clip] = 0
    m[:, -clip:] = 0
    if blur > 0:
        k = blur + (1 - blur % 2)
        m = cv2.GaussianBlur(m, (k, k), 0)
    return np.clip(m[r:-r, r:-r], 0, 1)


def _disc(r: int, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[:r, :r]
    return ((xx - r / 2 + 0.5) ** 2 + (yy - r / 2 + 0.5) ** 2 <= radius ** 2).astype(np.float32)


@pytest.mark.parametrize("erode,blur", [(0, 0), (12, 0), (-12, 30), (20, 61)])
def test_refine_mask_at_4x_matches_deepfacelab_steps(erode, blur):
    r = 32
    mask = _disc(r, 12)
    np.testing.assert_allclose(refine_mask(mask, r, erode, blur), _dfl_refine(mask, r, erode, blur), atol=1e-6)


def test_refine_mask_erode_shrinks_dilate_grows_and_border_fades_to_zero():
    r = 32
    disc = _disc(r, 10)
    base = refine_mask(disc, r, 0, 0).sum()
    assert refine_mask(disc, r, 16, 0).sum() < base < refine_mask(disc, r, -16, 0).sum()
    mask = np.ones((r, r), np.float32)
    blurred = refine_mask(mask, r, 0, 40)
    assert blurred[0].max() < 1e-3 and blurred[:, -1].max() < 1e-3 and blurred[64, 64] > 0.99


def test_refine_mask_at_reduced_work_size_matches_full_size():
    r = 64
    mask = _disc(r, 24)
    full = refine_mask(mask, r, 20, 81)
    small = refine_mask(mask, r, 20, 81, work_size=96)
    down = cv2.resize(full, (96, 96), interpolation=cv2.INTER_AREA)
    assert np.abs(down - small).mean() < 0.01 and np.abs(down - small).max() < 0.08


def test_build_mask_combines_terms_and_drops_noise():
    r = 8
    prd = np.full((r, r), 0.5, np.float32)
    dst = np.full((r, r), 0.8, np.float32)
    dst[0, 0] = 0.001
    inputs = MaskInputs(r, prd=prd, dst=dst, hull=np.eye(r, dtype=np.float32), stored={"bas": prd * 0.5})
    np.testing.assert_allclose(build_mask(parse_mask_mode("learned-prd*learned-dst"), inputs)[1, 1], 0.4)
    np.testing.assert_allclose(build_mask(parse_mask_mode("learned-prd+learned-dst"), inputs)[1, 1], 1.0)
    assert build_mask(parse_mask_mode("learned-prd*learned-dst"), inputs)[0, 0] == 0.0  # below 1/255
    assert np.array_equal(build_mask(parse_mask_mode("dst"), inputs), np.eye(r))
    np.testing.assert_allclose(build_mask(parse_mask_mode("stored:bas*learned-prd*learned-dst"), inputs)[2, 3],
                               0.25 * 0.5 * 0.8)
    assert build_mask(parse_mask_mode("full"), inputs).min() == 1.0


def test_parse_mask_mode_rejects_unknown_modes():
    assert parse_mask_mode("stored:sat*learned-prd").stored == "sat"
    for bad in ("learned", "stored:", "stored:x*full", "dst*learned-prd"):
        with pytest.raises(FacelabError):
            parse_mask_mode(bad)


def test_seamless_mask_binarises_at_first_tenth():
    m = np.array([[0.05, 0.15], [0.5, 1.0]], np.float32)
    assert seamless_mask(m).tolist() == [[0, 255], [255, 255]]


# ---------------------------------------------------------------------------------------------------------------
# blending geometry


def test_roi_warp_equals_full_frame_warp_cropped():
    rng = np.random.default_rng(0)
    face = rng.random((40, 40, 3), dtype=np.float32)
    mat = cv2.getRotationMatrix2D((50, 40), 17, 0.4)  # frame -> face
    roi = blend.face_roi(mat, 40, (200, 240))
    full = cv2.warpAffine(face, mat, (240, 200), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(blend.face_to_roi(face, mat, roi), full[roi.slices()], atol=1e-5)
    ones = cv2.warpAffine(np.ones((40, 40), np.float32), mat, (240, 200), flags=cv2.WARP_INVERSE_MAP)
    ys, xs = np.nonzero(ones > 0)
    assert roi.x0 <= xs.min() and xs.max() < roi.x1 and roi.y0 <= ys.min() and ys.max() < roi.y1


def test_merge_mode_registry_matches_the_config_choices():
    from facelab.merge.config import MODES

    assert tuple(blend.MERGE_MODES.names()) == MODES


def test_composite_matches_float64_formula():
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 9, 7, 3)).astype(np.float32)
    m = rng.random((9, 7)).astype(np.float32)
    ref = a.astype(np.float64) * (1 - m[..., None]) + b.astype(np.float64) * m[..., None]
    np.testing.assert_allclose(blend.composite(a, b, m), ref, atol=1e-6)


def test_seamless_clone_of_the_frame_itself_changes_little(astronaut):
    frame = astronaut[150:300, 150:300].astype(np.float32) / 255.0
    mask = np.zeros(frame.shape[:2], np.float32)
    mask[30:120, 40:110] = 1.0
    out = blend.seamless_clone(frame, frame, mask)
    assert np.abs(out - frame).mean() < 2 / 255


# ---------------------------------------------------------------------------------------------------------------
# filters


def test_hist_match_moves_histograms_toward_the_template(astronaut, grace_hopper):
    src = astronaut[100:300, 100:300].astype(np.float32) / 255.0
    tpl = grace_hopper[100:300, 100:300].astype(np.float32) / 255.0
    out = filters.hist_match(src, tpl)
    def hist(x, c):
        return np.histogram(x[..., c], 32, (0, 1))[0] / x[..., c].size

    for c in range(3):
        assert np.abs(hist(out, c) - hist(tpl, c)).sum() < 0.3 * np.abs(hist(src, c) - hist(tpl, c)).sum()
    np.testing.assert_allclose(filters.hist_match(src, src), src, atol=1 / 255 + 1e-6)
    lower = filters.hist_match(src, tpl, threshold=200)
    assert lower.mean() < out.mean()


def test_motion_blur_spreads_along_the_motion_only():
    img = np.zeros((41, 41, 3), np.float32)
    img[20, 20] = 1.0
    out = filters.motion_blur(img, power=20.0, angle_deg=0.0, amount=50)  # kernel 11, horizontal
    assert out[20, 15:26, 0].min() > 0 and out[14:19, 20, 0].max() < 1e-6
    np.testing.assert_allclose(out.sum(), img.sum(), rtol=1e-5)
    assert filters.motion_blur(img, 0.5, 0.0, 100) is img  # below one pixel of motion: untouched
    k = filters.motion_kernel(9, 90.0)
    assert k[:, 4].sum() > 0.95


def test_frame_degrades():
    rng = np.random.default_rng(2)
    img = cv2.GaussianBlur(rng.random((48, 64, 3)).astype(np.float32), (5, 5), 0)
    assert len(np.unique(filters.reduce_colors(img, 256).reshape(-1, 3), axis=0)) <= 256
    assert filters.color_degrade(img, 0) is img and filters.bicubic_degrade(img, 0) is img
    soft = filters.bicubic_degrade(img, 80)
    assert soft.shape == img.shape and np.abs(np.diff(soft, axis=1)).mean() < np.abs(np.diff(img, axis=1)).mean()
    assert filters.denoise(img, 0) is img  # denoise against DeepFaceLab's loop: test_merge_reference.py


def test_shift_lab_stats_moves_mean_and_std_to_the_target(astronaut):
    img = astronaut[180:260, 180:260].astype(np.float32) / 255.0
    cur = filters.lab_stats(img)
    target = cur.copy()
    target[0] += np.array([4.0, -3.0, 2.0])
    target[1] *= np.array([1.1, 0.9, 1.05])
    out = filters.shift_lab_stats(img, cur, target)
    got = filters.lab_stats(out)
    np.testing.assert_allclose(got, target, atol=0.35)
    np.testing.assert_allclose(filters.shift_lab_stats(img, cur, cur), img, atol=2e-3)


def test_lab_stats_reference_uses_masked_pixels():
    img = np.zeros((4, 4, 3), np.float32)
    img[:2] = 1.0
    mask = np.zeros((4, 4), np.float32)
    mask[:2] = 1
    stats = filters.lab_stats(img, mask)
    np.testing.assert_allclose(stats[0], [100.0, 0.0, 0.0], atol=0.05)
    np.testing.assert_allclose(stats[1], 0.0, atol=1e-3)


# ---------------------------------------------------------------------------------------------------------------
# config


def test_ranges_override_by_frame_number_and_later_ranges_win():
    s = settings_from_dict({"defaults": {"erode": 5, "color": "none"},
                            "ranges": [{"frames": "10-50", "erode": 20, "mode": "seamless"},
                                       {"frames": 30, "erode": -10}]}, {"blur": 7})
    assert s.for_frame(9) == MergeConfig(erode=5, blur=7, color="none")
    assert (s.for_frame(10).erode, s.for_frame(10).mode, s.for_frame(10).blur) == (20, "seamless", 7)
    assert s.for_frame(30).erode == -10 and s.for_frame(51).mode == "overlay"
    assert settings_from_dict({"mode": "raw-rgb"}).base.mode == "raw-rgb"  # flat file = defaults
    assert parse_frames("7") == (7, 7) and parse_frames("3-9") == (3, 9)


@pytest.mark.parametrize("bad", [
    {"ranges": [{"frames": "5-2", "erode": 1}]},
    {"ranges": [{"erode": 1}]},
    {"ranges": [{"frames": "1-2", "batch": 4}]},
    {"ranges": [{"frames": "1-2", "erode": 999}]},
    {"defaults": {"colour": "rct"}},
    {"defaults": {"color": "nope"}},
    {"defaults": {"mask_mode": "stored:"}},
    {"defaults": {"smooth_window": 6}},
    {"defaults": {}, "extra": 1},
])
def test_bad_config_files_are_one_line_errors(bad):
    with pytest.raises(FacelabError):
        settings_from_dict(bad, where="merge.json")
