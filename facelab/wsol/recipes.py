"""Training recipes and evaluation protocols, per method and backbone: the one place their values live.

``paper`` is what the official code of each paper does on CUB-200-2011 (BAS: ``wpy1999/BAS`` ``CUB/``; SAT:
``wpy1999/SAT``); ``facelab`` is the small-data recipe this project trains its own CPU models with. A config field
left unset (None) takes its recipe's value; :func:`resolve_train` and :func:`resolve_protocol` fill them in.
Backbones a paper did not train (``tiny``, ``vit_tiny_scratch``) take the values that paper used for most of its
backbones.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from facelab.utils.registry import Registry

BAS_PAPER_BETA = {"vgg16": 0.7, "resnet50": 1.2, "inceptionv3": 1.0, "mobilenetv1": 1.5}
SAT_PAPER_THRESHOLDS = "0.3,0.35,0.4,0.45"
TRAIN_SPLIT = "train"  # ``thresholds`` value: pick one on the train split's boxes (facelab's, not a paper's)


@dataclass(frozen=True)
class Recipe:
    """Every value a recipe fixes. Training: optimizer and schedule, loss weights, drop-path. Evaluation: the CAM
    threshold(s) (``"0.15"``; several, comma-separated, = the best of them on the evaluated split; ``"train"`` =
    picked on the train split), top-k class maps (0 = all), ten-crop classification, IoU > 0.5 instead of >= 0.5,
    per-class mean instead of per-image mean, box end one pixel past the component."""

    optimizer: str
    lr: float
    weight_decay: float
    decay_all: bool  # weight decay on biases, norms and tokens too
    epochs: int
    lr_step: int  # epoch at which the rate drops x0.1 (0 = never)
    batch_size: int
    drop_path: float
    alpha: float
    beta: float
    thresholds: str
    topk: int
    tencrop: bool
    iou_strict: bool
    per_class: bool
    box_past_end: bool  # the largest component's box ends one pixel past it (skimage regionprops)
    protocol: str  # how the evaluation is named in reports


#: name -> ``f(method, backbone) -> Recipe``
RECIPES: Registry[Recipe] = Registry("WSOL recipe")


@RECIPES.register("paper", "the official code's CUB-200-2011 recipe and protocol, per backbone")
def paper(method: str, backbone: str) -> Recipe:
    if method == "bas":
        # wpy1999/BAS CUB/train.py, Model/*.py (bas_loss), utils/optimizer.py, BAS_inference.py
        return Recipe(optimizer="sgd", lr=1e-3, weight_decay=5e-4, decay_all=True, epochs=100, lr_step=80,
                      batch_size=32, drop_path=0.0, alpha=0.0 if backbone == "vgg16" else 0.5,
                      beta=BAS_PAPER_BETA.get(backbone, 1.0), thresholds="0.1" if backbone == "inceptionv3" else "0.15",
                      topk=80 if backbone == "vgg16" else 0, tencrop=True, iou_strict=True, per_class=True,
                      box_past_end=True,
                      protocol="BAS CVPR'22 code: fixed threshold, ten-crop classes, IoU > 0.5, per-class mean")
    # wpy1999/SAT train.py, evaluator.py, utils/optimizer.py, Model/SAT.py
    return Recipe(optimizer="adamw", lr=1e-4, weight_decay=0.05, decay_all=False, epochs=30, lr_step=0,
                  batch_size=256, drop_path=0.1, alpha=0.5, beta=1.0, thresholds=SAT_PAPER_THRESHOLDS, topk=0,
                  tencrop=True, iou_strict=False, per_class=False, box_past_end=True,
                  protocol="SAT ICCV'23 code: best threshold of the evaluated split (GT-known + Top-1 Loc), "
                           "ten-crop classes, IoU >= 0.5, per-image mean")


@RECIPES.register("facelab", "facelab's small-data recipe: AdamW, constant rate, threshold picked on train boxes")
def facelab(method: str, backbone: str) -> Recipe:
    return Recipe(optimizer="adamw", lr=1e-3, weight_decay=5e-4, decay_all=False, epochs=10, lr_step=0,
                  batch_size=32, drop_path=0.0, alpha=0.5, beta=1.0, thresholds=TRAIN_SPLIT, topk=0, tencrop=False,
                  iou_strict=False, per_class=False, box_past_end=False,
                  protocol="facelab: threshold picked on the train split's boxes (no paper's protocol), centre "
                           "crop, IoU >= 0.5, per-image mean")


def recipe_for(name: str, method: str, backbone: str) -> Recipe:
    """The recipe ``name`` for ``method`` / ``backbone``."""
    return RECIPES.create(name, method, backbone)


def fill(cfg: Any, recipe: Recipe) -> Any:
    """``cfg`` (a dataclass) with each field that is None and that the recipe knows set to the recipe's value."""
    known = {f.name for f in fields(Recipe)}
    unset = {f.name: getattr(recipe, f.name) for f in fields(cfg) if f.name in known and getattr(cfg, f.name) is None}
    return replace(cfg, **unset) if unset else cfg


def parse_thresholds(text: str) -> tuple[float, ...]:
    """``"0.3,0.35"`` -> (0.3, 0.35); each in [0, 1); ``"train"`` -> () (picked on the train split)."""
    if text.strip() == TRAIN_SPLIT:
        return ()
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"thresholds must be numbers in [0, 1) separated by commas, or 'train', not {text!r}") \
            from None
    if not values or not all(0.0 <= v < 1.0 for v in values):
        raise ValueError(f"thresholds must be numbers in [0, 1) separated by commas, or 'train', not {text!r}")
    return values
