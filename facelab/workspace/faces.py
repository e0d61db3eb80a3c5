"""The face file: one square image per face with versioned JSON metadata embedded in the file itself.

* PNG: an ``iTXt`` chunk with keyword ``facelab`` (zlib-compressed JSON), placed before ``IEND``.
* JPEG: ``APP11`` segments tagged ``FACELAB\\0`` carrying zlib-compressed JSON, split into numbered parts.

Reading never unpickles and bounds every size, so a face file from an untrusted source is safe to open: the file,
the compressed and decompressed metadata, the number of JSON values, every number (finite, within
:data:`MAX_COORD`), the pixel size each image declares before it is decoded (:func:`check_image_size`), and the
geometry (landmarks the face fit can use, invertible matrices). A corrupt, foreign or hostile file raises
:class:`FaceFileError` naming it. Metadata can be rewritten without re-encoding pixels.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import struct
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

import cv2
import numpy as np

from facelab.errors import FaceFileError, FacelabError
from facelab.utils.atomic import atomic_write_bytes
from facelab.workspace import untrusted as u
from facelab.workspace.images import check_image_size, decode_image, encode_image

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA_VERSION = 1
PNG_KEYWORD = b"facelab"
JPEG_TAG = b"FACELAB\x00"
JPEG_APP = 0xEB  # APP11
MAX_FILE_BYTES = 96 << 20  # a face file: a 4096 px PNG face plus its metadata fit well below this
MAX_COMPRESSED = 8 << 20  # bytes of compressed metadata accepted
MAX_JSON = 16 << 20  # bytes of decompressed JSON accepted
MAX_MASK_PIXELS = 1024 * 1024  # pixels of one stored mask
MAX_MASKS = 32
MAX_FACE_SIZE = u.MAX_FACE_SIZE
FACE_EXTS = (".jpg", ".jpeg", ".png")
_PNG_SIG = b"\x89PNG\r\n\x1a\n"

Matrix = u.Matrix
Points = u.Points


@dataclass(frozen=True)
class MaskRecord:
    """A named mask stored in a face file: a grey PNG at its own size plus the face->mask 2x3 matrix."""

    name: str
    source: str  # hull, learned, bas, sat, ...
    matrix: Matrix  # maps face pixels to mask pixels
    png: bytes = field(repr=False)

    @classmethod
    def from_array(cls, name: str, source: str, mask: np.ndarray, face_size: int) -> "MaskRecord":
        """Store float ``mask`` (HW in [0, 1], square, covering the whole face image of ``face_size``)."""
        if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
            raise ValueError(f"mask must be square HW, got {mask.shape}")
        m = mask.shape[0]
        scale = m / float(face_size)
        u8 = np.clip(np.rint(np.asarray(mask, np.float32) * 255.0), 0, 255).astype(np.uint8)
        return cls(name, source, ((scale, 0.0, 0.0), (0.0, scale, 0.0)), encode_image(u8, ".png"))

    def image(self) -> np.ndarray:
        """The stored mask, float32 HW in [0, 1], at its stored size."""
        u8 = decode_image(self.png, f"mask {self.name!r}", grey=True, max_pixels=MAX_MASK_PIXELS)
        return u8.astype(np.float32) / 255.0

    def to_face(self, face_size: int) -> np.ndarray:
        """The mask resampled onto the face image grid (float32 ``face_size`` x ``face_size``)."""
        mat = np.asarray(self.matrix, np.float64)
        return cv2.warpAffine(self.image(), mat, (face_size, face_size),
                              flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT)


@dataclass(frozen=True)
class FaceMeta:
    """Everything a later stage needs to know about one aligned face. ``schema_version`` first, always."""

    schema_version: int
    source_frame: str  # workspace-relative frame name, e.g. "data_dst/000001.png"
    frame_size: tuple[int, int]  # (width, height)
    face_index: int
    face_type: str
    size: int
    box: tuple[float, float, float, float]  # detector box x0, y0, x1, y1 in frame pixels
    landmarks_frame: Points  # 68 (x, y) in frame pixels
    landmarks_face: Points  # 68 (x, y) in face pixels
    matrix: Matrix  # frame -> face 2x3
    detector: str
    landmarks_backend: str
    masks: tuple[MaskRecord, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # JSON scalars only (e.g. scores, yaw)

    @classmethod
    def create(cls, *, source_frame: str, frame_size: tuple[int, int], face_index: int, face_type: str, size: int,
               box, landmarks_frame, landmarks_face, matrix, detector: str, landmarks_backend: str,
               masks: tuple[MaskRecord, ...] = (), extra: Mapping[str, Any] | None = None) -> "FaceMeta":
        """Build from numpy arrays (landmarks (68, 2), matrix (2, 3))."""
        return cls(
            schema_version=SCHEMA_VERSION, source_frame=str(source_frame),
            frame_size=(int(frame_size[0]), int(frame_size[1])), face_index=int(face_index),
            face_type=str(face_type), size=int(size), box=tuple(float(v) for v in np.ravel(box)),  # type: ignore
            landmarks_frame=u.as_points(landmarks_frame), landmarks_face=u.as_points(landmarks_face),
            matrix=u.as_matrix(matrix), detector=str(detector), landmarks_backend=str(landmarks_backend),
            masks=tuple(masks), extra=dict(extra or {}),
        )

    # numpy views for the maths
    @property
    def lm_frame(self) -> np.ndarray:
        return np.asarray(self.landmarks_frame, np.float64)

    @property
    def lm_face(self) -> np.ndarray:
        return np.asarray(self.landmarks_face, np.float64)

    @property
    def mat(self) -> np.ndarray:
        return np.asarray(self.matrix, np.float64)

    @property
    def frame_stem(self) -> str:
        return Path(self.source_frame).stem

    @property
    def track(self) -> int | None:
        """Video track id recorded by extract in ``extra`` (None: not tracked, an older file, or not an id)."""
        t = self.extra.get("track")
        return t if isinstance(t, int) and not isinstance(t, bool) and t >= 0 else None

    @property
    def interpolated(self) -> bool:
        """True when extract interpolated this face's landmarks across a short gap of its track (the face was not
        found in its frame); recorded in ``extra``, False for older files."""
        return self.extra.get("interpolated") is True

    @property
    def original_name(self) -> str:
        """The name extract gave this face: ``<frame_stem>_<face_index>`` (recoverable after renames)."""
        return f"{self.frame_stem}_{self.face_index}"

    def mask(self, name: str) -> MaskRecord | None:
        for m in self.masks:
            if m.name == name:
                return m
        return None

    def with_mask(self, record: MaskRecord) -> "FaceMeta":
        """A copy with ``record`` added (replacing a mask of the same name)."""
        return replace(self, masks=tuple(m for m in self.masks if m.name != record.name) + (record,))

    def without_mask(self, name: str) -> "FaceMeta":
        return replace(self, masks=tuple(m for m in self.masks if m.name != name))


@dataclass(frozen=True)
class Face:
    """A decoded face file: uint8 RGB square image and its metadata."""

    image: np.ndarray
    meta: FaceMeta
    path: Path


# ---------------------------------------------------------------------------------------------------------------
# JSON document <-> dataclass


def meta_to_doc(meta: FaceMeta) -> dict[str, Any]:
    doc = asdict(meta)
    doc["masks"] = [
        {"name": m.name, "source": m.source, "matrix": m.matrix, "png": base64.b64encode(m.png).decode("ascii")}
        for m in meta.masks
    ]
    doc["extra"] = dict(meta.extra)
    return doc


def migrate(doc: dict[str, Any]) -> dict[str, Any]:
    """Upgrade a metadata document of any older schema version to :data:`SCHEMA_VERSION`.

    Version 0 stored only frame landmarks (``landmarks``) and no masks; the face landmarks follow from the matrix.
    """
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("schema_version is missing or not an integer")
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema version {version} is newer than this facelab understands ({SCHEMA_VERSION})")
    if version < 0:
        raise ValueError(f"schema version {version} is not a version")
    doc = dict(doc)
    if version == 0:
        lm = np.asarray(u.field(doc, "landmarks", u.points), np.float64)
        mat = np.asarray(u.field(doc, "matrix", u.matrix), np.float64)
        doc.pop("landmarks")
        doc["landmarks_frame"] = lm.tolist()
        doc["landmarks_face"] = (lm @ mat[:, :2].T + mat[:, 2]).tolist()
        doc.setdefault("masks", [])
        doc.setdefault("extra", {})
        doc["schema_version"] = version = 1
    return doc


def doc_to_meta(doc: Any) -> FaceMeta:
    """Validate a (migrated) document and build :class:`FaceMeta`; raises ``ValueError`` naming the bad field.

    Besides types and bounds this refuses what the geometry cannot use: landmarks without spread, landmarks the
    face fit fails on, and matrices that are not invertible.
    """
    if not isinstance(doc, dict):
        raise ValueError("metadata is not a JSON object")
    doc = migrate(doc)
    meta = FaceMeta(
        schema_version=SCHEMA_VERSION, source_frame=u.field(doc, "source_frame", u.string),
        frame_size=u.field(doc, "frame_size", u.frame_size), face_index=u.field(doc, "face_index", u.face_index),
        face_type=u.field(doc, "face_type", u.face_type), size=u.field(doc, "size", u.face_size),
        box=u.field(doc, "box", u.box), landmarks_frame=u.field(doc, "landmarks_frame", u.points),
        landmarks_face=u.field(doc, "landmarks_face", u.points), matrix=u.field(doc, "matrix", u.matrix),
        detector=u.field(doc, "detector", u.string), landmarks_backend=u.field(doc, "landmarks_backend", u.string),
        masks=u.field(doc, "masks", _masks), extra=u.field(doc, "extra", u.extra) if "extra" in doc else {},
    )
    u.named("landmarks_frame", u.fits, meta.landmarks_frame)
    u.named("landmarks_face", u.fits, meta.landmarks_face)
    return meta


def _masks(v: Any) -> tuple[MaskRecord, ...]:
    items = u.seq(v)
    if len(items) > MAX_MASKS:
        raise ValueError(f"{len(items)} masks, more than {MAX_MASKS}")
    out = []
    for m in items:
        if not isinstance(m, dict):
            raise ValueError("a mask is not a JSON object")
        name = u.field(m, "name", u.string)
        png = u.field(m, "png", u.b64)
        check_image_size(png, f"mask {name!r}", MAX_MASK_PIXELS)  # its pixels are decoded only when used
        out.append(MaskRecord(name, u.field(m, "source", u.string), u.field(m, "matrix", u.matrix), png))
    return tuple(out)


# ---------------------------------------------------------------------------------------------------------------
# containers


def _pack(meta: FaceMeta) -> bytes:
    return zlib.compress(json.dumps(meta_to_doc(meta), separators=(",", ":"), allow_nan=False).encode("utf-8"), 6)


def _unpack(blob: bytes) -> FaceMeta:
    if len(blob) > MAX_COMPRESSED:
        raise ValueError("metadata is larger than the limit")
    d = zlib.decompressobj()
    raw = d.decompress(blob, MAX_JSON)
    if d.unconsumed_tail:
        raise ValueError("metadata decompresses beyond the size limit")
    return doc_to_meta(u.parse_json(raw))


def _png_chunks(data: bytes):
    """Yield (type, start, end, body) for each chunk; raises ValueError on truncation."""
    if not data.startswith(_PNG_SIG):
        raise ValueError("not a PNG file")
    pos = len(_PNG_SIG)
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated PNG chunk header")
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise ValueError("truncated PNG chunk")
        yield ctype, pos, end, data[pos + 8:pos + 8 + length]
        pos = end
        if ctype == b"IEND":
            return
    raise ValueError("PNG has no IEND chunk")


def _png_strip(data: bytes) -> bytes:
    out = [data[:len(_PNG_SIG)]]
    for ctype, start, end, body in _png_chunks(data):
        if ctype == b"iTXt" and body.split(b"\x00", 1)[0] == PNG_KEYWORD:
            continue
        out.append(data[start:end])
    return b"".join(out)


def _png_embed(data: bytes, blob: bytes) -> bytes:
    data = _png_strip(data)
    body = PNG_KEYWORD + b"\x00\x00\x00" + b"\x00" + b"\x00" + blob  # flag 0 (we compress ourselves), no lang
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(">I", zlib.crc32(b"iTXt" + body))
    iend = data.rindex(b"IEND") - 4
    return data[:iend] + chunk + data[iend:]


def _png_extract(data: bytes) -> bytes | None:
    for ctype, _, _, body in _png_chunks(data):
        if ctype == b"iTXt" and body.split(b"\x00", 1)[0] == PNG_KEYWORD:
            head = len(PNG_KEYWORD) + 1
            rest = body[head + 2:]  # skip compression flag and method
            lang_end = rest.index(b"\x00")
            tk_end = rest.index(b"\x00", lang_end + 1)
            return rest[tk_end + 1:]
    return None


def _jpeg_segments(data: bytes):
    """Yield (marker, start, end, body) for header segments up to SOS; raises ValueError on truncation."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG file")
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            raise ValueError("malformed JPEG segment")
        marker = data[pos + 1] if pos + 1 < len(data) else None
        if marker is None:
            raise ValueError("truncated JPEG")
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: the rest is image data
            return
        if pos + 4 > len(data):
            raise ValueError("truncated JPEG segment header")
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise ValueError("truncated JPEG segment")
        yield marker, pos, end, data[pos + 4:end]
        pos = end
    raise ValueError("JPEG has no image data")


