"""Landmarks of real test photos through facelab's own offline backends (dlib HOG + 68-point predictor)."""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def _backends():
    from facelab.detect import create_detector
    from facelab.landmarks import create_landmarks

    return create_detector("dlib-hog", upsample=1), create_landmarks("dlib68")


def find_landmarks(image: np.ndarray) -> np.ndarray | None:
    """(68, 2) float64 landmarks of the best-scoring face in uint8 RGB ``image``, or None when there is none."""
    detector, landmarks = _backends()
    found = detector.detect(np.ascontiguousarray(image))
    if not found:
        return None
    best = max(found, key=lambda d: d.score)
    return landmarks.landmarks(image, best.box)


def face_landmarks(image: np.ndarray) -> np.ndarray:
    """Like :func:`find_landmarks`, asserting that a face was found."""
    lm = find_landmarks(image)
    assert lm is not None, "no face found in the test image"
    return lm
