"""Hostile face files and images: every read ends in a usable face or a one-line FacelabError, in bounded memory.

Seeded cases: random bytes, cut files, random and hostile metadata documents (huge arrays, NaN, 1e300, wrong
types, deep nesting, degenerate geometry), declared huge sizes in PNG and JPEG headers, huge stored masks. A face
that reads must also survive what the stages do with it (transforms, pose, hull, stored masks, rewrite).
Memory is measured in subprocesses: reading a 30000x30000 JPEG or PNG, a 30000x30000 stored mask, a document of
4 million landmarks, and ``main.py sort --by blur`` over a folder of them must stay under 200 MB above the
interpreter's baseline.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from facelab.align.geometry import face_transform, frontal_landmarks, invert_affine, transform_points
from facelab.align.masks import hull_mask
from facelab.align.pose import estimate_pose
from facelab.errors import FacelabError
from facelab.imageops.crop import face_to_model_matrix
from facelab.workspace import faces
from facelab.workspace.faces import FaceMeta, MaskRecord, read_face, read_meta
from facelab.workspace.images import encode_image

pytestmark = pytest.mark.fault

SEED = 20261204
SIZE = 64
BOMB_SIDE = 30000
PEAK_LIMIT_MB = 200.0
REPO = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------------------------------
# building blocks


def _image() -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    return np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8)


def _meta(masks: tuple[MaskRecord, ...] = ()) -> FaceMeta:
    lm_face = frontal_landmarks(SIZE, "whole_face")
    mat = np.array([[0.25, 0.01, -30.0], [-0.01, 0.25, -20.0]])  # frame -> face
    return FaceMeta.create(
        source_frame="data_dst/000001.png", frame_size=(1280, 720), face_index=0, face_type="whole_face", size=SIZE,
        box=(100.0, 80.0, 400.0, 380.0), landmarks_frame=transform_points(lm_face, mat, invert=True),
        landmarks_face=lm_face, matrix=mat, detector="dlib-hog", landmarks_backend="dlib68", masks=masks,
        extra={"score": 0.9, "yaw": 0.1, "note": "ok"},
    )


def _good_meta() -> FaceMeta:
    yy, xx = np.mgrid[0:32, 0:32]
    hull = ((yy - 16) ** 2 + (xx - 16) ** 2 < 150).astype(np.float32)
    return _meta((MaskRecord.from_array("hull", "hull", hull, SIZE),))


def _face_bytes(ext: str, blob: bytes | None = None, pixels: bytes | None = None) -> bytes:
    """A face file: ``pixels`` (encoded image bytes, default the test face) with ``blob`` (compressed metadata)."""
    data = pixels if pixels is not None else encode_image(_image(), ext)
    blob = blob if blob is not None else faces._pack(_good_meta())
    return faces._png_embed(data, blob) if ext == ".png" else faces._jpeg_embed(data, blob)


def _blob(doc, allow_nan: bool = True) -> bytes:
    return zlib.compress(json.dumps(doc, allow_nan=allow_nan).encode(), 9)


def _zeros_zlib(n: int) -> bytes:
    """A zlib stream of ``n`` zero bytes, made of one repeated deflate block (fast even for gigabytes)."""
    chunk = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zero = bytes(chunk)
    first = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zero) + c.flush(zlib.Z_FULL_FLUSH)  # a full flush forgets history: every chunk alike
    reps, rest = divmod(n, chunk)
    body = first + block * (reps - 1) if reps else b""
    c2 = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = c2.compress(bytes(rest)) + c2.flush()
    adler = ((n % 65521) << 16) | 1  # adler32 of n zeros: a = 1, b = n
    return b"\x78\xda" + body + tail + struct.pack(">I", adler)


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _png_zero_bomb(width: int, height: int, grey: bool) -> bytes:
    """A real, complete PNG of ``width`` x ``height`` black pixels (a few MB for 30000 x 30000)."""
    channels, colour = (1, 0) if grey else (3, 2)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    idat = _zeros_zlib(height * (1 + width * channels))
    return faces._PNG_SIG + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _png_declared(data: bytes, width: int, height: int) -> bytes:
    """PNG ``data`` with its IHDR rewritten to declare ``width`` x ``height`` (CRC fixed; pixel data unchanged)."""
    ihdr = data[16:29]
    new = struct.pack(">II", width, height) + ihdr[8:]
    return data[:8] + _png_chunk(b"IHDR", new) + data[33:]


def _jpeg_declared(data: bytes, width: int, height: int) -> bytes:
    """JPEG ``data`` with its SOF0 frame header rewritten to declare ``width`` x ``height``."""
    at = data.index(b"\xff\xc0")
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


# ---------------------------------------------------------------------------------------------------------------
# seeded cases: (name, ext, file bytes)


def _hostile_values(rng: np.random.Generator) -> list:
    deep = 0
    for _ in range(int(rng.integers(20, 900))):  # json.dumps itself recurses
        deep = [deep]
    return [
        float("nan"), float("inf"), -float("inf"), 1e300, -1e300, 10 ** 30, 10 ** 400, -1, 0, True, None, "",
        "x" * 5000, [], {}, [[]], deep, [0] * 2000, [[0, 0]] * 68, [[1e300, 1e300]] * 68,
        [[float("nan"), 0]] * 68, {"a": float("nan")}, [[1, 0, 0], [0, 1, 0]], [[0, 0, 0], [0, 0, 0]],
        [[1, 2, 3], [2, 4, 6]], [[1e300, 0, 0], [0, 1e300, 0]], [1, 2, 3, 4], "AAAA", [[1, 2], [3, 4]],
    ]


def _geometry_cases(doc: dict) -> dict[str, dict]:
    lm = np.asarray(doc["landmarks_frame"], np.float64)
    lm_tmpl_flat = lm.copy()
    lm_tmpl_flat[:] = lm[30]  # every point the same
    collapsed_33 = lm.copy()
    collapsed_33[17:49] = lm[30]  # the points the similarity fit uses all identical
    nan_mask = {"name": "m", "source": "hull", "matrix": [[float("nan"), 0, 0], [0, 1, 0]], "png": doc["masks"][0]["png"]}
    flat_mask = {"name": "m", "source": "hull", "matrix": [[0, 0, 0], [0, 0, 0]], "png": doc["masks"][0]["png"]}
    return {
        "lm_frame_identical": {"landmarks_frame": [[5.0, 5.0]] * 68},
        "lm_face_identical": {"landmarks_face": [[5.0, 5.0]] * 68},
        "lm_frame_all_one_point": {"landmarks_frame": lm_tmpl_flat.tolist()},
        "lm_frame_fit_points_identical": {"landmarks_frame": collapsed_33.tolist()},
        "lm_frame_1e300": {"landmarks_frame": (lm * 1e300).tolist()},
        "lm_face_1e300": {"landmarks_face": (np.asarray(doc["landmarks_face"]) * 1e300).tolist()},
        "lm_frame_1e200_spread": {"landmarks_frame": (lm * 1e200).tolist()},
        "lm_face_1e10": {"landmarks_face": (np.asarray(doc["landmarks_face"]) * 1e10).tolist()},
        "lm_frame_tiny_spread": {"landmarks_frame": (lm * 1e-300).tolist()},
        "matrix_zero": {"matrix": [[0, 0, 0], [0, 0, 0]]},
        "matrix_singular": {"matrix": [[1, 2, 0], [2, 4, 0]]},
        "matrix_1e300": {"matrix": [[1e300, 0, 0], [0, 1e300, 0]]},
        "matrix_1e-300": {"matrix": [[1e-300, 0, 0], [0, 1e-300, 0]]},
        "mask_matrix_nan": {"masks": [nan_mask]},
        "mask_matrix_singular": {"masks": [flat_mask]},
        "box_1e300": {"box": [1e300, 0, 1e300, 1]},
        "extra_nan": {"extra": {"score": float("nan")}},
        "extra_inf": {"extra": {"yaw": float("inf")}},
        "extra_nested": {"extra": {"a": {"b": 1}}},
        "extra_many_keys": {"extra": {f"k{i}": i for i in range(20000)}},
        "frame_size_huge": {"frame_size": [10 ** 30, 10 ** 30]},
        "frame_size_zero": {"frame_size": [0, 0]},
        "size_huge": {"size": 10 ** 6},
        "size_mismatch_pixels": {"size": 128},
        "face_index_huge": {"face_index": 10 ** 40},
        "face_index_negative": {"face_index": -5},
        "face_type_unknown": {"face_type": "banana"},
        "many_masks": {"masks": [dict(doc["masks"][0], name=f"m{i}") for i in range(5000)]},
        "mask_not_png": {"masks": [dict(doc["masks"][0], png=base64.b64encode(b"\x00" * 64).decode())]},
        "mask_not_square": {"masks": [dict(doc["masks"][0], png=base64.b64encode(
            encode_image(np.zeros((8, 40), np.uint8), ".png")).decode())]},
        "landmarks_200k": {"landmarks_frame": [[1.0, 2.0]] * 200_000},
        "numbers_500k": {"extra": {"a": 1}, "box": [0] * 500_000},
        "big_string": {"source_frame": "x" * 3_000_000},
        "long_name_in_extra": {"extra": {"x" * 100_000: 1}},
    }


def _doc_cases(rng: np.random.Generator) -> list[tuple[str, str, bytes]]:
    base = faces.meta_to_doc(_good_meta())
    out = []
    for name, change in _geometry_cases(base).items():
        for ext in (".png", ".jpg"):
            out.append((f"doc_{name}{ext}", ext, _face_bytes(ext, _blob({**base, **change}))))
    keys = sorted(base)
    for i in range(120):
        doc = dict(base)
        values = _hostile_values(rng)
        for key in rng.choice(keys, size=int(rng.integers(1, 4)), replace=False):
            if rng.random() < 0.15:
                doc.pop(str(key))
            else:
                doc[str(key)] = values[int(rng.integers(len(values)))]
        ext = (".png", ".jpg")[i % 2]
        out.append((f"doc_random_{i:03d}{ext}", ext, _face_bytes(ext, _blob(doc))))
    old = {k: v for k, v in base.items() if k not in ("landmarks_frame", "landmarks_face", "masks", "extra")}
    for name, change in {"v0_no_landmarks": {}, "v0_bad_landmarks": {"landmarks": "x"},
                         "v0_nan": {"landmarks": [[float("nan"), 0]] * 68}, "v0_bad_matrix": {
                             "landmarks": base["landmarks_frame"], "matrix": [1, 2]},
                         "v0_huge_int": {"landmarks": [[10 ** 400, 0]] * 68}}.items():
        out.append((f"doc_{name}.png", ".png", _face_bytes(".png", _blob({**old, "schema_version": 0, **change}))))
    for name, doc in {"list": [1, 2], "string": "s", "null": None, "number": 1.5,
                      "nan_literal": float("nan")}.items():
        out.append((f"doc_top_{name}.png", ".png", _face_bytes(".png", _blob(doc))))
    nested = zlib.compress(b"[" * 100_000 + b"]" * 100_000)
    out.append(("doc_nested_100k.png", ".png", _face_bytes(".png", nested)))
    out.append(("doc_huge_int_digits.png", ".png", _face_bytes(".png", zlib.compress(
        json.dumps({**base}).replace('"face_index": 0', '"face_index": ' + "9" * 10000).encode()))))
    return out


def _byte_cases(rng: np.random.Generator) -> list[tuple[str, str, bytes]]:
    out = []
    magics = [b"", faces._PNG_SIG, b"\xff\xd8", b"RIFF\x00\x10\x00\x00WEBPVP8 ", b"BM", b"II*\x00", b"MM\x00*"]
    for i in range(20):
        noise = rng.integers(0, 256, int(rng.integers(0, 4000)), dtype=np.uint8).tobytes()
        out.append((f"bytes_random_{i:02d}.jpg", ".jpg", magics[i % len(magics)] + noise))
    for ext in (".png", ".jpg"):
        good = _face_bytes(ext)
        for n in sorted(set(rng.integers(0, len(good), 15).tolist())):
            out.append((f"bytes_cut_{n}{ext}", ext, good[:n]))
        for i in range(10):
            bad = bytearray(good)
            for at in rng.integers(0, len(good), int(rng.integers(1, 8))):
                bad[int(at)] = int(rng.integers(0, 256))
            out.append((f"bytes_flip_{i:02d}{ext}", ext, bytes(bad)))
    return out


def _declared_size_cases(rng: np.random.Generator) -> list[tuple[str, str, bytes]]:
    out = []
    png, jpg = encode_image(_image(), ".png"), encode_image(_image(), ".jpg")
    for w, h in [(30000, 30000), (60000, 60000), (1 << 31, 1), (0, 64), (64, 0), (128, 128), (64, 65)]:
        out.append((f"declared_png_{w}x{h}.png", ".png", _face_bytes(".png", pixels=_png_declared(png, w, h))))
    for w, h in [(8200, 8200), (0, 64), (128, 128), (64, 65), (96, 64)]:
        out.append((f"declared_jpeg_{w}x{h}.jpg", ".jpg", _face_bytes(".jpg", pixels=_jpeg_declared(jpg, w, h))))
    for i in range(6):
        w, h = (int(v) for v in rng.integers(1, 70000, 2))
        out.append((f"declared_random_{i}_{w}x{h}.png", ".png", _face_bytes(".png", pixels=_png_declared(png, w, h))))
    doc = faces.meta_to_doc(_good_meta())
    tiny = encode_image(np.zeros((16, 16), np.uint8), ".png")
    for w, h in [(30000, 30000), (2048, 2048), (5000, 1), (0, 0)]:
        mask = dict(doc["masks"][0], png=base64.b64encode(_png_declared(tiny, w, h)).decode())
        for ext in (".png", ".jpg"):
            out.append((f"declared_mask_{w}x{h}{ext}", ext, _face_bytes(ext, _blob({**doc, "masks": [mask]}))))
    return out


def _cases() -> list[tuple[str, str, bytes]]:
    rng = np.random.default_rng(SEED)
    good = [(f"good{ext}", ext, _face_bytes(ext)) for ext in (".png", ".jpg")]
    return good + _byte_cases(rng) + _doc_cases(rng) + _declared_size_cases(rng)


CASES = _cases()


# ---------------------------------------------------------------------------------------------------------------
# what a stage does with a face that reads


def _use(face) -> None:
    """The reads the stages make of a face file; a face that reads must survive them (or raise FacelabError)."""
    meta = face.meta
    assert face.image.shape == (meta.size, meta.size, 3), "pixels do not match the metadata's size"
    assert read_meta(face.path) == meta
    for ft in ("whole_face", "full", "head"):
        mat = face_transform(meta.lm_frame, meta.size, ft)
        assert np.all(np.isfinite(mat)) and np.all(np.isfinite(invert_affine(mat)))
        assert np.all(np.isfinite(face_to_model_matrix(meta, 32, ft)))
    assert np.all(np.isfinite(invert_affine(meta.mat)))
    assert all(math.isfinite(a) for a in estimate_pose(meta.lm_face, meta.size))
    hull_mask(meta.lm_face, meta.size)
    for record in meta.masks:  # mask pixels decode only when used: corrupt ones are a FacelabError then
        try:
            assert np.all(np.isfinite(record.to_face(meta.size)))
        except FacelabError as exc:
            assert "\n" not in str(exc) and record.name in str(exc)
    faces.embed_meta(encode_image(face.image, ".png"), meta, ".png")  # it can be written back


@pytest.mark.parametrize("case", range(len(CASES)), ids=[c[0] for c in CASES])
def test_hostile_face_file_reads_or_is_refused(case, tmp_path):
    name, ext, data = CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    try:
        read_meta(path)
        face = read_face(path)
    except FacelabError as exc:
        message = str(exc)
        assert str(path) in message and "\n" not in message, message
        return
    _use(face)
    if name.startswith("good"):
        assert face.meta == _good_meta()


def test_good_face_with_largest_mask_reads(tmp_path):
    side = math.isqrt(faces.MAX_MASK_PIXELS)
    noise = np.random.default_rng(SEED).uniform(0, 1, (side, side))
    meta = _meta((MaskRecord.from_array("sat", "sat", noise.astype(np.float32), SIZE),
                  MaskRecord.from_array("hull", "hull", np.ones((256, 256), np.float32), SIZE)))
    faces.write_face(tmp_path / "big.jpg", _image(), meta)
    got = read_face(tmp_path / "big.jpg")
    assert got.meta == meta and got.meta.mask("sat").image().shape == noise.shape


# ---------------------------------------------------------------------------------------------------------------
# memory, each read in its own interpreter

_MEASURE = r"""
import resource

