"""Piecewise-affine warp of one aligned face onto another face's landmarks, over a fixed shared mesh.

Every face gets the same ``P = 93`` anchor points, in this order: the 68 iBUG landmarks, 9 forehead points
extrapolated above the brows (whole_face crops include the forehead), and 16 points on the border of the square
crop (corners and three more per side), so the mesh covers the whole crop. The triangles (index triples into the
anchors) are computed once, by Delaunay, on the frontal mean face; because every face uses the same triples,
triangle ``t`` of one face corresponds to triangle ``t`` of any other.

Pixels are (x, y), x right, y down, pixel centres at integers; images are float32 HWC RGB in [0, 1].
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy.spatial import Delaunay

from facelab.align import canonical_face_type, frontal_landmarks, hull_mask, umeyama

N_LANDMARKS = 68
# Brow points lifted by 0.7 and 1.4 of the face's "up" vector (eye corners minus nose base, about 44 px in a
# 256 px whole_face crop): the high row sits some 60 px above the brows, near the hairline of a frontal face.
FOREHEAD_LOW: tuple[tuple[int, ...], ...] = ((17,), (19,), (21,), (22,), (24,), (26,))
FOREHEAD_HIGH: tuple[tuple[int, ...], ...] = ((18,), (21, 22), (25,))
FOREHEAD_LOW_LIFT = 0.7
FOREHEAD_HIGH_LIFT = 1.4
BORDER_PER_SIDE = 4  # segments per side of the crop: 4 corners + 3 points inside each side
N_FOREHEAD = len(FOREHEAD_LOW) + len(FOREHEAD_HIGH)
N_BORDER = 4 * BORDER_PER_SIDE
N_ANCHORS = N_LANDMARKS + N_FOREHEAD + N_BORDER

REFERENCE_SIZE = 256  # crop size the mesh is built at (the triples do not depend on it)
MIN_AREA = 0.5  # triangles below this area in pixels^2 are degenerate: they get no pixels of their own
_SUBPIXEL_BITS = 4


def _check_points(points: np.ndarray, n: int, name: str) -> np.ndarray:
    pts = np.asarray(points, np.float64)
    if pts.shape != (n, 2):
        raise ValueError(f"{name}: expected ({n}, 2) points, got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{name}: points contain NaN or inf")
    return pts


def face_up(landmarks: np.ndarray) -> np.ndarray:
    """The face's "up" vector (2,): mean of the four eye corners minus the nose base (point 33).

    A difference of landmarks, so it moves with any affine map of the face; the eye corners and nose base do not
    move when the eyes blink or the mouth opens.
    """
    lm = np.asarray(landmarks, np.float64)
    return lm[[36, 39, 42, 45]].mean(0) - lm[33]


def border_points(size: int) -> np.ndarray:
    """(16, 2) float64 points on the border of a ``size`` crop: corners and three points inside each side."""
    s = float(size) - 1.0
    steps = np.arange(BORDER_PER_SIDE, dtype=np.float64) / BORDER_PER_SIDE * s
    top = np.stack([steps, np.zeros_like(steps)], 1)
    right = np.stack([np.full_like(steps, s), steps], 1)
    bottom = np.stack([s - steps, np.full_like(steps, s)], 1)
    left = np.stack([np.zeros_like(steps), s - steps], 1)
    return np.concatenate([top, right, bottom, left])


def anchor_points(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(93, 2) float64 mesh anchors of a face with 68 ``landmarks`` in a ``size`` crop: landmarks, forehead, border.

    The forehead points are brow points plus a multiple of :func:`face_up`; the landmark and forehead points
    therefore follow any affine map of the landmarks exactly, and the border points stay where they are.
    """
    lm = _check_points(landmarks, N_LANDMARKS, "anchor_points")
    up = face_up(lm)
    low = [lm[list(ix)].mean(0) + FOREHEAD_LOW_LIFT * up for ix in FOREHEAD_LOW]
    high = [lm[list(ix)].mean(0) + FOREHEAD_HIGH_LIFT * up for ix in FOREHEAD_HIGH]
    return np.concatenate([lm, np.array(low + high), border_points(size)])


