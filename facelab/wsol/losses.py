"""Pure loss functions of BAS and SAT. Maps are (B,1,h,w) in [0,1]; scores are (B,K); labels (B,) int64."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facelab.utils.config import setting

# SAT's fixed 3x3 near-delta smoothing kernel for the normalisation loss
SAT_KERNEL = torch.tensor([[0.0026, 0.046, 0.0026], [0.046, 0.805, 0.046], [0.0026, 0.046, 0.0026]])


@dataclass(frozen=True)
class LossWeights:
    """alpha: BAS foreground-guidance weight; beta: BAS area weight (both None = the recipe's value for the
    backbone, see :mod:`facelab.wsol.recipes`); area_r: SAT target area; bas_const: BAS ratio value once the
    background activation reaches the full one; neg_weight: gamma on maps of ``negative_class`` images (-1 =
    vanilla, no negative class); positive-only SAT area loss when a negative class is set."""

    alpha: float | None = setting(None, "BAS foreground-guidance weight.", range=(0, 100),
                                  default_text="per recipe and backbone (paper: VGG16 0, others 0.5)")
    beta: float | None = setting(None, "BAS area weight.", range=(0, 100),
                                 default_text="per recipe and backbone (paper: VGG16 0.7, ResNet50 1.2, "
                                              "InceptionV3 1.0, MobileNetV1 1.5)")
    area_r: float = setting(0.25, "SAT target foreground share.", range=(0, 1))
    bas_const: float = setting(0.0, "BAS ratio once the background activation reaches the full one.", range=(0, 10))
    negative_class: int = setting(-1, "Class whose maps should stay empty; -1 = none (vanilla).", range=(-1, 100_000))
    neg_weight: float = setting(0.0, "Weight of the maps of negative_class images.", range=(0, 100))


def bas_background_loss(s_bg_y: torch.Tensor, s_y: torch.Tensor, const: float = 0.0) -> torch.Tensor:
    """L_BAS = mean_b rho_b, rho = S^bg_y / (sg(S_y) + 1e-8) where S^bg_y < S_y, else ``const``. Inputs (B,)."""
    ratio = s_bg_y / (s_y.detach() + 1e-8)
    rho = torch.where(s_bg_y < s_y.detach(), ratio, torch.full_like(ratio, const))
    return rho.mean()


def area_loss(m: torch.Tensor) -> torch.Tensor:
    """Mean foreground fraction of (B,1,h,w) maps (BAS's area constraint)."""
    return m.mean()


def sat_batch_area_loss(m: torch.Tensor, r: float, keep: torch.Tensor | None = None) -> torch.Tensor:
    """|mean over the batch (or the ``keep`` (B,) bool subset) of each map's mean - r|; 0 when nothing is kept."""
    per_image = m.flatten(1).mean(1)
    if keep is not None:
        if not bool(keep.any()):
            return m.sum() * 0.0
        per_image = per_image[keep]
    return (per_image.mean() - r).abs()


def sat_norm_loss(m: torch.Tensor) -> torch.Tensor:
    """mean M~(1-M~), M~ = M smoothed by SAT's 3x3 kernel (zero padding): pushes every patch to 0 or 1."""
    k = SAT_KERNEL.to(m.device, m.dtype).view(1, 1, 3, 3)
    mt = F.conv2d(m, k, padding=1)
    return (mt * (1.0 - mt)).mean()


def _negative_term(m: torch.Tensor, y: torch.Tensor, w: LossWeights) -> torch.Tensor:
    if w.negative_class < 0 or w.neg_weight == 0:
        return m.sum() * 0.0
    neg = y == w.negative_class
    return w.neg_weight * m[neg].mean() if bool(neg.any()) else m.sum() * 0.0


def _other_maps(maps: torch.Tensor, negative_class: int) -> torch.Tensor:
    """(B,K,h,w) -> (B,1,h,w): mean of the maps of every class but the negative one."""
    keep = [k for k in range(maps.shape[1]) if k != negative_class]
    return maps[:, keep].mean(1, keepdim=True)


def bas_losses(logits: torch.Tensor, s_bg: torch.Tensor, s_fg: torch.Tensor, m_fg: torch.Tensor,
               y: torch.Tensor, w: LossWeights, maps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """L = CE(S) + alpha CE(S^fg) + L_BAS + beta L_AC (+ gamma mean of the other classes' maps (B,K,h,w) on
    negative-class images). Returns every term and ``total``. ``w.alpha`` and ``w.beta`` must be set."""
    if w.alpha is None or w.beta is None:
        raise ValueError("BAS loss weights alpha and beta are unset; fill them from a recipe (resolve_train)")
    idx = torch.arange(y.shape[0], device=y.device)
    terms = {
        "cls": F.cross_entropy(logits, y),
        "fg": F.cross_entropy(s_fg, y) if w.alpha else logits.sum() * 0.0,
        "bas": bas_background_loss(s_bg[idx, y], logits[idx, y], w.bas_const),
        "area": area_loss(m_fg),
        "neg": _negative_term(_other_maps(maps, w.negative_class) if maps is not None else m_fg, y, w),
    }
    terms["total"] = terms["cls"] + w.alpha * terms["fg"] + terms["bas"] + w.beta * terms["area"] + terms["neg"]
    return terms


def sat_losses(logits: torch.Tensor, m: torch.Tensor, y: torch.Tensor, w: LossWeights) -> dict[str, torch.Tensor]:
    """L = CE + L_ba + L_norm; with a negative class L_ba covers positives only and negatives get gamma*mean."""
    keep = (y != w.negative_class) if w.negative_class >= 0 else None
    terms = {
        "cls": F.cross_entropy(logits, y),
        "area": sat_batch_area_loss(m, w.area_r, keep),
        "norm": sat_norm_loss(m),
        "neg": _negative_term(m, y, w),
    }
    terms["total"] = terms["cls"] + terms["area"] + terms["norm"] + terms["neg"]
    return terms
