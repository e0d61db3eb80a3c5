"""Colour transfer: recolour ``target`` toward the colour statistics of ``source``.

Pure functions over float32 HWC RGB images in [0, 1]. At merge the predicted face is the target and the destination
crop the source; in training (``--ct-mode``) a src sample is the target and a random dst sample the source.

Every registered function has the signature
``fn(target, source, target_mask=None, source_mask=None, *, rng=None, mask_stats="inside")`` and returns a float32
image of ``target``'s shape in [0, 1]. Masks are HW or HW1 floats. ``lct``, ``mkl``, ``idt`` and ``sot`` use whole
images; ``rct`` and the ``-m`` variants use the masks when given, in one of two ways (``mask_stats``):

- ``inside``: statistics of the pixels whose mask is > 0.5 only; the resulting map is applied to every target pixel.
- ``zeros`` (DeepFaceLab's merge): pixels whose mask is < 0.5 are set to 0 and still counted. ``rct`` takes the Lab
  mean/std of the zeroed Lab images and maps the whole target; the ``-m`` variants are their whole-image transfer
  of ``target * mask`` toward ``source * mask`` (so target pixels outside the mask come out as the image of 0).

``source_mask`` defaults to ``target_mask`` when the images are the same size. Source and target may differ in size.
The random methods (idt, sot) draw from ``rng`` (default: a generator seeded with 0, so results are reproducible).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
from scipy.stats import special_ortho_group

from facelab.utils.registry import Registry

log = logging.getLogger(__name__)

COLOR_TRANSFERS: Registry[np.ndarray] = Registry("colour transfer")

MASK_CUTOFF = 0.5
MASK_STATS = ("inside", "zeros")
LAB_LO = np.array([0.0, -127.0, -127.0])
LAB_HI = np.array([100.0, 127.0, 127.0])
_MIN_PIXELS = 2
_MIX_L = 100.0 * 100.0 / 255.0  # mix-m renders chroma at DeepFaceLab's 8-bit L = 100, a mid lightness in gamut


# ---------------------------------------------------------------------------------------------------------------
# input checks and pixel selection


def _check_image(img: np.ndarray, name: str) -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"{name} must be an HxWx3 image, got {getattr(img, 'shape', type(img).__name__)}")
    if not np.issubdtype(img.dtype, np.floating):
        raise ValueError(f"{name} must be float in [0, 1], got {img.dtype}")


def _check_mask(mask: np.ndarray | None, img: np.ndarray, name: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != img.shape[:2]:
        raise ValueError(f"{name} must be HxW or HxWx1 matching its image {img.shape[:2]}, got {np.shape(mask)}")
    return m


def _checked(target, source, target_mask, source_mask):
    """Validate inputs; returns (target, source, target_mask HW|None, source_mask HW|None)."""
    _check_image(target, "target")
    _check_image(source, "source")
    return target, source, _check_mask(target_mask, target, "target_mask"), _check_mask(source_mask, source,
                                                                                         "source_mask")


def _same_grid(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape[:2] == b.shape[:2]


def _default_source_mask(target, source, target_mask, source_mask):
    if source_mask is None and target_mask is not None and _same_grid(target, source):
        return target_mask
    return source_mask


def _check_stats(mask_stats: str) -> None:
    if mask_stats not in MASK_STATS:
        raise ValueError(f"mask_stats must be one of {', '.join(MASK_STATS)}, got {mask_stats!r}")


def _zeroed(img: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``img`` (HWC) with the pixels whose mask is < 0.5 set to 0 (DeepFaceLab's masked statistics)."""
    if mask is None:
        return img
    return np.where((mask >= MASK_CUTOFF)[..., None], img, 0).astype(img.dtype)


def _masked(target, source, target_mask, source_mask, mask_stats):
    """Inputs of a ``-m`` transfer: (target, source, target_mask, source_mask) with the source mask defaulted; for
    ``zeros`` the images with out-of-mask pixels zeroed and no masks left."""
    _check_stats(mask_stats)
    source_mask = _default_source_mask(target, source, target_mask, source_mask)
    if mask_stats == "zeros":
        return _zeroed(target, target_mask), _zeroed(source, source_mask), None, None
    return target, source, target_mask, source_mask


