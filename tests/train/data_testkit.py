"""Real aligned face files for data-pipeline tests: astronaut and Grace Hopper, landmarks by dlib's 68-point
predictor, aligned with ``facelab.align`` and written with ``write_face``."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from facekit import face_landmarks

from facelab.align import face_transform, transform_points, warp_to_face
from facelab.workspace.faces import FaceMeta, MaskRecord, write_face

dlib_landmarks = face_landmarks


def frame_variants(frame: np.ndarray, lm: np.ndarray, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` frames rotated/shifted by known similarities about the face, with their exactly moved landmarks."""
    centre = tuple(float(v) for v in lm.mean(0))
    out = []
    for k in range(n):
        mat = cv2.getRotationMatrix2D(centre, 6.0 * (k - n // 2), 1.0 + 0.03 * k)
        mat[:, 2] += (3.0 * k, -2.0 * k)
        moved = cv2.warpAffine(frame, mat, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REFLECT)
        out.append((moved, transform_points(lm, mat)))
    return out


def write_aligned(folder: Path, frame: np.ndarray, lm: np.ndarray, name: str, face_type: str = "whole_face",
                  size: int = 256, masks: tuple[tuple[str, np.ndarray], ...] = (), ext: str = ".jpg",
                  extra: dict | None = None) -> Path:
    """Align ``frame`` by its frame landmarks and write one face file; ``masks`` are (name, HW float at size)."""
    mat = face_transform(lm, size, face_type)
    face = warp_to_face(frame, mat, size)
    records = tuple(MaskRecord.from_array(n, n, m, size) for n, m in masks)
    meta = FaceMeta.create(source_frame=f"data_src/{name}.png", frame_size=(frame.shape[1], frame.shape[0]),
                           face_index=0, face_type=face_type, size=size, box=(0, 0, 10, 10), landmarks_frame=lm,
                           landmarks_face=transform_points(lm, mat), matrix=mat, detector="dlib-hog",
                           landmarks_backend="dlib68", masks=records, extra=extra or {})
    path = Path(folder) / f"{name}_0{ext}"
    write_face(path, face, meta)
    return path


def write_side(folder: Path, frame: np.ndarray, lm: np.ndarray, n: int, face_type: str = "whole_face",
               size: int = 256) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_aligned(folder, f, l_, f"{k + 1:06d}", face_type, size)
            for k, (f, l_) in enumerate(frame_variants(frame, lm, n))]
