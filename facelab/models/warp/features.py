"""What a face looks like, read from its 68 landmarks in face space: shape, eye and mouth openness, head pose.

Used to pick, for a destination face, the source face that best matches it (:func:`match_costs`). All features
are similarity-invariant except pose, which :func:`facelab.align.estimate_pose` reads in the aligned crop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facelab.align import estimate_pose, frontal_landmarks, umeyama

# iBUG-68 eyes, in the order p1..p6 of Soukupova & Cech's eye aspect ratio: corner, two upper, corner, two lower.
EYES: tuple[tuple[int, ...], ...] = ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))
INNER_LIP_PAIRS: tuple[tuple[int, int], ...] = ((61, 67), (62, 66), (63, 65))
MOUTH_CORNERS = (48, 54)


@functools.lru_cache(maxsize=1)
def mean_shape() -> np.ndarray:
    """(68, 2) float64 frontal mean face, zero mean and unit Frobenius norm (the Procrustes reference)."""
    ref = frontal_landmarks(256, "whole_face")
    ref = ref - ref.mean(0)
    ref = ref / np.linalg.norm(ref)
    ref.setflags(write=False)
    return ref


def _check_68(landmarks: np.ndarray) -> np.ndarray:
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
        raise ValueError(f"expected finite (68, 2) landmarks, got shape {lm.shape}")
    return lm


def aligned_shape(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) float64: ``landmarks`` similarity-aligned onto :func:`mean_shape`, then zero mean and unit norm."""
    lm = _check_68(landmarks)
    mat = umeyama(lm, mean_shape())
    out = lm @ mat[:2, :2].T + mat[:2, 2]
    out = out - out.mean(0)
    return out / np.linalg.norm(out)


def normalised_shape(landmarks: np.ndarray) -> np.ndarray:
    """(136,) float32 Procrustes shape (x0, y0, x1, y1, ...): aligned to the mean face, zero mean, unit scale."""
    return aligned_shape(landmarks).reshape(-1).astype(np.float32)


def eye_aspect_ratios(landmarks: np.ndarray) -> np.ndarray:
    """(2,) float32 eye aspect ratio of the image-left (36-41) and image-right (42-47) eye.

    EAR = (|p2 - p6| + |p3 - p5|) / (2 |p1 - p4|): about 0.25-0.35 open, under about 0.15 closed.
    """
    lm = _check_68(landmarks)
    out = []
    for p1, p2, p3, p4, p5, p6 in EYES:
        lids = np.linalg.norm(lm[p2] - lm[p6]) + np.linalg.norm(lm[p3] - lm[p5])
        out.append(lids / max(2.0 * np.linalg.norm(lm[p1] - lm[p4]), 1e-9))
    return np.array(out, np.float32)


def mouth_openness(landmarks: np.ndarray) -> float:
    """Mean inner-lip gap (61-67, 62-66, 63-65) over mouth width (48-54): 0 closed, about 0.3-0.6 wide open."""
    lm = _check_68(landmarks)
    gap = np.mean([np.linalg.norm(lm[a] - lm[b]) for a, b in INNER_LIP_PAIRS])
    width = np.linalg.norm(lm[MOUTH_CORNERS[0]] - lm[MOUTH_CORNERS[1]])
    return float(gap / max(width, 1e-9))


@dataclass(frozen=True)
class FaceFeatures:
    """Features of N faces (N = 1 for one face): arrays with a leading face axis.

    shape (N, 136) normalised shape, eyes (N, 2) eye aspect ratios (image-left, image-right), mouth (N,) mouth
    openness, pose (N, 3) pitch, yaw, roll in radians; all float32.
    """

    shape: np.ndarray
    eyes: np.ndarray
    mouth: np.ndarray
    pose: np.ndarray

    def __len__(self) -> int:
        return int(self.shape.shape[0])

    def __getitem__(self, index: int | slice | np.ndarray) -> "FaceFeatures":
        """The features of a subset of faces (an int keeps the face axis, with length 1)."""
        ix = np.atleast_1d(np.arange(len(self))[index])
        return FaceFeatures(self.shape[ix], self.eyes[ix], self.mouth[ix], self.pose[ix])

    @staticmethod
    def concat(parts: Sequence["FaceFeatures"]) -> "FaceFeatures":
        """Features of all faces of ``parts``, in order."""
        if not parts:
            raise ValueError("FaceFeatures.concat needs at least one part")
        return FaceFeatures(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("shape", "eyes", "mouth",
                                                                                          "pose")))