def _is_ours(marker: int, body: bytes) -> bool:
    return marker == JPEG_APP and body.startswith(JPEG_TAG)


def _jpeg_embed(data: bytes, blob: bytes) -> bytes:
    keep = bytearray(b"\xff\xd8")
    insert_at = None
    last = 2
    for marker, start, end, body in _jpeg_segments(data):
        if _is_ours(marker, body):
            last = end
            continue
        keep += data[start:end]
        if marker == 0xE0:  # after JFIF APP0
            insert_at = len(keep)
        last = end
    rest = data[last:]
    part = 65533 - len(JPEG_TAG) - 2
    pieces = [blob[i:i + part] for i in range(0, len(blob), part)] or [b""]
    if len(pieces) > 255:
        raise ValueError("metadata too large for a JPEG face file")
    segs = b"".join(
        b"\xff" + bytes([JPEG_APP]) + struct.pack(">H", len(JPEG_TAG) + 2 + len(p) + 2) + JPEG_TAG
        + bytes([i, len(pieces)]) + p
        for i, p in enumerate(pieces)
    )
    at = insert_at if insert_at is not None else 2
    return bytes(keep[:at]) + segs + bytes(keep[at:]) + rest


def _jpeg_extract(data: bytes) -> bytes | None:
    parts: dict[int, bytes] = {}
    total = None
    for marker, _, _, body in _jpeg_segments(data):
        if _is_ours(marker, body):
            idx, count = body[len(JPEG_TAG)], body[len(JPEG_TAG) + 1]
            if total is not None and count != total:
                raise ValueError("inconsistent metadata segments")
            total = count
            parts[idx] = body[len(JPEG_TAG) + 2:]
    if total is None:
        return None
    if sorted(parts) != list(range(total)):
        raise ValueError("metadata segments missing")
    return b"".join(parts[i] for i in range(total))


