"""Weakly supervised occluder learner for face masks: BAS or SAT trained on "occluded vs clean" image labels.

Labels cost nothing: clean aligned faces are class 0; the same faces with an occluder pasted at a random place are
class 1 (the paste's pixels are never used for training); faces a person tagged "occluded" (yes/no per frame, e.g. a
hand over the mouth) join class 1 as they are. The learner's map of class 1 is an occluder map O; the
face mask is the landmark hull minus O: ``P = H * [score <= t]`` with ``score = p(occluded) * O``. Optionally a small
U-Net is trained on those masks as pseudo-labels (image + hull in, mask out) to sharpen the blocky map.
Images are float32 HWC RGB [0,1] in numpy and (B,3,S,S) in torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facelab.masks.occluders import paste_occluder
from facelab.utils.config import setting
from facelab.utils.progress import Progress
from facelab.utils.registry import Registry
from facelab.wsol.losses import LossWeights
from facelab.wsol.models import BasNet, WsolArch, create_wsol_model
from facelab.wsol.pretrained import load_pretrained
from facelab.wsol.sat_conv import CONV_SAT_BACKBONES, create_conv_sat
from facelab.wsol.trainer import method_losses
from facelab.wsol.vit import SAT_BACKBONES

log = logging.getLogger(__name__)

#: the learned mask sources: name (also the ``source`` of the masks it stores) -> ``f(cfg) -> nn.Module``, the
#: untrained network (class 0 clean, 1 occluded)
MASK_LEARNERS: Registry[nn.Module] = Registry("mask learner")
SAT_INITS = ("none", "bas")  # where the sat learner's CNN stem starts


def learner_help() -> str:
    """The ``--method`` help: each registered learner and what it is."""
    return "Occluder learner: " + "; ".join(f"{e.name}: {e.help}" for e in MASK_LEARNERS) + "."


def sat_backbone_names() -> list[str]:
    """The SAT backbones a mask learner can use: the convolutional-stem ones, then the ViTs."""
    return CONV_SAT_BACKBONES.names() + SAT_BACKBONES.names()


def sat_backbone_help() -> str:
    return ("Backbone of the sat learner: " + "; ".join(f"{e.name}: {e.help}" for e in CONV_SAT_BACKBONES) +
            "; " + ", ".join(SAT_BACKBONES.names()) + " (the paper's DeiTs take ImageNet weights, see --pretrained; "
                                                      "use them at --size 224).")


@dataclass(frozen=True)
class MaskLearnConfig:
    """Settings of the occluder learner; ``area_r`` is SAT's target occluder share on occluded crops."""

    method: str = setting("bas", learner_help, choices=MASK_LEARNERS.names)
    size: int = setting(64, "Learner input size in pixels.", range=(32, 1024))
    steps: int = setting(600, "Training steps of the occluder learner.", range=(0, 10_000_000))
    batch_size: int = setting(32, "Batch size.", flag="batch", range=(2, 4096))
    lr: float = setting(2e-3, "Learning rate.", range=(0, 10))
    alpha: float = setting(0.5, "BAS foreground-guidance weight.", range=(0, 100))
    beta: float = setting(1.0, "BAS area weight.", range=(0, 100))
    area_r: float = setting(0.15, "SAT target occluder share on occluded crops.", range=(0, 1))
    neg_weight: float = setting(1.0, "Weight of the occluder maps of clean faces (they should stay empty).",
                                range=(0, 100))
    sat_warmup: float = setting(0.3, "Share of the sat learner's steps over which its normalisation and clean-face "
                                     "terms ramp in from 0 (at full weight from the start they close its gate "
                                     "before the classifier has learnt anything).", range=(0, 1))
    refine_steps: int = setting(0, "Steps of the refinement U-Net on the learner's masks (kept only when it helps "
                                   "on validation); 0 = none.", range=(0, 10_000_000))
    sat_backbone: str = setting("conv_stem", sat_backbone_help, choices=sat_backbone_names)
    sat_init: str = setting("none", "Start of the sat learner's CNN stem: none (random) or bas (the extractor of "
                                    "the side's trained bas learner, model/mask_bas: train that first).",
                            choices=SAT_INITS)
    pretrained: str | None = setting(None, "ImageNet weights (.pth state dict) to start the learner from, e.g. "
                                           "DeiT's for a deit_* sat_backbone.", path=True)
    seed: int = setting(0, "Random seed.", range=(0, 2**32 - 1))

    def __post_init__(self) -> None:
        if self.method not in MASK_LEARNERS:
            raise ValueError(f"method must be one of {', '.join(MASK_LEARNERS.names())}, not {self.method!r}")
        if self.sat_backbone not in sat_backbone_names():
            raise ValueError(f"sat_backbone must be one of {', '.join(sat_backbone_names())}")
        if self.sat_init not in SAT_INITS or (self.sat_init == "bas" and self.sat_backbone not in CONV_SAT_BACKBONES):
            raise ValueError(f"sat_init must be one of {', '.join(SAT_INITS)}; bas needs a CNN-stem sat_backbone "
                             f"({', '.join(CONV_SAT_BACKBONES.names())})")
        if self.size < 32 or self.steps < 0 or self.batch_size < 2:
            raise ValueError("size >= 32, steps >= 0 and batch_size >= 2 are required")