def _status_mb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024.0

def start_measuring():
    # ru_maxrss keeps the parent's peak across fork and exec: reset the high-water mark and read VmHWM instead;
    # the address space is capped so that a runaway read fails instead of taking the machine
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    vm = int(_status_mb("VmSize") * 2 ** 20)
    resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 30), resource.RLIM_INFINITY))
    return _status_mb("VmRSS")

def peak_mb():
    return _status_mb("VmHWM")
"""

_READER = _MEASURE + r"""
import json, sys
from facelab.errors import FacelabError
from facelab.workspace.faces import read_face, read_meta
from facelab.workspace.images import read_image

base = start_measuring()  # resident after the imports: the peak is measured from here
kind, path = sys.argv[1], sys.argv[2]
try:
    if kind == "image":
        read_image(path)
    elif kind == "face":
        read_face(path)
    elif kind == "meta":
        read_meta(path)
    else:  # stored masks, as merge and train use them
        meta = read_meta(path)
        for m in meta.masks:
            m.to_face(meta.size)
    outcome = "read"
except FacelabError as exc:
    outcome = "refused: " + str(exc)
except BaseException as exc:
    outcome = "crashed: %s: %.200s" % (type(exc).__name__, exc)
print(json.dumps({"outcome": outcome, "base_mb": base, "peak_mb": peak_mb() - base}))
"""


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    """The tester's files: 30000x30000 JPEG and PNG face files, a 30000x30000 stored mask, 4M landmarks."""
    folder = tmp_path_factory.mktemp("bombs")
    jpeg = _jpeg_declared(encode_image(_image(), ".jpg"), BOMB_SIDE, BOMB_SIDE)
    doc = faces.meta_to_doc(_good_meta())
    mask = dict(doc["masks"][0], name="huge", png=base64.b64encode(_png_zero_bomb(BOMB_SIDE, BOMB_SIDE, True)).decode())
    def with_landmarks(n: int) -> bytes:  # n (x, y) points, written as text: json.dumps would be slow
        text = json.dumps(dict(doc, landmarks_frame="@LM@")).replace('"@LM@"', "[" + ",".join(["[0,0]"] * n) + "]")
        return zlib.compress(text.encode(), 9)

    files = {
        "jpeg_bomb.jpg": _face_bytes(".jpg", pixels=jpeg),
        "png_bomb.png": _face_bytes(".png", pixels=_png_zero_bomb(BOMB_SIDE, BOMB_SIDE, False)),
        "mask_bomb.png": _face_bytes(".png", _blob(dict(doc, masks=[mask]))),
        "landmarks_4m.png": _face_bytes(".png", with_landmarks(4_000_000)),
        "landmarks_2m.png": _face_bytes(".png", with_landmarks(2_500_000)),  # fits the JSON size limit
        "string_15mb.png": _face_bytes(".png", _blob(dict(doc, extra={"a": "x" * (15 << 20)}))),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


def _run_reader(kind: str, path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", _READER, kind, str(path)], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                                                      "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind, name", [
    ("image", "jpeg_bomb.jpg"), ("face", "jpeg_bomb.jpg"), ("image", "png_bomb.png"), ("face", "png_bomb.png"),
    ("mask", "mask_bomb.png"), ("meta", "landmarks_4m.png"), ("meta", "landmarks_2m.png"),
    ("meta", "string_15mb.png"),
])
def test_hostile_file_is_refused_in_bounded_memory(bombs, kind, name):
    got = _run_reader(kind, bombs[name])
    assert got["outcome"].startswith("refused: ") and name in got["outcome"], got
    assert got["peak_mb"] < PEAK_LIMIT_MB, got


