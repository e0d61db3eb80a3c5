"""Recall at HOG cost: a second, slower detector that looks only where, or at the size where, the fast one is weak.

Photos: dlib's CNN at no upsampling on a copy at most :data:`CNN_MAX_SIDE` pixels long (about a sixth of its cost
at the default upsampling) adds the turned, dark and occluded faces HOG misses; HOG's upsampling still covers the
small frontal ones. Video: the CNN runs only on the region where a track lost its face
(:mod:`facelab.extract.track`).
"""

from __future__ import annotations

import numpy as np

from facelab.detect.base import Detection, check_image
from facelab.detect.dlib_backends import _downscale

CNN_MAX_SIDE = 960  # longer side of the copy the CNN sees; faces of ~80 px on it are found
SAME_FACE_IOU = 0.3  # boxes overlapping more than this are one face


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 when either is empty)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def add_missing(primary: list[Detection], extra: list[Detection], iou: float = SAME_FACE_IOU) -> list[Detection]:
    """``primary`` plus the detections of ``extra`` that overlap none of them (nor each other) above ``iou``."""
    out = list(primary)
    for det in sorted(extra, key=lambda d: -d.score):
        if all(box_iou(det.box, d.box) <= iou for d in out):
            out.append(det)
    return out


class CnnSecondLook:
    """dlib's CNN at upsampling 0 on a reduced copy of an image, or on a region of it."""

    def __init__(self, max_side: int = CNN_MAX_SIDE) -> None:
        from facelab.detect.dlib_backends import DlibCnnDetector

        self._cnn = DlibCnnDetector(upsample=0)
        self.max_side = int(max_side)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces of uint8 RGB ``image`` (boxes in its pixels) found on a copy at most ``max_side`` long."""
        small, f = _downscale(check_image(image), self.max_side)
        return [Detection(tuple(v * f for v in d.box), d.score) for d in self._cnn.detect(small)]  # type: ignore

    def detect_region(self, image: np.ndarray, region: tuple[float, float, float, float],
                      face_side: float) -> list[Detection]:
        """Faces inside ``region`` (frame pixels) of ``image``, the region scaled so a face of ``face_side`` px
        is ~100 px (the CNN's comfortable size); boxes in frame pixels."""
        import cv2

        h, w = image.shape[:2]
        x0, y0 = int(max(0, np.floor(region[0]))), int(max(0, np.floor(region[1])))
        x1, y1 = int(min(w, np.ceil(region[2]))), int(min(h, np.ceil(region[3])))
        if x1 - x0 < 16 or y1 - y0 < 16:
            return []
        s = 100.0 / max(face_side, 1.0)
        patch = np.ascontiguousarray(image[y0:y1, x0:x1])
        patch = cv2.resize(patch, (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                           interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        return [Detection((d.box[0] / s + x0, d.box[1] / s + y0, d.box[2] / s + x0, d.box[3] / s + y0), d.score)
                for d in self._cnn.detect(patch)]
