"""The demo picture: destination frames over their swapped versions, close-ups of the faces, and the source face."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

Box = tuple[float, float, float, float]


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def close_up(frame: np.ndarray, box: Box, margin: float = 0.3) -> np.ndarray:
    """A square crop around a face box, widened by ``margin`` of the box size on each side (clipped to the frame)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = frame.shape[:2]
    a, b = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    return frame[b:int(min(h, cy + side / 2)), a:int(min(w, cx + side / 2))]


def _row(items: list[np.ndarray], height: int) -> np.ndarray:
    gap = np.full((height, 4, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for it in items:
        parts += [it, gap]
    return np.concatenate(parts[:-1], axis=1)


def demo_grid(originals: Sequence[np.ndarray], swapped: Sequence[np.ndarray], source_face: np.ndarray,
              boxes: Sequence[Box] | None = None, height: int = 180) -> np.ndarray:
    """uint8 RGB grid: source face + destination frames over their swapped versions; with ``boxes`` (the face box
    of each frame) two more rows show the destination and swapped faces close up.

    ``originals`` and ``swapped`` are uint8 RGB frames of equal count; ``source_face`` an aligned source face.
    """
    if len(originals) != len(swapped) or not originals or (boxes is not None and len(boxes) != len(originals)):
        raise ValueError("need the same, non-zero number of original frames, swapped frames (and boxes)")
    src = _label(_fit(source_face, height), "source")
    blank = np.full_like(src, 255)
    rows = [
        [src] + [_label(_fit(f, height), f"destination {i + 1}") for i, f in enumerate(originals)],
        [blank] + [_label(_fit(f, height), f"swapped {i + 1}") for i, f in enumerate(swapped)],
    ]
    if boxes is not None:
        rows.append([blank] + [_label(_fit(close_up(f, b), height), f"destination face {i + 1}")
                               for i, (f, b) in enumerate(zip(originals, boxes, strict=True))])
        rows.append([blank] + [_label(_fit(close_up(f, b), height), f"swapped face {i + 1}")
                               for i, (f, b) in enumerate(zip(swapped, boxes, strict=True))])
    built = [_row(r, height) for r in rows]
    width = max(r.shape[1] for r in built)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in built]
    out: list[np.ndarray] = []
    for r in padded:
        out += [r, np.full((4, width, 3), 255, np.uint8)]
    return np.concatenate(out[:-1], axis=0)
