"""Re-cropping a stored face to another size or face type: the matrix and the warp, shared by training, the
training-free model and evaluation."""

from __future__ import annotations

import cv2
import numpy as np

from facelab.align import canonical_face_type, face_transform, invert_affine, matrix_scale
from facelab.workspace.faces import FaceMeta


def face_to_model_matrix(meta: FaceMeta, resolution: int, face_type: str) -> np.ndarray:
    """(2, 3) matrix from a face file's pixels to a model crop of ``resolution`` and ``face_type``.

    Same face type: a plain scale ``resolution / meta.size``. Otherwise the file's frame->face matrix is inverted
    and composed with ``face_transform(frame landmarks, resolution, face_type)``.
    """
    if canonical_face_type(meta.face_type) == canonical_face_type(face_type):
        s = resolution / float(meta.size)
        return np.array([[s, 0.0, 0.0], [0.0, s, 0.0]])
    frame_to_model = np.vstack([face_transform(meta.lm_frame, resolution, face_type), [0.0, 0.0, 1.0]])
    face_to_frame = np.vstack([invert_affine(meta.mat), [0.0, 0.0, 1.0]])
    return (frame_to_model @ face_to_frame)[:2]


def crop_face(image: np.ndarray, mat: np.ndarray, resolution: int, is_mask: bool = False) -> np.ndarray:
    """Warp a face image (HWC uint8/float, or HW mask) by ``mat`` into R x R.

    Down-scaling first area-averages to about the target scale (no aliasing), with the matrix corrected for the
    resize's pixel-centre convention. Images cubic, masks linear; borders replicate (what lies beyond the stored
    face continues its edge).
    """
    mat = np.asarray(mat, np.float64)
    scale = matrix_scale(mat)
    if scale < 0.75:
        h, w = image.shape[:2]
        nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
        fx, fy = nw / w, nh / h
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        # resized pixel p' = (p + 0.5) * f - 0.5, so face pixels = R^-1 p'
        undo = np.array([[1 / fx, 0.0, 0.5 / fx - 0.5], [0.0, 1 / fy, 0.5 / fy - 0.5], [0.0, 0.0, 1.0]])
        mat = (np.vstack([mat, [0.0, 0.0, 1.0]]) @ undo)[:2]
    flags = cv2.INTER_LINEAR if is_mask else cv2.INTER_CUBIC
    return cv2.warpAffine(image, mat, (resolution, resolution), flags=flags, borderMode=cv2.BORDER_REPLICATE)