def signed_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T,) float64 signed areas of ``triangles`` (T, 3) over ``points`` (P, 2), in pixels^2.

    Positive means clockwise on screen (y down), the orientation every triangle has on the mean face."""
    p = np.asarray(points, np.float64)[np.asarray(triangles)]
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def mesh_triangles(face_type: str = "whole_face") -> np.ndarray:
    """(T, 3) int32 triangle index triples into :func:`anchor_points`, shared by all faces (read-only, cached).

    Delaunay on the anchors of the frontal mean face of ``face_type``; every triple is ordered so that its
    signed area (:func:`signed_areas`) on the mean face is positive, and slivers of the border are dropped.
    """
    return _mesh(canonical_face_type(face_type))


@functools.lru_cache(maxsize=8)
def _mesh(face_type: str) -> np.ndarray:
    pts = anchor_points(frontal_landmarks(REFERENCE_SIZE, face_type), REFERENCE_SIZE)
    tri = Delaunay(pts).simplices.astype(np.int32)
    area = signed_areas(pts, tri)
    tri[area < 0] = tri[area < 0][:, [0, 2, 1]]
    tri = tri[np.abs(area) > MIN_AREA]
    tri.setflags(write=False)
    return tri


def _affines(src: np.ndarray, dst: np.ndarray, triangles: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """(T, 2, 3) float64 affines taking each destination triangle onto its source triangle (identity if not drawn)."""
    d = dst[triangles]  # (T, 3, 2)
    s = src[triangles]
    a = np.concatenate([d, np.ones(d.shape[:2] + (1,))], 2)  # (T, 3, 3): rows [x, y, 1]
    a[~drawn] = np.eye(3)
    s = s.copy()
    s[~drawn] = np.eye(3)[:, :2]
    return np.transpose(np.linalg.solve(a, s), (0, 2, 1))


def _rasterise(dst: np.ndarray, triangles: np.ndarray, order: np.ndarray, size: int, fill: int) -> np.ndarray:
    """(size, size) label image (uint8 when ``fill`` < 256, else int32): the index of the triangle drawn last at
    each pixel, ``fill`` where none is."""
    label = np.full((size, size), fill, np.uint8 if fill < 256 else np.int32)
    polys = np.round(dst[triangles[order]] * (1 << _SUBPIXEL_BITS)).astype(np.int32)  # (len(order), 3, 2)
    for t, poly in zip(order.tolist(), polys, strict=True):
        cv2.fillConvexPoly(label, poly, t, cv2.LINE_8, _SUBPIXEL_BITS)
    return label


def _lookup(table: np.ndarray, label: np.ndarray) -> list[np.ndarray]:
    """Columns of ``table`` (L, K) float32 indexed by ``label`` (H, W): K arrays (H, W); cv2.LUT for uint8 labels."""
    if label.dtype == np.uint8:
        padded = np.zeros((256, table.shape[1]), np.float32)
        padded[:len(table)] = table
        return [cv2.LUT(label, np.ascontiguousarray(padded[:, k])) for k in range(table.shape[1])]
    return [np.take(np.ascontiguousarray(table[:, k]), label) for k in range(table.shape[1])]


def source_maps(src: np.ndarray, dst: np.ndarray, triangles: np.ndarray,
                size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output pixel of a (size, size) warp, where to sample the source: ``(map_x, map_y, upright)``, each
    (size, size); map_x / map_y float32 source pixels, upright bool (the pixel's triangle is upright in both
    meshes). Anchors ``src`` / ``dst`` (P, 2) float64, ``triangles`` (T, 3) int64; see :func:`warp_face`."""
    drawn = signed_areas(dst, triangles) > MIN_AREA
    good = drawn & (signed_areas(src, triangles) > MIN_AREA)
    fallback = umeyama(dst[:N_LANDMARKS], src[:N_LANDMARKS])[None, :2]
    affines = np.concatenate([_affines(src, dst, triangles, drawn), fallback])
    order = np.concatenate([np.flatnonzero(drawn & ~good), np.flatnonzero(good)])
    label = _rasterise(dst, triangles, order, size, fill=len(triangles))
    table = np.concatenate([affines.reshape(-1, 6), np.append(good, False)[:, None]], 1).astype(np.float32)
    c = _lookup(table, label)  # six affine coefficients and the "upright in both meshes" flag per pixel
    gx = np.arange(size, dtype=np.float32)[None, :]
    gy = gx.reshape(-1, 1)
    return c[0] * gx + c[1] * gy + c[2], c[3] * gx + c[4] * gy + c[5], c[6] > 0.5


