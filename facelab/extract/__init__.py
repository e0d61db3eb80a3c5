"""The extract stage: detect faces, 68 landmarks, checks, alignment, face files, debug frames."""

from facelab.extract.config import ExtractConfig
from facelab.extract.frame import FaceFinder, FoundFace, FrameFaces
from facelab.extract.stage import ExtractResult, extract_faces, smooth_runs

__all__ = ["ExtractConfig", "ExtractResult", "FaceFinder", "FoundFace", "FrameFaces", "extract_faces", "smooth_runs"]
