"""Pure image filters of the merge. Images are float32 HWC RGB in [0, 1]; masks float32 HW in [0, 1]."""

from __future__ import annotations

import math

import cv2
import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# histogram matching (the hist-match modes)


def channel_hist_match(source: np.ndarray, template: np.ndarray, threshold: int = 255,
                       source_mask: np.ndarray | None = None, template_mask: np.ndarray | None = None) -> np.ndarray:
    """Map one channel (HW float in [0, 1]) so its histogram follows ``template``'s (256 bins).

    Each source value goes to the template value of equal quantile, interpolated between the values the template
    holds (DeepFaceLab's rule; it ranks exact float values, the same result on 8-bit images). ``threshold``
    (0..255) scales the source CDF: below 255 the brightest template values are never reached. Masks (> 0.5)
    select the pixels whose histograms are compared; every pixel is mapped.
    """
    s_idx = np.clip(np.rint(source * 255.0), 0, 255).astype(np.int64)
    t_idx = np.clip(np.rint(template * 255.0), 0, 255).astype(np.int64)
    s_sel = s_idx[source_mask > 0.5] if source_mask is not None else s_idx.ravel()
    t_sel = t_idx[template_mask > 0.5] if template_mask is not None else t_idx.ravel()
    if s_sel.size == 0 or t_sel.size == 0:
        return source.astype(np.float32)
    s_cdf = np.cumsum(np.bincount(s_sel, minlength=256)).astype(np.float64)
    t_cdf = np.cumsum(np.bincount(t_sel, minlength=256)).astype(np.float64)
    s_q = threshold * s_cdf / s_cdf[-1]
    t_q = 255.0 * t_cdf / t_cdf[-1]
    t_values = np.arange(256, dtype=np.float64)
    present = np.concatenate([[t_cdf[0] > 0], np.diff(t_cdf) > 0])  # the template's own values, as DeepFaceLab
    lut = np.interp(s_q, t_q[present], t_values[present]) / 255.0
    return lut[s_idx].astype(np.float32)


def hist_match(source: np.ndarray, template: np.ndarray, threshold: int = 255,
               mask: np.ndarray | None = None) -> np.ndarray:
    """Per-channel histogram matching of HWC ``source`` toward ``template`` (same mask on both when given)."""
    out = np.empty_like(source, dtype=np.float32)
    for c in range(source.shape[2]):
        out[..., c] = channel_hist_match(source[..., c], template[..., c], threshold, mask, mask)
    return out


# ---------------------------------------------------------------------------------------------------------------
# face post-processing


def blur_sharpen(img: np.ndarray, mode: str, amount: int, kernel_size: int = 3) -> np.ndarray:
    """DeepFaceLab's blur / sharpen of the face, ``amount`` in -100..100 used as is (no rescaling).

    Sharpen (amount > 0), unsharp masking with a ``kernel_size`` blur whose borders reflect (OpenCV's default):
    ``box``: ``img + amount * (img - box(img))``; ``gaussian`` (OpenCV's kernel for sigma 0, at size 3
    [1, 2, 1] / 4 per axis): ``img + 0.5 * amount * (img - gauss(img))``. Nothing depends on the face size. The
    result is not clipped: the paste-back clips the frame.
    Blur (amount < 0): repeated 5x5 medians, see :func:`median_passes` with unit 10. ``mode`` ``none`` with
    amount > 0 does nothing.
    """
    if amount == 0:
        return img
    if amount < 0:
        return median_passes(img, -amount, 10)
    if mode == "none":
        return img
    k = kernel_size + (1 - kernel_size % 2)
    if mode == "box":
        low, gain = cv2.blur(img, (k, k), borderType=cv2.BORDER_REFLECT_101), float(amount)
    elif mode == "gaussian":
        low, gain = cv2.GaussianBlur(img, (k, k), 0, borderType=cv2.BORDER_REFLECT_101), 0.5 * amount
    else:
        raise ValueError(f"unknown sharpen mode {mode!r}")
    return (img + gain * (img - low)).astype(np.float32)


