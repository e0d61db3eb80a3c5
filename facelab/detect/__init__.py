"""Face detectors behind one registry: dlib-hog (offline default), dlib-cnn, s3fd, mediapipe."""

from facelab.detect import dlib_backends, mediapipe_backend, s3fd  # noqa: F401  (registration)
from facelab.detect.base import DETECTORS, Detection, Detector, find_weights, require_weights, weight_dirs


def create_detector(name: str, **kwargs) -> Detector:
    """Build detector ``name`` (FacelabError for an unknown name or a missing optional part)."""
    return DETECTORS.create(name, **kwargs)


def detector_available(name: str) -> tuple[bool, str]:
    """(ok, reason) for detector ``name`` on this machine."""
    return DETECTORS.get(name).factory.available()  # type: ignore[attr-defined]


__all__ = ["DETECTORS", "Detection", "Detector", "create_detector", "detector_available", "find_weights",
           "require_weights", "weight_dirs"]
