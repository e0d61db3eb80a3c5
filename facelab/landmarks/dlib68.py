"""dlib's 68-point shape predictor (iBUG order), the offline default; plus dlib's ResNet identity embedding."""

from __future__ import annotations

import numpy as np

from facelab.detect.base import check_image
from facelab.detect.dlib_backends import dlib_available, model_file
from facelab.landmarks.base import LANDMARKS


def _rect(box):
    import dlib

    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return dlib.rectangle(x0, y0, max(x1 - 1, x0 + 1), max(y1 - 1, y0 + 1))


@LANDMARKS.register("dlib68", help="dlib 68-point shape predictor (offline default, ~2 ms a face)")
class Dlib68:
    name = "dlib68"

    def __init__(self) -> None:
        import dlib

        self._pred = dlib.shape_predictor(model_file("pose68"))

    @staticmethod
    def available() -> tuple[bool, str]:
        return dlib_available(need_models=True)

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        shape = self._pred(check_image(image), _rect(box))
        return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


class DlibIdentity:
    """dlib's ResNet face descriptor: 128-D embedding; same person < ~0.6 Euclidean distance."""

    def __init__(self) -> None:
        import dlib

        self._net = dlib.face_recognition_model_v1(model_file("resnet"))

    def embed(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(128,) float64 embedding of the face with 68 frame ``landmarks`` in uint8 RGB ``image``."""
        import dlib

        lm = np.asarray(landmarks, np.float64)
        x0, y0 = lm.min(0)
        x1, y1 = lm.max(0)
        parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in lm])
        shape = dlib.full_object_detection(_rect((x0, y0, x1, y1)), parts)
        return np.asarray(self._net.compute_face_descriptor(check_image(image), shape), np.float64)
