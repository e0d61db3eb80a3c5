"""Stability over time: landmark tracks smoothed per face index, motion from neighbouring frames, and colour
statistics averaged over a window of frames.

A track is the run of consecutive frames (positions in the sorted frame list) in which a face index is present;
a frame without that face index ends the run.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from facelab.align import face_transform, smooth_landmarks, transform_points
from facelab.merge.filters import motion_from_centres

FrameLandmarks = Mapping[int, np.ndarray]  # face index -> (68, 2) frame landmarks


def track_runs(frames: Sequence[FrameLandmarks], face_index: int) -> list[list[int]]:
    """Runs of consecutive frame positions holding ``face_index``."""
    runs: list[list[int]] = []
    current: list[int] = []
    for pos, faces in enumerate(frames):
        if face_index in faces:
            current.append(pos)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def smooth_tracks(frames: Sequence[FrameLandmarks], window: int = 7, method: str = "savgol") -> list[dict]:
    """Each face index's landmarks smoothed over its runs; returns per frame {face index: (68, 2)}."""
    out: list[dict[int, np.ndarray]] = [dict(f) for f in frames]
    indices = sorted({i for f in frames for i in f})
    params = {"window": window} if method == "savgol" else {}
    for idx in indices:
        for run in track_runs(frames, idx):
            if len(run) < 3:
                continue
            seq = np.stack([np.asarray(frames[p][idx], np.float64) for p in run])
            smoothed = smooth_landmarks(seq, method, **params)
            for p, lm in zip(run, smoothed, strict=True):
                out[p][idx] = lm
    return out


def face_centre(landmarks: np.ndarray) -> np.ndarray:
    """Centre (x, y) in frame pixels of the 256-px full-face crop of ``landmarks`` (DeepFaceLab's motion anchor)."""
    mat = face_transform(landmarks, 256, "full")
    return transform_points(np.array([[128.0, 128.0]]), mat, invert=True)[0]


def motion_at(frames: Sequence[FrameLandmarks], pos: int) -> tuple[float, float]:
    """(power in frame pixels, angle in degrees) of the face motion at ``pos`` from the previous to the next frame.

    Zero unless the previous, this and the next frame each hold exactly one face (DeepFaceLab's rule).
    """
    if pos <= 0 or pos >= len(frames) - 1:
        return 0.0, 0.0
    window = frames[pos - 1:pos + 2]
    if any(len(f) != 1 for f in window):
        return 0.0, 0.0
    prev, _, nxt = (next(iter(f.values())) for f in window)
    return motion_from_centres(face_centre(prev), face_centre(nxt))


def window_average(stats: Mapping[int, np.ndarray], pos: int, window: int) -> np.ndarray | None:
    """Mean of ``stats[p]`` for positions within ``window // 2`` of ``pos`` (those present); None if none is."""
    half = window // 2
    found = [stats[p] for p in range(pos - half, pos + half + 1) if p in stats]
    if not found:
        return None
    return np.mean(np.stack(found), axis=0)
