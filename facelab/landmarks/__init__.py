"""68-point landmark backends behind one registry: dlib68 (offline default), fan, mediapipe."""

from facelab.landmarks import dlib68, fan, mediapipe68  # noqa: F401  (registration)
from facelab.landmarks.base import LANDMARKS, LandmarkBackend
from facelab.landmarks.dlib68 import DlibIdentity


def create_landmarks(name: str, **kwargs) -> LandmarkBackend:
    """Build landmark backend ``name``."""
    return LANDMARKS.create(name, **kwargs)


def landmarks_available(name: str) -> tuple[bool, str]:
    """(ok, reason) for landmark backend ``name`` on this machine."""
    return LANDMARKS.get(name).factory.available()  # type: ignore[attr-defined]


__all__ = ["LANDMARKS", "DlibIdentity", "LandmarkBackend", "create_landmarks", "landmarks_available"]
