"""Head pose (pitch, yaw, roll) from 68 aligned landmarks by solvePnP against the 3D mean face."""

from __future__ import annotations

import math

import cv2
import numpy as np

from facelab.align.template import MEAN_FACE_3D

# Jaw, brows and lower nose: points that move rigidly with the head (eyes and mouth open and close).
_POSE_INDICES = list(range(0, 27)) + list(range(30, 36))


def rotation_to_euler(rot: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) radians of a 3x3 rotation R = Rz(roll) Ry(yaw) Rx(pitch)."""
    sy = math.hypot(rot[0, 0], rot[1, 0])
    if sy > 1e-6:
        return (math.atan2(rot[2, 1], rot[2, 2]), math.atan2(-rot[2, 0], sy), math.atan2(rot[1, 0], rot[0, 0]))
    return (math.atan2(-rot[1, 2], rot[1, 1]), math.atan2(-rot[2, 0], sy), 0.0)


def estimate_pose(landmarks_face: np.ndarray, size: int) -> tuple[float, float, float]:
    """Pitch, yaw, roll in radians (each clipped to +-pi/2) of 68 landmarks in an aligned face of ``size`` px.

    Camera: focal length = size, principal point at the centre, no distortion. A frontal face gives (0, 0, 0).
    Signs: positive yaw moves the nose toward image left, positive pitch moves it down (face looks down),
    positive roll turns the face clockwise on screen. The solver starts from a frontal head at the distance
    that matches the landmark spread, which keeps it out of the mirrored local minimum.
    """
    lm = np.asarray(landmarks_face, np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    f = float(size)
    camera = np.array([[f, 0.0, f / 2.0], [0.0, f, f / 2.0], [0.0, 0.0, 1.0]])
    model, image = MEAN_FACE_3D[_POSE_INDICES], lm[_POSE_INDICES]
    spread = float(np.linalg.norm(image.std(0)))
    depth = f * float(np.linalg.norm(model[:, :2].std(0))) / max(spread, 1e-6)
    centre = image.mean(0) - f / 2.0
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[centre[0] * depth / f], [centre[1] * depth / f], [depth]])
    ok, rvec, _ = cv2.solvePnP(model, image, camera, np.zeros(4), rvec0, tvec0, useExtrinsicGuess=True,
                               flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return (0.0, 0.0, 0.0)
    rot, _ = cv2.Rodrigues(rvec)
    half = math.pi / 2.0
    return tuple(float(np.clip(a, -half, half)) for a in rotation_to_euler(rot))  # type: ignore[return-value]
