"""BAS and SAT with one output contract: class logits (B,K) and a foreground map (B,1,H,W) at input resolution.

Inputs are (B,3,H,W) float in [0,1]; ImageNet normalisation happens inside the model. ``train_forward(x, y)``
returns the extra tensors the method's losses need (explicitly, never through attributes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from facelab.errors import FacelabError
from facelab.utils.config import setting
from facelab.utils.registry import Registry
from facelab.wsol.parts import BAS_BACKBONES, BackboneParts
from facelab.wsol.vit import SAT_BACKBONES, SpatialVit, vit_key_map

#: method -> the registry of its backbones (the methods and their backbones are listed here and nowhere else)
BACKBONES: dict[str, Registry] = {"bas": BAS_BACKBONES, "sat": SAT_BACKBONES}
METHODS: tuple[str, ...] = tuple(BACKBONES)
DEFAULT_BACKBONE: dict[str, str] = {"bas": "tiny", "sat": "vit_tiny_scratch"}
HEAD_ACTS = ("relu", "softplus")


def backbone_names() -> list[str]:
    """Every backbone name of every method, from the backbone registries."""
    return [name for registry in BACKBONES.values() for name in registry.names()]


def backbone_help() -> str:
    """The backbones of each method, from the registries."""
    return "Backbone: " + "; ".join(f"{m}: {'|'.join(r.names())}" for m, r in BACKBONES.items()) + "."


_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WsolArch:
    """Fixed when a model is created; stored in its checkpoint."""

    method: str = setting("bas", "Localisation method.", choices=METHODS)
    backbone: str = setting(DEFAULT_BACKBONE["bas"], backbone_help, choices=backbone_names,
                            default_text=" / ".join(f"{DEFAULT_BACKBONE[m]} ({m})" for m in BACKBONES))
    num_classes: int = setting(2, "Classes of the data.", cli=False,
                               range=(1, 100_000))  # the command counts them in the data
    width: float = setting(1.0, "Channel multiplier of BAS CNNs.", range=(0.05, 16))
    head_act: str = setting("relu", "BAS head's last activation: relu (paper) or softplus (no dead classes on "
                                    "small data; the 2-class mask learner's).", choices=HEAD_ACTS)

    def __post_init__(self) -> None:
        if self.head_act not in HEAD_ACTS:
            raise ValueError("head_act must be relu or softplus")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        names = BACKBONES[self.method].names()
        if self.backbone not in names:
            raise ValueError(f"backbone {self.backbone!r} is not one of {names} for {self.method}")
        if self.num_classes < 1:
            raise ValueError("num_classes must be >= 1")


class WsolOutput(NamedTuple):
    logits: torch.Tensor  # (B,K)
    fmap: torch.Tensor  # (B,1,H,W) in [0,1] at input resolution
    fmap_low: torch.Tensor  # (B,1,h,w) at the model's native grid


class BasTrainOut(NamedTuple):
    logits: torch.Tensor  # S (B,K)
    s_bg: torch.Tensor  # S^bg (B,K) through the frozen late part
    s_fg: torch.Tensor  # S^fg (B,K)
    m_fg: torch.Tensor  # (B,1,h,w) foreground map of the labelled class
    maps: torch.Tensor  # (B,K,h,w) every class map


class SatTrainOut(NamedTuple):
    logits: torch.Tensor  # (B,K)
    m: torch.Tensor  # (B,1,h,w)


class _Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


class LateNet(nn.Module):
    """f2: the rest of the backbone and the conv classifier head; output non-negative class maps A."""

    def __init__(self, rest: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.rest = rest
        self.head = head

    def forward(self, f):
        return self.head(self.rest(f))


class BasNet(nn.Module):
    def __init__(self, parts: BackboneParts, num_classes: int, normal_init: bool = False,
                 head_act: str = "relu") -> None:
        super().__init__()
        k, hw = num_classes, parts.head_width
        self.norm = _Normalize()
        self.early = parts.early
        head = nn.Sequential(nn.Conv2d(parts.c_late, hw, 3, padding=1), nn.ReLU(inplace=True),
                             nn.Conv2d(hw, hw, 3, padding=1), nn.ReLU(inplace=True),
                             nn.Conv2d(hw, k, 1), nn.Softplus() if head_act == "softplus" else nn.ReLU())
        self.late = LateNet(parts.late, head)
        self.generator = nn.Conv2d(parts.c_early, k, 3, padding=1)
        self._key_map = parts.key_map
        for m in list(head.modules()) + [self.generator]:
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0, 0.02) if normal_init else nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def pretrained_key(self, key: str) -> str | None:
        ours = self._key_map(key)
        if ours is not None and ours.startswith("late."):
            ours = "late.rest." + ours[len("late."):]
        return ours

    def _frozen_late(self, f: torch.Tensor) -> torch.Tensor:
        """f2 with the current weights but no gradient into them (BatchNorm statistics left untouched)."""
        params = {n: p.detach() for n, p in self.late.named_parameters()}
        params.update({n: b.clone() for n, b in self.late.named_buffers()})
        return functional_call(self.late, params, (f,))

    def train_forward(self, x: torch.Tensor, y: torch.Tensor) -> BasTrainOut:
        f = self.early(self.norm(x))
        maps = torch.sigmoid(self.generator(f))  # (B,K,h,w)
        a = self.late(f)  # (B,K,h2,w2)
        idx = torch.arange(x.shape[0], device=x.device)
        m_fg = maps[idx, y].unsqueeze(1)
        s_bg = self._frozen_late(f.detach() * (1.0 - m_fg)).mean((2, 3))
        s_fg = (a * F.adaptive_avg_pool2d(m_fg, a.shape[-2:])).mean((2, 3))
        return BasTrainOut(a.mean((2, 3)), s_bg, s_fg, m_fg, maps)

    def class_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (B,K) and every class map (B,K,h,w) at the native grid."""
        f = self.early(self.norm(x))
        return self.late(f).mean((2, 3)), torch.sigmoid(self.generator(f))

    def forward(self, x: torch.Tensor, topk: int | None = None) -> WsolOutput:
        """Map = mean of the class maps of the ``topk`` best-scoring classes (all classes when None)."""
        logits, maps = self.class_maps(x)
        k = maps.shape[1] if topk is None else max(1, min(int(topk), maps.shape[1]))
        top = logits.topk(k, dim=1).indices
        low = torch.gather(maps, 1, top[:, :, None, None].expand(-1, -1, *maps.shape[-2:])).mean(1, keepdim=True)
        return WsolOutput(logits, _up(low, x), low)


