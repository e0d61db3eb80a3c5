"""The extract stage on frames built from real photos: several faces, rotations, bad frames, resume, force."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.extract import ExtractConfig, extract_faces
from facelab.extract.state import STATE_NAME
from facelab.workspace import read_face, write_image
from facelab.workspace.faces import list_faces, read_meta

CFG = ExtractConfig(size=128, workers=1, sequence="photos", second_look=False)  # unrelated photos


def _pair(astronaut: np.ndarray, grace: np.ndarray) -> np.ndarray:
    """Astronaut (left) and Grace Hopper (right) side by side, 384 px high."""
    a = cv2.resize(astronaut, (384, 384), interpolation=cv2.INTER_AREA)
    g = cv2.resize(grace, (round(grace.shape[1] * 384 / grace.shape[0]), 384), interpolation=cv2.INTER_AREA)
    return np.hstack([a, g])


@pytest.fixture(scope="module")
def frames(tmp_path_factory, astronaut, grace_hopper) -> Path:
    root = tmp_path_factory.mktemp("ws")
    d = root / "data_dst"
    d.mkdir()
    write_image(d / "000001.png", _pair(astronaut, grace_hopper))
    small = cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA)
    write_image(d / "000002.png", np.ascontiguousarray(np.rot90(small, 1)))  # lying on its side
    write_image(d / "000003.png", cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))  # single-channel file
    write_image(d / "000004.png", np.full((64, 64, 3), 127, np.uint8))  # flat grey
    write_image(d / "000005.png", np.zeros((16, 16, 3), np.uint8))  # tiny
    (d / "000006.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")  # corrupt
    return d


@pytest.fixture(scope="module")
def first_run(frames):
    calls = []
    res = extract_faces(frames, frames / "aligned", CFG, progress=lambda n=1, **kw: calls.append(n))
    return res, calls


def test_counts_and_summary(first_run):
    res, calls = first_run
    assert res.frames == 6 and res.processed == 6 and res.skipped == 0
    assert res.faces == 4  # two in the pair, the rotated one, the grey-file one
    assert res.multi_face == 1 and res.no_face == 2 and res.errors == 1
    assert "000006.png" in res.error_files[0]
    assert sum(calls) == 6
    assert res.summary()["faces"] == 4


def test_multi_face_frame_largest_first_with_full_metadata(frames, first_run):
    names = sorted(p.name for p in list_faces(frames / "aligned"))
    assert names == ["000001_0.jpg", "000001_1.jpg", "000002_0.jpg", "000003_0.jpg"]
    m0, m1 = read_meta(frames / "aligned" / "000001_0.jpg"), read_meta(frames / "aligned" / "000001_1.jpg")
    area = [(m.box[2] - m.box[0]) * (m.box[3] - m.box[1]) for m in (m0, m1)]
    assert area[0] >= area[1]
    centres = sorted((m.box[0] + m.box[2]) / 2 for m in (m0, m1))
    assert centres[0] < 384 < centres[1]  # one face on each photo; the patch on the suit was rejected
    for i, m in enumerate((m0, m1)):
        assert m.source_frame == "data_dst/000001.png" and m.face_index == i and m.frame_size == (384 + 328, 384)
        assert m.face_type == "whole_face" and m.size == 128 and m.detector == "dlib-hog"
        np.testing.assert_allclose(m.lm_face, m.lm_frame @ m.mat[:, :2].T + m.mat[:, 2], atol=1e-3)
        assert {"yaw", "pitch", "roll", "score", "fit"} <= set(m.extra)


def test_rotated_frame_found_and_aligned_upright(frames, first_run, astronaut):
    face = read_face(frames / "aligned" / "000002_0.jpg")
    assert face.meta.extra["rotation"] != 0
    upright = read_face(frames / "aligned" / "000003_0.jpg")  # same photo, not rotated (grey)
    assert upright.meta.extra["rotation"] == 0
    np.testing.assert_allclose(face.meta.lm_face, upright.meta.lm_face, atol=4.0)
    grey = cv2.cvtColor(face.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    assert np.abs(grey - upright.image[..., 0].astype(np.float32))[16:-16, 16:-16].mean() < 12.0
    lm = face.meta.lm_face
    assert lm[36:48, 1].mean() < lm[30, 1] < lm[48:60, 1].mean()  # eyes above nose above mouth


def test_resume_skips_finished_frames_and_never_duplicates(frames, first_run):
    state = json.loads((frames / "aligned" / STATE_NAME).read_text())
    assert state["frames"]["data_dst/000004.png"] == 0 and "data_dst/000006.png" not in state["frames"]
    before = sorted(p.name for p in list_faces(frames / "aligned"))
    again = extract_faces(frames, frames / "aligned", CFG)
    assert again.skipped == 5 and again.processed == 1 and again.errors == 1 and again.faces == 0
    # without the state file, frames with faces are still known from the face files' metadata
    (frames / "aligned" / STATE_NAME).unlink()
    third = extract_faces(frames, frames / "aligned", CFG)
    assert third.skipped == 3 and third.processed == 3 and third.faces == 0
    assert sorted(p.name for p in list_faces(frames / "aligned")) == before


def test_force_redoes_and_keeps_old_files_in_trash(tmp_path, astronaut, grace_hopper):
    d = tmp_path / "data_src"
    d.mkdir()
    write_image(d / "a.png", _pair(astronaut, grace_hopper))
    cfg = ExtractConfig(size=96, second_look=False, workers=1, max_faces=1, debug=True)
    res = extract_faces(d, d / "aligned", cfg)
    assert res.faces == 1 and read_meta(d / "aligned" / "a_0.jpg").face_index == 0
    assert (tmp_path / "data_src" / "aligned_debug" / "a.jpg").is_file()
    res2 = extract_faces(d, d / "aligned", cfg, force=True)
    assert res2.processed == 1 and res2.faces == 1
    assert [p.name for p in (d / "aligned_trash").iterdir()] == ["a_0.jpg"]


def test_reference_keeps_only_that_person(tmp_path, astronaut, grace_hopper):
    d = tmp_path / "frames"
    d.mkdir()
    write_image(d / "f.png", _pair(astronaut, grace_hopper))
    ref = tmp_path / "grace.jpg"
    write_image(ref, grace_hopper)
    res = extract_faces(d, d / "aligned", ExtractConfig(size=96, second_look=False, workers=1, reference=str(ref)))
    assert res.faces == 1 and res.rejected >= 1
    meta = read_meta(d / "aligned" / "f_0.jpg")
    assert (meta.box[0] + meta.box[2]) / 2 > 384 and meta.extra["identity_distance"] < 0.6


def test_missing_frames_folder_is_a_user_error(tmp_path):
    from facelab.errors import FacelabError

    with pytest.raises(FacelabError, match="does not exist"):
        extract_faces(tmp_path / "nope", tmp_path / "aligned", CFG)


def test_two_worker_processes_match_one(tmp_path, astronaut, grace_hopper):
    d = tmp_path / "data_dst"
    d.mkdir()
    write_image(d / "1.png", _pair(astronaut, grace_hopper))
    write_image(d / "2.png", cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA))
    serial = extract_faces(d, tmp_path / "one", ExtractConfig(size=64, second_look=False, workers=1))
    parallel = extract_faces(d, tmp_path / "two", ExtractConfig(size=64, second_look=False, workers=2))
    assert (parallel.faces, parallel.multi_face, parallel.errors) == (serial.faces, serial.multi_face, 0) == (3, 1, 0)
    for p in list_faces(tmp_path / "one"):
        np.testing.assert_allclose(read_meta(tmp_path / "two" / p.name).matrix, read_meta(p).matrix)


def test_missing_optional_weights_fail_before_workers_start(tmp_path, monkeypatch, astronaut):
    from facelab.errors import FacelabError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    d = tmp_path / "f"
    d.mkdir()
    for i in range(2):
        write_image(d / f"{i}.png", np.zeros((64, 64, 3), np.uint8))
    for cfg in (ExtractConfig(workers=2, detector="s3fd"), ExtractConfig(workers=2, landmarks="fan")):
        with pytest.raises(FacelabError, match="face-alignment"):  # not installed, or weights missing
            extract_faces(d, d / "aligned", cfg)
