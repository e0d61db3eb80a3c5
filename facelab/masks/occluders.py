"""Synthetic occluders cut from real images and pasted onto aligned faces at known places.

Images are float32 HWC RGB in [0,1]; masks float32 HW in {0,1}. An occluder is a random shape (hand-like palm with
fingers, bar, blob, ellipse) textured with a random crop of a source image, entering the face from a border so it
covers part of the landmark hull, as hands, microphones and hair do.
"""

from __future__ import annotations

import cv2
import numpy as np


def background_crops(frame: np.ndarray, face_box: tuple[float, float, float, float], size: int,
                     rng: np.random.Generator, count: int = 4) -> list[np.ndarray]:
    """Up to ``count`` square crops of ``frame`` (HWC) not overlapping ``face_box`` (x0,y0,x1,y1), as sources."""
    h, w = frame.shape[:2]
    side = int(min(h, w) * 0.35)
    out = []
    for _ in range(count * 10):
        if len(out) >= count or side < 8:
            break
        x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        x0, y0, x1, y1 = face_box
        if x + side < x0 or x > x1 or y + side < y0 or y > y1:
            out.append(cv2.resize(frame[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA))
    return out


def package_textures() -> list[np.ndarray]:
    """Training occluder textures that ship with scikit-image, float32 HWC [0,1] (grey ones as RGB). The
    occlusion benchmark tests on other images (immunohistochemistry, retina, hubble, coins, camera)."""
    from skimage import data

    out = []
    for name in ("coffee", "chelsea", "rocket", "colorwheel", "brick", "grass", "gravel", "moon", "page", "clock"):
        im = getattr(data, name)()
        im = np.repeat(im[:, :, None], 3, 2) if im.ndim == 2 else im[:, :, :3]
        out.append(im.astype(np.float32) / 255.0)
    return out


def skin_patches(faces: np.ndarray, hulls: np.ndarray, rng: np.random.Generator, count: int = 32) -> list[np.ndarray]:
    """Square patches cut from inside the hulls of faces (N,S,S,3): skin textures for hand-like occluders."""
    out = []
    s = faces.shape[1]
    side = max(4, s // 5)
    for _ in range(count * 4):
        if len(out) >= count:
            break
        i = int(rng.integers(0, len(faces)))
        inner = cv2.erode(hulls[i].astype(np.uint8), np.ones((side, side), np.uint8))
        ys, xs = np.nonzero(inner)
        if len(ys):
            j = int(rng.integers(0, len(ys)))
            y, x = ys[j] - side // 2, xs[j] - side // 2
            out.append(np.ascontiguousarray(faces[i, y:y + side, x:x + side]))
    return out


def _shape_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random occluder silhouette on a ``size`` canvas, centred, uint8 {0,1}."""
    m = np.zeros((size, size), np.uint8)
    c = size // 2
    kind = int(rng.integers(0, 4))
    if kind == 0:  # hand: palm plus fingers
        pw, ph = int(size * rng.uniform(0.22, 0.3)), int(size * rng.uniform(0.25, 0.32))
        cv2.ellipse(m, (c, c + ph // 3), (pw, ph), 0, 0, 360, 1, -1)
        for i in range(4):
            fx = c - pw + int((i + 0.5) * 2 * pw / 4)
            cv2.line(m, (fx, c), (fx + int(rng.integers(-4, 5)), c - int(size * rng.uniform(0.3, 0.45))), 1,
                     max(2, int(size * 0.07)))
    elif kind == 1:  # bar (microphone, pen, strand)
        t = max(3, int(size * rng.uniform(0.1, 0.22)))
        cv2.line(m, (c - size // 2, c), (c + size // 2, c), 1, t)
    elif kind == 2:  # irregular blob
        ang = np.sort(rng.uniform(0, 2 * np.pi, 9))
        rad = size * rng.uniform(0.18, 0.4, 9)
        pts = np.stack([c + rad * np.cos(ang), c + rad * np.sin(ang)], 1).astype(np.int32)
        cv2.fillPoly(m, [pts], 1)
    else:
        cv2.ellipse(m, (c, c), (int(size * rng.uniform(0.2, 0.4)), int(size * rng.uniform(0.12, 0.3))), 0, 0, 360,
                    1, -1)
    rot = cv2.getRotationMatrix2D((c, c), float(rng.uniform(0, 360)), 1.0)
    return cv2.warpAffine(m, rot, (size, size), flags=cv2.INTER_NEAREST)


def _texture(rng: np.random.Generator, source: np.ndarray, size: int) -> np.ndarray:
    h, w = source.shape[:2]
    side = int(min(h, w) * rng.uniform(0.2, 0.6))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    tex = cv2.resize(source[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_AREA)
    if tex.ndim == 2:
        tex = np.repeat(tex[:, :, None], 3, 2)
    tex = tex.astype(np.float32)
    if rng.random() < 0.25:  # grey, permuted channels, darker or brighter: occluders of any colour
        tex = np.repeat(tex.mean(2, keepdims=True), 3, 2)
    elif rng.random() < 0.3:
        tex = tex[:, :, rng.permutation(3)]
    return tex * np.float32(rng.uniform(0.4, 1.3))


def paste_occluder(face: np.ndarray, hull: np.ndarray, sources: list[np.ndarray], rng: np.random.Generator,
                   cover: tuple[float, float] = (0.1, 0.45)) -> tuple[np.ndarray, np.ndarray]:
    """Paste one occluder onto ``face`` (S,S,3) so it covers a share of ``hull`` (S,S) within ``cover``.

    Returns the occluded image and the occluder mask (S,S) {0,1}. Sources are float32 HWC in [0,1].
    """
    s = face.shape[0]
    ys, xs = np.nonzero(hull > 0.5)
    hull_area = max(1, len(ys))
    best = None
    for _ in range(12):
        osz = int(s * rng.uniform(0.45, 0.9))
        shape = _shape_mask(rng, osz)
        i = int(rng.integers(0, len(ys)))
        cx, cy = xs[i] + int(rng.integers(-osz // 4, osz // 4 + 1)), ys[i] + int(rng.integers(-osz // 4, osz // 4 + 1))
        full = np.zeros((s, s), np.uint8)
        _blit(full, shape, cx - osz // 2, cy - osz // 2)
        share = float((full & (hull > 0.5)).sum()) / hull_area
        if cover[0] <= share <= cover[1]:
            best = (full, osz, cx, cy)
            break
    if best is None:
        return face.copy(), np.zeros((s, s), np.float32)
    full, osz, cx, cy = best
    tex = np.zeros((s, s, 3), np.float32)
    src = sources[int(rng.integers(0, len(sources)))]
    tile = _texture(rng, src, osz)
    canvas = np.zeros((s, s, 3), np.float32)
    _blit(canvas, tile, cx - osz // 2, cy - osz // 2)
    tex[:] = canvas
    alpha = (cv2.GaussianBlur(full.astype(np.float32), (3, 3), 0.6) * full)[:, :, None]  # soft inside only
    out = face * (1 - alpha) + np.clip(tex, 0, 1) * alpha
    return out.astype(np.float32), full.astype(np.float32)


def _blit(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> None:
    """Copy ``src`` into ``dst`` at top-left (x, y), clipped to ``dst``."""
    h, w = src.shape[:2]
    H, W = dst.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 > x0 and y1 > y0:
        dst[y0:y1, x0:x1] = src[y0 - y:y1 - y, x0 - x:x1 - x]
