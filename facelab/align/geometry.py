"""Similarity fitting and DeepFaceLab's face-type crops (``get_transform_mat``), in float64 numpy.

Coordinates are pixels, x right, y down. A frame->face matrix is a (2, 3) affine that maps frame pixels onto the
square aligned face of ``size`` pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facelab.align.template import MEAN_FACE_3D, TEMPLATE_33, TEMPLATE_INDICES
from facelab.errors import FacelabError

FACE_TYPES: tuple[str, ...] = ("half", "mid-full", "full", "whole_face", "head")

# Padding of each face type around the unit-square template (DeepFaceLab's FaceType_to_padding).
FACE_PADDING: dict[str, float] = {
    "half": 0.0, "mid-full": 0.0675, "full": 0.2109375, "whole_face": 0.40, "head": 0.70,
}
WHOLE_FACE_SHIFT = 0.07  # centre moved toward the forehead, in template heights
HEAD_SHIFT = 0.50

_ALIASES: dict[str, str] = {
    "h": "half", "half_face": "half", "mf": "mid-full", "mid_full": "mid-full", "midfull": "mid-full",
    "midfull_face": "mid-full", "f": "full", "full_face": "full", "wf": "whole_face", "whole-face": "whole_face",
    "whole": "whole_face",
}
#: Every spelling :func:`canonical_face_type` accepts: the face types, then DeepFaceLab's aliases.
FACE_TYPE_NAMES: tuple[str, ...] = FACE_TYPES + tuple(_ALIASES)


def canonical_face_type(name: str) -> str:
    """Normalise a face-type name (DeepFaceLab spellings such as ``full_face`` or ``wf`` are accepted)."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in FACE_PADDING:
        raise FacelabError(f"unknown face type {name!r}; choose one of: {', '.join(FACE_TYPES)}")
    return key


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` (N, D) onto ``dst`` (N, D).

    Umeyama (1991). Returns the (D+1, D+1) float64 homogeneous matrix; reflections are excluded.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    if src.ndim != 2 or src.shape != dst.shape or src.shape[0] < 2:
        raise ValueError(f"umeyama needs two (N, D) arrays of equal shape, N >= 2; got {src.shape} and {dst.shape}")
    n, dim = src.shape
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    var_src = float((src_c ** 2).sum() / n)
    if var_src <= 1e-24:
        raise ValueError("umeyama: source points are all identical")
    cov = dst_c.T @ src_c / n
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(dim)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    c = float((s * d).sum() / var_src) if estimate_scale else 1.0
    out = np.eye(dim + 1)
    out[:dim, :dim] = c * rot
    out[:dim, dim] = dst_mean - c * rot @ src_mean
    return out


def invert_affine(mat: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine, as (2, 3) float64."""
    full = np.eye(3)
    full[:2] = np.asarray(mat, np.float64)[:2]
    return np.linalg.inv(full)[:2]


def transform_points(points: np.ndarray, mat: np.ndarray, invert: bool = False) -> np.ndarray:
    """Apply a (2, 3) or (3, 3) affine to (N, 2) points (its inverse when ``invert``). Returns (N, 2) float64."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    m = np.asarray(mat, np.float64)[:2]
    if invert:
        m = invert_affine(m)
    return pts @ m[:, :2].T + m[:, 2]


def _affine_from_3(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Exact (2, 3) affine taking three ``src`` points onto three ``dst`` points (float64 getAffineTransform)."""
    a = np.hstack([np.asarray(src, np.float64), np.ones((3, 1))])
    return np.linalg.solve(a, np.asarray(dst, np.float64)).T


def averaged_yaw(unit_landmarks: np.ndarray) -> float:
    """Yaw proxy from 68 landmarks in template (unit-square) space: right minus left cheek width."""
    lm = np.asarray(unit_landmarks, np.float64)
    left = ((lm[27, 0] - lm[0, 0]) + (lm[28, 0] - lm[1, 0]) + (lm[29, 0] - lm[2, 0])) / 3.0
    right = ((lm[16, 0] - lm[27, 0]) + (lm[15, 0] - lm[28, 0]) + (lm[14, 0] - lm[29, 0])) / 3.0
    return float(right - left)


def template_matrix(landmarks: np.ndarray) -> np.ndarray:
    """(2, 3) similarity mapping frame pixels onto the unit-square mean-face template, from 68 landmarks."""
    lm = _check_68(landmarks)
    return umeyama(lm[list(TEMPLATE_INDICES)], TEMPLATE_33, True)[:2]


def face_transform(landmarks: np.ndarray, size: int, face_type: str, scale: float = 1.0) -> np.ndarray:
    """Frame->face (2, 3) float64 matrix for 68 frame landmarks, DeepFaceLab's ``get_transform_mat``.

    ``scale`` > 1 zooms in (the merger's output-face scale); 1.0 at extraction.
    """
    ft = canonical_face_type(face_type)
    if size <= 0 or scale <= 0:
        raise ValueError(f"size and scale must be positive, got {size}, {scale}")
    lm = _check_68(landmarks)
    to_unit = template_matrix(lm)
    p0, p1, p2, p3, centre = transform_points(
        np.array([(0, 0), (1, 0), (1, 1), (0, 1), (0.5, 0.5)], np.float64), to_unit, invert=True)
    tb = (p2 - p0) / np.linalg.norm(p2 - p0)
    bt = (p1 - p3) / np.linalg.norm(p1 - p3)
    half_diag = np.linalg.norm(p0 - p2) * (FACE_PADDING[ft] * math.sqrt(2.0) + 0.5) / scale
    if ft == "whole_face":
        centre = centre + (p0 - p3) * WHOLE_FACE_SHIFT
    elif ft == "head":
        yaw = averaged_yaw(transform_points(lm, to_unit))
        yaw *= abs(math.tanh(2.0 * yaw))  # damp near zero
        centre = centre - (p0 - p1) * (yaw / 2.0) + (p0 - p3) * HEAD_SHIFT
    src = np.stack([centre - tb * half_diag, centre + bt * half_diag, centre + tb * half_diag])
    dst = np.array([(0.0, 0.0), (float(size), 0.0), (float(size), float(size))])
    return _affine_from_3(src, dst)


def frontal_landmarks(size: int, face_type: str = "whole_face") -> np.ndarray:
    """(68, 2) float64 landmarks of the frontal mean face as they land in an aligned crop of ``size`` pixels.

    The 3D mean face is projected orthographically, fitted onto the unit-square template and then mapped with the
    face type's frame->face transform; useful as a synthetic, exactly frontal face for tests and previews.
    """
    pts = MEAN_FACE_3D[:, :2].copy()
    to_unit = umeyama(pts[list(TEMPLATE_INDICES)], TEMPLATE_33)[:2]
    unit = transform_points(pts, to_unit)
    frame = unit * 100.0 + 100.0  # any frame placement; the face transform removes it
    return transform_points(frame, face_transform(frame, size, face_type))


def warp_to_face(image: np.ndarray, mat: np.ndarray, size: int, interpolation: int = cv2.INTER_LANCZOS4,
                 border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Warp an HWC (or HW) frame into the (size, size) aligned face with the frame->face ``mat``."""
    return cv2.warpAffine(image, np.asarray(mat, np.float64)[:2], (int(size), int(size)),
                          flags=interpolation, borderMode=border)


def matrix_scale(mat: np.ndarray) -> float:
    """Uniform scale of a similarity (2, 3) matrix (face pixels per frame pixel)."""
    m = np.asarray(mat, np.float64)
    return float(math.sqrt(abs(np.linalg.det(m[:2, :2]))))


def _check_68(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    if not np.all(np.isfinite(lm)):
        raise ValueError("landmarks contain NaN or inf")
    return lm
