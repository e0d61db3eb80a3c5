"""CUB-format and list readers (1-based ids, CRLF, H W order), box transform, toy generator."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.errors import FacelabError
from facelab.workspace.images import write_image
from facelab.wsol.data import (
    WsolDataset,
    load_split,
    make_toy_cub,
    read_cub,
    read_image_list,
    transform_boxes,
    write_lists,
)


def _cub(root, crlf=False):
    nl = "\r\n" if crlf else "\n"
    for rel in ("001.A/a.jpg", "002.B/b.jpg", "002.B/c.jpg"):
        write_image(root / "images" / rel, np.full((40, 60, 3), 128, np.uint8))
    files = {
        "images.txt": ["1 001.A/a.jpg", "2 002.B/b.jpg", "3 002.B/c.jpg"],
        "image_class_labels.txt": ["1 1", "2 2", "3 2"],
        "train_test_split.txt": ["1 1", "2 0", "3 0"],
        "bounding_boxes.txt": ["1 10.0 5.0 20.0 10.0", "2 0 0 59 39", "3 1 2 3 4"],
    }
    for name, lines in files.items():
        (root / name).write_bytes((nl.join(lines) + nl).encode())


@pytest.mark.parametrize("crlf", [False, True])
def test_read_cub_one_based_ids_and_xywh(tmp_path, crlf):
    _cub(tmp_path, crlf)
    recs = read_cub(tmp_path)
    assert [r.label for r in recs] == [0, 1, 1]  # 1-based class ids -> 0-based
    assert [r.is_train for r in recs] == [True, False, False]
    assert recs[0].boxes.tolist() == [[10.0, 5.0, 30.0, 15.0]]  # x y w h -> x0 y0 x+w y+h
    assert recs[0].path == tmp_path / "images" / "001.A" / "a.jpg"
    assert len(load_split(tmp_path, "test")) == 2


def test_lists_round_trip_and_keyed_boxes(tmp_path):
    _cub(tmp_path)
    test = load_split(tmp_path, "test")
    out = tmp_path / "lists"
    out.mkdir()
    write_lists(test, out, "test", tmp_path / "images")
    assert (out / "test_bounding_box.txt").read_text().splitlines()[0].endswith("40 60")  # H then W
    again = load_split(out, "test")
    assert [r.label for r in again] == [r.label for r in test]
    assert all(np.allclose(a.boxes, b.boxes) for a, b in zip(again, test, strict=True))
    (out / "val_gt.txt").write_text("002.B\\\\b.jpg 60 40 ; 1 2 3 4 5 6 7 8\n")
    (out / "val_list.txt").write_text("002.B/b.jpg;1\n")
    recs = read_image_list(out / "val_list.txt", tmp_path / "images", out / "val_gt.txt", False)
    assert recs[0].boxes.shape == (2, 4)


def test_bad_folder_and_bad_lines(tmp_path):
    with pytest.raises(FacelabError, match="images.txt"):
        load_split(tmp_path, "train")
    _cub(tmp_path)
    (tmp_path / "bounding_boxes.txt").write_text("1 1 2 3\n")
    with pytest.raises(FacelabError, match="bounding_boxes.txt"):
        read_cub(tmp_path)


def test_transform_boxes_scale_shift_clip():
    # 200x100 image resized to 80x80, crop offset (8, 8), crop 64
    b = transform_boxes(np.array([[50, 25, 150, 75], [0, 0, 199, 99]]), (200, 100), 80, (8, 8), 64)
    assert b[0].tolist() == [12.0, 12.0, 52.0, 52.0]
    assert b[1].tolist() == [0.0, 0.0, 63.0, 63.0]  # partly outside the crop: clipped


def test_toy_cub_boxes_are_exact(tmp_path):
    recs = make_toy_cub(tmp_path, classes=3, per_class=2, seed=1)
    assert len(recs) == 6 and {r.label for r in recs} == {0, 1, 2}
    ds = WsolDataset([r for r in recs if not r.is_train], 64, train=False)
    x, y, boxes = ds[0]
    assert x.shape == (3, 64, 64) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert boxes.shape == (1, 4) and (boxes[:, 2] > boxes[:, 0]).all()
