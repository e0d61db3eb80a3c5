"""Landmark backends and the identity embedding on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.align import estimate_pose, face_transform, transform_points
from facelab.landmarks import LANDMARKS, DlibIdentity, create_landmarks, landmarks_available
from facelab.landmarks.mediapipe68 import MESH_TO_68, mesh_to_68

ASTRONAUT_BOX = (175.0, 76.0, 266.0, 167.0)  # dlib-hog's box on skimage's astronaut()


@pytest.fixture(scope="module")
def astro_landmarks(astronaut):
    return create_landmarks("dlib68").landmarks(astronaut, ASTRONAUT_BOX)


def test_dlib68_on_the_astronaut(astro_landmarks):
    lm = astro_landmarks
    assert lm.shape == (68, 2) and lm.dtype == np.float64
    right_eye, left_eye, mouth, nose = lm[36:42].mean(0), lm[42:48].mean(0), lm[48:60].mean(0), lm[30]
    assert right_eye[0] < nose[0] < left_eye[0]  # image left to right
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]  # top to bottom
    assert 25 < np.linalg.norm(left_eye - right_eye) < 60
    # the aligned face looks roughly frontal
    mat = face_transform(lm, 256, "whole_face")
    pitch, yaw, roll = estimate_pose(transform_points(lm, mat), 256)
    assert abs(yaw) < 0.5 and abs(roll) < 0.3


def test_identity_distance_same_and_different(astronaut, grace_hopper, astro_landmarks):
    from facelab.detect import create_detector

    ident = DlibIdentity()
    a = ident.embed(astronaut, astro_landmarks)
    assert a.shape == (128,)
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    lm_f = create_landmarks("dlib68").landmarks(flipped, (512 - 266.0, 76.0, 512 - 175.0, 167.0))
    g_box = max(create_detector("dlib-hog").detect(grace_hopper), key=lambda d: d.area).box
    g = ident.embed(grace_hopper, create_landmarks("dlib68").landmarks(grace_hopper, g_box))
    assert np.linalg.norm(a - ident.embed(flipped, lm_f)) < 0.45
    assert np.linalg.norm(a - g) > 0.6


def test_registry_and_mesh_mapping():
    assert {"dlib68", "fan", "mediapipe"} <= set(LANDMARKS.names())
    assert landmarks_available("dlib68") == (True, "ok")
    assert len(MESH_TO_68) == 68 and len(set(MESH_TO_68)) == 68 and max(MESH_TO_68) < 468
    mesh = np.stack([np.arange(468.0), -np.arange(468.0)], 1)
    np.testing.assert_array_equal(mesh_to_68(mesh)[:, 0], MESH_TO_68)
    with pytest.raises(ValueError):
        mesh_to_68(np.zeros((68, 2)))


def test_fan_heatmap_decoding_hand_computed():
    from facelab.landmarks.fan import decode_heatmaps

    hm = np.zeros((68, 64, 64), np.float32)
    hm[:, 20, 30] = 1.0  # peak at x=30, y=20 (0-based)
    hm[:, 20, 31] = 0.5  # right neighbour larger -> +0.25 in x
    hm[:, 19, 30] = 0.3  # upper neighbour larger -> -0.25 in y
    hm[5] = 0.0
    hm[5, 0, 0] = 1.0  # border peak: no sub-pixel step
    centre, scale = np.array([100.0, 80.0]), 0.64  # crop spans 128 px: 2 frame px per heat-map px
    pts = decode_heatmaps(hm, centre, scale)
    # heat-map x = 30 + 1 + 0.25 - 0.5 = 30.75 -> frame 30.75 * 2 + 100 - 64
    np.testing.assert_allclose(pts[0], [30.75 * 2 + 36.0, 20.25 * 2 + 16.0])
    np.testing.assert_allclose(pts[5], [0.5 * 2 + 36.0, 0.5 * 2 + 16.0])
