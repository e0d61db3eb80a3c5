"""The demo picture: destination frames over their swapped versions, with the source face for reference."""

from __future__ import annotations

import cv2
import numpy as np


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def demo_grid(originals: list[np.ndarray], swapped: list[np.ndarray], source_face: np.ndarray,
              height: int = 180) -> np.ndarray:
    """uint8 RGB grid: row 1 = source face + destination frames, row 2 = blank + swapped frames.

    ``originals`` and ``swapped`` are uint8 RGB frames of equal count; ``source_face`` an aligned source face.
    """
    if len(originals) != len(swapped) or not originals:
        raise ValueError("need the same, non-zero number of original and swapped frames")
    src = _label(_fit(source_face, height), "source")
    top = [src] + [_label(_fit(f, height), f"destination {i + 1}") for i, f in enumerate(originals)]
    blank = np.full_like(src, 255)
    bottom = [blank] + [_label(_fit(f, height), f"swapped {i + 1}") for i, f in enumerate(swapped)]
    gap = np.full((height, 4, 3), 255, np.uint8)

    def row(items: list[np.ndarray]) -> np.ndarray:
        parts = []
        for it in items:
            parts += [it, gap]
        return np.concatenate(parts[:-1], axis=1)

    r1, r2 = row(top), row(bottom)
    width = max(r1.shape[1], r2.shape[1])
    r1, r2 = (np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in (r1, r2))
    return np.concatenate([r1, np.full((4, width, 3), 255, np.uint8), r2], axis=0)