def _check_complete(data: bytes) -> None:
    """Refuse truncated files: a PNG must reach IEND, a JPEG must have its end-of-image marker after the scan."""
    if data.startswith(_PNG_SIG):
        for _ in _png_chunks(data):  # raises on a cut chunk or a missing IEND
            pass
        return
    scan = 2
    for _, _, end, _ in _jpeg_segments(data):
        scan = end
    # inside entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so FF D9 can only be the EOI
    if data.rfind(b"\xff\xd9") <= scan:
        raise ValueError("truncated JPEG (no end-of-image marker)")


def embed_meta(data: bytes, meta: FaceMeta, ext: str) -> bytes:
    """Return encoded image bytes ``data`` with ``meta`` embedded (replacing any earlier metadata)."""
    blob = _pack(meta)
    return _png_embed(data, blob) if ext.lower() == ".png" else _jpeg_embed(data, blob)


def extract_meta(data: bytes, name: str = "<bytes>") -> FaceMeta:
    """Parse the metadata embedded in face file bytes; :class:`FaceFileError` naming ``name`` when impossible."""
    try:
        if data.startswith(_PNG_SIG):
            blob = _png_extract(data)
        elif data.startswith(b"\xff\xd8"):
            blob = _jpeg_extract(data)
        else:
            raise ValueError("neither a PNG nor a JPEG file")
        if blob is None:
            raise ValueError("no facelab metadata (not an aligned face file; re-run `extract`)")
        _check_complete(data)
        return _unpack(blob)
    except (ValueError, zlib.error, UnicodeDecodeError, IndexError, struct.error) as exc:
        raise FaceFileError(f"{name}: not a valid face file: {' '.join(str(exc).split())}") from exc


