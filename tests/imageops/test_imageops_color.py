"""Colour transfer: each method moves the statistics it claims to, against numpy/scipy/skimage references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.stats import wasserstein_distance
from skimage import color as skcolor

from facelab.imageops import color as ct
from facelab.imageops.color import COLOR_TRANSFERS, color_transfer, rgb_to_lab, transfer_stats

ALL = ["rct", "lct", "mkl", "mkl-m", "idt", "idt-m", "sot", "sot-m", "mix-m"]
S = 64


@pytest.fixture(scope="module")
def faces(astronaut, grace_hopper):
    """Two real face crops, float32 HxWx3 in [0, 1]: (astronaut, grace hopper)."""
    a = cv2.resize(astronaut[40:220, 160:340], (S, S), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    g = cv2.resize(grace_hopper[80:400, 120:400], (S, S), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return a, g


@pytest.fixture(scope="module")
def mid_faces(faces):
    """The same faces compressed into [0.25, 0.75] so every transfer stays inside the sRGB gamut (no clipping)."""
    a, g = faces
    return (0.25 + 0.5 * a).astype(np.float32), (0.25 + 0.5 * g).astype(np.float32)


@pytest.fixture(scope="module")
def box_mask():
    m = np.zeros((S, S), np.float32)
    m[12:52, 16:48] = 1.0
    return m


def _cov(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    px = img.reshape(-1, 3).astype(np.float64)
    if mask is not None:
        px = px[mask.reshape(-1) > 0.5]
    return np.cov(px.T, bias=True)


def _w1(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Sum over channels of the 1-D Wasserstein distance (scipy) between the pixel distributions."""
    pa, pb = a.reshape(-1, 3), b.reshape(-1, 3)
    if mask is not None:
        keep = mask.reshape(-1) > 0.5
        pa, pb = pa[keep], pb[keep]
    return sum(wasserstein_distance(pa[:, c], pb[:, c]) for c in range(3))


def test_registry_names():
    assert set(ALL) <= set(COLOR_TRANSFERS.names())


def test_lab_matches_skimage(faces):
    a, _ = faces
    np.testing.assert_allclose(rgb_to_lab(a), skcolor.rgb2lab(a.astype(np.float64)), atol=1e-3)
    np.testing.assert_allclose(ct.lab_to_rgb(rgb_to_lab(a)), a, atol=1e-6)


def test_rct_matches_source_lab_mean_std(mid_faces):
    tgt, src = mid_faces
    out = COLOR_TRANSFERS.create("rct", tgt, src)
    lab_o = skcolor.rgb2lab(out.astype(np.float64)).reshape(-1, 3)
    lab_s = skcolor.rgb2lab(src.astype(np.float64)).reshape(-1, 3)
    np.testing.assert_allclose(lab_o.mean(0), lab_s.mean(0), atol=1e-3)
    np.testing.assert_allclose(lab_o.std(0), lab_s.std(0), atol=1e-3)
    # and it actually changed something: the target's own stats were far away
    assert np.abs(skcolor.rgb2lab(tgt.astype(np.float64)).reshape(-1, 3).mean(0) - lab_s.mean(0)).max() > 1.0


def test_rct_masked_uses_mask_stats(mid_faces, box_mask):
    tgt, src = mid_faces
    out = ct.rct(tgt, src, box_mask, box_mask)
    mo, so = transfer_stats(out, box_mask)
    ms, ss = transfer_stats(src, box_mask)
    np.testing.assert_allclose(mo, ms, atol=1e-3)
    np.testing.assert_allclose(so, ss, atol=1e-3)


@pytest.mark.parametrize("name", ["lct", "mkl"])
def test_linear_transfers_match_covariance(mid_faces, name):
    tgt, src = mid_faces
    out = COLOR_TRANSFERS.create(name, tgt, src)
    assert 0.0 < out.min() and out.max() < 1.0  # no clipping, so the maths is exact
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), src.reshape(-1, 3).mean(0), atol=1e-5)
    # lct regularises both covariances with 1e-5 * I (as DeepFaceLab does), so it matches to that order
    np.testing.assert_allclose(_cov(out), _cov(src), atol=2e-5 if name == "mkl" else 2e-4)
    assert np.abs(_cov(tgt) - _cov(src)).max() > 1e-3


