"""Which source faces are unsuitable to show, judged over the whole source set without any trained model.

Three checks, all robust (medians and MADs, so a minority of bad faces cannot hide themselves):

- landmarks: each face's Procrustes shape against a PCA model of the set. The residual off the first ``k``
  components means badly placed points; a large Mahalanobis distance inside them means an unusual but possible
  pose or expression, flagged only far out.
- appearance: every face is warped to the set's mean shape at low resolution, turned grey and normalised in
  brightness and contrast; each face region (eyes, nose, mouth, cheeks, chin) is compared with the per-pixel
  median of reference faces. The references of a face are its nearest neighbours in shape among the faces that
  pass: a smile is compared with smiles, a frown with frowns (one median for the whole set flags every
  expression that is not the commonest). An occluder makes a region far out.
- lips: a self-referenced prior. Lips are redder (CIELAB a*) than the skin around them; a hand over the mouth
  (over half of it) removes that contrast. Needed because a long occlusion (a hand held for seconds) gives a
  cluster of similar occluded faces that are each other's neighbours, which the set comparison cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelab.align import frontal_landmarks, hull_mask, umeyama
from facelab.models.warp.features import aligned_shape
from facelab.models.warp.pwa import anchor_points, mesh_triangles, warp_face

REGIONS: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth", "left_cheek", "right_cheek", "chin")
_MAD = 1.4826  # MAD -> standard deviation of a normal


@dataclass(frozen=True)
class QualityConfig:
    """Settings of :func:`assess`. Thresholds are robust z-scores (distance from the median in MAD-sigmas).

    size: analysis resolution of the appearance check. components: PCA components of the landmark model.
    residual_z: landmark residual off the model. model_z: Mahalanobis distance inside the model (pose or
    expression extremes are real faces, so this is far out). region_z: appearance of one region.
    lips_ratio: a lip half whose contrast falls under this fraction of the set's median is covered;
    min_lip_contrast: under this median a* contrast (grey footage) the lip check is skipped.
    neighbours: references per face, as a fraction of the set, clipped to [min_neighbours, max_neighbours].
    min_faces: smaller sets are not judged (every face usable). pixel_floor: floor of the per-pixel spread, in
    normalised grey units. residual_floor / region_floor: floors of the spreads the z-scores divide by, so a set of
    near-identical faces does not flag noise. min_region_coverage: a region less covered than this (folded
    away when the head turns) is not judged.
    """

    size: int = 64
    components: int = 8
    residual_z: float = 6.0
    model_z: float = 20.0
    region_z: float = 11.0
    lips_ratio: float = 0.6
    min_lip_contrast: float = 1.0
    neighbours: float = 0.1
    min_neighbours: int = 8
    max_neighbours: int = 64
    min_faces: int = 8
    pixel_floor: float = 0.2
    residual_floor: float = 0.004
    region_floor: float = 0.1
    min_region_coverage: float = 0.6


@dataclass(frozen=True)
class Quality:
    """Result of :func:`assess` for N faces.

    score (N,) float32 in [0, 1], 1 = typical, 0.5 at the first threshold crossed; usable (N,) bool (score > 0.5);
    residual_z, model_z (N,) float32 landmark z-scores; region_z (N, len(regions)) float32 appearance z-scores
    (NaN where a region was not judged); lips (N, 2) float32 lip contrast of the image-left and image-right half
    over the set's median (1 typical, about 0 covered); regions: names of the region columns; reasons: per
    face, "" when usable, else comma-separated causes ("landmarks", "shape", "occluded:lips",
    "occluded:mouth", ...).
    """

    score: np.ndarray
    usable: np.ndarray
    residual_z: np.ndarray
    model_z: np.ndarray
    region_z: np.ndarray
    lips: np.ndarray
    regions: tuple[str, ...]
    reasons: tuple[str, ...]


def robust_z(values: np.ndarray, reference: np.ndarray | None = None, floor: float = 0.0) -> np.ndarray:
    """z-scores of ``values`` (N,) against the median and MAD-sigma of ``reference`` (default: ``values``), the
    sigma floored at ``floor``; NaNs are ignored in the reference and kept in the output."""
    v = np.asarray(values, np.float64)
    ref = v if reference is None else np.asarray(reference, np.float64)
    ref = ref[np.isfinite(ref)]
    if ref.size == 0:
        return np.full(v.shape, np.nan)
    med = float(np.median(ref))
    sigma = max(_MAD * float(np.median(np.abs(ref - med))), floor, 1e-12)
    return (v - med) / sigma


def procrustes_shapes(landmarks: np.ndarray) -> np.ndarray:
    """(N, 136) float64 unit-norm shapes of (N, 68, 2) landmarks aligned to the mean face."""
    return np.stack([aligned_shape(lm).reshape(-1) for lm in np.asarray(landmarks, np.float64)])


def shape_scores(shapes: np.ndarray, components: int = 8,
                 residual_floor: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """Landmark plausibility of N :func:`procrustes_shapes` (N, 136): ``(residual_z (N,), model_z (N,))``.

    Shapes are centred on their coordinate-wise median. The model is the first ``components`` principal axes
    of the faces not far from that median (under 1.5 times the 90th percentile of the distance), so one face with
    a misplaced jaw cannot become an axis of its own, while a pose or expression seen in a tenth of the set or
    more still is one; model_z is the robust z of the Mahalanobis distance inside
    it (each axis scaled by the MAD of its projections), residual_z the robust z of the distance off it.
    """
    centred = shapes - np.median(shapes, 0)
    dist = np.linalg.norm(centred, axis=1)
    core = dist <= 1.5 * np.quantile(dist, 0.9)  # a rare far face is no axis; a common pose or expression stays one
    k = int(min(components, len(shapes) - 2, centred.shape[1]))
    if core.sum() < k + 2:
        core = np.ones(len(shapes), bool)
    _, _, vt = np.linalg.svd(centred[core], full_matrices=False)
    proj = centred @ vt[:k].T  # (N, k)
    residual = np.linalg.norm(centred - proj @ vt[:k], axis=1)
    sigma = np.maximum(_MAD * np.median(np.abs(proj[core] - np.median(proj[core], 0)), 0), residual_floor)
    mahal = np.sqrt(((proj / sigma) ** 2).sum(1))
    return (robust_z(residual, residual[core], residual_floor),
            robust_z(mahal, mahal[core], 0.5))


def _fill(mask: np.ndarray, points: np.ndarray, convex: bool = True) -> None:
    pts = np.round(np.asarray(points, np.float64) * 16).astype(np.int32)
    if convex:
        cv2.fillConvexPoly(mask, cv2.convexHull(pts), 1, cv2.LINE_8, 4)
    else:
        cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, 4)


def _region_seeds(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seed points (M, 2) and their region index (M,): each face pixel belongs to its nearest seed's region."""
    nose = lm[30]
    groups = [
        np.concatenate([lm[17:22], lm[36:42]]), np.concatenate([lm[22:27], lm[42:48]]), lm[27:36], lm[48:60],
        np.concatenate([lm[1:6] + 0.45 * (nose - lm[1:6]), (lm[[31, 40, 41]] + lm[[3, 2, 1]]) / 2]),
        np.concatenate([lm[11:16] + 0.45 * (nose - lm[11:16]), (lm[[35, 47, 46]] + lm[[13, 14, 15]]) / 2]),
        lm[6:11] + 0.35 * (lm[57] - lm[6:11]),
    ]
    labels = np.concatenate([np.full(len(g), r) for r, g in enumerate(groups)])
    return np.concatenate(groups), labels


