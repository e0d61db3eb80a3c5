"""Image read/write at the OpenCV edge. Arrays are uint8 HWC RGB (or HW grey); BGR never leaves this module.

Paths go through ``np.fromfile`` / ``tofile`` so unicode names work everywhere; every failure raises
:class:`FacelabError` naming the file. Writes are atomic.

Every decode goes through one guard, :func:`check_image_size`: the pixel size an image declares in its header is
read before any pixel is decoded, and an image above the limit (or in a format whose header is not understood) is
refused, so a small hostile file can never make the decoder allocate gigabytes.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import cv2
import numpy as np

from facelab.errors import FacelabError
from facelab.utils.atomic import TMP_PREFIX, atomic_write_bytes

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # frames: 64 megapixels, twice 8K UHD
MAX_IMAGE_BYTES = 512 << 20  # an image file larger than this is not read at all
FORMATS = "PNG, JPEG, BMP, WebP, TIFF, PNM/PAM/PFM or Sun raster"

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (C4 DHT, C8 JPG and CC DAC are not frames)
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length
_PNM_HEADER = re.compile(rb"(P[1-6]|P[Ff])((?:\s+|#[^\n]*\n)+)(\d{1,10})((?:\s+|#[^\n]*\n)+)(\d{1,10})\s")
_PAM_FIELD = re.compile(rb"^(WIDTH|HEIGHT)\s+(\d{1,10})\s*$", re.M)


# ---------------------------------------------------------------------------------------------------------------
# declared size, read from the header only


def _png_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Size of the first frame header (SOFn) before the scan; segment bodies (EXIF thumbnails) are skipped."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # a second SOI, EOI or the scan before any frame header
            return None
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in _JPEG_SOF:
            if length < 7 or pos + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:  # OS/2 core header
        return struct.unpack("<HH", data[18:22])
    width, height = struct.unpack("<ii", data[18:26])
    return abs(width), abs(height)


def _webp_size(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """ImageWidth and ImageLength of the first directory (the page OpenCV decodes); classic TIFF and BigTIFF."""
    end = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(end + "H", data[2:4])[0] == 43
    head, count_fmt, entry_fmt, entry_len = (16, "Q", "HHQ8s", 20) if big else (8, "H", "HHI4s", 12)
    if len(data) < head:
        return None
    (ifd,) = struct.unpack(end + ("Q" if big else "I"), data[head - 8:head] if big else data[4:8])
    count_len = struct.calcsize(count_fmt)
    if ifd + count_len > len(data):
        return None
    (count,) = struct.unpack(end + count_fmt, data[ifd:ifd + count_len])
    found: dict[int, int] = {}
    for i in range(min(count, 4096)):
        at = ifd + count_len + i * entry_len
        if at + entry_len > len(data):
            break
        tag, kind, _, value = struct.unpack(end + entry_fmt, data[at:at + entry_len])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8, stored inline
            fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
            if fmt is None:
                return None
            found[tag] = struct.unpack(end + fmt, value[:struct.calcsize(fmt)])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    head = data[:4096]
    if head.startswith(b"P7"):
        fields = dict(_PAM_FIELD.findall(head.split(b"ENDHDR", 1)[0]))
        return (int(fields[b"WIDTH"]), int(fields[b"HEIGHT"])) if len(fields) == 2 else None
    m = _PNM_HEADER.match(head)
    return (int(m.group(3)), int(m.group(5))) if m else None


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` that encoded image ``data`` declares in its header, without decoding any pixel;
    ``None`` when the format is not one of :data:`FORMATS` or the header is cut or malformed."""
    try:
        if data.startswith(_PNG_SIG):
            return _png_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data.startswith(b"BM"):
            return _bmp_size(data)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff_size(data)
        if data[:1] == b"P" and data[1:2] in b"1234567Ff":
            return _pnm_size(data)
        if data.startswith(b"\x59\xa6\x6a\x95") and len(data) >= 12:  # Sun raster
            return struct.unpack(">II", data[4:12])
    except (struct.error, ValueError, KeyError):
        return None
    return None


def check_image_size(data: bytes, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """The guard before every decode: the declared ``(width, height)`` of ``data``, or :class:`FacelabError`
    naming ``name`` when the header is not understood, declares no pixels, or more than ``max_pixels``."""
    size = image_size(data)
    if size is None:
        raise FacelabError(f"{name}: not a readable image (corrupt, or not {FORMATS}); replace or remove it")
    width, height = size
    if width <= 0 or height <= 0:
        raise FacelabError(f"{name}: image header declares {width}x{height} pixels; replace or remove it")
    if width * height > max_pixels:
        raise FacelabError(f"{name}: image declares {width}x{height} pixels ({width * height / 1e6:.1f} MP), above "
                           f"the limit of {max_pixels / 1e6:.1f} MP; downscale it or remove it")
    return width, height


# ---------------------------------------------------------------------------------------------------------------
# files


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; temporary files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(TMP_PREFIX)
    )


def decode_image(data: bytes, name: str = "<bytes>", grey: bool = False,
                 max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Decode image bytes to uint8 RGB (HWC) or grey (HW); refused before decoding when the header declares more
    than ``max_pixels`` (see :func:`check_image_size`)."""
    check_image_size(data, name, max_pixels)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise FacelabError(f"{name}: image does not decode ({' '.join(str(exc).split())[-120:]}); replace or "
                           "remove it") from exc
    if img is None or img.shape[0] * img.shape[1] > max_pixels:
        raise FacelabError(f"{name} is not a readable image (corrupt or unsupported format); replace or remove it")
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: no second full-size copy


def read_image(path: str | os.PathLike, grey: bool = False, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file to uint8 RGB (HWC), or grey (HW) when ``grey``; at most ``max_pixels`` pixels."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise FacelabError(f"{path}: image file is larger than {MAX_IMAGE_BYTES >> 20} MB; downscale or remove it")
        data = path.read_bytes()
    except OSError as exc:
        raise FacelabError(f"cannot read {path}: {exc.strerror}") from exc
    return decode_image(data, str(path), grey, max_pixels)


def encode_image(img: np.ndarray, ext: str, quality: int = 95) -> bytes:
    """Encode uint8 RGB/grey ``img`` as ``ext`` ('.png' or '.jpg' ...) bytes."""
    if img.dtype != np.uint8:
        raise ValueError(f"encode_image expects uint8, got {img.dtype}")
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(ext, bgr, params)
    if not ok:
        raise FacelabError(f"cannot encode image as {ext}")
    return buf.tobytes()


def write_image(path: str | os.PathLike, img: np.ndarray, quality: int = 95) -> None:
    """Write uint8 RGB/grey ``img`` atomically; the format follows the suffix."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(img, path.suffix or ".png", quality))


def to_float(img: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]."""
    return img.astype(np.float32) / 255.0


def to_uint8(img: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> uint8 (rounded, clipped)."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
