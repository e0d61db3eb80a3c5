"""The demo picture: the source face and the destination frames on top, then one row per frame with the face close
up at its size in the frame: the destination beside each swap (the trained model, the training-free one)."""

from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import numpy as np

Box = tuple[float, float, float, float]
MIN_FACE = 128  # close-ups smaller than this are enlarged (cubic) so eyes and teeth can be judged


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    interp = cv2.INTER_AREA if height < h else cv2.INTER_CUBIC
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=interp)


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


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    padded = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    out: list[np.ndarray] = []
    for r in padded:
        out += [r, np.full((4, width, 3), 255, np.uint8)]
    return np.concatenate(out[:-1], axis=0)


def demo_grid(originals: Sequence[np.ndarray], swaps: Mapping[str, Sequence[np.ndarray]], source_face: np.ndarray,
              boxes: Sequence[Box] | None = None, height: int = 180) -> np.ndarray:
    """uint8 RGB picture. Top row: the source face and the destination frames (``height`` px high). With
    ``boxes`` (the face box of each frame), one row per frame follows: the destination face close up beside each
    swap's, at the face's size in the frame (at least :data:`MIN_FACE` px); without, one row of whole frames per
    swap.

    ``originals``: uint8 RGB frames; ``swaps``: label -> the same frames swapped (as many as ``originals``).
    """
    n = len(originals)
    if not n or not swaps or any(len(v) != n for v in swaps.values()) or (boxes is not None and len(boxes) != n):
        raise ValueError("need the same, non-zero number of original frames, swapped frames of every swap (and boxes)")
    src = _label(_fit(source_face, height), "source")
    rows = [_row([src] + [_label(_fit(f, height), f"destination {i + 1}") for i, f in enumerate(originals)], height)]
    if boxes is None:
        blank = np.full_like(src, 255)
        for name, frames in swaps.items():
            rows.append(_row([blank] + [_label(_fit(f, height), f"{name} {i + 1}") for i, f in enumerate(frames)],
                             height))
        return _stack(rows)
    for i, (frame, box) in enumerate(zip(originals, boxes, strict=True)):
        face = close_up(frame, box)
        size = max(MIN_FACE, face.shape[0])
        cells = [_label(_fit(face, size), f"destination {i + 1}")]
        cells += [_label(_fit(close_up(frames[i], box), size), name) for name, frames in swaps.items()]
        rows.append(_row(cells, size))
    return _stack(rows)
