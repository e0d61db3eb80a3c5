"""Image read/write at the OpenCV edge. Arrays are uint8 HWC RGB (or HW grey); BGR never leaves this module.

Paths go through ``np.fromfile`` / ``tofile`` so unicode names work everywhere; every failure raises
:class:`FacelabError` naming the file. Writes are atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from facelab.errors import FacelabError
from facelab.utils.atomic import TMP_PREFIX, atomic_write_bytes

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; temporary files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(TMP_PREFIX)
    )


def decode_image(data: bytes, name: str = "<bytes>", grey: bool = False) -> np.ndarray:
    """Decode image bytes to uint8 RGB (HWC) or grey (HW)."""
    buf = np.frombuffer(data, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise FacelabError(f"{name} is not a readable image (corrupt or unsupported format); replace or remove it")
    return img if grey else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike, grey: bool = False) -> np.ndarray:
    """Read an image file to uint8 RGB (HWC), or grey (HW) when ``grey``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FacelabError(f"cannot read {path}: {exc.strerror}") from exc
    return decode_image(data, str(path), grey)


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
