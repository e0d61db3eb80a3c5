"""Real faces for tests: landmarks through facelab's own offline backends (dlib HOG + 68-point predictor), and
short clips made from real photographs."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from facelab.video.encode import encode_frames
from facelab.video.synthetic import make_clip
from facelab.workspace import write_image


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


def photo_clip(image: np.ndarray, out: Path, frames: int, fps: int, audio: bool, tmp: Path) -> None:
    """A clip of ``image`` drifting a few pixels per frame (a real face that moves), 256x256."""
    folder = tmp / f"frames_{out.stem}"
    folder.mkdir()
    h, w = image.shape[:2]
    side = min(h, w)
    for i in range(frames):
        mat = np.float32([[1, 0, 2.0 * i - frames], [0, 1, 1.0 * i - frames / 2]])
        moved = cv2.warpAffine(image[:side, (w - side) // 2:(w - side) // 2 + side], mat, (side, side),
                               borderMode=cv2.BORDER_REFLECT)
        write_image(folder / f"{i + 1:06d}.png", cv2.resize(moved, (256, 256), interpolation=cv2.INTER_AREA))
    # the reference gives the clip its tone (encode takes the first audio track of a reference video)
    ref = make_clip(tmp / f"{out.stem}_ref.mp4", seconds=frames / fps + 0.5, fps=fps) if audio else None
    encode_frames(folder, out, reference_video=ref, fps=fps)
