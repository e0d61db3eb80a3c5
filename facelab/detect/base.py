"""What every detector returns, the registry, and where optional weight files are looked up."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from facelab.errors import FacelabError
from facelab.utils.registry import Registry

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


@dataclass(frozen=True)
class Detection:
    """One detected face: box ``(x0, y0, x1, y1)`` in image pixels and the detector's confidence."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)


class Detector(Protocol):
    """A face detector: ``detect(uint8 RGB HWC) -> detections``, largest first is not required."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]: ...


DETECTORS: Registry[Detector] = Registry("detector")


def check_image(image: np.ndarray) -> np.ndarray:
    """Contiguous uint8 RGB HWC, or ValueError."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB HWC image, got {getattr(image, 'shape', None)}")
    return np.ascontiguousarray(image)


def auto_upsample(min_face: int, smallest_native: int = 80, limit: int = 2) -> int:
    """Image doublings a sliding-window detector with an ``smallest_native`` px window needs to see ``min_face``."""
    if min_face <= 0:
        return 1
    return int(min(limit, max(0, math.ceil(math.log2(smallest_native / float(min_face))))))


def weight_dirs() -> list[Path]:
    """Folders searched for optional weight files: ``$TORCH_HOME/hub/checkpoints``, ``$FACELAB_MODELS`` (where
    ``models fetch`` puts them) and the repository's models/."""
    from facelab.weights.catalog import models_dir, torch_hub_dir

    return list(dict.fromkeys([torch_hub_dir(), models_dir(), REPO_MODELS]))


def find_weights(filename: str) -> Path | None:
    for folder in weight_dirs():
        cand = folder / filename
        if cand.is_file():
            return cand
    return None


def require_weights(*filenames: str) -> list[Path]:
    """Paths of the named weight files; one FacelabError naming every missing file and the folders searched."""
    found = [find_weights(f) for f in filenames]
    if all(p is not None for p in found):
        return found  # type: ignore[return-value]
    missing = [f for f, p in zip(filenames, found, strict=True) if p is None]
    dirs = " or ".join(str(d) for d in weight_dirs())
    raise FacelabError(
        f"missing weight file(s) {', '.join(missing)} (face-alignment needs s3fd-619a316812.pth and "
        f"2DFAN4-11f355bf06.pth.tar); run `python main.py models fetch s3fd fan` or put them in {dirs}, "
        "or use the offline default dlib-hog / dlib68"
    )


def import_face_alignment() -> tuple[bool, str]:
    """Whether the optional face-alignment package imports, and why not."""
    try:
        import face_alignment  # noqa: F401
    except ImportError as exc:
        return False, f"not installed ({exc.name or exc}): pip install --no-deps face-alignment==1.5.0 numba"
    return True, "ok"