def create_learner(cfg: MaskLearnConfig) -> nn.Module:
    """The untrained occluder learner of ``cfg`` (random init; see ``train_occluder_learner`` for weights)."""
    return MASK_LEARNERS.create(cfg.method, cfg)


@MASK_LEARNERS.register("bas", "BAS on the tiny CNN with a softplus head, trains on a CPU in minutes")
def bas_learner(cfg: MaskLearnConfig) -> nn.Module:
    return create_wsol_model(WsolArch("bas", "tiny", 2, head_act="softplus"))


@MASK_LEARNERS.register("sat", "SAT (the sat_backbone setting: a CNN stem under spatial-token blocks by default), "
                               "map of its spatial token")
def sat_learner(cfg: MaskLearnConfig) -> nn.Module:
    if cfg.sat_backbone in CONV_SAT_BACKBONES:
        return create_conv_sat(cfg.sat_backbone, 2)
    return create_wsol_model(WsolArch("sat", cfg.sat_backbone, 2))


def warmup_weight(step: int, steps: int, share: float) -> float:
    """Weight at ``step`` of a term that ramps in linearly over the first ``share`` of ``steps`` (1 after)."""
    return 1.0 if share <= 0 else min(1.0, step / (share * steps))


def learner_loss(method: str, terms: dict[str, torch.Tensor], ramp: float) -> torch.Tensor:
    """The training loss of the learner from the method's ``terms``: SAT's map-shaping terms (normalisation and
    clean-face) weighted by ``ramp``; every other term, and BAS, as the method has them."""
    if method != "sat" or ramp >= 1.0:
        return terms["total"]
    return terms["total"] - (1.0 - ramp) * (terms["norm"] + terms["neg"])


