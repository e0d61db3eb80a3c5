"""SAEHD losses as pure functions over (B, C, H, W) float tensors in [0, 1].

Per-sample losses return shape (B,); the model sums the terms of each side and averages over the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_1d(size: int, sigma: float, device: torch.device | None = None) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps centred at (size-1)/2, float32."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    k = torch.exp(-x * x / (2.0 * sigma * sigma))
    return (k / k.sum()).to(device=device, dtype=torch.float32)


def _separable(x: torch.Tensor, k1d: torch.Tensor, padding: int) -> torch.Tensor:
    """Depthwise separable filtering of (B, C, H, W) with the 1-D kernel ``k1d`` (zero padding ``padding``)."""
    c = x.shape[1]
    k = k1d.to(dtype=x.dtype, device=x.device)
    kh = k.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    x = F.conv2d(x, kh, padding=(padding, 0), groups=c)
    return F.conv2d(x, kw, padding=(0, padding), groups=c)


def dssim(a: torch.Tensor, b: torch.Tensor, kernel_size: int, sigma: float = 1.5, k1: float = 0.01,
          k2: float = 0.03) -> torch.Tensor:
    """(1 - SSIM) / 2 with a ``kernel_size`` Gaussian window (sigma 1.5), 'valid' filtering, data range 1.

    a, b: (B, C, H, W). Returns (B,): the mean over pixels and channels of each sample.
    """
    kernel_size = max(1, int(kernel_size))
    c = a.shape[1]
    k = gaussian_1d(kernel_size, sigma, a.device)
    stats = _separable(torch.cat([a, b, a * b, a * a + b * b], dim=1), k, 0)
    mu_a, mu_b, ab, sq = stats[:, :c], stats[:, c:2 * c], stats[:, 2 * c:3 * c], stats[:, 3 * c:]
    c1, c2 = k1 * k1, k2 * k2
    num0 = 2.0 * mu_a * mu_b
    den0 = mu_a.square() + mu_b.square()
    luminance = (num0 + c1) / (den0 + c1)
    cs = (2.0 * ab - num0 + c2) / (sq - den0 + c2)
    return (1.0 - (luminance * cs).mean(dim=(1, 2, 3))) / 2.0


def structural_loss(target: torch.Tensor, pred: torch.Tensor, resolution: int) -> torch.Tensor:
    """10 DSSIM(res/11.6) below 256 px, else 5 DSSIM(res/11.6) + 5 DSSIM(res/23.2). Returns (B,)."""
    if resolution < 256:
        return 10.0 * dssim(target, pred, int(resolution / 11.6))
    return 5.0 * dssim(target, pred, int(resolution / 11.6)) + 5.0 * dssim(target, pred, int(resolution / 23.2))


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample: (B,)."""
    return (a - b).square().flatten(1).mean(dim=1)


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per sample: (B,)."""
    return (a - b).abs().flatten(1).mean(dim=1)


def blur_kernel_size(sigma: float) -> int:
    """Kernel size of :func:`gaussian_blur`: max(3, int(4 sigma)), made odd."""
    size = max(3, int(4 * sigma))
    return size + 1 if size % 2 == 0 else size


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with zero padding, output the size of the input: (B, C, H, W) -> (B, C, H, W).

    Kernel of :func:`blur_kernel_size` taps centred on the middle tap (DeepFaceLab's ``gaussian_blur``).
    """
    size = blur_kernel_size(sigma)
    xs = torch.arange(size, dtype=torch.float64) - math.floor(size / 2)
    k = torch.exp(-xs * xs / (2.0 * sigma * sigma))
    return _separable(x, (k / k.sum()).float(), size // 2)


def blurred_mask(mask: torch.Tensor, resolution: int) -> torch.Tensor:
    """m_b = clip(blur(m, sigma=max(1, res//32)), 0, 0.5) * 2: soft edge, interior 1. (B, 1, R, R)."""
    return gaussian_blur(mask, max(1, resolution // 32)).clamp(0.0, 0.5) * 2.0


def blur_out_mask(img: torch.Tensor, mask: torch.Tensor, resolution: int) -> torch.Tensor:
    """Replace outside-mask pixels by a mask-normalised blur (sigma res/128) of the background.

    img (B, C, R, R), mask (B, 1, R, R) in [0, 1]. Inside the mask the image is kept.
    """
    sigma = resolution / 128.0
    anti = 1.0 - mask
    blurred = gaussian_blur(img * anti, sigma)
    weight = 1.0 - gaussian_blur(mask, sigma)
    weight = torch.where(weight == 0, torch.ones_like(weight), weight)
    return img * mask + (blurred / weight) * anti


def targets(target_src: torch.Tensor, src_mask: torch.Tensor, target_dst: torch.Tensor, dst_mask: torch.Tensor,
            resolution: int, blur_out: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sides' training targets: as given, or with the background blurred out (``blur_out_mask``)."""
    if not blur_out:
        return target_src, target_dst
    return blur_out_mask(target_src, src_mask, resolution), blur_out_mask(target_dst, dst_mask, resolution)


def style_loss(content: torch.Tensor, style: torch.Tensor, blur_sigma: float, weight: float) -> torch.Tensor:
    """weight * (||mu_c - mu_s||^2 + ||sd_c - sd_s||^2) / C over per-channel spatial moments, after a blur.

    content, style: (B, C, H, W). Returns (B,). sd = sqrt(var + 1e-5).
    """
    if blur_sigma > 0:
        content, style = gaussian_blur(content, blur_sigma), gaussian_blur(style, blur_sigma)
    c_var, c_mean = torch.var_mean(content, dim=(2, 3), correction=0)
    s_var, s_mean = torch.var_mean(style, dim=(2, 3), correction=0)
    mean_loss = (c_mean - s_mean).square().sum(dim=1)
    std_loss = ((c_var + 1e-5).sqrt() - (s_var + 1e-5).sqrt()).square().sum(dim=1)
    return (mean_loss + std_loss) * (weight / content.shape[1])


def total_variation_mse(x: torch.Tensor) -> torch.Tensor:
    """Sum of squared neighbour differences per sample: (B,)."""
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).square().flatten(1).sum(dim=1)
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).square().flatten(1).sum(dim=1)
    return dy + dx


def bce_logits(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Sigmoid cross-entropy of ``logits`` against a constant label, mean over all but the batch axis: (B,)."""
    labels = torch.full_like(logits, float(target))
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").flatten(1).mean(dim=1)


LAPLACIAN_3X3 = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 Laplacian of each channel of (B, C, H, W) ('valid': (B, C, H-2, W-2))."""
    c = x.shape[1]
    k = torch.tensor(LAPLACIAN_3X3, dtype=x.dtype, device=x.device).expand(c, 1, 3, 3)
    return F.conv2d(x, k, groups=c)


def high_frequency_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the two images' Laplacians per sample, (B,): zero for equal images, and a
    blurred prediction pays for every edge it softens (an MSE or DSSIM term barely notices fine detail)."""
    return l1(laplacian(a), laplacian(b))


def reconstruction_loss(target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, pred_mask: torch.Tensor,
                        em: torch.Tensor | None, resolution: int, masked: bool, hf_power: float = 0.0) -> torch.Tensor:
    """One side's SAEHD loss: structural + 10 MSE (on m_b-masked images when ``masked``) + 10 mask MSE
    (+ 300 L1 on eyes and mouth when ``em`` is given; + 10 ``hf_power`` Laplacian L1 when ``hf_power`` > 0).
    target/pred (B, 3, R, R), masks (B, 1, R, R). -> (B,)."""
    if masked:
        m_b = blurred_mask(mask, resolution)
        t, p = target * m_b, pred * m_b
    else:
        t, p = target, pred
    loss = structural_loss(t, p, resolution) + 10.0 * mse(t, p)
    if hf_power > 0:
        loss = loss + 10.0 * hf_power * high_frequency_loss(t, p)
    if em is not None:
        loss = loss + 300.0 * l1(target * em, pred * em)
    return loss + 10.0 * mse(mask, pred_mask)
