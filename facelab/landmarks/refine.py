"""The second landmark pass (DeepFaceLab's): landmarks -> upright aligned crop -> landmarks again -> frame.

A landmark model fits best on the faces it was trained on: upright, centred, at one scale. The first pass gives
the face's roll, position and size; warping the frame onto the full-face template makes the face upright and
centred, and the model runs again on that crop with the box its detector would give for an upright face, so
tilted faces and odd detector boxes stop pulling the fit.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from facelab.align.geometry import face_transform, transform_points, warp_to_face
from facelab.landmarks.base import LandmarkBackend

REFINE_SIZE = 256  # side of the aligned full-face crop the second pass runs on
#: box (x0, y0, x1, y1) the backend gets on the crop: where its detector puts an upright face of the template.
#: dlib-HOG boxes of upright faces land on (18..35, 18..35, 215..234, 215..234) of a 256 px full-face crop; the
#: tighter one gave the lowest consistency NME (benchmarks/bench_extract.py).
CROP_BOXES: dict[str, tuple[float, float, float, float]] = {
    "dlib68": (35.0, 35.0, 215.0, 215.0),
}
DEFAULT_CROP_BOX = (20.0, 20.0, 236.0, 236.0)  # other backends: most of the crop (DeepFaceLab gives FAN it all)


START_ROLLS = (0.0, -30.0, 30.0)  # first-pass tries: the box's region turned upright by these rolls
Scorer = Callable[[np.ndarray], float]  # (68, 2) frame landmarks -> how face-like their aligned crop is


def rolled_start(backend: LandmarkBackend, image: np.ndarray, box: tuple[float, float, float, float],
                 roll: float) -> np.ndarray:
    """First-pass landmarks of the face in ``box`` found on its region turned ``roll`` degrees about the box
    centre, mapped back: (68, 2) float64 frame pixels."""
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    half = max(x1 - x0, y1 - y0)  # the patch spans twice the box, so turned corners stay inside it
    mat = cv2.getRotationMatrix2D((cx, cy), roll, 1.0)
    mat[:, 2] += (half - cx, half - cy)  # box centre -> patch centre
    patch = np.ascontiguousarray(warp_to_face(image, mat, int(np.ceil(2 * half)), cv2.INTER_LINEAR))
    pbox = (half - (x1 - x0) / 2.0, half - (y1 - y0) / 2.0, half + (x1 - x0) / 2.0, half + (y1 - y0) / 2.0)
    return transform_points(np.asarray(backend.landmarks(patch, pbox), np.float64), mat, invert=True)


def fit_landmarks(backend: LandmarkBackend, image: np.ndarray, box: tuple[float, float, float, float],
                  score: Scorer, rolls: tuple[float, ...] = START_ROLLS, passes: int = 1) -> np.ndarray:
    """Landmarks that hold on rolled faces: a first pass from each of ``rolls``, the start whose aligned crop
    ``score`` rates most face-like, then ``passes`` second passes (:func:`refine_landmarks`).

    A shape predictor starts from an upright mean face in the box; on a face rolled 30 degrees it can settle on a
    face-shaped set of points beside the real features (a plausible shape, so shape checks miss it), which no
    second pass recovers. One of the turned starts is near upright, and the appearance of the aligned crop
    (e.g. the HOG face score) tells the right start from the wrong ones.
    """
    best, best_score = None, -np.inf
    for roll in rolls:
        lm = rolled_start(backend, image, box, roll)
        if not np.all(np.isfinite(lm)):
            continue
        s = float(score(lm))
        if s > best_score:
            best, best_score = lm, s
    if best is None:
        raise ValueError("landmarks are not finite from any start roll")
    return refine_landmarks(backend, image, best, passes)


def crop_box(backend_name: str, size: int = REFINE_SIZE) -> tuple[float, float, float, float]:
    """The second pass's box on a ``size`` px crop for backend ``backend_name``."""
    s = size / float(REFINE_SIZE)
    return tuple(v * s for v in CROP_BOXES.get(backend_name, DEFAULT_CROP_BOX))  # type: ignore[return-value]


def refine_landmarks(backend: LandmarkBackend, image: np.ndarray, landmarks: np.ndarray,
                     passes: int = 1, size: int = REFINE_SIZE) -> np.ndarray:
    """(68, 2) float64 frame-pixel landmarks after ``passes`` runs of ``backend`` on the upright aligned crop.

    ``image``: uint8 RGB HWC frame; ``landmarks``: the first pass's (68, 2) frame points. Each pass warps the
    frame onto the full-face crop the current points define, landmarks it with a fixed box and maps the points
    back. Points that come back non-finite leave the previous ones in place.
    """
    lm = np.asarray(landmarks, np.float64)
    box = crop_box(getattr(backend, "name", ""), size)
    for _ in range(max(0, int(passes))):
        mat = face_transform(lm, size, "full")
        crop = np.ascontiguousarray(warp_to_face(image, mat, size, cv2.INTER_LINEAR))
        new = transform_points(np.asarray(backend.landmarks(crop, box), np.float64), mat, invert=True)
        if not np.all(np.isfinite(new)):
            break
        lm = new
    return lm
