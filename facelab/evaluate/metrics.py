"""Swap quality measures as pure functions (the DeepFaceLab paper's set, plus temporal stability).

Landmarks are (68, 2) float arrays in iBUG order; images float32 HWC RGB in [0, 1].
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners (points 36 and 45)."""
    lm = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(lm[RIGHT_EYE_OUTER] - lm[LEFT_EYE_OUTER]))


def landmark_nme(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean point-to-point distance between two 68-point sets over the reference's inter-ocular distance."""
    pred, ref = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    if pred.shape != ref.shape or pred.shape[-1] != 2:
        raise ValueError(f"landmark shapes differ or are not (N, 2): {pred.shape} vs {ref.shape}")
    iod = interocular(ref)
    if iod <= 0:
        raise ValueError("reference landmarks have zero inter-ocular distance")
    return float(np.linalg.norm(pred - ref, axis=1).mean() / iod)


def pose_error_deg(pose_a: tuple[float, float, float], pose_b: tuple[float, float, float]) -> float:
    """Mean absolute Euler-angle difference in degrees of two (pitch, yaw, roll) poses given in radians."""
    diff = np.abs(np.asarray(pose_a, np.float64) - np.asarray(pose_b, np.float64))
    return float(np.degrees(diff).mean())


def embedding_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two identity embeddings (dlib's scale: same person < 0.6)."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def image_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two float RGB images in [0, 1] (Gaussian window, sigma 1.5, as in the paper's protocol)."""
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    return float(structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def landmark_jitter(track: np.ndarray) -> float:
    """Temporal jitter of a landmark track (T, 68, 2): mean norm of the second difference (acceleration) per
    point, over the mean inter-ocular distance. Smooth motion scores near 0; frame-to-frame shake scores high."""
    track = np.asarray(track, np.float64)
    if track.ndim != 3 or track.shape[0] < 3:
        raise ValueError(f"need a (T>=3, N, 2) track, got {track.shape}")
    accel = track[2:] - 2 * track[1:-1] + track[:-2]
    iod = np.mean([interocular(t) for t in track])
    return float(np.linalg.norm(accel, axis=2).mean() / max(iod, 1e-9))


def colour_jitter(means: np.ndarray) -> float:
    """Temporal jitter of per-frame mean colours (T, 3) in [0, 1]: mean abs second difference, in 0-255 units."""
    means = np.asarray(means, np.float64)
    if means.ndim != 2 or means.shape[0] < 3:
        raise ValueError(f"need (T>=3, C) means, got {means.shape}")
    accel = means[2:] - 2 * means[1:-1] + means[:-2]
    return float(np.abs(accel).mean() * 255.0)


def masked_mean_colour(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean RGB of ``image`` (HWC) where ``mask`` (HW) > 0.5."""
    sel = np.asarray(mask) > 0.5
    if not sel.any():
        raise ValueError("mask is empty")
    return image[sel].mean(axis=0)
