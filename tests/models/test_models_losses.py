"""SAEHD losses against skimage, numpy float64 and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from facelab.models.saehd import losses as L


def _to_t(img: np.ndarray) -> torch.Tensor:
    """HWC float -> (1, C, H, W) float32."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)[None])).float()


@pytest.fixture(scope="module")
def face_pair(astronaut: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = astronaut[60:188, 160:288].astype(np.float64) / 255.0
    rng = np.random.default_rng(0)
    b = np.clip(a * 0.8 + 0.1 + rng.normal(0, 0.05, a.shape), 0, 1)
    return a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)


def test_dssim_matches_skimage_gaussian_ssim(face_pair):
    a, b = face_pair
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=1.0, channel_axis=-1)
    got = L.dssim(_to_t(a), _to_t(b), 11).item()
    assert got == pytest.approx((1.0 - ref) / 2.0, abs=1e-4)
    assert 0.01 < got < 0.5  # a real difference, not a degenerate match


def test_dssim_identical_is_zero_and_batch_is_per_sample(face_pair):
    a, b = face_pair
    x = torch.cat([_to_t(a), _to_t(a)])
    y = torch.cat([_to_t(a), _to_t(b)])
    d = L.dssim(x, y, 11)
    assert d.shape == (2,)
    assert d[0].item() == pytest.approx(0.0, abs=1e-6)
    assert d[1].item() > 0.01


def test_structural_loss_scales():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    assert torch.allclose(L.structural_loss(a, b, 128), 10 * L.dssim(a, b, 11))  # int(128 / 11.6) = 11
    a2, b2 = torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    want = 5 * L.dssim(a2, b2, 22) + 5 * L.dssim(a2, b2, 11)  # res 256: 22 and 11
    assert torch.allclose(L.structural_loss(a2, b2, 256), want)


def test_mse_l1_hand_computed():
    a = torch.tensor([[[[0.0, 1.0], [0.5, 0.25]]]])
    b = torch.tensor([[[[1.0, 1.0], [0.0, 0.25]]]])
    assert L.mse(a, b).item() == pytest.approx((1 + 0 + 0.25 + 0) / 4)
    assert L.l1(a, b).item() == pytest.approx((1 + 0 + 0.5 + 0) / 4)


def _np_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    size = max(3, int(4 * sigma))
    size += size % 2 == 0
    x = np.arange(size) - size // 2
    k = np.exp(-x * x / (2 * sigma * sigma))
    k2 = np.outer(k, k) / np.outer(k, k).sum()
    return ndimage.correlate(img, k2, mode="constant", cval=0.0)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 0.5])
def test_gaussian_blur_matches_numpy_zero_padding(sigma):
    rng = np.random.default_rng(2)
    img = rng.random((20, 24))
    got = L.gaussian_blur(torch.from_numpy(img).float()[None, None], sigma)[0, 0].numpy()
    np.testing.assert_allclose(got, _np_blur(img, sigma), atol=1e-6)


def test_blurred_mask_interior_is_one_and_far_outside_zero():
    m = torch.zeros(1, 1, 64, 64)
    m[..., 16:48, 16:48] = 1
    mb = L.blurred_mask(m, 64)  # sigma 2
    assert mb[0, 0, 32, 32].item() == pytest.approx(1.0)
    assert mb[0, 0, 2, 2].item() == 0.0
    assert 0.0 < mb[0, 0, 32, 15].item() < 1.0
    assert mb.max().item() <= 1.0


def test_blur_out_mask_keeps_inside_and_fills_outside():
    rng = np.random.default_rng(3)
    img = rng.random((16, 16))
    mask = np.zeros((16, 16))
    mask[4:12, 4:12] = 1
    got = L.blur_out_mask(torch.from_numpy(img).float()[None, None], torch.from_numpy(mask).float()[None, None],
                          256)[0, 0].numpy()  # sigma 2
    num = _np_blur(img * (1 - mask), 2.0)
    den = 1 - _np_blur(mask, 2.0)
    den[den == 0] = 1
    want = img * mask + num / den * (1 - mask)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(got[4:12, 4:12], img[4:12, 4:12], atol=1e-6)


def test_style_loss_matches_numpy():
    rng = np.random.default_rng(4)
    a, b = rng.random((2, 3, 10, 12)), rng.random((2, 3, 10, 12))
    got = L.style_loss(torch.from_numpy(a).float(), torch.from_numpy(b).float(), 0, 7.0).numpy()
    ma, mb = a.mean(axis=(2, 3)), b.mean(axis=(2, 3))
    sa, sb = np.sqrt(a.var(axis=(2, 3)) + 1e-5), np.sqrt(b.var(axis=(2, 3)) + 1e-5)
    want = (((ma - mb) ** 2).sum(1) + ((sa - sb) ** 2).sum(1)) * 7.0 / 3
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_total_variation_and_bce():
    x = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # vertical diffs 2, 3; horizontal diffs 1, 2 -> 4 + 9 + 1 + 4
    assert L.total_variation_mse(x).item() == pytest.approx(18.0)
    logits = torch.tensor([[[[0.0, 2.0]]]])
    want = (np.log(2) + np.log1p(np.exp(-2.0))) / 2
    assert L.bce_logits(logits, 1.0).item() == pytest.approx(want, rel=1e-6)
    assert L.bce_logits(logits, 0.0).item() == pytest.approx((np.log(2) + 2 + np.log1p(np.exp(-2.0))) / 2, rel=1e-6)


def test_reconstruction_loss_terms_add_up():
    g = torch.Generator().manual_seed(5)
    t, p = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    m, pm = (torch.rand(2, 1, 32, 32, generator=g) > 0.5).float(), torch.rand(2, 1, 32, 32, generator=g)
    em = torch.zeros_like(m)
    em[..., 10:20, 10:20] = 1
    mb = L.blurred_mask(m, 32)
    want = 10 * L.dssim(t * mb, p * mb, 2) + 10 * L.mse(t * mb, p * mb) + 10 * L.mse(m, pm) \
        + 300 * L.l1(t * em, p * em)
    got = L.reconstruction_loss(t, p, m, pm, em, 32, masked=True)
    assert torch.allclose(got, want)
    unmasked = L.reconstruction_loss(t, p, m, pm, None, 32, masked=False)
    assert torch.allclose(unmasked, 10 * L.dssim(t, p, 2) + 10 * L.mse(t, p) + 10 * L.mse(m, pm))


def test_high_frequency_loss_sees_blur_that_mse_barely_does(astronaut):
    import cv2

    img = astronaut[100:228, 150:278].astype(np.float32) / 255.0
    blurred = cv2.GaussianBlur(img, (0, 0), 1.0)
    t = torch.from_numpy(img).permute(2, 0, 1)[None]
    b = torch.from_numpy(blurred).permute(2, 0, 1)[None]
    assert L.high_frequency_loss(t, t).item() == 0.0
    lap = cv2.filter2D(img, -1, np.array(L.LAPLACIAN_3X3, np.float32))[1:-1, 1:-1]
    lap_b = cv2.filter2D(blurred, -1, np.array(L.LAPLACIAN_3X3, np.float32))[1:-1, 1:-1]
    assert L.high_frequency_loss(t, b).item() == pytest.approx(np.abs(lap - lap_b).mean(), rel=1e-4)
    # relative to the size of each term on a sharp image, blur costs the high-frequency term far more than MSE
    zero = torch.zeros_like(t)
    assert L.high_frequency_loss(t, b) / L.high_frequency_loss(t, zero) > 4 * L.mse(t, b) / L.mse(t, zero)
