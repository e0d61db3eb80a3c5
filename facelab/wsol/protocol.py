"""Evaluate a trained BAS/SAT model under a named protocol (the papers' or facelab's).

Maps and class scores are computed once per image; every threshold is then scored from them. Under each protocol
the report also gives the SAT code's BoxAcc at the chosen threshold and Choe et al.'s MaxBoxAccV2 (threshold sweep,
any component), each named for what it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch

from facelab.utils.config import setting
from facelab.utils.progress import Progress
from facelab.wsol.data import WsolDataset, WsolRecord, collate
from facelab.wsol.metrics import (
    CAM_THRESHOLDS,
    box_acc_at_threshold,
    box_hits,
    largest_box_ious,
    loc_accuracy,
    max_box_acc_v2,
    upsample_map,
)
from facelab.wsol.recipes import RECIPES, fill, parse_thresholds, recipe_for

#: thresholds tried when one is picked on the train split's boxes (facelab's protocol)
TRAIN_PICK_THRESHOLDS: tuple[float, ...] = tuple(round(float(t), 2) for t in np.arange(0.1, 0.9, 0.05))
_RECIPE_TEXT = "per recipe and backbone"


@dataclass(frozen=True)
class EvalProtocol:
    """How ``wsol eval`` scores a model; fields left None take the recipe's value for the backbone."""

    recipe: str | None = setting(None, "Recipe whose protocol to follow.", choices=RECIPES.names,
                                 default_text="the recipe the model was trained with")
    thresholds: str | None = setting(None, "CAM threshold; several, comma-separated: the best of them on the "
                                           "evaluated split (SAT code); 'train': picked on the train split's boxes.",
                                     flag="threshold",
                                     default_text=f"{_RECIPE_TEXT} (paper: BAS 0.15, InceptionV3 0.1; SAT "
                                                  "0.3,0.35,0.4,0.45)")
    topk: int | None = setting(None, "BAS: mean of the maps of the k best classes (0 = all).", range=(0, 100_000),
                               default_text=f"{_RECIPE_TEXT} (paper: VGG16 80, others all)")
    tencrop: bool | None = setting(None, "Classify from the mean softmax of ten crops.",
                                   default_text=f"{_RECIPE_TEXT} (paper: on)")
    iou_strict: bool | None = setting(None, "Localised means IoU > 0.5 (else >= 0.5).",
                                      default_text=f"{_RECIPE_TEXT} (paper: BAS on, SAT off)")
    per_class: bool | None = setting(None, "Mean of per-class accuracies (else over images).",
                                     default_text=f"{_RECIPE_TEXT} (paper: BAS on, SAT off)")
    box_past_end: bool | None = setting(None, "The predicted box ends one pixel past its component (skimage "
                                              "regionprops, as both papers' code).",
                                        default_text=f"{_RECIPE_TEXT} (paper: on)")
    batch_size: int = setting(32, "Images per forward pass.", flag="eval-batch", range=(1, 4096))

    def __post_init__(self) -> None:
        if self.recipe is not None and self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES.names())}")
        if self.thresholds is not None:
            parse_thresholds(self.thresholds)


def resolve_protocol(p: EvalProtocol, method: str, backbone: str, trained_recipe: str) -> tuple[EvalProtocol, str]:
    """``p`` with every unset value from its recipe (the training one unless ``p.recipe``), and the protocol's name
    (followed by what was changed from it)."""
    name = p.recipe or trained_recipe
    recipe = recipe_for(name, method, backbone)
    full = fill(EvalProtocol(recipe=name), recipe)
    resolved = replace(fill(p, recipe), recipe=name)
    changed = [f"{k}={getattr(resolved, k)}" for k in ("thresholds", "topk", "tencrop", "iou_strict", "per_class",
                                                                   "box_past_end")
               if getattr(resolved, k) != getattr(full, k)]
    text = recipe.protocol + (f"; changed: {', '.join(changed)}" if changed else "")
    if parse_thresholds(resolved.thresholds or "") == ():
        text += " [threshold picked on training boxes: not a paper's protocol]"
    return resolved, text


class Predictions(NamedTuple):
    maps: list[np.ndarray]  # native-grid maps (h,w)
    boxes: list[np.ndarray]  # ground-truth boxes (G,4) in crop pixels
    scores: np.ndarray  # (N,K) class scores: ten-crop mean softmax, or the centre crop's logits
    labels: np.ndarray  # (N,)


