"""Sort methods, moves to trash (never deletes), recover-names and the contact sheet, on synthetic face files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facelab.align import face_transform, frontal_landmarks, transform_points
from facelab.sort import SORT_METHODS, contact_sheet, recover_names, sort_faces, trash_dir_for
from facelab.sort.methods import _quota, pose_of
from facelab.workspace.faces import FaceMeta, list_faces, read_face, read_meta, write_face

SIZE = 96


def _face(astronaut: np.ndarray, *, blur: float = 0.0, gain: float = 1.0, yaw: float = 0.0) -> np.ndarray:
    img = cv2.resize(astronaut[40:240, 120:320], (SIZE, SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    return np.clip(img * gain, 0, 255).astype(np.uint8)


def _write(folder: Path, name: str, image: np.ndarray, frame: str, index: int, yaw: float = 0.0,
           box_side: float = 100.0) -> Path:
    lm_face = frontal_landmarks(SIZE)
    lm_frame = lm_face * 2.0 + 50.0
    meta = FaceMeta.create(source_frame=f"data_src/{frame}.png", frame_size=(640, 360), face_index=index,
                           face_type="whole_face", size=SIZE, box=(50, 50, 50 + box_side, 50 + box_side),
                           landmarks_frame=lm_frame, landmarks_face=lm_face,
                           matrix=face_transform(lm_frame, SIZE, "whole_face"), detector="dlib-hog",
                           landmarks_backend="dlib68", extra={"yaw": yaw, "pitch": 0.0, "roll": 0.0})
    path = folder / f"{name}.jpg"
    write_face(path, image, meta)
    return path


@pytest.fixture
def faceset(tmp_path, astronaut) -> Path:
    d = tmp_path / "aligned"
    d.mkdir()
    _write(d, "c", _face(astronaut, blur=3.0, gain=0.6), "000003", 0, yaw=0.4, box_side=80)
    _write(d, "a", _face(astronaut), "000001", 0, yaw=-0.3, box_side=120)
    _write(d, "b", _face(astronaut, blur=1.5, gain=1.3), "000002", 0, yaw=0.1, box_side=100)
    _write(d, "d", _face(astronaut, blur=0.7, gain=0.9), "000002", 1, yaw=0.0, box_side=60)
    (d / "notes.jpg").write_bytes(b"not a face file")  # unreadable files are left alone
    return d


def _origs(folder: Path) -> list[str]:
    return [read_meta(p).original_name for p in list_faces(folder) if p.name != "notes.jpg"]


def _all_files(folder: Path) -> int:
    trash = trash_dir_for(folder)
    return len(list(folder.iterdir())) + (len(list(trash.iterdir())) if trash.exists() else 0)


@pytest.mark.parametrize("method, expected", [
    ("blur", ["000001_0", "000002_1", "000002_0", "000003_0"]),
    ("motion-blur", ["000001_0", "000002_1", "000002_0", "000003_0"]),
    ("brightness", ["000002_0", "000001_0", "000002_1", "000003_0"]),
    ("face-yaw", ["000001_0", "000002_1", "000002_0", "000003_0"]),
    ("source-rect-size", ["000001_0", "000002_0", "000003_0", "000002_1"]),
    ("origname", ["000001_0", "000002_0", "000002_1", "000003_0"]),
])
def test_sort_orders_and_renames(faceset, method, expected):
    n_before = _all_files(faceset)
    res = sort_faces(faceset, method)
    assert res.kept == 4 and res.trashed == 0 and res.skipped == 1
    names = sorted(p.name for p in list_faces(faceset))
    assert names == ["00001.jpg", "00002.jpg", "00003.jpg", "00004.jpg", "notes.jpg"]
    assert _origs(faceset) == expected
    assert _all_files(faceset) == n_before


def test_oneface_moves_multi_face_frames_to_trash(faceset):
    n_before = _all_files(faceset)
    res = sort_faces(faceset, "oneface")
    assert res.kept == 2 and res.trashed == 2
    trash = trash_dir_for(faceset)
    assert sorted(read_meta(p).original_name for p in trash.iterdir()) == ["000002_0", "000002_1"]
    assert _all_files(faceset) == n_before  # moved, never deleted


def test_final_keeps_count_spread_over_yaw(faceset):
    res = sort_faces(faceset, "final", count=2)
    assert res.kept == 2 and res.trashed == 2
    kept = [pose_of(read_meta(p))[1] for p in list_faces(faceset) if p.name != "notes.jpg"]
    assert kept == sorted(kept) and kept[0] < 0 < kept[1]  # one face from each side of the yaw range
    assert len(list(trash_dir_for(faceset).iterdir())) == 2


def test_hist_groups_similar_faces(tmp_path, astronaut):
    d = tmp_path / "aligned"
    d.mkdir()
    dark, bright = _face(astronaut, gain=0.5), _face(astronaut, gain=1.4)
    for i, img in enumerate([dark, bright, dark, bright, dark]):
        _write(d, f"f{i}", img, f"{i:06d}", 0)
    sort_faces(d, "hist")
    means = [read_face(p).image.mean() for p in list_faces(d)]
    groups = [m < dark.mean() + 5 for m in means]
    assert groups in ([True] * 3 + [False] * 2, [False] * 2 + [True] * 3)  # one change of group only
    sort_faces(d, "hist-dissim")
    assert len(list_faces(d)) == 5


def test_two_phase_rename_with_colliding_names_and_recover(faceset):
    # a face already named like a sort output must not be overwritten
    (faceset / "a.jpg").rename(faceset / "00002.jpg")
    sort_faces(faceset, "origname")
    assert _origs(faceset) == ["000001_0", "000002_0", "000002_1", "000003_0"]
    assert recover_names(faceset) == 4
    assert sorted(p.stem for p in list_faces(faceset)) == ["000001_0", "000002_0", "000002_1", "000003_0", "notes"]
    assert recover_names(faceset) == 0


def test_contact_sheet(faceset, tmp_path):
    out = contact_sheet(faceset, tmp_path / "sheet.png", cols=3, thumb=64, landmarks=True, masks=True)
    img = cv2.imread(str(out))
    assert img.shape == (2 * (64 + 14), 3 * 64, 3)
    # landmarks are drawn in pure green on the first tile
    tile = img[:64, :64]
    assert ((tile[..., 1] == 255) & (tile[..., 0] == 0) & (tile[..., 2] == 0)).sum() > 20
    default = contact_sheet(faceset, max_faces=2)
    assert default == faceset.parent / "aligned_sheet.png" and cv2.imread(str(default)).shape[1] == 2 * 128


def test_registry_quota_and_errors(tmp_path):
    from facelab.errors import FacelabError

    assert {"blur", "motion-blur", "face-yaw", "face-pitch", "source-rect-size", "hist", "hist-dissim",
            "brightness", "hue", "black", "origname", "oneface", "final"} <= set(SORT_METHODS.names())
    assert _quota([0, 1, 10, 10], 9) == [0, 1, 4, 4]
    assert _quota([3, 3, 3, 3, 3], 2) == [1, 0, 0, 0, 1]
    assert sum(_quota([5, 0, 2, 7], 10)) == 10
    with pytest.raises(FacelabError):
        sort_faces(tmp_path / "missing", "blur")
    with pytest.raises(FacelabError):
        sort_faces(tmp_path, "sideways")


def test_pose_from_landmarks_when_not_recorded(tmp_path, astronaut):
    lm = frontal_landmarks(SIZE)
    meta = FaceMeta.create(source_frame="x/1.png", frame_size=(10, 10), face_index=0, face_type="whole_face",
                           size=SIZE, box=(0, 0, 1, 1), landmarks_frame=lm, landmarks_face=lm,
                           matrix=np.eye(2, 3), detector="d", landmarks_backend="l")
    assert np.abs(pose_of(meta)).max() < 0.1
    assert transform_points(lm, np.eye(2, 3)).shape == (68, 2)
