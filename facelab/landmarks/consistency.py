"""Landmark accuracy without ground truth: landmark a rolled and a mirrored copy of the image, map the points back
and compare them with the points found on the image itself.

A landmarker that sees the same face rolled by 15 degrees, or mirrored, should put each point on the same spot of
the face; the spread, as NME over the inter-ocular (outer eye corner) distance, bounds its error from below and
shows where a fit drifts with roll.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from facelab.align.geometry import transform_points

#: iBUG-68 index of each point's mirror image (left eye <-> right eye, jaw 0 <-> 16, ...)
MIRROR_68: tuple[int, ...] = (
    *range(16, -1, -1),  # jaw
    *range(26, 16, -1),  # brows
    27, 28, 29, 30,  # nose bridge
    *range(35, 30, -1),  # nostrils
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,  # eyes
    *range(54, 47, -1), *range(59, 54, -1),  # outer lip
    *range(64, 59, -1), *range(67, 64, -1),  # inner lip
)
ROLLS = (-30.0, -15.0, 0.0, 15.0, 30.0)
OUTER_EYE = (36, 45)

Box = tuple[float, float, float, float]
Landmarker = Callable[[np.ndarray, Box], np.ndarray]  # (uint8 RGB image, box) -> (68, 2) frame pixels


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the outer eye corners (points 36 and 45), the 300-W normaliser."""
    lm = np.asarray(landmarks, np.float64)
    return float(np.linalg.norm(lm[OUTER_EYE[0]] - lm[OUTER_EYE[1]]))


def nme(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean point distance between two (68, 2) sets over the inter-ocular distance of ``ref``."""
    pred, ref = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(pred - ref, axis=1).mean() / max(inter_ocular(ref), 1e-6))


def mirror_points(points: np.ndarray, width: int) -> np.ndarray:
    """(68, 2) points found on the left-right mirrored image (``width`` px) -> the original's points, in order."""
    pts = np.asarray(points, np.float64)[list(MIRROR_68)].copy()
    pts[:, 0] = (width - 1.0) - pts[:, 0]
    return pts


def roll_matrix(width: int, height: int, degrees: float) -> tuple[np.ndarray, tuple[int, int]]:
    """(2, 3) map of the image rolled ``degrees`` counter-clockwise about its centre onto a canvas that holds it
    whole, and that canvas size (w, h)."""
    mat = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), degrees, 1.0)
    cos, sin = abs(mat[0, 0]), abs(mat[0, 1])
    cw, ch = int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos))
    mat[0, 2] += (cw - width) / 2.0
    mat[1, 2] += (ch - height) / 2.0
    return mat, (cw, ch)


def moved_box(box: Box, mat: np.ndarray) -> Box:
    """The box a detector would give for the same face after ``mat``: same size, centre moved (a rolled face
    keeps its size; an axis-aligned hull of the turned box would be up to 1.4x larger)."""
    x0, y0, x1, y1 = box
    cx, cy = transform_points(np.array([[(x0 + x1) / 2.0, (y0 + y1) / 2.0]]), mat)[0]
    hw, hh = (x1 - x0) / 2.0, (y1 - y0) / 2.0
    return (cx - hw, cy - hh, cx + hw, cy + hh)


@dataclass(frozen=True)
class Variant:
    """One transformed copy of an image: roll in degrees and whether it is mirrored."""

    roll: float
    mirror: bool

    @property
    def label(self) -> str:
        return f"{'m' if self.mirror else ''}{self.roll:+.0f}"


def variants(rolls: tuple[float, ...] = ROLLS, mirror: bool = True) -> list[Variant]:
    """Every roll, unmirrored and (when ``mirror``) mirrored, except the identity."""
    out = [Variant(float(r), m) for m in ((False, True) if mirror else (False,)) for r in rolls]
    return [v for v in out if v.roll != 0.0 or v.mirror]


def landmark_variant(landmarker: Landmarker, image: np.ndarray, box: Box, variant: Variant) -> np.ndarray:
    """Landmarks of the face in ``box`` found on the transformed copy of ``image``, in ``image``'s pixels."""
    h, w = image.shape[:2]
    src, src_box = image, box
    if variant.mirror:
        src = np.ascontiguousarray(image[:, ::-1])
        src_box = (w - box[2], box[1], w - box[0], box[3])
    mat, (cw, ch) = roll_matrix(w, h, variant.roll)
    rolled = cv2.warpAffine(src, mat, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    pts = transform_points(landmarker(rolled, moved_box(src_box, mat)), mat, invert=True)
    return mirror_points(pts, w) if variant.mirror else pts


def consistency(landmarker: Landmarker, image: np.ndarray, box: Box,
                variant_list: list[Variant] | None = None) -> dict[str, float]:
    """NME of each variant's points against the points found on ``image`` itself (label -> NME)."""
    ref = landmarker(image, box)
    return {v.label: nme(landmark_variant(landmarker, image, box, v), ref)
            for v in (variant_list if variant_list is not None else variants())}