def test_mkl_matrix_properties():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 3)), rng.normal(size=(3, 3))
    ct_, cs = a @ a.T + 0.1 * np.eye(3), b @ b.T + 0.1 * np.eye(3)
    t = ct.mkl_matrix(ct_, cs)
    np.testing.assert_allclose(t, t.T, atol=1e-10)  # symmetric (the optimal-transport map is a gradient)
    assert np.all(np.linalg.eigvalsh(t) > 0)
    np.testing.assert_allclose(t @ ct_ @ t, cs, atol=1e-9)
    l_ = ct.lct_matrix(ct_, cs, eps=0.0)
    np.testing.assert_allclose(l_ @ ct_ @ l_.T, cs, atol=1e-9)


@pytest.mark.parametrize("name", ["idt", "sot"])
def test_distribution_transfers_move_histograms(faces, name):
    tgt, src = faces
    out = COLOR_TRANSFERS.create(name, tgt, src, rng=np.random.default_rng(0))
    before, after = _w1(tgt, src), _w1(out, src)
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("name", ["idt", "sot", "idt-m", "sot-m", "mix-m"])
def test_random_transfers_reproducible(faces, box_mask, name):
    tgt, src = faces
    o1 = COLOR_TRANSFERS.create(name, tgt, src, box_mask, box_mask, rng=np.random.default_rng(5))
    o2 = COLOR_TRANSFERS.create(name, tgt, src, box_mask, box_mask, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(o1, o2)


def test_mkl_m_matches_masked_covariance(mid_faces, box_mask):
    tgt, src = mid_faces
    out = ct.mkl_m(tgt, src, box_mask, box_mask)
    np.testing.assert_allclose(_cov(out, box_mask), _cov(src, box_mask), atol=2e-5)
    # the unmasked transfer matches the whole-image covariance instead, which differs inside the mask
    assert np.abs(_cov(ct.mkl(tgt, src), box_mask) - _cov(src, box_mask)).max() > 1e-4


@pytest.mark.parametrize("name", ["rct", "mkl-m", "idt-m", "sot-m", "mix-m"])
def test_masked_variants_ignore_pixels_outside_masks(faces, box_mask, name):
    tgt, src = faces
    noisy = src.copy()
    noisy[box_mask < 0.5] = np.random.default_rng(1).random((int((box_mask < 0.5).sum()), 3), dtype=np.float32)
    o1 = COLOR_TRANSFERS.create(name, tgt, src, box_mask, box_mask, rng=np.random.default_rng(2))
    o2 = COLOR_TRANSFERS.create(name, tgt, noisy, box_mask, box_mask, rng=np.random.default_rng(2))
    np.testing.assert_allclose(o1, o2, atol=1e-6)
    # without masks the same change does matter
    base = name if name in ("rct",) else name[:-2] if name != "mix-m" else "sot"
    u1 = COLOR_TRANSFERS.create(base, tgt, src, rng=np.random.default_rng(2))
    u2 = COLOR_TRANSFERS.create(base, tgt, noisy, rng=np.random.default_rng(2))
    assert np.abs(u1 - u2).max() > 1e-2


@pytest.mark.parametrize("name", ["idt-m", "sot-m"])
def test_masked_distribution_transfers_move_masked_histograms(faces, box_mask, name):
    tgt, src = faces
    out = COLOR_TRANSFERS.create(name, tgt, src, box_mask, rng=np.random.default_rng(0))
    # sot's displacement field is smoothed (sigma 16 px) so the face keeps its texture: weaker on a 64-px test image
    assert _w1(out, src, box_mask) < 0.7 * _w1(tgt, src, box_mask)


@pytest.mark.parametrize("core", ["sot", "idt"])
def test_masked_cores_transport_masked_pixels(faces, box_mask, core):
    tgt, src = faces
    keep = box_mask.reshape(-1) > 0.5
    t = tgt.reshape(-1, 3).astype(np.float64)
    s = src.reshape(-1, 3).astype(np.float64)[keep]
    rng = np.random.default_rng(0)
    if core == "sot":
        new = ct.sot_core(t, s, keep, rng, steps=10, batch=30)
        factor = 0.1
    else:
        new = ct.idt_core(t, s, keep, rng, n_rot=20)
        factor = 0.5  # relaxation 1/20 over 20 rotations moves about two thirds of the way
    assert _w1(new, src, box_mask) < factor * _w1(tgt, src, box_mask)


def test_mix_m_lightness_and_chroma(faces, box_mask):
    tgt, src = faces
    out = ct.mix_m(tgt, src, box_mask)
    keep = box_mask > 0.5
    lo, ls, lt = rgb_to_lab(out)[keep], rgb_to_lab(src)[keep], rgb_to_lab(tgt)[keep]
    assert abs(lo[:, 0].mean() - ls[:, 0].mean()) < 0.5  # lightness: linear transfer of L
    assert abs(lo[:, 0].std() - ls[:, 0].std()) < 0.5
    d_before = np.abs(lt[:, 1:].mean(0) - ls[:, 1:].mean(0)).sum()
    d_after = np.abs(lo[:, 1:].mean(0) - ls[:, 1:].mean(0)).sum()
    assert d_after < 0.3 * d_before  # chroma moved toward the source


@pytest.mark.parametrize("name", ALL)
def test_contract_shape_dtype_range(faces, box_mask, name):
    tgt, src = faces
    big_src = cv2.resize(src, (S + 16, S + 16))
    out = COLOR_TRANSFERS.create(name, tgt, big_src, box_mask[..., None], None, rng=np.random.default_rng(0))
    assert out.shape == tgt.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 and np.isfinite(out).all()
    assert not np.allclose(out, tgt, atol=1e-3)


@pytest.mark.parametrize("name", ALL)
def test_bad_inputs_raise(faces, name):
    tgt, src = faces
    fn = COLOR_TRANSFERS.get(name).factory
    with pytest.raises(ValueError):
        fn(tgt[..., 0], src)
    with pytest.raises(ValueError):
        fn(tgt, src[..., :2])
    with pytest.raises(ValueError):
        fn((tgt * 255).astype(np.uint8), src)
    with pytest.raises(ValueError):
        fn(tgt, src, np.ones((S, S + 1), np.float32))


def test_color_transfer_none_and_unknown(faces):
    from facelab.errors import FacelabError

    tgt, src = faces
    np.testing.assert_array_equal(color_transfer("none", tgt, src), tgt)
    with pytest.raises(FacelabError):
        color_transfer("nope", tgt, src)


# ---------------------------------------------------------------------------------------------------------------
# mask_stats="zeros": DeepFaceLab's masked statistics, against small ports of core/imagelib/color_transfer.py
# (Lab through our exact conversion, so the comparison is about the statistics alone)


def _dfl_rct(target, source, target_mask, source_mask, cutoff=0.5):
    """Reinhard with the out-of-mask Lab pixels set to 0 and still counted in mean and std."""
    t, s = rgb_to_lab(target), rgb_to_lab(source)
    t_in, s_in = t.copy(), s.copy()
    t_in[target_mask < cutoff] = 0
    s_in[source_mask < cutoff] = 0
    out = (t - t_in.mean((0, 1))) * s_in.std((0, 1)) / t_in.std((0, 1)) + s_in.mean((0, 1))
    out = np.clip(out, [0, -127, -127], [100, 127, 127])
    return ct.lab_to_rgb(out)


def _dfl_mkl(x0, x1):
    """Monge-Kantorovich map from unbiased covariances and general eigen-decompositions, as written there."""
    eps = np.finfo(float).eps
    h, w, c = x0.shape
    x0, x1 = x0.reshape(-1, c).astype(np.float64), x1.reshape(-1, c).astype(np.float64)
    a, b = np.cov(x0.T), np.cov(x1.T)
    da2, ua = np.linalg.eig(a)
    da = np.diag(np.sqrt(da2.clip(eps, None)))
    dc2, uc = np.linalg.eig(da @ ua.T @ b @ ua @ da)
    dc = np.diag(np.sqrt(dc2.clip(eps, None)))
    da_inv = np.diag(1.0 / np.diag(da))
    t = ua @ da_inv @ uc @ dc @ uc.T @ da_inv @ ua.T
    return np.clip((x0 - x0.mean(0)) @ t + x1.mean(0), 0, 1).reshape(h, w, c)


def _dfl_lct(target, source, eps=1e-5):
    """Linear colour transfer, PCA square roots, biased covariances plus eps * I."""
    def centred_cov(img):
        mu = img.reshape(-1, 3).mean(0)
        d = (img.reshape(-1, 3) - mu).T
        return mu, d, d @ d.T / d.shape[1] + eps * np.eye(3)

    def sqrtm(c):
        w, v = np.linalg.eigh(c)
        return v @ np.diag(np.sqrt(w)) @ v.T

    _, t, ct_ = centred_cov(target.astype(np.float64))
    mu_s, _, cs = centred_cov(source.astype(np.float64))
    out = (sqrtm(cs) @ np.linalg.inv(sqrtm(ct_)) @ t).T + mu_s
    return np.clip(out, 0, 1).reshape(target.shape)


def _dfl_sot(src, trg, rng, steps=10, batch_size=5, sigma_xy=16.0, sigma_v=5.0):
    """Sliced optimal transport: each step, per random direction, every pixel moves to the target projection of its
    own rank; the mean move is added; then the displacement is bilateral-filtered. Directions drawn from ``rng``."""
    h, w, c = src.shape
    orig = src.reshape(-1, c).astype(np.float64)
    new = orig.copy()
    trg = trg.reshape(-1, c).astype(np.float64)
    for _ in range(steps):
        advect = np.zeros_like(new)
        for _ in range(batch_size):
            d = rng.normal(size=c)
            d /= np.linalg.norm(d)
            proj_s, proj_t = new @ d, trg @ d
            id_s = np.argsort(proj_s)
            move = np.sort(proj_t) - proj_s[id_s]
            for ch in range(c):
                advect[id_s, ch] += move * d[ch]
        new += advect / batch_size
    diff = (new - orig).reshape(h, w, c).astype(np.float32)
    return np.clip(orig.reshape(h, w, c) + cv2.bilateralFilter(diff, 0, sigma_v, sigma_xy), 0, 1)


def test_rct_zeros_counts_out_of_mask_pixels_as_lab_zeros(faces, box_mask):
    tgt, src = faces
    out = ct.rct(tgt, src, box_mask, box_mask, mask_stats="zeros")
    np.testing.assert_allclose(out, _dfl_rct(tgt, src, box_mask, box_mask), atol=1e-5)
    # the zeros pull the statistics: mean L over the masked image is the in-mask mean times the mask's share
    lab = rgb_to_lab(tgt)
    share = (box_mask > 0.5).mean()
    zeroed = np.where(box_mask[..., None] > 0.5, lab, 0.0)
    assert zeroed[..., 0].mean() == pytest.approx(share * lab[box_mask > 0.5][:, 0].mean(), rel=1e-9)
    assert np.abs(out - ct.rct(tgt, src, box_mask, box_mask)).max() > 1e-2  # differs from inside-only statistics


def test_mkl_m_zeros_is_deepfacelab_mkl_of_the_masked_images(faces, box_mask):
    tgt, src = faces
    m = box_mask[..., None]
    out = ct.mkl_m(tgt, src, box_mask, box_mask, mask_stats="zeros")
    np.testing.assert_allclose(out, _dfl_mkl(tgt * m, src * m), atol=1e-5)


def test_unmasked_linear_transfers_match_deepfacelab(faces):
    tgt, src = faces
    np.testing.assert_allclose(ct.lct(tgt, src), _dfl_lct(tgt, src), atol=1e-5)
    np.testing.assert_allclose(ct.mkl(tgt, src), _dfl_mkl(tgt, src), atol=1e-5)


def test_sot_m_zeros_is_deepfacelab_sot_of_the_masked_images(faces, box_mask):
    tgt, src = faces
    m = box_mask[..., None]
    out = ct.sot_m(tgt, src, box_mask, box_mask, rng=np.random.default_rng(4), mask_stats="zeros")
    ref = _dfl_sot(tgt * m, src * m, np.random.default_rng(4), steps=10, batch_size=30)
    np.testing.assert_allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("name,base", [("idt-m", "idt"), ("mix-m", "mix-m")])
def test_other_masked_zeros_transfers_take_the_masked_images(faces, box_mask, name, base):
    """DeepFaceLab's merge calls idt and mix on ``image * mask``: the zeros variant is exactly that call."""
    tgt, src = faces
    m = box_mask[..., None]
    out = COLOR_TRANSFERS.create(name, tgt, src, box_mask, box_mask, rng=np.random.default_rng(6),
                                 mask_stats="zeros")
    ref = COLOR_TRANSFERS.create(base, tgt * m, src * m, rng=np.random.default_rng(6))
    np.testing.assert_array_equal(out, ref)


def test_mask_stats_is_checked(faces):
    tgt, src = faces
    with pytest.raises(ValueError, match="mask_stats"):
        color_transfer("rct", tgt, src, mask_stats="outside")


def test_rct_zeros_with_an_empty_mask_uses_whole_images(faces):
    tgt, src = faces
    empty = np.zeros(tgt.shape[:2], np.float32)
    np.testing.assert_allclose(ct.rct(tgt, src, empty, empty, mask_stats="zeros"), ct.rct(tgt, src), atol=1e-6)
