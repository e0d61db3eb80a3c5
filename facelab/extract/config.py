"""Settings of the extract stage (defaults, help and choices live here only; the CLI flags are made from them)."""

from __future__ import annotations

from dataclasses import dataclass

from facelab.align.geometry import FACE_TYPE_NAMES, canonical_face_type
from facelab.align.smooth import SMOOTH_METHODS
from facelab.utils.config import setting
from facelab.utils.workers import AUTO, workers_field

FACE_FORMATS = ("jpg", "png")
SEQUENCES = ("auto", "video", "photos")
INTERPOLATIONS = ("lanczos4", "cubic", "linear")  # warp of the aligned face; lanczos4 is DeepFaceLab's
AUTO_MAX_WORKERS = 8  # automatic worker count: one per core, at most this many (each holds its own models)


def detector_names() -> list[str]:
    """The registered face detectors (imported when asked: the registry loads its backends)."""
    from facelab.detect import DETECTORS

    return DETECTORS.names()


def landmark_names() -> list[str]:
    """The registered landmark backends."""
    from facelab.landmarks import LANDMARKS

    return LANDMARKS.names()


def device_names() -> tuple[str, ...]:
    """The ``--device`` choices (imported when asked: the device module imports torch)."""
    from facelab.utils.device import DEVICE_CHOICES

    return DEVICE_CHOICES


@dataclass(frozen=True)
class ExtractConfig:
    """How faces are found, checked, aligned and written.

    ``min_fit``: a detection is kept when the dlib-HOG score of its aligned full-face crop plus its own detector
    score (clipped to [0, 1]) reaches this value; clothing, logos and other false positives fall below it.
    ``max_residual``: largest RMS misfit (template units, face width ~1) of the 33 alignment landmarks to the
    mean face; ``rotations``: retry 90/270/180 degree turns of frames where nothing was found.
    ``second_look``: recall at HOG cost (:mod:`facelab.detect.combine`); ``sequence``: how frames relate (a
    video's frames are tracked, :mod:`facelab.extract.track`); ``max_gap``: a track's missing run of at most this
    many frames is looked at again and, failing that, its landmarks interpolated (marked ``interpolated``).
    ``refine``: the first landmark pass runs on the box's region turned by 0 and +-30 degrees, the start whose
    aligned crop HOG rates most face-like wins, and the model runs again on the upright aligned crop
    (DeepFaceLab's second pass); off: one pass in the detector box.
    ``interpolation``: resampling of the aligned face (cubic by default; lanczos4, DeepFaceLab's choice, is a
    little sharper and ~4x the cost, which makes it the largest part of the stage's own time).
    ``workers``: automatic = one per core, at most :data:`AUTO_MAX_WORKERS`; one worker runs in the calling
    process (it only waits otherwise). ``device``: torch device of s3fd / fan; ``smooth``: temporal landmark
    smoothing of single-face runs over consecutive frames (for destination videos).
    """

    detector: str = setting("dlib-hog", "Face detector.", choices=detector_names)
    landmarks: str = setting("dlib68", "Landmark backend.", choices=landmark_names)
    face_type: str = setting("whole_face", "Crop type (DeepFaceLab's spellings too).", choices=FACE_TYPE_NAMES)
    size: int = setting(512, "Face image size in pixels, 32-4096.", range=(32, 4096))
    jpeg_quality: int = setting(95, "JPEG quality, 1-100.", range=(1, 100))
    image_format: str = setting("jpg", "Face file format.", choices=FACE_FORMATS, flag="format")
    interpolation: str = setting("cubic", "Resampling of the aligned face.", choices=INTERPOLATIONS)
    max_faces: int = setting(0, "Keep the N largest faces per frame, 0 = all.", range=(0, 1000))
    min_face: int = setting(40, "Smallest face box side in pixels.", range=(0, 100_000))
    min_fit: float = setting(0.0, "Face check threshold; lower keeps more.", range=(-10, 10))
    max_residual: float = setting(0.1, "Largest RMS misfit of the alignment landmarks to the mean face (face "
                                       "width ~1).", range=(0, 10))
    rotations: bool = setting(True, "Retry 90/270/180 degree turns when none found.")
    second_look: bool = setting(True, "With dlib-hog, dlib's CNN looks again: on a reduced copy of photos, in the "
                                      "region where a video track lost its face.")
    sequence: str = setting("auto", "video: track faces over frames and fill short gaps; photos: each frame alone; "
                                    "auto: video when every frame name is a number.", choices=SEQUENCES)
    max_gap: int = setting(5, "Longest run of frames a track may miss and still be filled.", range=(0, 1000))
    refine: bool = setting(True, "Landmarks from three rolled starts, then a second pass on the upright crop.")
    debug: bool = setting(False, "Write aligned_debug/ frames with boxes and landmarks.")
    smooth: bool = setting(False, "Smooth landmarks over frames of single-face runs.")
    smooth_method: str = setting("savgol", "Landmark smoothing method.", choices=SMOOTH_METHODS)
    smooth_window: int = setting(7, "Savitzky-Golay window in frames.", range=(3, 999))
    reference: str | None = setting(None, "Photo of the person to keep; other identities are skipped.", path=True)
    reference_threshold: float = setting(0.6, "Identity distance to accept.", range=(0, 10))
    workers: int = workers_field(f"Face-finding processes (automatic: at most {AUTO_MAX_WORKERS})")
    device: str = setting("auto", "Torch device of the s3fd / fan backends.", choices=device_names)

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
        if self.max_faces < 0 or self.min_face < 0:
            raise ValueError("max_faces and min_face must be >= 0")
        if self.workers < AUTO:
            raise ValueError(f"workers must be >= -1 (-1 = automatic, 0 = in this process), got {self.workers}")
        if self.sequence not in SEQUENCES:
            raise ValueError(f"sequence must be one of {SEQUENCES}, got {self.sequence!r}")
        if self.max_gap < 0:
            raise ValueError("max_gap must be >= 0")
        if self.smooth_method not in SMOOTH_METHODS:
            raise ValueError(f"smooth_method must be one of {SMOOTH_METHODS}, got {self.smooth_method!r}")
        if self.smooth_window < 3:
            raise ValueError("smooth_window must be >= 3")
