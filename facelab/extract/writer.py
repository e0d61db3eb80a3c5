"""Turn found faces into face files (aligned crop + metadata) and debug frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facelab.align.geometry import face_transform, transform_points, warp_to_face
from facelab.align.pose import estimate_pose
from facelab.extract.config import ExtractConfig
from facelab.extract.frame import FoundFace
from facelab.workspace.faces import FaceMeta, write_face
from facelab.workspace.images import write_image

INTERPOLATION_FLAGS = {"lanczos4": cv2.INTER_LANCZOS4, "cubic": cv2.INTER_CUBIC, "linear": cv2.INTER_LINEAR}


def face_name(frame_stem: str, index: int, fmt: str) -> str:
    return f"{frame_stem}_{index}.{fmt}"


def build_meta(face: FoundFace, index: int, source_frame: str, frame_size: tuple[int, int],
               cfg: ExtractConfig, frame_faces: int = 1, closes_frame: bool = True) -> tuple[FaceMeta, np.ndarray]:
    """Metadata and frame->face matrix of one face (``frame_faces``: how many faces its frame has;
    ``closes_frame``: it is the frame's face written last, whose presence says the frame is complete)."""
    mat = face_transform(face.landmarks, cfg.size, cfg.face_type)
    lm_face = transform_points(face.landmarks, mat)
    pitch, yaw, roll = estimate_pose(lm_face, cfg.size)
    extra = {"score": round(face.score, 4), "fit": round(face.fit, 4), "residual": round(face.residual, 5),
             "pitch": round(pitch, 5), "yaw": round(yaw, 5), "roll": round(roll, 5), "rotation": face.rotation}
    if face.identity_distance is not None:
        extra["identity_distance"] = round(face.identity_distance, 4)
    extra["frame_faces"] = int(frame_faces)
    if closes_frame:
        extra["frame_done"] = True
    if face.track >= 0:
        extra["track"] = int(face.track)
        extra["interpolated"] = bool(face.interpolated)
        if face.refound:
            extra["refound"] = True
    meta = FaceMeta.create(
        source_frame=source_frame, frame_size=frame_size, face_index=index, face_type=cfg.face_type,
        size=cfg.size, box=face.box, landmarks_frame=face.landmarks, landmarks_face=lm_face, matrix=mat,
        detector=cfg.detector, landmarks_backend=cfg.landmarks, extra=extra,
    )
    return meta, mat


def write_faces(image: np.ndarray, faces: tuple[FoundFace, ...], source_frame: str, aligned_dir: Path,
                cfg: ExtractConfig, indices: list[int] | None = None) -> list[Path]:
    """Write ``<frame_stem>_<i>.<fmt>`` for each face; returns the paths in the order of ``faces``.

    ``indices``: each face's index (a video track keeps its index in every frame); default 0, 1, ... (largest
    first). The files are written last first and the one written last is marked ``frame_done``, so a run killed
    between two faces of a frame leaves it without that mark, and a rerun redoes the frame
    (:func:`facelab.extract.state.scan_faces`); deleting other faces of a frame does not.
    """
    stem = Path(source_frame).stem
    h, w = image.shape[:2]
    idx = list(range(len(faces))) if indices is None else list(indices)
    out = []
    for k in reversed(range(len(faces))):
        i = idx[k]
        meta, mat = build_meta(faces[k], i, source_frame, (w, h), cfg, len(faces), closes_frame=k == 0)
        path = aligned_dir / face_name(stem, i, cfg.image_format)
        face_img = warp_to_face(image, mat, cfg.size, INTERPOLATION_FLAGS[cfg.interpolation])
        write_face(path, face_img, meta, quality=cfg.jpeg_quality)
        out.append(path)
    return out[::-1]


def draw_debug(image: np.ndarray, faces: tuple[FoundFace, ...], cfg: ExtractConfig,
               indices: list[int] | None = None) -> np.ndarray:
    """Copy of the frame with each detector box (blue), 68 landmarks (green; yellow when interpolated across a
    track's gap) and face-type crop (red, top edge thick) drawn, labelled with the face index, track and fit."""
    canvas = image.copy()
    thick = max(1, round(max(image.shape[:2]) / 500))
    idx = list(range(len(faces))) if indices is None else indices
    for k, face in enumerate(faces):
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 128, 255), thick)
        colour = (255, 220, 0) if face.interpolated else (0, 255, 0)
        for x, y in face.landmarks:
            cv2.circle(canvas, (int(round(x)), int(round(y))), thick, colour, -1)
        label = f"#{idx[k]}" + (f" t{face.track}" if face.track >= 0 else "")
        label += " interp" if face.interpolated else f" fit {face.fit:.2f}"
        cv2.putText(canvas, label, (x0, max(12 * thick, y0 - 4 * thick)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thick,
                    (255, 255, 255), thick, cv2.LINE_AA)
        mat = face_transform(face.landmarks, cfg.size, cfg.face_type)
        s = float(cfg.size)
        square = transform_points(np.array([[0, 0], [s, 0], [s, s], [0, s]]), mat, invert=True)
        cv2.polylines(canvas, [np.round(square).astype(np.int32)], True, (255, 0, 0), thick)
        # the top edge is drawn thicker so an upside-down alignment is obvious
        cv2.line(canvas, tuple(np.round(square[0]).astype(int)), tuple(np.round(square[1]).astype(int)),
                 (255, 0, 0), thick * 3)
    return canvas


def write_debug(image: np.ndarray, faces: tuple[FoundFace, ...], frame_stem: str, debug_dir: Path,
                cfg: ExtractConfig, indices: list[int] | None = None) -> Path:
    path = debug_dir / f"{frame_stem}.jpg"
    write_image(path, draw_debug(image, faces, cfg, indices), quality=90)
    return path