class SatNet(nn.Module):
    def __init__(self, spec_name: str, num_classes: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm = _Normalize()
        self.backbone = SpatialVit(SAT_BACKBONES.create(spec_name), drop_path)
        self.head = nn.Conv2d(self.backbone.spec.dim, num_classes, 3, padding=1)

    def pretrained_key(self, key: str) -> str | None:
        return vit_key_map(key)

    def train_forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> SatTrainOut:
        patch, m = self.backbone(self.norm(x))
        return SatTrainOut(self.head(patch).mean((2, 3)), m)

    def forward(self, x: torch.Tensor, topk: int | None = None) -> WsolOutput:
        logits, m = self.train_forward(x)
        return WsolOutput(logits, _up(m, x), m)


def _up(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)


def create_wsol_model(arch: WsolArch, drop_path: float = 0.0) -> nn.Module:
    """Build the BAS or SAT network of ``arch`` (random init; load ImageNet weights with ``load_pretrained``).
    ``drop_path``: SAT's stochastic-depth rate while training (no weights depend on it)."""
    if arch.method == "bas":
        if drop_path:
            raise FacelabError("--drop-path applies to SAT only")
        parts = BAS_BACKBONES.create(arch.backbone, width=arch.width)
        return BasNet(parts, arch.num_classes, normal_init=arch.backbone == "vgg16", head_act=arch.head_act)
    if arch.width != 1.0:
        raise FacelabError("--width applies to BAS CNN backbones only; SAT uses the named ViT size")
    return SatNet(arch.backbone, arch.num_classes, drop_path)
