"""Pure face geometry: Umeyama similarity, DeepFaceLab face-type crops, landmark masks, head pose, smoothing."""

from facelab.align.geometry import (
    FACE_PADDING,
    FACE_TYPE_NAMES,
    FACE_TYPES,
    averaged_yaw,
    canonical_face_type,
    face_transform,
    frontal_landmarks,
    invert_affine,
    matrix_scale,
    template_matrix,
    transform_points,
    umeyama,
    warp_to_face,
)
from facelab.align.masks import expand_eyebrows, eyes_mouth_mask, hull_mask
from facelab.align.pose import estimate_pose
from facelab.align.smooth import SMOOTH_METHODS, smooth_landmarks
from facelab.align.template import MEAN_FACE_3D, TEMPLATE_33, TEMPLATE_INDICES

__all__ = [
    "FACE_PADDING", "FACE_TYPE_NAMES", "FACE_TYPES", "MEAN_FACE_3D", "SMOOTH_METHODS", "TEMPLATE_33",
    "TEMPLATE_INDICES",
    "averaged_yaw", "canonical_face_type", "estimate_pose", "expand_eyebrows", "eyes_mouth_mask", "face_transform",
    "frontal_landmarks", "hull_mask", "invert_affine", "matrix_scale", "smooth_landmarks", "template_matrix",
    "transform_points", "umeyama", "warp_to_face",
]
