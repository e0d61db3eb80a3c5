"""Localisation metrics: boxes from maps, IoU, Top-1/Top-5/GT-known Loc, MaxBoxAccV2.

Boxes are ``(x0, y0, x1, y1)`` in pixels with the inclusive convention of the papers: area = (x1-x0+1)(y1-y0+1).
Maps are float HW arrays (any range; min-max normalised here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


@dataclass
class LocMeter:
    """Accumulates per-image localisation results; ``summary()`` gives the papers' metrics in percent."""

    tau: float = 0.5
    thresholds: tuple[float, ...] = CAM_THRESHOLDS
    top1: list[bool] = field(default_factory=list)
    top5: list[bool] = field(default_factory=list)
    gt_known: list[bool] = field(default_factory=list)
    cls_ok: list[bool] = field(default_factory=list)
    box_hits: list[np.ndarray] = field(default_factory=list)  # (T, len(IOU_DELTAS)) per image

    def add(self, fmap: np.ndarray, gt_boxes: np.ndarray, logits: np.ndarray, label: int) -> None:
        """One image: HW map, its ground-truth boxes (G,4) in map pixels, class scores (K,), true label."""
        best = float(box_iou(map_to_box(fmap, self.tau), gt_boxes).max())
        order = np.argsort(-np.asarray(logits))
        loc = best >= 0.5
        self.gt_known.append(loc)
        self.cls_ok.append(bool(order[0] == label))
        self.top1.append(loc and order[0] == label)
        self.top5.append(loc and label in order[:5])
        self.box_hits.append(_box_hits(fmap, gt_boxes, self.thresholds))

    def summary(self) -> dict[str, float]:
        if not self.gt_known:
            return {}
        hits = np.stack(self.box_hits).mean(0)  # (T, D): BoxAcc(tau, delta)
        per_delta = hits.max(0)
        out = {"top1_cls": _pct(self.cls_ok), "top1_loc": _pct(self.top1), "top5_loc": _pct(self.top5),
               "gt_known_loc": _pct(self.gt_known)}
        for d, v in zip(IOU_DELTAS, per_delta, strict=True):
            out[f"box_acc_iou{int(d * 100)}"] = 100.0 * float(v)
        out["max_box_acc_v2"] = 100.0 * float(per_delta.mean())
        out["images"] = float(len(self.gt_known))
        return out


def _box_hits(fmap: np.ndarray, gt_boxes: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """For each threshold, whether ANY component's box reaches each IoU delta with some ground-truth box."""
    norm = normalize_map(fmap)
    out = np.zeros((len(thresholds), len(IOU_DELTAS)), bool)
    for i, t in enumerate(thresholds):
        boxes, _ = component_boxes(norm > t)
        if len(boxes) == 0:
            continue
        best = box_iou(boxes, gt_boxes).max()
        out[i] = [best >= d for d in IOU_DELTAS]
    return out


def _pct(v: list[bool]) -> float:
    return 100.0 * float(np.mean(v)) if v else 0.0


def format_table(metrics: dict[str, float]) -> str:
    """The papers' metrics as a small text table."""
    rows = [("Top-1 Cls", "top1_cls"), ("Top-1 Loc", "top1_loc"), ("Top-5 Loc", "top5_loc"),
            ("GT-known Loc", "gt_known_loc"), ("BoxAcc IoU0.3", "box_acc_iou30"), ("BoxAcc IoU0.5", "box_acc_iou50"),
            ("BoxAcc IoU0.7", "box_acc_iou70"), ("MaxBoxAccV2", "max_box_acc_v2")]
    lines = [f"{'metric':<14} {'%':>7}", "-" * 22]
    lines += [f"{name:<14} {metrics[key]:7.2f}" for name, key in rows if key in metrics]
    lines.append(f"{'images':<14} {int(metrics.get('images', 0)):7d}")
    return "\n".join(lines)
