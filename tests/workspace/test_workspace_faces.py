"""The face file: exact round trips, metadata rewrites that keep pixels, and corrupt or hostile files."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from facelab.errors import FaceFileError
from facelab.workspace import faces
from facelab.workspace.faces import FaceMeta, MaskRecord, read_face, read_meta, update_meta, write_face
from facelab.workspace.images import encode_image

SIZE = 64


def _meta(rng: np.random.Generator, masks: tuple[MaskRecord, ...] = ()) -> FaceMeta:
    lm = rng.uniform(100, 300, (68, 2))
    mat = np.array([[0.31, -0.02, -20.5], [0.02, 0.31, -35.25]])
    return FaceMeta.create(
        source_frame="data_dst/000007.png", frame_size=(640, 360), face_index=1, face_type="whole_face", size=SIZE,
        box=(101.5, 99.25, 301.0, 310.75), landmarks_frame=lm, landmarks_face=lm @ mat[:, :2].T + mat[:, 2],
        matrix=mat, detector="dlib_hog", landmarks_backend="dlib68", masks=masks,
        extra={"score": 0.987654321, "yaw": -12.5, "blurry": False, "note": "ok", "missing": None, "n": 3},
    )


@pytest.fixture
def face(astronaut):
    rng = np.random.default_rng(0)
    image = np.ascontiguousarray(astronaut[40:232:3, 160:352:3])  # 64x64 face region
    yy, xx = np.mgrid[0:32, 0:32]
    hull = ((yy - 16) ** 2 + (xx - 16) ** 2 < 150).astype(np.float32)
    masks = (MaskRecord.from_array("hull", "hull", hull, SIZE),
             MaskRecord.from_array("learned", "learned", rng.uniform(0, 1, (16, 16)).astype(np.float32), SIZE))
    return image, _meta(rng, masks)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_round_trip_every_field_exact(face, tmp_path, ext):
    image, meta = face
    path = tmp_path / f"000007_1{ext}"
    write_face(path, image, meta)
    got = read_face(path)
    assert got.meta == meta  # every field, masks' PNG bytes and extra included
    assert read_meta(path) == meta
    assert got.meta.lm_frame.dtype == np.float64 and np.array_equal(got.meta.lm_frame, meta.lm_frame)
    assert got.meta.mask("hull").png == meta.mask("hull").png
    hull = got.meta.mask("hull").to_face(SIZE)
    assert hull.shape == (SIZE, SIZE) and hull[32, 32] == 1.0 and hull[0, 0] == 0.0
    if ext == ".png":
        assert np.array_equal(got.image, image)
    else:
        assert np.abs(got.image.astype(int) - image).mean() < 3


def _scan(data: bytes) -> bytes:
    """JPEG bytes from the start-of-scan marker on: the coded pixels."""
    return data[data.index(b"\xff\xda"):]


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_update_meta_keeps_pixels(face, tmp_path, ext):
    image, meta = face
    path = tmp_path / f"f{ext}"
    write_face(path, image, meta)
    before = path.read_bytes()
    pixels = read_face(path).image
    new = meta.without_mask("learned").with_mask(MaskRecord.from_array("bas", "bas", np.ones((8, 8), np.float32),
                                                                       SIZE))
    update_meta(path, new)
    after = path.read_bytes()
    assert read_meta(path) == new and [m.name for m in new.masks] == ["hull", "bas"]
    assert np.array_equal(read_face(path).image, pixels)
    if ext == ".jpg":
        assert _scan(after) == _scan(before)
    assert list(tmp_path.glob(".tmp-*")) == []


def test_large_metadata_splits_into_jpeg_segments(face, tmp_path):
    image, meta = face
    noise = np.random.default_rng(1).uniform(0, 1, (400, 400)).astype(np.float32)  # ~160 kB incompressible
    big = meta.with_mask(MaskRecord.from_array("noise", "sat", noise, SIZE))
    write_face(tmp_path / "big.jpg", image, big)
    data = (tmp_path / "big.jpg").read_bytes()
    assert data.count(b"\xff\xeb") >= 3  # several APP11 parts
    assert read_meta(tmp_path / "big.jpg") == big


def _written(face, tmp_path: Path, ext: str) -> bytes:
    image, meta = face
    write_face(tmp_path / f"ok{ext}", image, meta)
    return (tmp_path / f"ok{ext}").read_bytes()


def _check_rejected(path: Path) -> str:
    for reader in (read_meta, read_face):
        with pytest.raises(FaceFileError) as err:
            reader(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
    return str(err.value)


@pytest.mark.fault
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_truncated_files_are_rejected(face, tmp_path, ext):
    data = _written(face, tmp_path, ext)
    offsets = sorted(set(np.linspace(0, len(data) - 1, 40).astype(int).tolist()) | {1, 2, 8, 9, len(data) - 2})
    for n in offsets:
        path = tmp_path / f"cut_{n}{ext}"
        path.write_bytes(data[:n])
        _check_rejected(path)


@pytest.mark.fault
def test_random_bytes_and_foreign_images(tmp_path, astronaut):
    rng = np.random.default_rng(3)
    cases = {
        "random.jpg": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "random_with_jpeg_magic.jpg": b"\xff\xd8" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "random_with_png_magic.png": faces._PNG_SIG + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        "plain.jpg": encode_image(astronaut[:64, :64], ".jpg"),
        "plain.png": encode_image(astronaut[:64, :64], ".png"),
        "empty.png": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        message = _check_rejected(tmp_path / name)
        if name.startswith("plain"):
            assert "no facelab metadata" in message
    _check_rejected(tmp_path / "does_not_exist.jpg")


def _with_blob(face, tmp_path: Path, ext: str, blob: bytes, name: str) -> Path:
    data = encode_image(face[0], ext)
    embedded = faces._png_embed(data, blob) if ext == ".png" else faces._jpeg_embed(data, blob)
    path = tmp_path / f"{name}{ext}"
    path.write_bytes(embedded)
    return path


def _doc(meta: FaceMeta, **changes) -> bytes:
    doc = faces.meta_to_doc(meta)
    doc.update(changes)
    return zlib.compress(json.dumps(doc).encode())


@pytest.mark.fault
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_hostile_metadata_is_rejected(face, tmp_path, ext):
    _, meta = face
    nan_lm = [[float("nan"), 1.0]] + [[1.0, 1.0]] * 67
    bad = {
        "huge": b"x" * (faces.MAX_COMPRESSED + 1),
        "bomb": zlib.compress(b" " * (faces.MAX_JSON + (1 << 20)), 9),
        "not_zlib": b"definitely not zlib",
        "malformed_json": zlib.compress(b'{"schema_version": 1, "size": '),
        "not_an_object": zlib.compress(b"[1, 2, 3]"),
        "nested": zlib.compress(b"[" * 200000 + b"]" * 200000),
        "wrong_type_index": _doc(meta, face_index="1"),
        "wrong_type_bool": _doc(meta, size=True),
        "wrong_box": _doc(meta, box=[1, 2, 3]),
        "nan_landmarks": zlib.compress(json.dumps({**faces.meta_to_doc(meta), "landmarks_frame": nan_lm}).encode()),
        "missing_field": zlib.compress(json.dumps({k: v for k, v in faces.meta_to_doc(meta).items()
                                                   if k != "matrix"}).encode()),
        "future_schema": _doc(meta, schema_version=99),
        "bad_extra": _doc(meta, extra={"a": [1, 2]}),
        "bad_mask_b64": _doc(meta, masks=[{"name": "m", "source": "hull", "matrix": [[1, 0, 0], [0, 1, 0]],
                                           "png": "***"}]),
        "negative_size": _doc(meta, size=-4),
    }
    for name, blob in bad.items():
        _check_rejected(_with_blob(face, tmp_path, ext, blob, name))


def test_schema_zero_document_migrates(face, tmp_path):
    _, meta = face
    old = {k: v for k, v in faces.meta_to_doc(meta).items() if k not in ("landmarks_frame", "landmarks_face",
                                                                          "masks", "extra")}
    old["schema_version"] = 0
    old["landmarks"] = [list(p) for p in meta.landmarks_frame]
    path = _with_blob(face, tmp_path, ".png", zlib.compress(json.dumps(old).encode()), "old")
    got = read_meta(path)
    assert got.schema_version == faces.SCHEMA_VERSION and got.masks == () and dict(got.extra) == {}
    assert got.landmarks_frame == meta.landmarks_frame
    expected = meta.lm_frame @ meta.mat[:, :2].T + meta.mat[:, 2]
    np.testing.assert_allclose(got.lm_face, expected, rtol=0, atol=1e-9)
    update_meta(path, got)  # rewriting stores the current schema
    assert json.loads(zlib.decompress(faces._png_extract(path.read_bytes())))["schema_version"] == 1
