"""Swap quality measures as pure functions (the DeepFaceLab paper's set, plus temporal stability).

Landmarks are (68, 2) float arrays in iBUG order; images float32 HWC RGB in [0, 1], frames for the sharpness
measures (H, W, 3) RGB uint8 as read from disk. Sharpness: the inner-face Laplacian variance of the swap over that of
the destination, the ceiling a model resolution allows, and the frame-to-frame jitter of fine texture.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from facelab.align import face_transform, matrix_scale

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


def masked_ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """SSIM of two float RGB images in [0, 1] averaged over the pixels where ``mask`` (HW) > 0.5 only (same window
    as :func:`image_ssim`): what lies outside a face mask does not count."""
    if a.shape != b.shape or a.shape[:2] != np.asarray(mask).shape:
        raise ValueError(f"image / mask shapes differ: {a.shape}, {b.shape}, {np.asarray(mask).shape}")
    sel = np.asarray(mask) > 0.5
    if not sel.any():
        raise ValueError("mask is empty")
    _, full = structural_similarity(a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    return float(full.mean(axis=-1)[sel].mean())


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


# --- sharpness: is the swapped face as detailed as the face it replaces? -------------------------------------

INNER_FACE = slice(17, 68)  # brows, nose, eyes, mouth: no jaw line (its edge is background, not face detail)
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as cv2's RGB2GRAY


def _grey(image: np.ndarray) -> np.ndarray:
    """Luma of an RGB image (..., H, W, 3), uint8 or float in [0, 1], as float64 in [0, 1] of shape (..., H, W)."""
    img = np.asarray(image)
    if img.ndim < 3 or img.shape[-1] != 3:
        raise ValueError(f"expected RGB images (..., H, W, 3), got {img.shape}")
    scale = 1.0 / 255.0 if img.dtype == np.uint8 else 1.0
    return (img.astype(np.float64) @ _LUMA) * scale


def inner_face_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bool (H, W) mask of the convex hull of landmarks 17-67 (brows, nose, eyes, mouth) given in frame pixels."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
        raise ValueError(f"expected finite (68, 2) landmarks, got {lm.shape}")
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), np.uint8)
    pts = np.round(lm[INNER_FACE] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def laplacian_variance(grey: np.ndarray, mask: np.ndarray) -> float:
    """Variance of the Laplacian (cv2, ksize 3, float64) of a grey (H, W) image over the pixels where ``mask``.

    The classic focus measure: it falls as detail is blurred away. Units are the image's squared units.
    """
    g = np.asarray(grey, np.float64)
    sel = np.asarray(mask, bool)
    if g.ndim != 2 or sel.shape != g.shape:
        raise ValueError(f"need a (H, W) image and a mask of the same shape, got {g.shape} and {sel.shape}")
    if not sel.any():
        raise ValueError("mask is empty")
    return float(cv2.Laplacian(g, cv2.CV_64F, ksize=3)[sel].var())


def sharpness_ratio(swapped: np.ndarray, destination: np.ndarray, landmarks: np.ndarray) -> float:
    """Inner-face Laplacian variance of ``swapped`` over that of ``destination`` (both (H, W, 3) RGB, uint8 or
    float in [0, 1]), in the :func:`inner_face_mask` of the destination frame ``landmarks``.

    1 = as sharp as the input; below 1 = detail lost (a Gaussian blur of sigma 3 px on a ~150 px face: ~0.05).
    """
    if np.shape(swapped) != np.shape(destination):
        raise ValueError(f"frame shapes differ: {np.shape(swapped)} vs {np.shape(destination)}")
    grey_dst = _grey(destination)
    mask = inner_face_mask(landmarks, grey_dst.shape)
    ref = laplacian_variance(grey_dst, mask)
    if ref <= 0:
        raise ValueError("the destination face has no detail (zero Laplacian variance)")
    return laplacian_variance(_grey(swapped), mask) / ref


def crop_side_in_frame(landmarks: np.ndarray, resolution: int, face_type: str) -> float:
    """Side, in frame pixels, of the square a model's ``resolution`` x ``resolution`` ``face_type`` crop covers."""
    return float(resolution / matrix_scale(face_transform(landmarks, int(resolution), face_type)))


