"""Weakly supervised occluder learner for face masks: BAS or SAT trained on "occluded vs clean" image labels.

Labels cost nothing: clean aligned faces are class 0; the same faces with an occluder pasted at a random place are
class 1 (the paste's pixels are never used for training). The learner's map of class 1 is an occluder map O; the
face mask is the landmark hull minus O: ``P = H * [score <= t]`` with ``score = p(occluded) * O``. Optionally a small
U-Net is trained on those masks as pseudo-labels (image + hull in, mask out) to sharpen the blocky map.
Images are float32 HWC RGB [0,1] in numpy and (B,3,S,S) in torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facelab.masks.occluders import paste_occluder
from facelab.wsol.losses import LossWeights
from facelab.wsol.models import BasNet, WsolArch, create_wsol_model
from facelab.wsol.trainer import method_losses

log = logging.getLogger(__name__)
Progress = Callable[..., None]


@dataclass(frozen=True)
class MaskLearnConfig:
    """Settings of the occluder learner; ``area_r`` is SAT's target occluder share on occluded crops."""

    method: str = "bas"
    size: int = 64
    steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3
    alpha: float = 0.5
    beta: float = 1.0
    area_r: float = 0.15
    neg_weight: float = 1.0
    refine_steps: int = 400
    sat_backbone: str = "vit_tiny_scratch"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("bas", "sat"):
            raise ValueError("method must be bas or sat")
        if self.size < 32 or self.steps < 0 or self.batch_size < 2:
            raise ValueError("size >= 32, steps >= 0 and batch_size >= 2 are required")

    @property
    def arch(self) -> WsolArch:
        if self.method == "bas":
            return WsolArch("bas", "tiny", 2, head_act="softplus")
        return WsolArch("sat", self.sat_backbone, 2)


def synth_batch(faces: np.ndarray, hulls: np.ndarray, sources: list[np.ndarray], rng: np.random.Generator,
                n: int, occluded_share: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` samples from faces (N,S,S,3) and hulls (N,S,S): images (n,S,S,3), labels (n,) 1 = occluded,
    occluder masks (n,S,S) and the hulls (n,S,S) of the (possibly flipped) faces."""
    imgs, labels, occs, hs = [], [], [], []
    for i in rng.integers(0, len(faces), n):
        face, hull = faces[i], hulls[i]
        if rng.random() < 0.5:
            face, hull = np.ascontiguousarray(face[:, ::-1]), np.ascontiguousarray(hull[:, ::-1])
        occ = np.zeros(hull.shape, np.float32)
        if rng.random() < occluded_share:
            face, occ = paste_occluder(face, hull, sources, rng)
        imgs.append(face)
        occs.append(occ)
        hs.append(hull)
        labels.append(int(occ.any()))
    return np.stack(imgs), np.asarray(labels, np.int64), np.stack(occs), np.stack(hs)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N,S,S,3) float [0,1] -> (N,3,S,S)."""
    return torch.from_numpy(np.ascontiguousarray(images, np.float32)).permute(0, 3, 1, 2).to(device)


def train_occluder_learner(faces: np.ndarray, hulls: np.ndarray, sources: list[np.ndarray], cfg: MaskLearnConfig,
                           device: torch.device, progress: Progress | None = None) -> nn.Module:
    """Train BAS/SAT with labels clean (0) / occluded (1) on fresh synthetic batches; returns the model (eval)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = create_wsol_model(cfg.arch).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=max(1, cfg.steps))
    w = LossWeights(alpha=cfg.alpha, beta=cfg.beta, area_r=cfg.area_r, negative_class=0, neg_weight=cfg.neg_weight)
    model.train()
    for _ in range(cfg.steps):
        x, y, _, _ = synth_batch(faces, hulls, sources, rng, cfg.batch_size)
        terms = method_losses(cfg.method, model, to_tensor(x, device), torch.from_numpy(y).to(device), w)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        opt.step()
        sched.step()
        if progress:
            progress(1, loss=f"{float(terms['total'].detach()):.3f}")
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