def _select(pixels: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Rows of ``pixels`` (N, C) whose mask is > 0.5; all rows when there is no mask or too few masked pixels."""
    if mask is None:
        return pixels
    keep = mask.reshape(-1) > MASK_CUTOFF
    if int(keep.sum()) < _MIN_PIXELS:
        log.debug("mask has fewer than %d pixels; using the whole image", _MIN_PIXELS)
        return pixels
    return pixels[keep]


def _flat(img: np.ndarray) -> np.ndarray:
    return img.reshape(-1, img.shape[-1]).astype(np.float64)


def _finish(flat: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(flat.reshape(shape), 0.0, 1.0).astype(np.float32)


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------------------------
# statistics helpers


# sRGB (D65) <-> CIE L*a*b*, exact in float64 (OpenCV's float path uses approximations that shift the mean by ~0.1)
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                          [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]])
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0


def rgb_to_lab(img: np.ndarray) -> np.ndarray:
    """float RGB (sRGB, [0, 1], ...x3) -> float64 CIE L*a*b* (D65; L in [0, 100], a, b about [-127, 127])."""
    c = np.asarray(img, np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((np.maximum(c, 0.04045) + 0.055) / 1.055) ** 2.4)
    xyz = (lin @ _XYZ_FROM_RGB.T) / _WHITE
    f = np.where(xyz > _DELTA ** 3, np.cbrt(xyz), xyz / (3 * _DELTA ** 2) + 4.0 / 29.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
                    axis=-1)


def lab_to_rgb(lab: np.ndarray, clip: bool = True) -> np.ndarray:
    """CIE L*a*b* (D65, ...x3) -> float64 sRGB, clipped to [0, 1] unless ``clip`` is False."""
    lab = np.asarray(lab, np.float64)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([fy + lab[..., 1] / 500.0, fy, fy - lab[..., 2] / 200.0], axis=-1)
    xyz = np.where(f > _DELTA, f ** 3, 3 * _DELTA ** 2 * (f - 4.0 / 29.0)) * _WHITE
    lin = xyz @ _RGB_FROM_XYZ.T
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * np.maximum(lin, 0.0031308) ** (1 / 2.4) - 0.055)
    return np.clip(c, 0.0, 1.0) if clip else c


def transfer_stats(img: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel L*a*b* mean and standard deviation (each (3,) float64) of ``img`` inside ``mask``.

    These are the statistics ``rct`` matches; merge can smooth them over neighbouring frames and call
    :func:`rct_from_stats`.
    """
    _check_image(img, "image")
    return _lab_stats(rgb_to_lab(img), _check_mask(mask, img, "mask"))


def _lab_stats(lab: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    px = _select(lab.reshape(-1, 3), mask)
    return px.mean(axis=0), px.std(axis=0)


def _zero_filled_stats(lab: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of ``lab`` with the pixels whose mask is < 0.5 counted as zeros, from the pixels inside alone:
    with a share f of pixels inside, mean = f mu_in and var = f (var_in + mu_in^2) - mean^2. Fewer than two pixels
    inside: the whole image."""
    px = lab.reshape(-1, 3)
    keep = None if mask is None else mask.reshape(-1) >= MASK_CUTOFF
    if keep is None or int(keep.sum()) < _MIN_PIXELS:
        return px.mean(axis=0), px.std(axis=0)
    inside = px[keep]
    share = len(inside) / len(px)
    mu_in = inside.mean(axis=0)
    mean = share * mu_in
    var = share * (inside.var(axis=0) + mu_in ** 2) - mean ** 2
    return mean, np.sqrt(np.maximum(var, 0.0))


def _rct_lab(lab: np.ndarray, target_stats, source_stats) -> np.ndarray:
    (mt, st), (ms, ss) = target_stats, source_stats
    out = (lab - mt) * (np.asarray(ss) / np.maximum(np.asarray(st), 1e-6)) + ms
    return lab_to_rgb(np.clip(out, LAB_LO, LAB_HI)).astype(np.float32)


def rct_from_stats(target: np.ndarray, target_stats: tuple[np.ndarray, np.ndarray],
                   source_stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Reinhard transfer with given Lab statistics: x' = (x - mu_t) * sd_s / sd_t + mu_s per channel, clipped."""
    _check_image(target, "target")
    return _rct_lab(rgb_to_lab(target), target_stats, source_stats)


def _cov(px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = px.mean(axis=0)
    d = px - mu
    return mu, (d.T @ d) / max(len(px), 1)


def _sqrtm_sym(c: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Symmetric square root (or inverse square root) of a symmetric PSD matrix via eigen-decomposition."""
    w, v = np.linalg.eigh(c)
    w = np.sqrt(np.clip(w, np.finfo(np.float64).eps, None))
    return (v / w) @ v.T if inverse else (v * w) @ v.T


# ---------------------------------------------------------------------------------------------------------------
# linear maps


def lct_matrix(c_target: np.ndarray, c_source: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """Linear colour transfer (PCA form): A = C_s^1/2 C_t^-1/2 with eps*I added to both covariances."""
    eye = np.eye(len(c_target))
    return _sqrtm_sym(c_source + eps * eye) @ _sqrtm_sym(c_target + eps * eye, inverse=True)


def mkl_matrix(c_target: np.ndarray, c_source: np.ndarray) -> np.ndarray:
    """Monge-Kantorovich linear map T = C_t^-1/2 (C_t^1/2 C_s C_t^1/2)^1/2 C_t^-1/2 (symmetric; T C_t T = C_s)."""
    half = _sqrtm_sym(c_target)
    inv_half = _sqrtm_sym(c_target, inverse=True)
    return inv_half @ _sqrtm_sym(half @ c_source @ half) @ inv_half


def _linear_transfer(target, source, target_mask, source_mask, matrix_fn) -> np.ndarray:
    t, s = _flat(target), _flat(source)
    mu_t, c_t = _cov(_select(t, target_mask))
    mu_s, c_s = _cov(_select(s, source_mask))
    a = matrix_fn(c_t, c_s)
    return _finish((t - mu_t) @ a.T + mu_s, target.shape)


# ---------------------------------------------------------------------------------------------------------------
# distribution transfers


def _uniform_lookup(values: np.ndarray, lo: float, step: float, table: np.ndarray) -> np.ndarray:
    """Piecewise-linear lookup of ``table`` sampled at lo, lo + step, ... (clamped at both ends), in O(n)."""
    pos = np.clip((values - lo) / step, 0.0, len(table) - 1.0)
    i = np.minimum(pos.astype(np.int64), len(table) - 2)
    frac = pos - i
    return table[i] * (1.0 - frac) + table[i + 1] * frac


def _cdf_map(values: np.ndarray, t_set: np.ndarray, s_set: np.ndarray, bins: int) -> np.ndarray:
    """1-D histogram matching (256 bins over the joint range): the bin edges are mapped through CDF_t and the
    inverse of CDF_s into a lookup table that ``values`` are interpolated in."""
    lo = min(values.min(), s_set.min())
    hi = max(values.max(), s_set.max())
    if hi - lo < 1e-12:
        return values.copy()
    edges = np.linspace(lo, hi, bins + 1)
    cdf_t = np.concatenate([[0.0], np.cumsum(np.histogram(t_set, bins=bins, range=(lo, hi))[0])]) / len(t_set)
    cdf_s = np.concatenate([[0.0], np.cumsum(np.histogram(s_set, bins=bins, range=(lo, hi))[0])]) / len(s_set)
    table = np.interp(cdf_t, cdf_s, edges)
    return _uniform_lookup(values, lo, (hi - lo) / bins, table)


def idt_core(target_px: np.ndarray, source_px: np.ndarray, target_keep: np.ndarray | None, rng: np.random.Generator,
             n_rot: int = 20, bins: int = 256) -> np.ndarray:
    """Iterative distribution transfer on pixel sets (N, C) float64.

    Each of ``n_rot`` random rotations: per rotated axis a 256-bin CDF match of the target (rows ``target_keep``)
    onto the source, applied to every target row with relaxation 1/n_rot.
    """
    d0 = target_px.copy()
    relax = 1.0 / n_rot
    for _ in range(n_rot):
        r = special_ortho_group.rvs(d0.shape[1], random_state=rng)
        d0r, d1r = d0 @ r.T, source_px @ r.T
        kept = d0r if target_keep is None else d0r[target_keep]
        d_r = np.empty_like(d0r)
        for j in range(d0.shape[1]):
            d_r[:, j] = _cdf_map(d0r[:, j], kept[:, j], d1r[:, j], bins)
        d0 = d0 + relax * (d_r - d0r) @ r  # r is orthogonal: solve(r, x) == r.T @ x
    return d0


def _quantile_map(values: np.ndarray, t_set: np.ndarray | None, s_set: np.ndarray) -> np.ndarray:
    """Exact 1-D optimal transport by quantiles: each value's rank among ``t_set`` (``values`` themselves when
    None) -> the source value of that quantile."""
    ss = np.sort(s_set)
    if t_set is None:
        u = np.empty(len(values))
        u[np.argsort(values)] = np.arange(len(values))
        n_t = len(values)
    else:
        ts = np.sort(t_set)
        u = np.interp(values, ts, np.arange(len(ts), dtype=np.float64))
        n_t = len(ts)
    step = (n_t - 1) / max(len(ss) - 1, 1) if n_t > 1 else 1.0
    return _uniform_lookup(u, 0.0, step, ss)


def sot_core(target_px: np.ndarray, source_px: np.ndarray, target_keep: np.ndarray | None,
             rng: np.random.Generator, steps: int = 10, batch: int = 5) -> np.ndarray:
    """Sliced optimal transport on pixel sets (N, C) float64: ``steps`` x ``batch`` random unit directions; along
    each, move every target pixel to the source value of equal rank; each step adds the mean displacement."""
    new = target_px.copy()
    c = new.shape[1]
    for _ in range(steps):
        advect = np.zeros_like(new)
        for _ in range(batch):
            d = rng.normal(size=c)
            d /= np.linalg.norm(d)
            proj = new @ d
            kept = None if target_keep is None else proj[target_keep]
            advect += np.outer(_quantile_map(proj, kept, source_px @ d) - proj, d)
        new += advect / batch
    return new


def _regularise(new: np.ndarray, original: np.ndarray, shape: tuple[int, ...], sigma_xy: float,
                sigma_v: float) -> np.ndarray:
    """Smooth the displacement field with a bilateral filter (DeepFaceLab's sot regularisation)."""
    if sigma_xy <= 0:
        return new
    diff = (new - original).reshape(shape).astype(np.float32)
    filt = cv2.bilateralFilter(diff, 0, sigma_v, sigma_xy)
    return original + filt.reshape(-1, shape[-1]).astype(np.float64)


def _keep(mask: np.ndarray | None) -> np.ndarray | None:
    if mask is None:
        return None
    keep = mask.reshape(-1) > MASK_CUTOFF
    return keep if int(keep.sum()) >= _MIN_PIXELS else None


def _sot_image(target, source, target_mask, source_mask, rng, batch: int, sigma_v: float = 5.0) -> np.ndarray:
    t = _flat(target)
    s = _select(_flat(source), source_mask)
    new = sot_core(t, s, _keep(target_mask), _rng(rng), steps=10, batch=batch)
    return _finish(_regularise(new, t, target.shape, 16.0, sigma_v), target.shape)


# ---------------------------------------------------------------------------------------------------------------
# the registered transfers


@COLOR_TRANSFERS.register("rct", "Reinhard: match Lab mean/std per channel (masked statistics when given)")
def rct(target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
        source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
        mask_stats: str = "inside") -> np.ndarray:
    """Reinhard colour transfer in CIE L*a*b*: the target's per-channel mean/std become the source's.

    With masks, the statistics are those of the pixels inside (``inside``) or of the whole Lab images with the
    pixels outside zeroed (``zeros``, DeepFaceLab); either way every target pixel is mapped."""
    target, source, target_mask, source_mask = _checked(target, source, target_mask, source_mask)
    _check_stats(mask_stats)
    source_mask = _default_source_mask(target, source, target_mask, source_mask)
    lab, s_lab = rgb_to_lab(target), rgb_to_lab(source)
    if mask_stats == "zeros":
        return _rct_lab(lab, _zero_filled_stats(lab, target_mask), _zero_filled_stats(s_lab, source_mask))
    return _rct_lab(lab, _lab_stats(lab, target_mask), _lab_stats(s_lab, source_mask))


@COLOR_TRANSFERS.register("lct", "linear covariance transfer (whole images)")
def lct(target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
        source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
        mask_stats: str = "inside") -> np.ndarray:
    """Linear colour transfer: x' = C_s^1/2 C_t^-1/2 (x - mu_t) + mu_s over whole images, clipped."""
    target, source, _, _ = _checked(target, source, target_mask, source_mask)
    return _linear_transfer(target, source, None, None, lct_matrix)


@COLOR_TRANSFERS.register("mkl", "Monge-Kantorovich linear transfer (whole images)")
def mkl(target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
        source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
        mask_stats: str = "inside") -> np.ndarray:
    """Monge-Kantorovich linear colour transfer over whole images, clipped."""
    target, source, _, _ = _checked(target, source, target_mask, source_mask)
    return _linear_transfer(target, source, None, None, mkl_matrix)


@COLOR_TRANSFERS.register("mkl-m", "Monge-Kantorovich linear transfer, masked statistics")
def mkl_m(target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
          source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
          mask_stats: str = "inside") -> np.ndarray:
    """mkl with covariances from the masked pixels (``inside``) or of the masked images (``zeros``)."""
    target, source, target_mask, source_mask = _masked(*_checked(target, source, target_mask, source_mask),
                                                       mask_stats)
    return _linear_transfer(target, source, target_mask, source_mask, mkl_matrix)


def _idt_image(target, source, target_mask, source_mask, rng) -> np.ndarray:
    t = _flat(target)
    s = _select(_flat(source), source_mask)
    return _finish(idt_core(t, s, _keep(target_mask), _rng(rng)), target.shape)


@COLOR_TRANSFERS.register("idt", "iterative distribution transfer (whole images)")
def idt(target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
        source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
        mask_stats: str = "inside") -> np.ndarray:
    """Iterative distribution transfer: 20 random rotations, 256-bin CDF matching per axis, relaxation 1/20."""
    target, source, _, _ = _checked(target, source, target_mask, source_mask)
    return _idt_image(target, source, None, None, rng)


@COLOR_TRANSFERS.register("idt-m", "iterative distribution transfer, masked distributions")
def idt_m(target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
          source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
          mask_stats: str = "inside") -> np.ndarray:
    """idt with both distributions taken from the masked pixels (``inside``) or the masked images (``zeros``)."""
    target, source, target_mask, source_mask = _masked(*_checked(target, source, target_mask, source_mask),
                                                       mask_stats)
    return _idt_image(target, source, target_mask, source_mask, rng)


@COLOR_TRANSFERS.register("sot", "sliced optimal transport, 10 steps x 5 directions (training ct-mode)")
def sot(target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
        source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
        mask_stats: str = "inside") -> np.ndarray:
    """Sliced optimal transport over whole images with a bilateral-filtered displacement field."""
    target, source, _, _ = _checked(target, source, target_mask, source_mask)
    return _sot_image(target, source, None, None, rng, batch=5)


@COLOR_TRANSFERS.register("sot-m", "sliced optimal transport, masked distributions, 10 steps x 30 directions")
def sot_m(target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
          source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
          mask_stats: str = "inside") -> np.ndarray:
    """Sliced optimal transport with both distributions taken from the masked pixels (``inside``) or the masked
    images (``zeros``)."""
    target, source, target_mask, source_mask = _masked(*_checked(target, source, target_mask, source_mask),
                                                       mask_stats)
    return _sot_image(target, source, target_mask, source_mask, rng, batch=30)


@COLOR_TRANSFERS.register("mix-m", "lightness by lct on L, chroma by sot at fixed lightness (masked)")
def mix_m(target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
          source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
          mask_stats: str = "inside") -> np.ndarray:
    """DeepFaceLab's mix: L from a linear transfer of the L channel, a/b from sliced OT of the images re-rendered
    at a fixed mid lightness, recombined in Lab. Statistics from the masked pixels (``inside``) or the masked
    images (``zeros``)."""
    target, source, target_mask, source_mask = _masked(*_checked(target, source, target_mask, source_mask),
                                                       mask_stats)
    t_lab, s_lab = rgb_to_lab(target), rgb_to_lab(source)
    tl, sl = t_lab[..., :1].reshape(-1, 1).astype(np.float64), s_lab[..., :1].reshape(-1, 1).astype(np.float64)
    mu_t, c_t = _cov(_select(tl, target_mask))
    mu_s, c_s = _cov(_select(sl, source_mask))
    light = np.clip((tl - mu_t) @ lct_matrix(c_t, c_s).T + mu_s, 0.0, 100.0).reshape(target.shape[:2])
    t_chroma = lab_to_rgb(np.dstack([np.full(target.shape[:2], _MIX_L), t_lab[..., 1:]]))
    s_chroma = lab_to_rgb(np.dstack([np.full(source.shape[:2], _MIX_L), s_lab[..., 1:]]))
    moved = _sot_image(t_chroma, s_chroma, target_mask, source_mask, rng, batch=5, sigma_v=5.0 / 255.0)
    out = rgb_to_lab(moved)
    out[..., 0] = light
    return lab_to_rgb(out).astype(np.float32)


def color_transfer(mode: str, target: np.ndarray, source: np.ndarray, target_mask: np.ndarray | None = None,
                   source_mask: np.ndarray | None = None, *, rng: np.random.Generator | None = None,
                   mask_stats: str = "inside") -> np.ndarray:
    """Apply the registered transfer ``mode`` (``"none"`` returns ``target`` unchanged as float32)."""
    _check_stats(mask_stats)
    if mode in ("none", "", None):
        _check_image(target, "target")
        return np.asarray(target, np.float32)
    return COLOR_TRANSFERS.get(mode).factory(target, source, target_mask, source_mask, rng=rng,
                                             mask_stats=mask_stats)
