"""Settings of the extract stage (defaults live here only)."""

from __future__ import annotations

from dataclasses import dataclass

from facelab.align.geometry import canonical_face_type
from facelab.align.smooth import SMOOTH_METHODS

FACE_FORMATS = ("jpg", "png")
INTERPOLATIONS = ("lanczos4", "cubic", "linear")  # warp of the aligned face; lanczos4 is DeepFaceLab's


@dataclass(frozen=True)
class ExtractConfig:
    """How faces are found, checked, aligned and written.

    ``min_fit``: a detection is kept when the dlib-HOG score of its aligned full-face crop plus its own detector
    score (clipped to [0, 1]) reaches this value; clothing, logos and other false positives fall below it.
    ``max_residual``: largest RMS misfit (template units, face width ~1) of the 33 alignment landmarks to the
    mean face; ``rotations``: retry 90/270/180 degree turns of frames where nothing was found.
    ``interpolation``: resampling of the aligned face (cubic by default; lanczos4, DeepFaceLab's choice, is a
    little sharper and ~4x the cost, which makes it the largest part of the stage's own time).
    ``workers``: processes (0 = one per core, at most 8); ``device``: torch device of s3fd / fan; ``smooth``:
    temporal landmark smoothing of single-face runs over consecutive frames (for destination videos).
    """

    detector: str = "dlib-hog"
    landmarks: str = "dlib68"
    face_type: str = "whole_face"
    size: int = 512
    jpeg_quality: int = 95
    image_format: str = "jpg"
    interpolation: str = "cubic"
    max_faces: int = 0
    min_face: int = 40
    min_fit: float = 0.0
    max_residual: float = 0.1
    rotations: bool = True
    debug: bool = False
    smooth: bool = False
    smooth_method: str = "savgol"
    smooth_window: int = 7
    reference: str | None = None
    reference_threshold: float = 0.6
    workers: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "face_type", canonical_face_type(self.face_type))
        if not 32 <= int(self.size) <= 4096:
            raise ValueError(f"size must be in 32..4096, got {self.size}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.image_format not in FACE_FORMATS:
            raise ValueError(f"image_format must be one of {FACE_FORMATS}, got {self.image_format!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.max_faces < 0 or self.min_face < 0 or self.workers < 0:
            raise ValueError("max_faces, min_face and workers must be >= 0")
        if self.smooth_method not in SMOOTH_METHODS:
            raise ValueError(f"smooth_method must be one of {SMOOTH_METHODS}, got {self.smooth_method!r}")
        if self.smooth_window < 3:
            raise ValueError("smooth_window must be >= 3")