def median_passes(img: np.ndarray, power: int, unit: int, step: int = 10) -> np.ndarray:
    """DeepFaceLab's repeated 5x5 median: passes at power, power - step, ... while above 0; a pass at ``n`` blends
    in its median by ``min(n, unit) / unit`` (a full pass while ``n >= unit``).

    Blur uses unit 10 (-25: two full passes, then one at 0.5); denoise unit 100 (150: six full passes, then 0.9,
    0.8, ..., 0.1).
    """
    out = img.astype(np.float32)
    for n in range(int(power), 0, -step):
        med = cv2.medianBlur(out, 5)
        weight = min(n, unit) / unit
        out = med if weight >= 1.0 else out * (1.0 - weight) + med * weight
    return out.astype(np.float32)


def motion_kernel(size: int, angle_deg: float) -> np.ndarray:
    """A normalised line kernel ``size`` x ``size`` along ``angle_deg`` (counter-clockwise from +x)."""
    k = np.zeros((size, size), np.float32)
    k[(size - 1) // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((size - 1) / 2.0, (size - 1) / 2.0), angle_deg, 1.0)
    k = cv2.warpAffine(k, rot, (size, size), flags=cv2.INTER_LINEAR)
    return k / max(float(k.sum()), 1e-8)


def motion_blur(img: np.ndarray, power: float, angle_deg: float, amount: int) -> np.ndarray:
    """DeepFaceLab's merge motion blur: kernel int(power * amount / 100) + 1, clipped to [2, 50]; none when < 1.

    ``power``: how far the face centre moved between the previous and next frames (face pixels at 256).
    """
    k = int(power * amount / 100.0)
    if amount <= 0 or k < 1:
        return img
    size = int(np.clip(k + 1, 2, 50))
    return cv2.filter2D(img, -1, motion_kernel(size, angle_deg), borderType=cv2.BORDER_REFLECT)


# ---------------------------------------------------------------------------------------------------------------
# frame degradation


def denoise(img: np.ndarray, power: int) -> np.ndarray:
    """DeepFaceLab's frame denoise (power 0..500): :func:`median_passes` with unit 100, power falling by 10 a pass."""
    return img if power <= 0 else median_passes(img, power, 100)


def bicubic_degrade(img: np.ndarray, power: int) -> np.ndarray:
    """Down-scale by ``1 - power / 101`` and back with bicubic interpolation (power 0..100)."""
    if power <= 0:
        return img
    h, w = img.shape[:2]
    f = 1.0 - power / 101.0
    small = cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_CUBIC)
    return np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def reduce_colors(img: np.ndarray, n_colors: int = 256) -> np.ndarray:
    """Quantise to ``n_colors`` with PIL's median cut (no dithering)."""
    from PIL import Image

    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    q = Image.fromarray(u8).quantize(colors=n_colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    return np.asarray(q.convert("RGB"), np.float32) / 255.0


def color_degrade(img: np.ndarray, power: int) -> np.ndarray:
    """Blend with the 256-colour quantised image by ``power`` percent."""
    if power <= 0:
        return img
    p = power / 100.0
    return (img * (1.0 - p) + reduce_colors(img) * p).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# colour statistics over time


def lab_stats(img: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(2, 3) float64: Lab mean and std of the pixels of ``img`` where ``mask`` > 0.5 (all pixels without mask)."""
    lab = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
    if mask is not None:
        sel = mask.reshape(-1) > 0.5
        if sel.sum() >= 2:
            lab = lab[sel]
    return np.stack([lab.mean(0), lab.std(0)])


def shift_lab_stats(img: np.ndarray, current: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Move Lab statistics: ``x' = (x - mean_cur) * std_tgt / std_cur + mean_tgt`` per channel, clipped to [0, 1].

    Used to move a colour-corrected face from this frame's destination statistics to the window's average, so the
    colour does not flicker with the destination's frame-to-frame noise.
    """
    lab = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2LAB)
    scale = (target[1] / np.maximum(current[1], 1e-6)).astype(np.float32)
    lab = (lab - current[0].astype(np.float32)) * scale + target[0].astype(np.float32)
    lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
    lab[..., 1:] = np.clip(lab[..., 1:], -127.0, 127.0)
    return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0.0, 1.0)


def motion_from_centres(prev: np.ndarray, nxt: np.ndarray) -> tuple[float, float]:
    """(power, angle in degrees) of the motion from the previous to the next face centre (x, y)."""
    v = np.asarray(nxt, np.float64) - np.asarray(prev, np.float64)
    power = float(np.hypot(v[0], v[1]))
    angle = -math.degrees(math.atan2(v[1], v[0])) if power > 0 else 0.0
    return power, angle
