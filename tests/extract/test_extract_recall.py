"""Recall at HOG cost: dlib's CNN takes a second look at photos, and its faces get refined landmarks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facelab.detect.base import Detection
from facelab.detect.combine import add_missing, box_iou
from facelab.extract import ExtractConfig, FaceFinder
from facelab.landmarks.consistency import nme


def test_box_iou_and_add_missing():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    hog = [Detection((0, 0, 10, 10), 1.0)]
    cnn = [Detection((1, 1, 11, 11), 2.0), Detection((50, 50, 60, 60), 0.5), Detection((51, 50, 61, 60), 0.9)]
    merged = add_missing(hog, cnn)
    assert [d.box for d in merged] == [(0, 0, 10, 10), (51, 50, 61, 60)]


@pytest.fixture(scope="module")
def rolled(grace_hopper):
    """Grace Hopper at 300 x 256 px, rolled 50 degrees: HOG misses her, and the roll is known."""
    small = cv2.resize(grace_hopper, (256, 300), interpolation=cv2.INTER_AREA)
    mat = cv2.getRotationMatrix2D((128.0, 150.0), 50.0, 1.0)
    return small, cv2.warpAffine(small, mat, (256, 300), borderMode=cv2.BORDER_REFLECT101), mat


def test_second_look_finds_the_face_hog_misses_with_upright_landmarks(rolled):
    from facelab.align.geometry import transform_points

    small, image, mat = rolled
    plain = FaceFinder(ExtractConfig(second_look=False, rotations=False))
    assert plain.find(image, second_look=True).faces == ()  # HOG alone: nothing
    finder = FaceFinder(ExtractConfig(rotations=False))
    assert finder.find(image).faces == ()  # video frames: no look at the whole frame
    (face,) = finder.find(image, second_look=True).faces
    upright = plain.find(small).faces[0].landmarks
    assert nme(transform_points(face.landmarks, mat, invert=True), upright) < 0.05


def test_relook_finds_a_lost_face_near_its_predicted_box(rolled):
    _, image, _ = rolled
    finder = FaceFinder(ExtractConfig(rotations=False))
    (face,) = finder.find(image, second_look=True).faces
    x0, y0, x1, y1 = face.box
    again = finder.relook(image, (x0 + 6, y0 - 4, x1 + 6, y1 - 4))
    assert again is not None and box_iou(again.box, face.box) > 0.5
    assert finder.relook(np.full_like(image, 90), face.box) is None  # nothing there: nothing made up
