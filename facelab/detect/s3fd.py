"""S3FD through the optional ``face-alignment`` package, with weights the user supplies (never downloaded)."""

from __future__ import annotations

import numpy as np

from facelab.detect.base import (
    DETECTORS,
    Detection,
    check_image,
    find_weights,
    import_face_alignment,
    require_weights,
    weight_dirs,
)

S3FD_WEIGHTS = "s3fd-619a316812.pth"


@DETECTORS.register("s3fd", help="S3FD (face-alignment, DeepFaceLab's detector); needs s3fd-619a316812.pth")
class S3fdDetector:
    name = "s3fd"

    def __init__(self, min_face: int = 40, device: str = "cpu", threshold: float = 0.5) -> None:
        ok, why = import_face_alignment()
        if not ok:
            from facelab.errors import FacelabError

            raise FacelabError(f"detector s3fd: face-alignment {why}")
        (path,) = require_weights(S3FD_WEIGHTS)
        from face_alignment.detection.sfd.sfd_detector import SFDDetector

        self._det = SFDDetector(device=device, path_to_detector=str(path), filter_threshold=threshold)
        self.min_face = int(min_face)

    @staticmethod
    def available() -> tuple[bool, str]:
        ok, why = import_face_alignment()
        if not ok:
            return False, why
        if find_weights(S3FD_WEIGHTS) is None:
            return False, f"weights {S3FD_WEIGHTS} not in " + " or ".join(str(d) for d in weight_dirs())
        return True, "ok"

    def detect(self, image: np.ndarray) -> list[Detection]:
        import torch

        with torch.no_grad():
            boxes = self._det.detect_from_image(check_image(image).copy())
        return [Detection((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(b[4])) for b in boxes]