_SORT = _MEASURE + r"""
import json, sys
from facelab.utils.runtime import set_openmp_defaults
set_openmp_defaults()
from facelab.cli import main

base = start_measuring()
sys.argv = ["main.py", "sort", sys.argv[1], "--by", "blur"]
try:
    main()
    code = 0
except SystemExit as exc:
    code = exc.code
print("\n" + json.dumps({"code": code, "base_mb": base, "peak_mb": peak_mb() - base}))
"""


def test_sort_skips_bombs_in_bounded_memory(bombs, tmp_path):
    folder = tmp_path / "aligned"
    folder.mkdir()
    for name, path in bombs.items():
        (folder / name).write_bytes(path.read_bytes())
    assert len(bombs) == 6
    for i, ext in enumerate((".png", ".jpg")):
        (folder / f"good_{i}{ext}").write_bytes(_face_bytes(ext))
    proc = subprocess.run([sys.executable, "-c", _SORT, str(folder)], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    out = proc.stdout + proc.stderr
    assert got["code"] in (0, 1) and "Traceback" not in out, out[-3000:]  # 1: the stage names skipped items
    for name in bombs:
        assert name in out  # each skip is named
    names = {p.name for p in folder.iterdir()}
    assert set(bombs) <= names and sorted(Path(n).stem for n in names - set(bombs)) == ["00001", "00002"]
    assert got["peak_mb"] < PEAK_LIMIT_MB, got
