"""Paste-back geometry and the merge modes (how a predicted face is blended into its frame).

Work is done inside the face's bounding box in the frame (the ROI), never over the whole frame. Frame ROIs and faces
are float32 HWC RGB in [0, 1]; masks float32 HW in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from facelab.align import invert_affine
from facelab.merge.masks import NOISE_FLOOR, seamless_mask
from facelab.utils.registry import Registry


@dataclass(frozen=True)
class Roi:
    """A box ``[x0, x1) x [y0, y1)`` of the frame."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def size(self) -> tuple[int, int]:
        return self.x1 - self.x0, self.y1 - self.y0

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def face_roi(mat: np.ndarray, face_size: int, frame_hw: tuple[int, int], margin: int = 2) -> Roi:
    """Bounding box in the frame of the ``face_size`` square under frame->face ``mat``, plus ``margin``, clipped."""
    corners = np.array([(0, 0), (face_size, 0), (face_size, face_size), (0, face_size)], np.float64)
    inv = invert_affine(mat)
    pts = corners @ inv[:, :2].T + inv[:, 2]
    h, w = frame_hw
    x0 = int(np.clip(np.floor(pts[:, 0].min()) - margin, 0, w))
    y0 = int(np.clip(np.floor(pts[:, 1].min()) - margin, 0, h))
    x1 = int(np.clip(np.ceil(pts[:, 0].max()) + margin + 1, 0, w))
    y1 = int(np.clip(np.ceil(pts[:, 1].max()) + margin + 1, 0, h))
    return Roi(x0, y0, x1, y1)


def roi_matrix(mat: np.ndarray, roi: Roi) -> np.ndarray:
    """Frame->face ``mat`` re-expressed for ROI pixel coordinates (ROI origin at frame (x0, y0))."""
    m = np.asarray(mat, np.float64)[:2].copy()
    m[:, 2] += m[:, :2] @ np.array([roi.x0, roi.y0], np.float64)
    return m