def region_masks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(len(REGIONS), size, size) bool masks tiling the face hull of (68, 2) ``landmarks`` in a ``size`` crop.

    Each hull pixel goes to the region of its nearest seed (eye regions take the brows and the forehead above
    them, cheeks and chin are seeded inside the jaw line). The eye openings and the inside of the mouth are left
    out: blinks and open mouths are not occluders.
    """
    lm = np.asarray(landmarks, np.float64)
    seeds, labels = _region_seeds(lm)
    ys, xs = np.mgrid[0:size, 0:size]
    grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    d2 = (grid ** 2).sum(1)[:, None] + (seeds ** 2).sum(1)[None] - 2.0 * grid @ seeds.T
    nearest = labels[np.argmin(d2, 1)].reshape(size, size)
    holes = np.zeros((size, size), np.uint8)
    for hole in (lm[36:42], lm[42:48], lm[60:68]):
        _fill(holes, hole)
    face = (hull_mask(lm, size) > 0) & ~cv2.dilate(holes, np.ones((3, 3), np.uint8)).astype(bool)
    return np.stack([face & (nearest == r) for r in range(len(REGIONS))])


def mean_landmarks(landmarks: np.ndarray, size: int, face_type: str = "whole_face") -> np.ndarray:
    """(68, 2) float64 median shape of N faces (N, 68, 2), placed like the frontal mean face in a ``size`` crop."""
    ref = frontal_landmarks(size, face_type)
    placed = []
    for lm in np.asarray(landmarks, np.float64):
        mat = umeyama(lm, ref)
        placed.append(lm @ mat[:2, :2].T + mat[:2, 2])
    return np.median(np.stack(placed), 0)


def _as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else np.asarray(image, np.float32)


def normalised_grey(images: np.ndarray, landmarks: np.ndarray, target: np.ndarray, size: int,
                    face_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Warp N faces onto ``target`` (68, 2) landmarks in a ``size`` crop, grey, each shifted and scaled to zero
    median and unit MAD-sigma over ``face_mask`` (size, size) bool.

    ``images`` (N, R, R, 3) float32 in [0, 1] or uint8 with ``landmarks`` (N, 68, 2) in their R-pixel crops.
    Returns ``(grey (N, size, size) float32, coverage (N, size, size) float32)``.
    """
    tri = mesh_triangles()
    dst = anchor_points(target, size)
    greys, covers = [], []
    for image, lm in zip(images, np.asarray(landmarks, np.float64), strict=True):
        img = _as_float(image)
        small = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        src = anchor_points((lm + 0.5) * (size / img.shape[0]) - 0.5, size)
        warped, cover = warp_face(small, src, dst, tri, size)
        grey = cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY)
        vals = grey[face_mask]
        med = float(np.median(vals))
        sigma = max(_MAD * float(np.median(np.abs(vals - med))), 1e-3)
        greys.append((grey - med) / sigma)
        covers.append(cover)
    return np.stack(greys).astype(np.float32), np.stack(covers)


