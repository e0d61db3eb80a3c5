"""Render one frame from its predicted faces: the CPU half of the merge, run in worker processes.

Everything here is numpy/OpenCV (no torch), so worker processes start fast. Order per face follows DeepFaceLab's
merger: working mask by mask mode -> erode/dilate + blur at 4x model resolution -> colour transfer -> blend by mode
-> motion blur / sharpen -> paste back with the inverse transform; faces are composited in face-index order; then
the frame is degraded (denoise, bicubic) outside the faces and the colour degrade is applied to the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import cv2
import numpy as np

from facelab.align import face_transform, hull_mask, invert_affine, matrix_scale, transform_points
from facelab.merge import filters
from facelab.merge.blend import MERGE_MODES, FaceBlend, Roi, composite, face_roi, mask_to_roi
from facelab.merge.config import MergeConfig
from facelab.merge.masks import MaskInputs, build_mask, parse_mask_mode, refine_mask, work_size_for
from facelab.utils.atomic import atomic_write_bytes
from facelab.workspace.faces import MaskRecord
from facelab.workspace.images import encode_image, to_float, to_uint8


@dataclass(frozen=True)
class StoredMask:
    """A mask stored in a face file, with the geometry of that face file (to map it into the model's crop)."""

    record: MaskRecord
    file_matrix: np.ndarray  # frame -> face file (2, 3)
    file_size: int


@dataclass(frozen=True)
class FaceInput:
    """One predicted face of a frame. Images float32 in [0, 1] at model resolution R."""

    face_index: int
    face_type: str  # the model's face type
    landmarks: np.ndarray  # (68, 2) frame landmarks (smoothed when smoothing is on)
    face_mat: np.ndarray  # frame -> model crop (2, 3), scale 1
    dst: np.ndarray  # (R, R, 3) destination crop
    pred: np.ndarray  # (R, R, 3) predicted face
    prd_mask: np.ndarray  # (R, R)
    dst_mask: np.ndarray  # (R, R)
    stored: Mapping[str, StoredMask] = field(default_factory=dict)
    motion: tuple[float, float] = (0.0, 0.0)  # (power, angle in degrees)
    stats: tuple[np.ndarray, np.ndarray] | None = None  # (this frame's, window-averaged) dst Lab stats (2, 3)
    model_masks: Mapping[str, np.ndarray] = field(default_factory=dict)  # occluder / region:... terms, (R, R)

    @property
    def size(self) -> int:
        return int(self.pred.shape[0])


def output_matrix(face: FaceInput, cfg: MergeConfig) -> np.ndarray:
    """Frame -> face matrix used to paste back: face scale (1 + face_scale/100) and offsets (percent of R)."""
    r = face.size
    if cfg.face_scale == 0:
        mat = np.asarray(face.face_mat, np.float64).copy()
    else:
        mat = face_transform(face.landmarks, r, face.face_type, scale=1.0 + 0.01 * cfg.face_scale)
    mat[:, 2] -= np.array([cfg.offset_x, cfg.offset_y]) * r / 100.0
    return mat


def mask_inputs(face: FaceInput, spec_terms: tuple[str, ...]) -> MaskInputs:
    """Everything the mask terms of the mode need, in the model crop (R x R)."""
    r = face.size
    hull = None
    if "dst" in spec_terms:
        hull = hull_mask(transform_points(face.landmarks, face.face_mat), r)
    stored = {}
    for term in spec_terms:
        if term.startswith("stored:") and term[7:] in face.stored:
            sm = face.stored[term[7:]]
            file_mask = sm.record.to_face(sm.file_size)
            file_to_crop = np.vstack([np.asarray(face.face_mat, np.float64), [0, 0, 1]]) @ np.vstack(
                [invert_affine(sm.file_matrix), [0, 0, 1]])
            stored[term[7:]] = cv2.warpAffine(file_mask, file_to_crop[:2], (r, r), flags=cv2.INTER_LINEAR)
    return MaskInputs(r, prd=face.prd_mask, dst=face.dst_mask, hull=hull, stored=stored, model=face.model_masks)


def color_mask(cfg: MergeConfig, wrk: np.ndarray, refined: np.ndarray) -> np.ndarray:
    """The mask of the colour statistics (colour transfer, masked hist-match) at model resolution R.

    ``zeros`` (DeepFaceLab): 1 where the refined (eroded / blurred) mask, resized to R, is above 0. The masked
    hist-match then equals DeepFaceLab's, which fills the pixels outside with white in both crops: equal white
    counts at the top of both histograms leave the quantiles inside unchanged. ``inside``: the working mask itself
    (its pixels > 0.5 count).
    """
    if cfg.color_stats == "inside":
        return wrk
    r = wrk.shape[0]
    if refined.shape[0] != r:
        refined = cv2.resize(refined, (r, r), interpolation=cv2.INTER_CUBIC)
    return (refined > 0).astype(np.float32)


def _recolor_fn(face: FaceInput, cfg: MergeConfig, wrk: np.ndarray, refined: np.ndarray):
    def recolor(img: np.ndarray, hist: bool) -> np.ndarray:
        out = img
        masked_hist = hist and cfg.masked_hist_match and cfg.mode == "hist-match"
        m = color_mask(cfg, wrk, refined) if cfg.uses_color or masked_hist else None
        if cfg.uses_color:
            from facelab.imageops.color import color_transfer

            out = color_transfer(cfg.color, out, face.dst, m, m, mask_stats=cfg.color_stats)
            if face.stats is not None:
                out = filters.shift_lab_stats(out, face.stats[0], face.stats[1])
        if hist:
            # DeepFaceLab's seamless-hist-match matches whole crops; only hist-match honours masked_hist_match
            out = filters.hist_match(out, face.dst, cfg.hist_match_threshold, m if masked_hist else None)
        return out.astype(np.float32)

    return recolor


def _post_fn(face: FaceInput, cfg: MergeConfig):
    def post(img: np.ndarray) -> np.ndarray:
        out = filters.motion_blur(img, face.motion[0], face.motion[1], cfg.motion_blur)
        return filters.blur_sharpen(out, cfg.sharpen_mode, cfg.sharpen_amount)

    return post


def merge_face(frame: np.ndarray, face: FaceInput, cfg: MergeConfig) -> tuple[Roi, np.ndarray] | None:
    """Merge one face into uint8 RGB ``frame`` in place, inside the face's ROI only.

    Returns (ROI, ROI mask float32) or None when the face lies outside the frame.
    """
    spec = parse_mask_mode(cfg.mask_mode)
    r = face.size
    raw = cfg.mode == "raw-rgb"
    wrk = np.ones((r, r), np.float32) if raw else build_mask(spec, mask_inputs(face, spec.terms))
    mat = output_matrix(face, cfg)
    roi = face_roi(mat, r, frame.shape[:2])
    if roi.empty:
        return None
    refined = wrk if raw else refine_mask(wrk, r, cfg.erode, cfg.blur, work_size_for(r, r / matrix_scale(mat)))
    ys, xs = roi.slices()
    fb = FaceBlend(frame=to_float(frame[ys, xs]), face=face.pred, mask=mask_to_roi(refined, mat, r, roi), mat=mat,
                   roi=roi, recolor=_recolor_fn(face, cfg, wrk, refined), post=_post_fn(face, cfg))
    out_roi, mask_roi = MERGE_MODES.get(cfg.mode).factory(fb)
    if out_roi is not fb.frame:
        frame[ys, xs] = to_uint8(out_roi)
    return roi, mask_roi


def render_frame(frame: np.ndarray, faces: list[FaceInput], cfg: MergeConfig) -> tuple[np.ndarray, np.ndarray]:
    """Merge every face of a uint8 RGB frame in face-index order -> (uint8 RGB image, uint8 mask).

    ``raw-predict`` returns the predicted crops side by side (R x R*n) and their working masks instead.
    """
    faces = sorted(faces, key=lambda f: f.face_index)
    if cfg.mode == "raw-predict":
        return _raw_predict(faces, cfg)
    out = frame.copy()
    mask = np.zeros(frame.shape[:2], np.float32)
    for face in faces:
        done = merge_face(out, face, cfg)
        if done is not None:
            ys, xs = done[0].slices()
            np.maximum(mask[ys, xs], done[1], out=mask[ys, xs])
    if cfg.denoise > 0 or cfg.bicubic_degrade > 0:
        degraded = filters.bicubic_degrade(filters.denoise(to_float(frame), cfg.denoise), cfg.bicubic_degrade)
        out = to_uint8(composite(degraded, to_float(out), mask))
    if cfg.color_degrade > 0:
        out = to_uint8(filters.color_degrade(to_float(out), cfg.color_degrade))
    return out, to_uint8(mask)


def _raw_predict(faces: list[FaceInput], cfg: MergeConfig) -> tuple[np.ndarray, np.ndarray]:
    spec = parse_mask_mode(cfg.mask_mode)
    crops = [face.pred for face in faces]
    masks = [build_mask(spec, mask_inputs(face, spec.terms)) for face in faces]
    return to_uint8(np.concatenate(crops, axis=1)), to_uint8(np.concatenate(masks, axis=1))


# ---------------------------------------------------------------------------------------------------------------
# worker entry point


@dataclass(frozen=True)
class RenderJob:
    """Everything a worker needs to write one merged frame."""

    frame: np.ndarray
    faces: tuple[FaceInput, ...]
    cfg: MergeConfig
    out_path: Path
    mask_path: Path


def run_render_job(job: RenderJob) -> float:
    """Render and write one frame (atomic writes); returns the seconds spent."""
    t0 = time.perf_counter()
    image, mask = render_frame(job.frame, list(job.faces), job.cfg)
    atomic_write_bytes(job.out_path, encode_image(image, job.out_path.suffix, quality=95))
    atomic_write_bytes(job.mask_path, encode_image(mask, ".png"))
    return time.perf_counter() - t0


def init_worker() -> None:
    """Worker process setup: one OpenCV thread per process (the pool already spreads work over the cores)."""
    cv2.setNumThreads(1)