def face_to_roi(img: np.ndarray, mat: np.ndarray, roi: Roi, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """Warp a face-space image (face->frame is the inverse of ``mat``) into the ROI; edges are replicated outside
    the face square (masks stay zero there because they are warped with :func:`mask_to_roi`)."""
    return cv2.warpAffine(img, roi_matrix(mat, roi), roi.size, flags=interpolation | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def roi_to_face(img: np.ndarray, mat: np.ndarray, roi: Roi, size: int) -> np.ndarray:
    """Warp ROI pixels back into the ``size`` face square (cubic, border replicated)."""
    return cv2.warpAffine(img, roi_matrix(mat, roi), (size, size), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REPLICATE)


def mask_to_roi(mask: np.ndarray, mat: np.ndarray, face_size: int, roi: Roi) -> np.ndarray:
    """Warp a face mask sampled at any square size into the ROI; clipped, values below 1/255 zeroed."""
    scale = mask.shape[0] / float(face_size)
    m = np.asarray(mat, np.float64)[:2] * scale
    out = cv2.warpAffine(mask.astype(np.float32), roi_matrix(m, roi), roi.size,
                         flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = np.clip(out, 0.0, 1.0)
    out[out < NOISE_FLOOR] = 0.0
    return out


def composite(background: np.ndarray, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``background * (1 - mask) + face * mask`` (HWC, HWC, HW) in float32."""
    m = mask[..., None]
    return background + (face - background) * m


# ---------------------------------------------------------------------------------------------------------------
# merge modes


@dataclass
class FaceBlend:
    """One face inside its ROI. ``recolor`` applies colour transfer (+ hist-match) to a face-space image;
    ``post`` motion blur and sharpening; both are fixed for this face by the caller."""

    frame: np.ndarray  # ROI of the frame, float32 HWC
    face: np.ndarray  # predicted face, float32 (R, R, 3)
    mask: np.ndarray  # ROI mask, float32 HW
    mat: np.ndarray  # frame->face output matrix
    roi: Roi
    recolor: Callable[[np.ndarray, bool], np.ndarray]  # (face, hist_match) -> face
    post: Callable[[np.ndarray], np.ndarray]

    @property
    def size(self) -> int:
        return int(self.face.shape[0])


BlendMode = Callable[[FaceBlend], tuple[np.ndarray, np.ndarray]]
MERGE_MODES: Registry[tuple[np.ndarray, np.ndarray]] = Registry("merge mode")


@MERGE_MODES.register("original", "the destination frame unchanged (the mask is still written)")
def _original(fb: FaceBlend) -> tuple[np.ndarray, np.ndarray]:
    return fb.frame, fb.mask


@MERGE_MODES.register("overlay", "colour-corrected predicted face alpha-blended with the mask")
def _overlay(fb: FaceBlend) -> tuple[np.ndarray, np.ndarray]:
    face = fb.post(fb.recolor(fb.face, False))
    return composite(fb.frame, face_to_roi(face, fb.mat, fb.roi), fb.mask), fb.mask


@MERGE_MODES.register("hist-match", "overlay after per-channel histogram matching to the destination face")
def _hist_match(fb: FaceBlend) -> tuple[np.ndarray, np.ndarray]:
    face = fb.post(fb.recolor(fb.face, True))
    return composite(fb.frame, face_to_roi(face, fb.mat, fb.roi), fb.mask), fb.mask


def _seamless(fb: FaceBlend, hist: bool) -> tuple[np.ndarray, np.ndarray]:
    face_roi_img = face_to_roi(fb.face, fb.mat, fb.roi)
    cloned = seamless_clone(face_roi_img, fb.frame, fb.mask)
    face = roi_to_face(cloned, fb.mat, fb.roi, fb.size)
    face = fb.post(fb.recolor(face, hist))
    return composite(fb.frame, face_to_roi(face, fb.mat, fb.roi), fb.mask), fb.mask


@MERGE_MODES.register("seamless", "Poisson blending (cv2.seamlessClone), then the mask")
def _seamless_mode(fb: FaceBlend) -> tuple[np.ndarray, np.ndarray]:
    return _seamless(fb, False)


@MERGE_MODES.register("seamless-hist-match", "seamless, then histogram matching to the destination face")
def _seamless_hist(fb: FaceBlend) -> tuple[np.ndarray, np.ndarray]:
    return _seamless(fb, True)


@MERGE_MODES.register("raw-rgb", "the predicted square pasted as is, no mask")
def _raw_rgb(fb: FaceBlend) -> tuple[np.ndarray, np.ndarray]:
    ones = np.ones((fb.size, fb.size), np.float32)
    square = mask_to_roi(ones, fb.mat, fb.size, fb.roi)
    square = (square > 0.5).astype(np.float32)
    return composite(fb.frame, face_to_roi(fb.face, fb.mat, fb.roi), square), square


@MERGE_MODES.register("raw-predict", "the predicted face crop itself (output is R x R, not the frame)")
def _raw_predict(fb: FaceBlend) -> tuple[np.ndarray, np.ndarray]:
    raise RuntimeError("raw-predict is rendered by the frame renderer, not blended")  # see render.render_frame


def seamless_clone(face: np.ndarray, frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson-blend ``face`` into ``frame`` (same-size float32 HWC) inside the binarised ``mask``.

    The mask is binarised at the first 0.1 step with pixels (DeepFaceLab) and kept off the ROI border, which
    ``cv2.seamlessClone`` needs; the clone is centred on the mask's bounding box so the result does not jitter.
    """
    m = seamless_mask(mask)
    m[:2, :] = 0
    m[-2:, :] = 0
    m[:, :2] = 0
    m[:, -2:] = 0
    if not m.any():
        return frame
    x, y, w, h = cv2.boundingRect(m)
    centre = (x + w // 2, y + h // 2)
    src = np.clip(np.rint(face * 255.0), 0, 255).astype(np.uint8)
    dst = np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
    out = cv2.seamlessClone(src, dst, m, centre, cv2.NORMAL_CLONE)
    return out.astype(np.float32) / 255.0
