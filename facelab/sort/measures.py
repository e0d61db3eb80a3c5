"""Per-face measures the sort methods rank by (pure functions of a face image and its landmarks)."""

from __future__ import annotations

import cv2
import numpy as np

from facelab.align.masks import hull_mask

WORK_SIZE = 256  # faces are measured at this size so scores do not depend on the extract size


def prepare(image: np.ndarray, landmarks_face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 RGB image, bool hull mask) at WORK_SIZE from a square face image and its face-pixel landmarks."""
    size = image.shape[0]
    small = cv2.resize(image, (WORK_SIZE, WORK_SIZE), interpolation=cv2.INTER_AREA) if size != WORK_SIZE else image
    mask = hull_mask(np.asarray(landmarks_face, np.float64) * (WORK_SIZE / size), WORK_SIZE) > 0
    if mask.sum() < 16:
        mask = np.ones((WORK_SIZE, WORK_SIZE), bool)
    return small, mask


def sharpness(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared Sobel gradient of the grey face inside ``mask`` (Tenengrad); higher = sharper."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1, ksize=3)
    return float((gx * gx + gy * gy)[mask].mean())


def laplacian_variance(image: np.ndarray, mask: np.ndarray, ksize: int = 11) -> float:
    """Variance of the Laplacian (kernel ``ksize``) inside ``mask``; low for motion-blurred faces."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) / 255.0
    lap = cv2.Laplacian(grey, cv2.CV_64F, ksize=ksize)
    return float(lap[mask].var())


def hsv_means(image: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(mean hue in degrees [0, 360), mean value [0, 1]) inside ``mask``."""
    hsv = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    return float(hsv[..., 0][mask].mean()), float(hsv[..., 2][mask].mean())


def black_pixels(image: np.ndarray) -> int:
    """Pixels that are pure black in every channel (padding from frames cut at the border)."""
    return int((image.max(axis=2) == 0).sum())


def histograms(image: np.ndarray, bins: int = 64) -> np.ndarray:
    """(3, bins) per-channel histograms, each summing to 1."""
    h = np.stack([np.bincount((image[..., c].ravel().astype(np.int64) * bins) // 256, minlength=bins)
                  for c in range(3)]).astype(np.float64)
    return h / np.maximum(h.sum(1, keepdims=True), 1.0)


def bhattacharyya_matrix(hists: np.ndarray) -> np.ndarray:
    """(N, N) mean over channels of the Bhattacharyya distance sqrt(1 - sum sqrt(p q)) of (N, 3, bins) hists."""
    root = np.sqrt(hists)
    coef = np.einsum("icb,jcb->ijc", root, root)
    return np.sqrt(np.clip(1.0 - coef, 0.0, 1.0)).mean(-1)