def synth_batch(faces: np.ndarray, hulls: np.ndarray, sources: list[np.ndarray], rng: np.random.Generator,
                n: int, occluded_share: float = 0.5, real_occluded: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` samples from clean faces (N,S,S,3) and hulls (N,S,S): images (n,S,S,3), labels (n,) 1 = occluded,
    occluder masks (n,S,S; unknown = 0 for real occluded faces) and hulls (n,S,S) of the (possibly flipped) faces.
    ``real_occluded`` (M,S,S,3): faces a user tagged "occluded"; half of the occluded samples come from them."""
    imgs, labels, occs, hs = [], [], [], []
    for i in rng.integers(0, len(faces), n):
        face, hull = faces[i], hulls[i]
        occluded = rng.random() < occluded_share
        real = occluded and real_occluded is not None and len(real_occluded) > 0 and rng.random() < 0.5
        if real:
            face = real_occluded[int(rng.integers(0, len(real_occluded)))]
        if rng.random() < 0.5:
            face, hull = np.ascontiguousarray(face[:, ::-1]), np.ascontiguousarray(hull[:, ::-1])
        occ = np.zeros(hull.shape, np.float32)
        if occluded and not real:
            face, occ = paste_occluder(face, hull, sources, rng)
            occluded = bool(occ.any())
        imgs.append(face)
        occs.append(occ)
        hs.append(hull)
        labels.append(int(occluded))
    return np.stack(imgs), np.asarray(labels, np.int64), np.stack(occs), np.stack(hs)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N,S,S,3) float [0,1] -> (N,3,S,S)."""
    return torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(0, 3, 1, 2).to(device)


def train_occluder_learner(faces: np.ndarray, hulls: np.ndarray, sources: list[np.ndarray], cfg: MaskLearnConfig,
                           device: torch.device, progress: Progress | None = None,
                           real_occluded: np.ndarray | None = None,
                           init: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """Train BAS/SAT with labels clean (0) / occluded (1) on fresh synthetic batches (plus user-tagged occluded
    faces when given); ``init``: weights to start from for some of the learner's tensors (e.g.
    :func:`facelab.wsol.sat_conv.stem_from_bas`). Returns the model in eval mode."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = create_learner(cfg)
    if cfg.pretrained:
        load_pretrained(model, cfg.pretrained)
    if init:
        model.load_state_dict(init, strict=False)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=max(1, cfg.steps))
    w = LossWeights(alpha=cfg.alpha, beta=cfg.beta, area_r=cfg.area_r, negative_class=0, neg_weight=cfg.neg_weight)
    model.train()
    for step in range(cfg.steps):
        x, y, _, _ = synth_batch(faces, hulls, sources, rng, cfg.batch_size, real_occluded=real_occluded)
        terms = method_losses(cfg.method, model, to_tensor(x, device), torch.from_numpy(y).to(device), w)
        loss = learner_loss(cfg.method, terms, warmup_weight(step, cfg.steps, cfg.sat_warmup))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress:
            progress(1, loss=f"{float(loss.detach()):.3f}")
    return model.eval()


@torch.no_grad()
def occluder_score(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B,3,S,S) -> (B,1,S,S): p(occluded) times the occluder map, at input resolution."""
    if isinstance(model, BasNet):
        logits, maps = model.class_maps(x)
        low = maps[:, 1:2]
    else:
        out = model(x)
        logits, low = out.logits, out.fmap_low
    p = logits.softmax(1)[:, 1].view(-1, 1, 1, 1)
    return F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False) * p


def hull_minus(hull: np.ndarray, score: np.ndarray, t: float) -> np.ndarray:
    """P = H * [score <= t]; arrays (..., S, S) float."""
    return (hull * (score <= t)).astype(np.float32)


def mask_iou(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-image IoU of binary masks (N,S,S) (>= 0.5); 1 when both are empty."""
    p, t = pred >= 0.5, target >= 0.5
    inter = (p & t).sum((1, 2))
    union = (p | t).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def grow(scores: np.ndarray, d: int) -> np.ndarray:
    """Grey dilation of score maps (N,S,S) by a (2d+1)^2 square: widens the coarse occluder region by d pixels."""
    if d <= 0:
        return scores
    k = np.ones((2 * d + 1, 2 * d + 1), np.uint8)
    return np.stack([cv2.dilate(np.ascontiguousarray(x, np.float32), k) for x in scores])


def occluder_kept(pred: np.ndarray, hulls: np.ndarray, occs: np.ndarray) -> np.ndarray:
    """Per image share of occluder pixels inside the hull that ``pred`` (N,S,S) keeps (0 when none)."""
    o = (occs * hulls) >= 0.5
    return ((pred >= 0.5) & o).sum((1, 2)) / np.maximum(o.sum((1, 2)), 1)


def pick_setting(scores: np.ndarray, hulls: np.ndarray, occs: np.ndarray,
                 leak_budget: float = 0.25) -> tuple[float, int]:
    """(threshold, dilation) of ``hull_minus(H, grow(score, d), t)`` with the best mean IoU on a validation split
    of synthetic pastes among settings that keep at most ``leak_budget`` of occluder pixels and are no worse than
    the bare hull (best IoU overall when none is)."""
    targets = hulls * (1 - occs)
    occluded = occs.reshape(len(occs), -1).any(1)
    hull_iou = float(mask_iou(hulls, targets).mean())
    best: tuple[float, float, int] | None = None
    fallback: tuple[float, float, int] | None = None
    for d in range(0, 5):
        g = grow(scores, d)
        for t in np.round(np.arange(0.05, 1.0, 0.05), 2):
            pred = hull_minus(hulls, g, t)
            iou = float(mask_iou(pred, targets).mean())
            kept = float(occluder_kept(pred, hulls, occs)[occluded].mean()) if occluded.any() else 0.0
            if fallback is None or iou > fallback[0]:
                fallback = (iou, float(t), d)
            if kept <= leak_budget and iou >= hull_iou and (best is None or iou > best[0]):
                best = (iou, float(t), d)
    chosen = best or fallback
    assert chosen is not None
    return chosen[1], chosen[2]


def pick_threshold(scores: np.ndarray, hulls: np.ndarray, targets: np.ndarray) -> float:
    """Threshold of ``hull_minus`` with the best mean IoU against ``targets`` (a validation split)."""
    grid = np.round(np.arange(0.05, 1.0, 0.05), 2)
    ious = [float(mask_iou(hull_minus(hulls, scores, t), targets).mean()) for t in grid]
    return float(grid[int(np.argmax(ious))])


# -- refinement U-Net trained on the learner's masks -----------------------------------------------------------------
class RefineNet(nn.Module):
    """A tiny U-Net: (B,4,S,S) image + hull -> (B,1,S,S) mask logits."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.e1, self.e2, self.e3 = block(4, c), block(c, 2 * c), block(2 * c, 4 * c)
        self.d2, self.d1 = block(6 * c, 2 * c), block(3 * c, c)
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        e3 = self.e3(F.max_pool2d(e2, 2))
        d2 = self.d2(torch.cat([F.interpolate(e3, scale_factor=2.0), e2], 1))
        d1 = self.d1(torch.cat([F.interpolate(d2, scale_factor=2.0), e1], 1))
        return self.out(d1)


def train_refiner(learner: nn.Module, t: float, faces: np.ndarray, hulls: np.ndarray, sources: list[np.ndarray],
                  cfg: MaskLearnConfig, device: torch.device, progress: Progress | None = None) -> RefineNet:
    """Fit a RefineNet to the pseudo-labels ``hull_minus(H, learner score, t)`` on fresh synthetic batches."""
    torch.manual_seed(cfg.seed + 1)
    rng = np.random.default_rng(cfg.seed + 1)
    net = RefineNet().to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=max(1, cfg.refine_steps))
    for _ in range(cfg.refine_steps):
        x_np, _, _, h_np = synth_batch(faces, hulls, sources, rng, cfg.batch_size)
        x, h = to_tensor(x_np, device), torch.from_numpy(h_np).unsqueeze(1).to(device)
        score = occluder_score(learner, x)
        target = h * (score <= t).float()
        net.train()
        loss = F.binary_cross_entropy_with_logits(net(torch.cat([x, h], 1)), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress:
            progress(1, loss=f"{float(loss.detach()):.3f}")
    return net.eval()


@torch.no_grad()
def refine(net: RefineNet, x: torch.Tensor, hull: torch.Tensor) -> torch.Tensor:
    """(B,3,S,S), (B,1,S,S) -> refined mask probability (B,1,S,S), kept inside the hull."""
    return torch.sigmoid(net(torch.cat([x, hull], 1))) * hull


@torch.no_grad()
def refined_score(net: RefineNet, x: torch.Tensor, hull: torch.Tensor) -> torch.Tensor:
    """Occluder score of the refiner, 1 - p(visible face), (B,1,S,S): thresholded like ``occluder_score``."""
    return 1.0 - torch.sigmoid(net(torch.cat([x, hull], 1)))