def warp_face(image: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray, triangles: np.ndarray,
              size: int) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``image`` (H, W, C) float32 so that anchors ``src_pts`` (P, 2) land on ``dst_pts`` (P, 2) in a
    (size, size) output. Returns ``(warped (size, size, C) float32 in [0, 1], coverage (size, size) float32)``.

    Each destination triangle with area over :data:`MIN_AREA` gets its own affine; one bicubic ``cv2.remap``
    (border replicate) does the sampling. Triangles that are degenerate or flipped in the destination get no
    pixels; triangles upright in both meshes are drawn last, so they win where flipped ones overlap them. Pixels
    no triangle reaches fall back to the similarity fitted on the 68 landmarks. ``coverage`` is 1 where a pixel
    came from a triangle upright in both meshes and sampled inside the source image, else 0 (folded, fallback or
    replicated-border texture). uint8 images are converted to float32 in [0, 1].
    """
    img = np.asarray(image)
    img = np.ascontiguousarray(img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img, np.float32)
    if img.ndim not in (2, 3) or min(img.shape[:2]) < 2:
        raise ValueError(f"warp_face: expected an (H, W, C) image, got {img.shape}")
    size = int(size)
    if size < 2:
        raise ValueError(f"warp_face: size must be at least 2, got {size}")
    src = _check_points(src_pts, len(np.asarray(src_pts)), "warp_face src_pts")
    dst = _check_points(dst_pts, len(src), "warp_face dst_pts")
    tri = np.asarray(triangles, np.int64)
    if tri.ndim != 2 or tri.shape[1] != 3 or tri.size == 0 or tri.min() < 0 or tri.max() >= len(src):
        raise ValueError(f"warp_face: triangles must be (T, 3) indices into {len(src)} points")
    if len(src) < N_LANDMARKS:
        raise ValueError(f"warp_face: the first {N_LANDMARKS} anchors must be the landmarks, got {len(src)} points")
    map_x, map_y, upright = source_maps(src, dst, tri, size)
    warped = cv2.remap(img, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    h, w = img.shape[:2]
    inside = (map_x >= -0.5) & (map_x <= w - 0.5) & (map_y >= -0.5) & (map_y <= h - 0.5)
    return np.clip(warped, 0.0, 1.0), (inside & upright).astype(np.float32)


def warp_to_landmarks(image: np.ndarray, src_landmarks: np.ndarray, dst_landmarks: np.ndarray, size: int,
                      face_type: str = "whole_face") -> tuple[np.ndarray, np.ndarray]:
    """:func:`warp_face` from 68 landmarks: ``image`` (R, R, C) with ``src_landmarks`` onto a (size, size) face
    with ``dst_landmarks`` (both (68, 2), in their own crop pixels). Returns ``(warped, coverage)``."""
    src = anchor_points(src_landmarks, np.asarray(image).shape[0])
    dst = anchor_points(dst_landmarks, size)
    return warp_face(image, src, dst, mesh_triangles(face_type), size)


def swap_mask(dst_landmarks: np.ndarray, size: int, coverage: np.ndarray | None = None) -> np.ndarray:
    """The swap mask of a warped face, (size, size) float32 in {0, 1}: the inner-face hull of the destination
    landmarks with the brows raised (``facelab.align.hull_mask``), times ``coverage`` when given."""
    mask = hull_mask(dst_landmarks, size)
    if coverage is not None:
        mask = mask * np.asarray(coverage, np.float32)
    return mask.astype(np.float32)
