"""Training augmentation, DeepFaceLab's SampleProcessor: random affine, random warp (v1), flips, random HSV.

Pure functions over float32 HWC RGB images in [0, 1] (masks HW float32 in [0, 1]) at the model resolution R.
Every random choice is drawn from an explicit ``np.random.Generator``; one :class:`SampleParams` is drawn per
sample and applied to all of its outputs, the random warp only to the network input.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WARP_JITTER = 0.24  # std of the control-point jitter, in cells
CELL_DIVISORS = (2, 4, 8)  # cell = R / divisor, picked at random per sample


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random affine; DeepFaceLab's SAEHD values."""

    rotation: float = 10.0  # degrees, U(-rotation, rotation)
    scale: float = 0.15  # scale factor U(1 / (1 + scale), 1 + scale)
    shift: float = 0.05  # translation U(-shift, shift) * R on each axis
    flip_prob: float = 0.4


@dataclass(frozen=True, eq=False)
class SampleParams:
    """Random parameters of one sample: (2, 3) affine, flip, and the dense warp field (R, R) float32 or None."""

    affine: np.ndarray
    flip: bool
    mapx: np.ndarray | None
    mapy: np.ndarray | None


def affine_matrix(res: int, angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    """(2, 3) float64: rotate by ``angle_deg`` (counter-clockwise on screen) and scale about the image centre, then
    translate by (tx, ty) pixels. Same convention as ``cv2.getRotationMatrix2D`` with centre (R-1)/2."""
    c = (res - 1) / 2.0
    mat = cv2.getRotationMatrix2D((c, c), float(angle_deg), float(scale))
    mat[:, 2] += (tx, ty)
    return mat


def random_affine(rng: np.random.Generator, res: int, cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Draw the random affine of one sample: rotation, scale, translation (as :func:`affine_matrix`)."""
    angle = rng.uniform(-cfg.rotation, cfg.rotation)
    scale = rng.uniform(1.0 / (1.0 + cfg.scale), 1.0 + cfg.scale)
    tx, ty = rng.uniform(-cfg.shift, cfg.shift, size=2) * res
    return affine_matrix(res, angle, scale, tx, ty)


def warp_field(offsets_x: np.ndarray, offsets_y: np.ndarray, res: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense remap field (mapx, mapy), each (R, R) float32, from jitter offsets of a coarse control grid.

    ``offsets_*`` are (n, n) pixel offsets of the grid points (n = R / cell + 1, spaced one cell apart over the
    image; border points should be 0). The grid is upsampled with ``cv2.resize`` (bilinear) exactly as DeepFaceLab
    does, but centred on pixel centres, so zero offsets give the identity map.
    """
    n = offsets_x.shape[0]
    if offsets_x.shape != (n, n) or offsets_y.shape != (n, n) or n < 2 or res % (n - 1):
        raise ValueError(f"offsets must be (n, n) with R divisible by n - 1, got {offsets_x.shape} for R={res}")
    cell = res // (n - 1)
    half = cell // 2
    grid = np.linspace(0.0, float(res), n) - 0.5 * (1 - cell % 2)  # pixel-centre convention
    gx = np.broadcast_to(grid, (n, n)) + offsets_x
    gy = np.broadcast_to(grid[:, None], (n, n)) + offsets_y
    size = (res + cell, res + cell)
    mapx = cv2.resize(gx.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)[half:half + res, half:half + res]
    mapy = cv2.resize(gy.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)[half:half + res, half:half + res]
    return np.ascontiguousarray(mapx), np.ascontiguousarray(mapy)


def random_warp_field(rng: np.random.Generator, res: int) -> tuple[np.ndarray, np.ndarray]:
    """DeepFaceLab's random warp v1: cell = R/2, R/4 or R/8; interior control points jittered by
    N(0, (0.24 cell)^2); returns the dense (mapx, mapy) of :func:`warp_field`."""
    cell = res // CELL_DIVISORS[int(rng.integers(len(CELL_DIVISORS)))]
    n = res // cell + 1
    ox, oy = np.zeros((n, n)), np.zeros((n, n))
    ox[1:-1, 1:-1] = rng.normal(size=(n - 2, n - 2)) * (cell * WARP_JITTER)
    oy[1:-1, 1:-1] = rng.normal(size=(n - 2, n - 2)) * (cell * WARP_JITTER)
    return warp_field(ox, oy, res)


def random_params(rng: np.random.Generator, res: int, flip: bool, warp: bool,
                  cfg: AugmentConfig = AugmentConfig()) -> SampleParams:
    """Draw every random parameter of one sample (flip only when ``flip`` is enabled for the side)."""
    affine = random_affine(rng, res, cfg)
    do_flip = bool(flip and rng.random() < cfg.flip_prob)
    mapx, mapy = random_warp_field(rng, res) if warp else (None, None)
    return SampleParams(affine, do_flip, mapx, mapy)


def compose_warp_affine(mapx: np.ndarray, mapy: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One remap field equal to "remap by (mapx, mapy), then warpAffine by ``affine``" (R, R float32 each).

    Output pixel p samples the warp field at q = affine^-1 p (the field is smooth, so bilinear sampling of its
    offsets is exact to float precision; outside the image the warp is the identity). One cubic interpolation of the
    image instead of two.
    """
    res = mapx.shape[0]
    inv = cv2.invertAffineTransform(np.asarray(affine, np.float64))
    ys, xs = np.mgrid[0:res, 0:res].astype(np.float64)
    qx = (inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]).astype(np.float32)
    qy = (inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]).astype(np.float32)
    base = np.arange(res, dtype=np.float32)
    dx = cv2.remap(mapx - base[None, :], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    dy = cv2.remap(mapy - base[:, None], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return qx + dx, qy + dy


def apply_params(img: np.ndarray, params: SampleParams, warp: bool, is_mask: bool = False) -> np.ndarray:
    """Apply one sample's augmentation to ``img`` (HWC image or HW mask at R x R): the warp (when ``warp`` and
    the params have one) and the affine, then the flip. Images: cubic, border replicate; masks: linear, border
    constant 0. Output float32 clipped to [0, 1]."""
    res = img.shape[0]
    interp = cv2.INTER_LINEAR if is_mask else cv2.INTER_CUBIC
    border = cv2.BORDER_CONSTANT if is_mask else cv2.BORDER_REPLICATE
    src = np.ascontiguousarray(img, np.float32)
    if warp and params.mapx is not None:
        fx, fy = compose_warp_affine(params.mapx, params.mapy, params.affine)
        out = cv2.remap(src, fx, fy, interp, borderMode=border, borderValue=0)
    else:
        out = cv2.warpAffine(src, np.asarray(params.affine, np.float64), (res, res), flags=interp,
                             borderMode=border, borderValue=0)
    if params.flip:
        out = out[:, ::-1]
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def random_hsv(img: np.ndarray, rng: np.random.Generator, power: float) -> np.ndarray:
    """DeepFaceLab's random HSV shift of power a: hue +- 360*a/2 degrees (integer), S and V +- a/2. RGB in/out."""
    if power <= 0:
        return img
    h_amount = max(1, int(360 * power * 0.5))
    hsv = cv2.cvtColor(np.ascontiguousarray(img, np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.integers(-h_amount, h_amount + 1)) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] + (rng.random() - 0.5) * power, 0.0, 1.0)
    hsv[..., 2] = np.clip(hsv[..., 2] + (rng.random() - 0.5) * power, 0.0, 1.0)
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)


def yaw_bins(yaws: np.ndarray, n_bins: int = 128, lo: float = -1.2, hi: float = 1.2) -> list[np.ndarray]:
    """Indices of the faces in each non-empty yaw bin (``n_bins`` equal bins over [lo, hi]; the outer bins also
    take everything beyond)."""
    yaws = np.asarray(yaws, np.float64)
    ids = np.clip(np.floor((yaws - lo) / (hi - lo) * n_bins), 0, n_bins - 1).astype(np.int64)
    return [np.flatnonzero(ids == b) for b in range(n_bins) if np.any(ids == b)]