def lip_contrast(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(2,) float64 CIELAB a* of the lips minus that of the skin ring around them, image-left and image-right half.

    ``image`` (R, R, 3) RGB float32 in [0, 1] or uint8 with (68, 2) ``landmarks`` in its pixels. The lips are the
    band between the outer (48-59) and inner (60-67) contour; the halves are split by the line through the
    middles of the upper (51, 62) and lower (57, 66) lip.
    """
    lm = np.asarray(landmarks, np.float64)
    centre = lm[48:60].mean(0)
    ring_pts = centre + 1.7 * (lm[48:60] - centre)
    h, w = image.shape[:2]
    x0, y0 = np.clip(np.floor(ring_pts.min(0)).astype(int) - 1, 0, [w - 1, h - 1])
    x1, y1 = np.clip(np.ceil(ring_pts.max(0)).astype(int) + 2, 1, [w, h])
    if x1 - x0 < 2 or y1 - y0 < 2:  # the mouth lies outside the image
        return np.full(2, np.nan)
    lab = cv2.cvtColor(_as_float(image[y0:y1, x0:x1]), cv2.COLOR_RGB2Lab)[..., 1]
    off = np.array([x0, y0], np.float64)
    outer, inner, ring = (np.zeros(lab.shape, np.uint8) for _ in range(3))
    _fill(outer, lm[48:60] - off, convex=False)
    _fill(inner, lm[60:68] - off, convex=False)
    _fill(ring, ring_pts - off, convex=False)
    band, skin = (outer > 0) & (inner == 0), (ring > 0) & (outer == 0)
    top, bottom = (lm[51] + lm[62]) / 2 - off, (lm[57] + lm[66]) / 2 - off
    ys, xs = np.mgrid[0:lab.shape[0], 0:lab.shape[1]]
    left = (bottom[0] - top[0]) * (ys - top[1]) - (bottom[1] - top[1]) * (xs - top[0]) > 0
    out = []
    for half in (left, ~left):
        b, s = band & half, skin & half
        out.append(float(lab[b].mean() - lab[s].mean()) if b.any() and s.any() else np.nan)
    return np.array(out)


def lip_visibility(images: np.ndarray, landmarks: np.ndarray, min_contrast: float = 1.0) -> np.ndarray:
    """(N, 2) float64 :func:`lip_contrast` of N faces over the set's median (per half); all ones when that median
    is under ``min_contrast`` a* units (grey footage: no colour to judge by)."""
    contrast = np.stack([lip_contrast(im, lm) for im, lm in zip(images, landmarks, strict=True)])
    median = np.nanmedian(contrast, 0) if np.isfinite(contrast).any() else np.zeros(2)
    if not np.all(median >= min_contrast):
        return np.ones_like(contrast)
    return np.nan_to_num(contrast / median, nan=1.0)


def shape_neighbours(shapes: np.ndarray, pool: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """(N, k) int indices of the ``k`` faces of ``pool`` (N,) bool nearest to each face in shape, itself excluded
    (``k`` is cut to the pool size minus one). Distances go ``chunk`` rows at a time (memory O(chunk N))."""
    k = int(max(1, min(k, pool.sum() - 1)))
    sq = (shapes ** 2).sum(1)
    out = np.empty((len(shapes), k), np.int64)
    for start in range(0, len(shapes), chunk):
        rows = np.arange(start, min(start + chunk, len(shapes)))
        d2 = sq[rows, None] + sq[None] - 2.0 * shapes[rows] @ shapes.T
        d2[:, ~pool] = np.inf
        d2[np.arange(len(rows)), rows] = np.inf
        out[rows] = np.argpartition(d2, k - 1, axis=1)[:, :k]
    return out


def local_region_scores(grey: np.ndarray, coverage: np.ndarray, masks: np.ndarray, neighbours: np.ndarray,
                        config: QualityConfig = QualityConfig(), batch: int = 64) -> np.ndarray:
    """(N, R) float64 mean capped per-pixel |z| of each face in each of the R ``masks`` (R, S, S), against the
    per-pixel median and IQR-sigma of its ``neighbours`` (N, k) faces; NaN where a region is too little covered."""
    n, k = neighbours.shape
    flat_g = grey.reshape(n, -1)
    z = np.empty(flat_g.shape, np.float32)
    for start in range(0, n, batch):
        # (B, P, k) with the neighbours last: one sort there gives median and quartiles (faster than np.median)
        ref = np.sort(flat_g.T[:, neighbours[start:start + batch]].transpose(1, 0, 2), axis=-1)
        med = 0.5 * (ref[..., (k - 1) // 2] + ref[..., k // 2])
        sigma = np.maximum((ref[..., (3 * k) // 4] - ref[..., k // 4]) / 1.349, config.pixel_floor)
        z[start:start + batch] = np.minimum(np.abs(flat_g[start:start + batch] - med) / sigma, 8.0)
    flat_m = masks.reshape(len(masks), -1).astype(np.float64).T  # (P, R)
    cover = coverage.reshape(n, -1)
    covered = cover @ flat_m  # (N, R)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = ((z * cover) @ flat_m) / covered
    scores[covered < config.min_region_coverage * flat_m.sum(0)] = np.nan
    return scores


def _worst(z: np.ndarray) -> np.ndarray:
    filled = np.where(np.isfinite(z), z, -np.inf)
    return np.maximum(filled.max(1), -1e9)


def appearance_z(grey: np.ndarray, coverage: np.ndarray, masks: np.ndarray, shapes: np.ndarray,
                 pool: np.ndarray, config: QualityConfig = QualityConfig()) -> np.ndarray:
    """(N, R) float64 robust z of every region score (:func:`local_region_scores`) against the scores of the
    ``pool`` (N,) bool of reference faces (those that passed the other checks; every face if too few did).

    Not iterated on purpose: dropping the faces that fail from the pool and scoring again ejects whole clusters
    of rare but clean faces (a laugh with closed eyes seen for a second), whose only references are each other.
    """
    n = len(grey)
    k = int(np.clip(round(config.neighbours * n), config.min_neighbours, config.max_neighbours))
    if pool.sum() <= config.min_neighbours:
        pool = np.ones(n, bool)
    scores = local_region_scores(grey, coverage, masks, shape_neighbours(shapes, pool, k), config)
    return np.stack([robust_z(scores[:, r], scores[pool, r], config.region_floor) for r in range(scores.shape[1])], 1)


def _reasons(residual_z: np.ndarray, model_z: np.ndarray, region_z: np.ndarray, lips: np.ndarray,
             config: QualityConfig) -> tuple[str, ...]:
    out = []
    for i in range(len(residual_z)):
        causes = ["landmarks"] if residual_z[i] >= config.residual_z else []
        causes += ["shape"] if model_z[i] >= config.model_z else []
        causes += ["occluded:lips"] if lips[i].min() <= config.lips_ratio else []
        causes += [f"occluded:{REGIONS[r]}" for r in np.flatnonzero(np.nan_to_num(region_z[i]) >= config.region_z)]
        out.append(",".join(causes))
    return tuple(out)


def assess(images: np.ndarray, landmarks: np.ndarray, size: int, config: QualityConfig = QualityConfig(),
           face_type: str = "whole_face") -> Quality:
    """Judge N source faces: ``images`` (N, R, R, 3) RGB float32 in [0, 1] or uint8, ``landmarks`` (N, 68, 2) in
    face pixels of a ``size`` crop (R may differ from ``size``; the landmarks are scaled by R / size).

    Sets smaller than ``config.min_faces`` are not judged: every face is usable with score 1.
    """
    imgs = np.asarray(images)
    lms = np.asarray(landmarks, np.float64)
    n = len(imgs)
    if imgs.ndim != 4 or imgs.shape[3] != 3 or lms.shape != (n, 68, 2) or not np.all(np.isfinite(lms)):
        raise ValueError(f"assess: expected (N, R, R, 3) images and finite (N, 68, 2) landmarks, got {imgs.shape}, "
                         f"{lms.shape}")
    if n < config.min_faces:
        zeros = np.zeros(n, np.float32)
        return Quality(np.ones(n, np.float32), np.ones(n, bool), zeros, zeros, np.zeros((n, len(REGIONS)), np.float32),
                       np.ones((n, 2), np.float32), REGIONS, ("",) * n)
    lms = (lms + 0.5) * (imgs.shape[1] / float(size)) - 0.5  # into the images' own pixels
    shapes = procrustes_shapes(lms)
    residual_z, model_z = shape_scores(shapes, config.components, config.residual_floor)
    lips = lip_visibility(imgs, lms, config.min_lip_contrast)
    target = mean_landmarks(lms, config.size, face_type)
    masks = region_masks(target, config.size)
    grey, coverage = normalised_grey(imgs, lms, target, config.size, masks.any(0))
    # an expression seen in one stretch of a clip is far out in the shape model but is no reason to drop its faces
    # from the references; bad landmarks and covered lips are
    seed = (residual_z < config.residual_z) & (lips.min(1) > config.lips_ratio)
    region_z = appearance_z(grey, coverage, masks, shapes, seed, config)
    q = np.maximum.reduce([residual_z / config.residual_z, model_z / config.model_z, _worst(region_z) / config.region_z,
                           (1.0 - lips.min(1)) / (1.0 - config.lips_ratio)])
    score = 1.0 / (1.0 + np.clip(q, 0.0, None) ** 2)
    return Quality(score.astype(np.float32), q < 1.0, residual_z.astype(np.float32), model_z.astype(np.float32),
                   region_z.astype(np.float32), lips.astype(np.float32), REGIONS,
                   _reasons(residual_z, model_z, region_z, lips, config))
