"""Masks drawn from 68 landmarks in face pixels: the face hull with brows pushed up, and eyes + mouth."""

from __future__ import annotations

import cv2
import numpy as np

_SUBPIXEL_BITS = 4  # fillConvexPoly fixed-point precision


def expand_eyebrows(landmarks: np.ndarray, amount: float = 1.0) -> np.ndarray:
    """Push the brow points (17-26) away from the eyes by ``0.5 * amount`` of the brow-eye offset. (68, 2) float64."""
    lm = np.asarray(landmarks, np.float64).copy()
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    outer_l = (lm[36] + (lm[36] + lm[0]) / 2.0) / 2.0
    outer_r = (lm[45] + (lm[16] + lm[45]) / 2.0) / 2.0
    below_l = np.stack([outer_l, lm[36], lm[37], lm[38], lm[39]])
    below_r = np.stack([lm[42], lm[43], lm[44], lm[45], outer_r])
    lm[17:22] += amount * 0.5 * (lm[17:22] - below_l)
    lm[22:27] += amount * 0.5 * (lm[22:27] - below_r)
    return lm


def _fill_hull(mask: np.ndarray, points: np.ndarray) -> None:
    pts = np.round(np.asarray(points, np.float64) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)


def hull_mask(landmarks_face: np.ndarray, size: int, eyebrows_expand: float = 1.0) -> np.ndarray:
    """Full-face hull mask, float32 (size, size) in {0, 1}: union of convex hulls of face parts, brows pushed up."""
    lm = expand_eyebrows(landmarks_face, eyebrows_expand)
    parts = [
        (lm[0:9], lm[17:18]), (lm[8:17], lm[26:27]),  # jaw halves
        (lm[17:20], lm[8:9]), (lm[24:27], lm[8:9]),  # cheeks
        (lm[19:25], lm[8:9]),  # nose ridge
        (lm[17:22], lm[27:28], lm[31:36], lm[8:9]), (lm[22:27], lm[27:28], lm[31:36], lm[8:9]),  # eye sides
        (lm[27:31], lm[31:36]),  # nose
    ]
    mask = np.zeros((int(size), int(size)), np.uint8)
    for part in parts:
        _fill_hull(mask, np.concatenate(part))
    return mask.astype(np.float32)


def eyes_mouth_mask(landmarks_face: np.ndarray, size: int, face_mask: np.ndarray | None = None) -> np.ndarray:
    """Eyes and mouth regions, float32 (size, size) in [0, 1]: hulls of the eyes (36-41, 42-47) and of the inner
    lips (60-67), dilated by an ellipse of size // 32 px, Gaussian-blurred with a size // 16 (odd) kernel, inside
    the binarised ``face_mask`` (every non-zero pixel; default the landmark hull). DeepFaceLab's eyes+mouth
    priority mask; the trainer scales each augmented sample to a maximum of 1."""
    lm = np.asarray(landmarks_face, np.float64)
    size = int(size)
    mask = np.zeros((size, size), np.uint8)
    for part in (lm[36:42], lm[42:48], lm[60:68]):
        _fill_hull(mask, part)
    grow = max(1, size // 32)
    soft = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow))).astype(np.float32)
    blur = max(1, size // 16)
    blur += 1 - blur % 2
    soft = cv2.GaussianBlur(soft, (blur, blur), 0)
    inside = hull_mask(lm, size) if face_mask is None else (np.asarray(face_mask) != 0).astype(np.float32)
    return (np.clip(soft, 0.0, 1.0) * inside).astype(np.float32)
