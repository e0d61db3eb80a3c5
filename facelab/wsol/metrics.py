"""Localisation metrics: boxes from maps, IoU, Top-1/Top-5/GT-known Loc, BoxAcc at one threshold, MaxBoxAccV2.

Boxes are ``(x0, y0, x1, y1)`` in pixels with the inclusive convention of the papers: area = (x1-x0+1)(y1-y0+1).
Maps are float HW arrays (any range; min-max normalised here).
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

#: CAM thresholds swept by MaxBoxAccV2 (and offered for picking one threshold on a validation split)
CAM_THRESHOLDS: tuple[float, ...] = tuple(round(float(t), 2) for t in np.arange(0.0, 1.0, 0.01))
IOU_DELTAS = (0.3, 0.5, 0.7)
_EIGHT = np.ones((3, 3), dtype=bool)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (N,4) vs (M,4), inclusive pixel convention -> (N,M) float64."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0 + 1, 0, None) * np.clip(iy1 - iy0 + 1, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def normalize_map(m: np.ndarray) -> np.ndarray:
    """Min-max to [0,1] (a constant map becomes all zeros)."""
    m = np.asarray(m, np.float64)
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def component_boxes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N,4) of the 8-connected components of bool ``mask`` and their pixel counts (N,), largest first."""
    labels, n = ndimage.label(mask, structure=_EIGHT)
    if n == 0:
        return np.zeros((0, 4)), np.zeros(0, np.int64)
    sizes = np.bincount(labels.ravel())[1:]
    slices = ndimage.find_objects(labels)
    boxes = np.array([[s[1].start, s[0].start, s[1].stop - 1, s[0].stop - 1] for s in slices], np.float64)
    order = np.argsort(-sizes, kind="stable")
    return boxes[order], sizes[order]


def map_to_box(m: np.ndarray, tau: float) -> np.ndarray:
    """The box of the largest component of ``normalize(m) > tau``; the whole image when nothing survives."""
    boxes, _ = component_boxes(normalize_map(m) > tau)
    if len(boxes) == 0:
        h, w = m.shape
        return np.array([0, 0, w - 1, h - 1], np.float64)
    return boxes[0]


def upsample_map(m: np.ndarray, size: int) -> np.ndarray:
    """A low-resolution map (h,w) min-max normalised, then resized bilinearly to (size,size), as both papers do."""
    return cv2.resize(normalize_map(m).astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)


def largest_box_ious(m: np.ndarray, gt_boxes: np.ndarray, taus: tuple[float, ...],
                     past_end: bool = False) -> np.ndarray:
    """(T,) best IoU with any ground-truth box (G,4) of the box of the largest component of ``m > t`` (the whole
    map when none) at each threshold; ``m`` is used as given (:func:`upsample_map` normalised it, as the papers do
    before resizing). ``past_end``: the box ends one pixel past the component (x1 = last column + 1), as skimage's
    ``regionprops`` gives it and both papers' code scores it."""
    h, w = m.shape
    end = np.array([0, 0, 1, 1]) if past_end else np.zeros(4)
    out = []
    for t in taus:
        boxes, _ = component_boxes(m > t)
        box = boxes[0] if len(boxes) else np.array([0, 0, w - 1, h - 1], np.float64)
        out.append(box_iou(box + end, gt_boxes).max())
    return np.array(out)


def loc_hits(iou: np.ndarray, strict: bool) -> np.ndarray:
    """Localised images: IoU > 0.5 (BAS CVPR code) or IoU >= 0.5 (SAT code, Choe et al.)."""
    return iou > 0.5 if strict else iou >= 0.5


def mean_accuracy(hits: np.ndarray, labels: np.ndarray, per_class: bool) -> float:
    """Percent of ``hits``: over images, or the mean of each class's share (BAS CVPR code)."""
    hits = np.asarray(hits, np.float64)
    if not per_class:
        return 100.0 * float(hits.mean()) if len(hits) else 0.0
    return 100.0 * float(np.mean([hits[labels == k].mean() for k in np.unique(labels)])) if len(hits) else 0.0


def loc_accuracy(iou: np.ndarray, scores: np.ndarray, labels: np.ndarray, strict: bool = False,
                 per_class: bool = False) -> dict[str, float]:
    """Top-1/Top-5 classification, Top-1/Top-5 Loc and GT-known Loc in percent from per-image IoU (N,), class
    scores (N,K) and labels (N,)."""
    order = np.argsort(-np.asarray(scores), axis=1, kind="stable")
    labels = np.asarray(labels)
    top1 = order[:, 0] == labels
    top5 = (order[:, :5] == labels[:, None]).any(1)
    loc = loc_hits(np.asarray(iou), strict)
    return {"top1_cls": mean_accuracy(top1, labels, per_class), "top5_cls": mean_accuracy(top5, labels, per_class),
            "top1_loc": mean_accuracy(top1 & loc, labels, per_class),
            "top5_loc": mean_accuracy(top5 & loc, labels, per_class),
            "gt_known_loc": mean_accuracy(loc, labels, per_class)}


