"""Fixture builders for the merge tests: real face files of real faces (dlib landmarks, facelab.align crops)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from facekit import face_landmarks

from facelab.align import face_transform, transform_points
from facelab.workspace import FaceMeta, Workspace, write_face, write_image

detect_landmarks = face_landmarks


def write_face_for(ws: Workspace, frame_path: Path, frame: np.ndarray, landmarks: np.ndarray, face_index: int = 0,
                   face_type: str = "whole_face", size: int = 256, ext: str = ".jpg") -> Path:
    """Crop, and write ``data_dst/aligned/<stem>_<index><ext>`` as extract does."""
    mat = face_transform(landmarks, size, face_type)
    face = cv2.warpAffine(frame, mat, (size, size), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    x0, y0 = landmarks.min(0)
    x1, y1 = landmarks.max(0)
    meta = FaceMeta.create(
        source_frame=ws.relative(frame_path), frame_size=(frame.shape[1], frame.shape[0]), face_index=face_index,
        face_type=face_type, size=size, box=(x0, y0, x1, y1), landmarks_frame=landmarks,
        landmarks_face=transform_points(landmarks, mat), matrix=mat, detector="dlib-hog", landmarks_backend="dlib68")
    path = ws.aligned("dst") / f"{frame_path.stem}_{face_index}{ext}"
    write_face(path, face, meta)
    return path


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` translated by (dx, dy) pixels (border replicated)."""
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def make_clip(ws: Workspace, image: np.ndarray, n: int, landmarks: np.ndarray, faces_at: set[int] | None = None,
              step: float = 1.0, ext: str = ".jpg") -> list[Path]:
    """``n`` frames of ``image`` drifting right by ``step`` px per frame, with face files where ``faces_at`` says."""
    ws.init()
    frames = []
    for i in range(n):
        frame = shifted(image, i * step, 0.0)
        path = ws.frames("dst") / f"{i + 1:06d}.png"
        write_image(path, frame)
        frames.append(path)
        if faces_at is None or i in faces_at:
            write_face_for(ws, path, frame, landmarks + np.array([i * step, 0.0]), ext=ext)
    return frames
