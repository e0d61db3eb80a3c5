"""MediaPipe face mesh (468 points) reduced to the iBUG-68 scheme; optional package."""

from __future__ import annotations

import numpy as np

from facelab.detect.base import check_image
from facelab.detect.mediapipe_backend import mediapipe_available
from facelab.errors import FacelabError
from facelab.landmarks.base import LANDMARKS

# Face-mesh vertex for each iBUG-68 point: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
MESH_TO_68: tuple[int, ...] = (
    127, 234, 93, 132, 58, 172, 136, 150, 152, 379, 365, 397, 288, 361, 323, 454, 356,
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    168, 197, 5, 4, 75, 97, 2, 326, 305,
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, 78, 82, 13, 312, 308, 317, 14, 87,
)


def mesh_to_68(mesh: np.ndarray) -> np.ndarray:
    """(468+, 2) face-mesh points -> (68, 2) iBUG points."""
    mesh = np.asarray(mesh, np.float64)
    if mesh.ndim != 2 or mesh.shape[0] < 468:
        raise ValueError(f"expected (468, 2) face-mesh points, got {mesh.shape}")
    return mesh[list(MESH_TO_68), :2].copy()


@LANDMARKS.register("mediapipe", help="MediaPipe face mesh mapped to 68 points (optional package)")
class MediapipeLandmarks:
    name = "mediapipe"

    def __init__(self) -> None:
        ok, why = mediapipe_available()
        if not ok:
            raise FacelabError(f"landmarks mediapipe: {why}")
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                     refine_landmarks=False)

    @staticmethod
    def available() -> tuple[bool, str]:
        return mediapipe_available()

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """Runs the mesh on the box grown by half its size, so the mesh sees the whole head."""
        image = check_image(image)
        h, w = image.shape[:2]
        x0, y0, x1, y1 = box
        mx, my = (x1 - x0) / 2.0, (y1 - y0) / 2.0
        cx0, cy0 = int(max(0, x0 - mx)), int(max(0, y0 - my))
        cx1, cy1 = int(min(w, x1 + mx)), int(min(h, y1 + my))
        patch = np.ascontiguousarray(image[cy0:cy1, cx0:cx1])
        res = self._mesh.process(patch)
        if not res.multi_face_landmarks:
            raise ValueError("face mesh found no face in the box")
        pts = np.array([(p.x * patch.shape[1] + cx0, p.y * patch.shape[0] + cy0)
                        for p in res.multi_face_landmarks[0].landmark])
        return mesh_to_68(pts)