def box_acc_at_threshold(iou: np.ndarray) -> dict[str, float]:
    """The SAT code's "IoU30 / IoU50 / IoU70 / Mean": percent of images whose largest-component box at the one
    chosen threshold reaches IoU >= 0.3 / 0.5 / 0.7, and their mean. Not MaxBoxAccV2 (no threshold sweep)."""
    out = {f"box_acc_iou{int(d * 100)}_at_tau": 100.0 * float(np.mean(np.asarray(iou) >= d)) for d in IOU_DELTAS}
    out["box_acc_mean_at_tau"] = float(np.mean(list(out.values())))
    return out


def box_hits(fmap: np.ndarray, gt_boxes: np.ndarray, thresholds: tuple[float, ...] = CAM_THRESHOLDS) -> np.ndarray:
    """(T, len(IOU_DELTAS)) bool: for each threshold, whether ANY component's box of ``normalize(fmap) > t``
    reaches each IoU delta with some ground-truth box (Choe et al.'s BoxAcc)."""
    norm = normalize_map(fmap)
    out = np.zeros((len(thresholds), len(IOU_DELTAS)), bool)
    for i, t in enumerate(thresholds):
        boxes, _ = component_boxes(norm > t)
        if len(boxes) == 0:
            continue
        best = box_iou(boxes, gt_boxes).max()
        out[i] = [best >= d for d in IOU_DELTAS]
    return out


def max_box_acc_v2(hits: np.ndarray) -> dict[str, float]:
    """MaxBoxAccV2 (Choe et al., CVPR 2020) from per-image :func:`box_hits` (N,T,D): for each IoU delta the best
    threshold's BoxAcc, and their mean, in percent."""
    per_delta = np.asarray(hits, np.float64).mean(0).max(0)
    out = {f"max_box_acc_iou{int(d * 100)}": 100.0 * float(v) for d, v in zip(IOU_DELTAS, per_delta, strict=True)}
    out["max_box_acc_v2"] = 100.0 * float(per_delta.mean())
    return out


#: (row name, metric key, what it follows) of :func:`format_table`
TABLE_ROWS = (
    ("Top-1 Cls", "top1_cls", "the protocol above"), ("Top-5 Cls", "top5_cls", "the protocol above"),
    ("Top-1 Loc", "top1_loc", "the protocol above"), ("Top-5 Loc", "top5_loc", "the protocol above"),
    ("GT-known Loc", "gt_known_loc", "the protocol above"),
    ("BoxAcc IoU0.3 @tau", "box_acc_iou30_at_tau", "SAT code: protocol's threshold, largest box"),
    ("BoxAcc IoU0.5 @tau", "box_acc_iou50_at_tau", "SAT code: protocol's threshold, largest box"),
    ("BoxAcc IoU0.7 @tau", "box_acc_iou70_at_tau", "SAT code: protocol's threshold, largest box"),
    ("BoxAcc mean @tau", "box_acc_mean_at_tau", "SAT code's 'Mean' (not MaxBoxAccV2)"),
    ("MaxBoxAcc IoU0.3", "max_box_acc_iou30", "Choe et al.: best threshold, any box"),
    ("MaxBoxAcc IoU0.5", "max_box_acc_iou50", "Choe et al.: best threshold, any box"),
    ("MaxBoxAcc IoU0.7", "max_box_acc_iou70", "Choe et al.: best threshold, any box"),
    ("MaxBoxAccV2", "max_box_acc_v2", "Choe et al., CVPR 2020"),
)


def format_table(metrics: dict[str, float], protocol: str = "") -> str:
    """The metrics as a small text table, each row saying which protocol it follows."""
    lines = [f"protocol: {protocol}"] if protocol else []
    if "threshold" in metrics:
        lines.append(f"threshold: {metrics['threshold']:g}")
    lines += [f"{'metric':<19} {'%':>7}  follows", "-" * 60]
    lines += [f"{name:<19} {metrics[key]:7.2f}  {note}" for name, key, note in TABLE_ROWS if key in metrics]
    lines.append(f"{'images':<19} {int(metrics.get('images', 0)):7d}")
    return "\n".join(lines)
