"""Quarter-turn rotations of a frame and the maps that bring points found there back to the frame."""

from __future__ import annotations

import numpy as np

from facelab.align.geometry import transform_points


def rotate_image(image: np.ndarray, degrees: int) -> np.ndarray:
    """Rotate HWC ``image`` counter-clockwise by 0/90/180/270 degrees (as ``np.rot90``)."""
    return np.ascontiguousarray(np.rot90(image, k=(degrees // 90) % 4))


def rotation_back(degrees: int, width: int, height: int) -> np.ndarray:
    """(2, 3) affine mapping pixel centres of the rotated image back onto the original ``width`` x ``height`` one."""
    k = (degrees // 90) % 4
    w1, h1 = width - 1.0, height - 1.0
    return {
        0: np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        1: np.array([[0.0, -1.0, w1], [1.0, 0.0, 0.0]]),  # rotated (x, y) -> original (W-1-y, x)
        2: np.array([[-1.0, 0.0, w1], [0.0, -1.0, h1]]),
        3: np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, h1]]),  # rotated (x, y) -> original (y, H-1-x)
    }[k]


def box_back(box: tuple[float, float, float, float], back: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned box in the original image covering a box found in the rotated one."""
    x0, y0, x1, y1 = box
    pts = transform_points(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64), back)
    lo, hi = pts.min(0), pts.max(0)
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
