"""The one path guard of the face-file contract: a face file's ``source_frame`` resolves inside the workspace (its
root, or the real folders its frame folders link to) or is refused naming the face file; stages that read source
frames leave such faces out as named skips."""

from __future__ import annotations

import numpy as np
import pytest
from badfaces import DEGENERATE, outside, plant

from facelab.align import face_transform, frontal_landmarks, transform_points
from facelab.errors import FaceFileError
from facelab.evaluate.report import find_pairs
from facelab.extract.stage import _source_name
from facelab.utils.items import ItemErrors
from facelab.workspace import FaceMeta, write_face, write_image
from facelab.workspace.usable import check_usable

pytestmark = pytest.mark.fault

REFUSED = ["/etc/passwd", "../../../outside/000007.png", "data_dst/../../x.png", "../workspace2/data_dst/1.png",
           "C:\\Windows\\x.png", "C:x.png", "\\\\server\\share\\x.png", "", "data_dst/a\x00b.png"]


def _face(ws, stem: str, size: int = 64):
    """Frame ``data_dst/<stem>.png`` (grey) and its face file, with frontal landmarks (no detector needed)."""
    write_image(ws.frames("dst") / f"{stem}.png", np.full((128, 128, 3), 90, np.uint8))
    lm = frontal_landmarks(80, "full") + 24.0
    mat = face_transform(lm, size, "full")
    meta = FaceMeta.create(source_frame=f"data_dst/{stem}.png", frame_size=(128, 128), face_index=0,
                           face_type="full", size=size, box=(*lm.min(0), *lm.max(0)), landmarks_frame=lm,
                           landmarks_face=transform_points(lm, mat), matrix=mat, detector="dlib-hog",
                           landmarks_backend="dlib68")
    path = ws.aligned("dst") / f"{stem}_0.png"
    write_face(path, np.full((size, size, 3), 120, np.uint8), meta)
    return path, meta


def test_a_name_inside_resolves_to_its_real_path(ws):
    assert ws.resolve("data_dst/000001.png") == ws.root.resolve() / "data_dst" / "000001.png"
    assert ws.resolve("data_dst/../data_src/1.png") == ws.root.resolve() / "data_src" / "1.png"
    _, meta = _face(ws, "000001")
    assert ws.frame_path(meta, "000001_0.png") == (ws.frames("dst") / "000001.png").resolve()


@pytest.mark.parametrize("name", REFUSED)
def test_absolute_and_climbing_names_are_refused_naming_the_face_file(ws, name):
    with pytest.raises(FaceFileError) as err:
        ws.resolve(name, "aligned/000007_0.jpg")
    msg = str(err.value)
    assert msg.startswith("aligned/000007_0.jpg: source frame ") and "\n" not in msg
    assert "re-run extract" in msg


def test_a_link_inside_the_workspace_that_leads_out_is_refused(ws, tmp_path):
    away = tmp_path / "outside"
    away.mkdir()
    (away / "000001.png").write_bytes(b"x")
    (ws.frames("dst") / "elsewhere").symlink_to(away, target_is_directory=True)
    with pytest.raises(FaceFileError, match="outside the workspace"):
        ws.resolve("data_dst/elsewhere/000001.png", "f.jpg")


def test_a_frames_folder_linked_to_another_disk_stays_usable(tmp_path):
    from facelab.workspace import Workspace

    big = tmp_path / "big" / "data_dst"
    big.mkdir(parents=True)
    ws = Workspace(tmp_path / "ws")
    ws.root.mkdir()
    (ws.root / "data_dst").symlink_to(big, target_is_directory=True)
    assert ws.resolve("data_dst/000001.png") == big.resolve() / "000001.png"
    with pytest.raises(FaceFileError):
        ws.resolve("data_dst/../secret.png")  # climbs out of the linked folder
    # extract names a frame in the linked folder by its workspace name, so the guard accepts it later
    assert _source_name(ws.frames("dst") / "000001.png", ws.root) == "data_dst/000001.png"


def test_check_usable_refuses_outside_frames_and_unusable_landmarks(ws):
    path, meta = _face(ws, "000001")
    assert check_usable(meta, path, ws) == (ws.frames("dst") / "000001.png").resolve()
    assert check_usable(meta, path) is None  # geometry only
    bad = plant(_face(ws, "000002")[0], **DEGENERATE)
    from facelab.workspace.faces import read_meta

    errors = ItemErrors()
    with errors.guard(bad.name):
        check_usable(read_meta(bad), bad, ws)
    assert [f.split(":")[0] for f in errors.failures] == ["000002_0.png"]


def test_evaluate_pairs_leave_out_faces_whose_frame_is_outside(ws, tmp_path):
    away = tmp_path / "outside"
    away.mkdir()
    write_image(away / "000002.png", np.zeros((128, 128, 3), np.uint8))
    paths = [_face(ws, f"{i:06d}")[0] for i in range(1, 5)]
    plant(paths[1], **outside("../outside/000002.png"))
    plant(paths[2], **outside(str(away / "000002.png")))
    errors = ItemErrors()
    pairs = find_pairs(ws, need_merged=False, errors=errors)
    assert [p.meta.frame_stem for p in pairs] == ["000001", "000004"]
    assert all(p.original.is_relative_to(ws.root.resolve()) for p in pairs)
    assert sorted(f.split(":")[0] for f in errors.failures) == ["000002_0.png", "000003_0.png"]
