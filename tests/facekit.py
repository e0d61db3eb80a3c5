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


def drifting_face_clip(face: np.ndarray, out: Path, frames: int, covered: tuple[int, ...], *,
                       canvas: tuple[int, int] = (260, 320), top: int = 10, step: int = 4,
                       block: tuple[int, int, int, int] = (40, 200, 40, 200), follow: bool = True) -> Path:
    """Numbered frames ``000001.png ...`` in ``out`` of ``face`` (resized to 200x234) drifting right by ``step`` px a
    frame on a grey ``canvas``; in the ``covered`` frames a textured (not blank) block, rows ``block[0]:block[1]``
    and columns ``block[2]:block[3]`` (moving with the face when ``follow``), hides it. Returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    base = cv2.resize(face, (200, 234), interpolation=cv2.INTER_AREA)
    y0, y1, x0, x1 = block
    hand = np.random.default_rng(0).integers(120, 220, (y1 - y0, x1 - x0, 3), dtype=np.uint8)
    for t in range(frames):
        img = np.full((*canvas, 3), 90, np.uint8)
        img[top:top + 234, 20 + step * t:220 + step * t] = base
        if t in covered:
            dx = step * t if follow else 0
            img[y0:y1, x0 + dx:x1 + dx] = hand
        write_image(out / f"{t + 1:06d}.png", img)
    return out
