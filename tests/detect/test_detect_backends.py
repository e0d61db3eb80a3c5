"""Detectors: dlib HOG on a real photo, the registry, weight lookup and the face-alignment loading path."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.detect import DETECTORS, create_detector, detector_available, require_weights, weight_dirs
from facelab.detect.base import Detection, auto_upsample
from facelab.errors import FacelabError

ASTRONAUT_FACE = (222.0, 122.0)  # centre of Eileen Collins' face in skimage's astronaut()


def test_dlib_hog_finds_the_astronaut(astronaut):
    det = create_detector("dlib-hog")
    found = det.detect(astronaut)
    best = max(found, key=lambda d: d.score)
    cx, cy = best.centre
    assert abs(cx - ASTRONAUT_FACE[0]) < 15 and abs(cy - ASTRONAUT_FACE[1]) < 15
    assert 70 < best.width < 130 and best.score > 0.5
    assert det.detect(np.full((200, 200, 3), 128, np.uint8)) == []
    with pytest.raises(ValueError):
        det.detect(np.zeros((50, 50), np.uint8))


def test_dlib_hog_downscales_large_frames(astronaut):
    import cv2

    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)  # 3x, above the 1280 limit
    best = max(create_detector("dlib-hog").detect(big), key=lambda d: d.score)
    assert abs(best.centre[0] - 3 * ASTRONAUT_FACE[0]) < 45 and abs(best.centre[1] - 3 * ASTRONAUT_FACE[1]) < 45


def test_detection_geometry_and_upsample_rule():
    d = Detection((10.0, 20.0, 50.0, 100.0), 0.9)
    assert (d.width, d.height, d.area, d.centre) == (40.0, 80.0, 3200.0, (30.0, 60.0))
    assert auto_upsample(40) == 1 and auto_upsample(80) == 0 and auto_upsample(20) == 2 and auto_upsample(5) == 2


def test_registry_and_availability():
    assert {"dlib-hog", "dlib-cnn", "s3fd", "mediapipe"} <= set(DETECTORS.names())
    assert detector_available("dlib-hog") == (True, "ok")
    with pytest.raises(FacelabError, match="unknown detector"):
        create_detector("haar")


def test_missing_weights_error_names_files_and_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert weight_dirs()[0] == tmp_path / "th" / "hub" / "checkpoints"
    with pytest.raises(FacelabError) as err:
        require_weights("s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar")
    msg = str(err.value)
    assert "s3fd-619a316812.pth" in msg and "2DFAN4-11f355bf06.pth.tar" in msg
    assert str(tmp_path / "th" / "hub" / "checkpoints") in msg and "models" in msg
    assert "\n" not in msg


def test_face_alignment_loading_path_with_random_weights(tmp_path, monkeypatch):
    """S3FD and FAN build offline from state dicts of random weights placed in a temporary TORCH_HOME."""
    pytest.importorskip("face_alignment", reason="optional: pip install --no-deps face-alignment==1.5.0 numba")
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    from facelab.landmarks import create_landmarks, landmarks_available

    hub = tmp_path / "th" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert detector_available("s3fd")[0] is False
    with pytest.raises(FacelabError, match="s3fd-619a316812.pth"):
        create_detector("s3fd")
    torch.manual_seed(0)
    torch.save(s3fd().state_dict(), hub / "s3fd-619a316812.pth")
    torch.save(FAN(4).state_dict(), hub / "2DFAN4-11f355bf06.pth.tar")
    assert detector_available("s3fd") == (True, "ok") and landmarks_available("fan") == (True, "ok")
    det = create_detector("s3fd")
    out = det.detect(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    assert isinstance(out, list) and all(isinstance(d, Detection) for d in out)
    fan = create_landmarks("fan", flip=False)
    lm = fan.landmarks(np.random.default_rng(1).integers(0, 255, (120, 120, 3), dtype=np.uint8), (20, 20, 100, 100))
    assert lm.shape == (68, 2) and np.isfinite(lm).all()
    # a file that is not a FAN state dict gives one clear error naming it
    torch.save({"weight": torch.zeros(3)}, hub / "2DFAN4-11f355bf06.pth.tar")
    with pytest.raises(FacelabError, match="2DFAN4-11f355bf06.pth.tar"):
        create_landmarks("fan")