def describe(landmarks: np.ndarray, size: int) -> FaceFeatures:
    """Features of one face (N = 1) from its (68, 2) landmarks in an aligned crop of ``size`` pixels."""
    lm = _check_68(landmarks)
    return FaceFeatures(shape=normalised_shape(lm)[None], eyes=eye_aspect_ratios(lm)[None],
                        mouth=np.array([mouth_openness(lm)], np.float32),
                        pose=np.array([estimate_pose(lm, size)], np.float32))


def describe_many(landmarks: np.ndarray, size: int) -> FaceFeatures:
    """Features of N faces from (N, 68, 2) landmarks in aligned crops of ``size`` pixels."""
    lms = np.asarray(landmarks, np.float64)
    if lms.ndim != 3 or lms.shape[1:] != (68, 2) or len(lms) == 0:
        raise ValueError(f"expected (N, 68, 2) landmarks with N >= 1, got {lms.shape}")
    return FaceFeatures.concat([describe(lm, size) for lm in lms])


@dataclass(frozen=True)
class MatchWeights:
    """Weights of :func:`match_costs`; a cost of about 1 is a clearly visible mismatch.

    shape: per unit of Procrustes distance (unit-norm shapes; 0.05 is a marked change of expression or pose).
    pitch/yaw/roll: per radian (roll is mostly removed by the alignment, so it counts little).
    mouth: per unit of mouth openness difference. eye: per unit of EAR difference, each eye.
    closed_src: per eye, source closed while the destination is open (the swap would blink); closed_dst: the
    reverse (an open eye pasted on a blink, less visible). Closedness ramps from 0 at ``open_ear`` to 1 at
    ``closed_ear``.
    """

    shape: float = 10.0
    pitch: float = 2.0
    yaw: float = 4.0
    roll: float = 0.5
    mouth: float = 4.0
    eye: float = 4.0
    closed_src: float = 10.0
    closed_dst: float = 2.0
    open_ear: float = 0.22
    closed_ear: float = 0.12


def closedness(ears: np.ndarray, weights: MatchWeights = MatchWeights()) -> np.ndarray:
    """Eye closedness in [0, 1] per EAR value (same shape as ``ears``): 0 at or above ``open_ear``, 1 at or below
    ``closed_ear``, linear between."""
    span = max(weights.open_ear - weights.closed_ear, 1e-6)
    return np.clip((weights.open_ear - np.asarray(ears, np.float64)) / span, 0.0, 1.0)


def match_costs(dst: FaceFeatures, src: FaceFeatures, weights: MatchWeights = MatchWeights(),
                dst_neutral: np.ndarray | None = None, src_neutral: np.ndarray | None = None) -> np.ndarray:
    """(N,) float64 cost of showing each of the N ``src`` faces for the single ``dst`` face (len 1).

    Sum of the weighted shape distance, pose distance, mouth and eye openness differences and the closed-eye
    penalties of :class:`MatchWeights`. Two people differ in shape even with the same expression: pass each
    set's neutral shape (e.g. the median of its ``shape`` rows, (136,)) as ``dst_neutral`` / ``src_neutral`` to
    compare the offsets from those instead of the raw shapes.
    """
    if len(dst) != 1:
        raise ValueError(f"match_costs: dst must hold one face, got {len(dst)}")
    w = weights
    d_shape = dst.shape[0].astype(np.float64) - (0.0 if dst_neutral is None else np.asarray(dst_neutral))
    s_shape = src.shape.astype(np.float64) - (0.0 if src_neutral is None else np.asarray(src_neutral))
    cost = w.shape * np.linalg.norm(s_shape - d_shape, axis=1)
    dpose = np.abs(src.pose.astype(np.float64) - dst.pose[0])
    cost += dpose @ np.array([w.pitch, w.yaw, w.roll])
    cost += w.mouth * np.abs(src.mouth.astype(np.float64) - float(dst.mouth[0]))
    cost += w.eye * np.abs(src.eyes.astype(np.float64) - dst.eyes[0]).sum(1)
    c_src, c_dst = closedness(src.eyes, w), closedness(dst.eyes[0], w)
    cost += w.closed_src * np.clip(c_src - c_dst, 0.0, None).sum(1)
    cost += w.closed_dst * np.clip(c_dst - c_src, 0.0, None).sum(1)
    return cost


def cost_matrix(dst: FaceFeatures, src: FaceFeatures, weights: MatchWeights = MatchWeights(),
                neutral: bool = True) -> np.ndarray:
    """(T, N) float64 :func:`match_costs` of every one of the T ``dst`` faces (a track) against N ``src`` faces.

    ``neutral`` compares shapes as offsets from each set's median shape (removes the identity difference).
    """
    dn = np.median(dst.shape, 0) if neutral else None
    sn = np.median(src.shape, 0) if neutral else None
    return np.stack([match_costs(dst[t], src, weights, dn, sn) for t in range(len(dst))])