@torch.no_grad()
def predict(model: torch.nn.Module, records: list[WsolRecord], size: int, device: torch.device, topk: int = 0,
            tencrop: bool = False, crop_ratio: float = 0.875, batch_size: int = 32,
            progress: Progress | None = None) -> Predictions:
    """Maps from the centre crop (BAS: top-``topk`` class maps ranked by the centre crop, 0 = all) and class scores
    of every image that has a box."""
    model.eval()
    ds = WsolDataset(records, size, False, crop_ratio, tencrop=tencrop)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, collate_fn=collate)
    maps, boxes, scores, labels = [], [], [], []
    for batch in loader:
        x, y, gt = batch[0], batch[1], batch[2]
        out = model(x.to(device), topk=topk or None)
        if tencrop:
            crops = batch[3]
            logits = model(crops.flatten(0, 1).to(device)).logits.view(len(x), 10, -1)
            cls = logits.softmax(-1).mean(1)
        else:
            cls = out.logits
        for i in range(len(gt)):
            if len(gt[i]):
                maps.append(out.fmap_low[i, 0].float().cpu().numpy())
                boxes.append(gt[i])
                scores.append(cls[i].float().cpu().numpy())
                labels.append(int(y[i]))
        if progress:
            progress(len(gt))
    k = scores[0].shape[0] if scores else 0
    return Predictions(maps, boxes, np.asarray(scores).reshape(-1, k), np.asarray(labels, np.int64))


def threshold_ious(pred: Predictions, size: int, taus: tuple[float, ...], past_end: bool = False) -> np.ndarray:
    """(N,T) IoU of each image's largest-component box at each threshold."""
    return np.stack([largest_box_ious(upsample_map(m, size), b, taus, past_end)
                     for m, b in zip(pred.maps, pred.boxes, strict=True)])


def choose_threshold(ious: np.ndarray, pred: Predictions, taus: tuple[float, ...], strict: bool,
                     per_class: bool) -> int:
    """Index of the threshold with the best GT-known + Top-1 Loc (the SAT code's rule; the first on ties)."""
    best, best_i = -1.0, 0
    for i in range(len(taus)):
        acc = loc_accuracy(ious[:, i], pred.scores, pred.labels, strict, per_class)
        if acc["gt_known_loc"] + acc["top1_loc"] > best:
            best, best_i = acc["gt_known_loc"] + acc["top1_loc"], i
    return best_i


def pick_train_threshold(model: torch.nn.Module, records: list[WsolRecord], size: int, device: torch.device,
                         topk: int = 0, crop_ratio: float = 0.875) -> float:
    """The threshold with the best GT-known Loc on ``records`` (the train split; facelab's protocol)."""
    pred = predict(model, records, size, device, topk, False, crop_ratio)
    ious = threshold_ious(pred, size, TRAIN_PICK_THRESHOLDS)
    return TRAIN_PICK_THRESHOLDS[int(np.argmax((ious >= 0.5).mean(0)))]


def score(pred: Predictions, size: int, taus: tuple[float, ...], strict: bool, per_class: bool,
          past_end: bool = False) -> dict[str, float]:
    """Every metric of :func:`evaluate_protocol` from predictions: at the best of ``taus`` (one = fixed)."""
    if not pred.maps:
        return {}
    ious = threshold_ious(pred, size, taus, past_end)
    i = choose_threshold(ious, pred, taus, strict, per_class) if len(taus) > 1 else 0
    hits = np.stack([box_hits(upsample_map(m, size), b, CAM_THRESHOLDS) for m, b in zip(pred.maps, pred.boxes,
                                                                                          strict=True)])
    return {"threshold": float(taus[i]), **loc_accuracy(ious[:, i], pred.scores, pred.labels, strict, per_class),
            **box_acc_at_threshold(ious[:, i]), **max_box_acc_v2(hits), "images": float(len(pred.maps))}


def evaluate_protocol(model: torch.nn.Module, records: list[WsolRecord], size: int, device: torch.device,
                      p: EvalProtocol, crop_ratio: float = 0.875, train_records: list[WsolRecord] | None = None,
                      progress: Progress | None = None) -> dict[str, float]:
    """Metrics in percent (and the threshold used) of a resolved protocol ``p`` on ``records``; a ``"train"``
    threshold is picked on ``train_records`` first."""
    taus = parse_thresholds(p.thresholds or "")
    if not taus:
        if not train_records:
            raise ValueError("the protocol picks its threshold on the train split; pass train_records")
        taus = (pick_train_threshold(model, train_records, size, device, p.topk or 0, crop_ratio),)
    pred = predict(model, records, size, device, p.topk or 0, bool(p.tencrop), crop_ratio, p.batch_size, progress)
    return score(pred, size, taus, bool(p.iou_strict), bool(p.per_class), bool(p.box_past_end))