# ---------------------------------------------------------------------------------------------------------------
# files


def _read_bytes(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise FaceFileError(f"{path}: not a valid face file: larger than {MAX_FILE_BYTES >> 20} MB; remove it")
        return path.read_bytes()
    except OSError as exc:
        raise FaceFileError(f"cannot read face file {path}: {exc.strerror}") from exc


def write_face(path: str | os.PathLike, image: np.ndarray, meta: FaceMeta, quality: int = 95) -> None:
    """Write a face file atomically: uint8 RGB square ``image`` as JPEG or PNG (by suffix) with ``meta``."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in FACE_EXTS:
        raise ValueError(f"face files are .jpg or .png, not {path.name}")
    if image.ndim != 3 or image.shape[0] != image.shape[1]:
        raise ValueError(f"face image must be square RGB, got {image.shape}")
    atomic_write_bytes(path, embed_meta(encode_image(image, ext, quality), meta, ext))


def read_meta(path: str | os.PathLike) -> FaceMeta:
    """Read only the metadata of a face file (no pixel decoding)."""
    path = Path(path)
    return extract_meta(_read_bytes(path), str(path))


def read_face(path: str | os.PathLike) -> Face:
    """Read a face file: decoded pixels plus metadata."""
    path = Path(path)
    data = _read_bytes(path)
    meta = extract_meta(data, str(path))
    try:
        width, height = check_image_size(data, str(path), MAX_FACE_SIZE * MAX_FACE_SIZE)
        if (width, height) != (meta.size, meta.size):
            raise FacelabError(f"{path}: image is {width}x{height} pixels but its metadata says {meta.size}x"
                               f"{meta.size}; re-run extract or remove it")
        image = decode_image(data, str(path), max_pixels=meta.size * meta.size)
        if image.shape[:2] != (meta.size, meta.size):
            raise FacelabError(f"{path}: image decodes to {image.shape[1]}x{image.shape[0]} pixels but its "
                               f"metadata says {meta.size}x{meta.size}; re-run extract or remove it")
    except FacelabError as exc:  # keep the face-file error type so stages skip and count it
        raise FaceFileError(str(exc)) from exc
    return Face(image, meta, path)


def update_meta(path: str | os.PathLike, meta: FaceMeta) -> None:
    """Rewrite a face file's metadata in place, atomically, without re-encoding its pixels."""
    path = Path(path)
    data = _read_bytes(path)
    extract_meta(data, str(path))  # refuse to touch files that are not face files
    atomic_write_bytes(path, embed_meta(data, meta, path.suffix.lower()))


def list_faces(folder: str | os.PathLike) -> list[Path]:
    """Face file candidates in ``folder`` (by suffix, sorted; temporary files skipped)."""
    from facelab.workspace.images import list_images

    return [p for p in list_images(folder) if p.suffix.lower() in FACE_EXTS]


def readable(paths: Iterable[Path], reader: Callable[[Path], T]) -> Iterator[tuple[Path, T]]:
    """``(path, reader(path))`` for every path that reads as a face file (``read_meta`` or ``read_face``); the
    others are logged and skipped, as every stage treats a corrupt or foreign file in ``aligned/``."""
    for path in paths:
        try:
            yield path, reader(path)
        except FaceFileError as exc:
            log.warning("skipped %s", exc)