def resample_through(frame: np.ndarray, factor: float) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 down-sampled by ``factor`` < 1 (INTER_AREA, in float) and up-sampled back to
    (H, W) (INTER_CUBIC, as merge pastes), returned as uint8 like a written merged frame."""
    img = np.asarray(frame)
    if img.dtype != np.uint8 or img.ndim != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) frame, got {img.dtype} {img.shape}")
    if not 0 < factor:
        raise ValueError(f"factor must be positive, got {factor}")
    h, w = img.shape[:2]
    small = cv2.resize(img.astype(np.float32) / 255.0, (max(1, round(w * factor)), max(1, round(h * factor))),
                       interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.round(np.clip(back, 0.0, 1.0) * 255.0).astype(np.uint8)


def resolution_ceiling(destination: np.ndarray, landmarks: np.ndarray, face_side_px: float,
                       model_resolution: int) -> float:
    """The best :func:`sharpness_ratio` a perfect model of ``model_resolution`` R can reach on this frame.

    ``destination`` (H, W, 3) uint8 is passed through an R-pixel grid: resampled by R / ``face_side_px`` (the side
    in frame pixels that the model's crop covers, see :func:`crop_side_in_frame`) with :func:`resample_through`,
    then scored against itself. The whole frame is resampled; only the inner face is scored. 1.0 when the model's
    grid is at least as fine as the frame's (R >= face_side_px).
    """
    if face_side_px <= 0 or model_resolution <= 0:
        raise ValueError(f"face side and resolution must be positive, got {face_side_px}, {model_resolution}")
    factor = model_resolution / face_side_px
    if factor >= 1.0:
        return 1.0
    return sharpness_ratio(resample_through(destination, factor), destination, landmarks)


def texture_jitter(crops: np.ndarray, mask: np.ndarray) -> float:
    """Frame-to-frame change of the face's fine texture in aligned crops (T, S, S, 3) RGB (uint8 or float [0, 1])
    of consecutive frames, in 0-255 grey units.

    Per frame the high-pass band of the grey crop (grey minus its Gaussian blur, sigma 1.5 px at S = 128, scaled
    with S) keeps pores, lashes, wrinkles and edges and drops brightness and shading; then the mean absolute
    second temporal difference of that band over the pixels inside ``mask`` ((S, S), or (T, S, S) with a pixel
    counted at t when it is inside at t-1, t and t+1). A constant or smoothly drifting face scores near 0 (the
    band changes linearly in time); texture from a different face every frame scores high. Additive brightness
    changes cancel; a gain change g scales the band's amplitude by g.
    """
    grey = _grey(crops)
    if grey.ndim != 3 or grey.shape[0] < 3 or grey.shape[1] != grey.shape[2]:
        raise ValueError(f"need (T>=3, S, S, 3) crops, got {np.shape(crops)}")
    sel = np.asarray(mask) > 0.5
    if sel.shape == grey.shape[1:]:
        sel = np.broadcast_to(sel, grey.shape)
    elif sel.shape != grey.shape:
        raise ValueError(f"mask must be (S, S) or (T, S, S) for crops {grey.shape}, got {sel.shape}")
    sigma = 1.5 * grey.shape[1] / 128.0
    band = np.stack([g - cv2.GaussianBlur(g, (0, 0), sigma) for g in grey])
    accel = np.abs(band[2:] - 2.0 * band[1:-1] + band[:-2])
    inside = sel[2:] & sel[1:-1] & sel[:-2]
    if not inside.any():
        raise ValueError("mask is empty")
    return float(accel[inside].mean() * 255.0)
