"""SAT on a convolutional stem, for training from scratch on a few hundred images.

A small CNN makes one token per ``stride`` x ``stride`` pixels (16 x 16 at 64 px, twice as fine as a patch-8 ViT).
SAT's spatial token queries them in every block: its head-averaged pre-softmax row through a sigmoid is the
per-token foreground probability, which gates its attention. Two changes make it learn without ImageNet weights:
the patch tokens are keys and values only (the CNN gives them their context; a block costs O(N), not O(N^2)), and
SAT's 3x3 conv head over the patch tokens is averaged under the map, so the class reaches the logits only where the
map is on and the classification loss puts the map on the evidence. The stem has the layers of the tiny BAS
extractor (:func:`stem_from_bas` copies a trained one). Inputs (B,3,H,W) float in [0,1] (the stem's first
BatchNorm normalises them); outputs as :class:`facelab.wsol.models.SatNet`: logits (B,K), map (B,1,H,W) in [0,1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from facelab.utils.registry import Registry
from facelab.wsol.models import SatTrainOut, WsolOutput


@dataclass(frozen=True)
class ConvSatSpec:
    """``stem``: channels of the stem's stages (each halves the size: stride = 2 ** len(stem)); ``gated``: how many
    of the last blocks gate their attention by the map (the map is their mean)."""

    stem: tuple[int, ...] = (24, 48)
    dim: int = 64
    depth: int = 2
    heads: int = 4
    gated: int = 2
    mlp_ratio: float = 2.0
    pos_grid: int = 16  # grid the position embeddings are stored for (resized to other grids)

    def __post_init__(self) -> None:
        if not self.stem or min(self.stem) < 1 or self.dim % self.heads or not 0 < self.gated <= self.depth:
            raise ValueError("a stem stage, dim divisible by heads and 0 < gated <= depth are required")

    @property
    def stride(self) -> int:
        return 2 ** len(self.stem)


#: name -> ``f() -> ConvSatSpec``: SAT backbones with a convolutional stem
CONV_SAT_BACKBONES: Registry[ConvSatSpec] = Registry("convolutional SAT backbone")


@CONV_SAT_BACKBONES.register("conv_stem", "CNN stem (stride 4, the tiny BAS extractor's layers) under 2 gated "
                                          "spatial-query blocks, 64 wide; trains from scratch on a CPU in minutes")
def conv_stem() -> ConvSatSpec:
    return ConvSatSpec()


def _cbr(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvStem(nn.Module):
    """(B,3,H,W) -> (B,D,H/s,W/s): per stage a stride-2 and a stride-1 3x3 conv, then a 1x1 projection to D."""

    def __init__(self, channels: tuple[int, ...], dim: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for c in channels:
            layers += [_cbr(cin, c, 2), _cbr(c, c, 1)]
            cin = c
        self.convs = nn.Sequential(*layers)
        self.proj = nn.Conv2d(cin, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.convs(x))


def spatial_query_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, gated: bool,
                            bias: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of the spatial token's query (B,h,1,d) over keys/values (B,h,N,d).

    Returns the output (B,h,1,d) and the probabilities of the N keys (B,N): the sigmoid of the head-averaged
    pre-softmax row plus ``bias``; when ``gated`` the attention row is multiplied by them (no renormalisation).
    """
    logits = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B,h,1,N)
    m_spa = torch.sigmoid(logits[:, :, 0, :].mean(1) + bias)
    attn = logits.softmax(-1)
    if gated:
        attn = attn * m_spa[:, None, None, :]
    return attn @ v, m_spa


class QueryBlock(nn.Module):
    """Pre-norm block in which the spatial token (B,1,D) attends to [patches, itself] and goes through an MLP; the
    patch tokens (B,N,D) are keys and values only and leave unchanged."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, gated: bool) -> None:
        super().__init__()
        self.heads, self.gated = heads, gated
        self.gate_bias = nn.Parameter(torch.zeros(()))  # learned offset of the map's logit; 0 = SAT's map
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, token: torch.Tensor, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the updated spatial token (B,1,D) and its probabilities over the patches (B,N)."""
        tn = self.norm1(token)
        k, v = self.kv(torch.cat([self.norm1(patches), tn], 1)).chunk(2, -1)
        out, m_spa = spatial_query_attention(self._heads(self.q(tn)), self._heads(k), self._heads(v), self.gated,
                                             self.gate_bias)
        token = token + self.proj(out.transpose(1, 2).reshape(token.shape))
        return token + self.mlp(self.norm2(token)), m_spa[:, :-1]


class ConvSatNet(nn.Module):
    """SAT with a :class:`ConvStem` and :class:`QueryBlock` s; logits = bias + mean over the grid of the 3x3 conv
    head's class scores times the map (the mean of the gated blocks' patch probabilities)."""

    def __init__(self, spec: ConvSatSpec, num_classes: int) -> None:
        super().__init__()
        self.spec = spec
        d = spec.dim
        self.stem = ConvStem(spec.stem, d)
        self.spatial_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, d, spec.pos_grid, spec.pos_grid))
        self.blocks = nn.ModuleList(QueryBlock(d, spec.heads, spec.mlp_ratio, i >= spec.depth - spec.gated)
                                    for i in range(spec.depth))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Conv2d(d, num_classes, 3, padding=1, bias=False)
        self.head_bias = nn.Parameter(torch.zeros(num_classes))
        for p in (self.spatial_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def pretrained_key(self, key: str) -> str | None:
        """No ImageNet checkpoint has this stem: nothing maps (see :func:`stem_from_bas` for a trained stem)."""
        return None

    def _pos(self, h: int, w: int) -> torch.Tensor:
        if (h, w) == self.pos_embed.shape[-2:]:
            return self.pos_embed
        return F.interpolate(self.pos_embed, size=(h, w), mode="bicubic", align_corners=False)

    def train_forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> SatTrainOut:
        """(B,3,H,W) -> logits (B,K) and the map (B,1,H/s,W/s)."""
        feats = self.stem(x)
        b, d, h, w = feats.shape
        patches = (feats + self._pos(h, w)).flatten(2).transpose(1, 2)
        token = self.spatial_token.expand(b, -1, -1)
        maps = []
        for blk in self.blocks:
            token, m_spa = blk(token, patches)
            if blk.gated:
                maps.append(m_spa)
        m = torch.stack(maps, 0).mean(0).reshape(b, 1, h, w)
        grid = self.norm(patches).transpose(1, 2).reshape(b, d, h, w)
        return SatTrainOut((self.head(grid) * m).mean((2, 3)) + self.head_bias, m)

    def forward(self, x: torch.Tensor, topk: int | None = None) -> WsolOutput:
        logits, m = self.train_forward(x)
        up = F.interpolate(m, size=x.shape[-2:], mode="bilinear", align_corners=False).clamp(0, 1)
        return WsolOutput(logits, up, m)


def create_conv_sat(name: str, num_classes: int) -> ConvSatNet:
    """The registered backbone ``name`` with a ``num_classes`` head, random init."""
    return ConvSatNet(CONV_SAT_BACKBONES.create(name), num_classes)


def stem_from_bas(bas_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The extractor (``early.*``) of a trained tiny BAS network's state dict as ``stem.convs.*`` weights of a
    ConvSatNet with the same stage channels (load with ``strict=False``; the rest stays as initialised)."""
    out = {"stem.convs." + k[len("early."):]: v for k, v in bas_state.items() if k.startswith("early.")}
    if not out:
        raise ValueError("the state dict has no early.* weights of a BAS network")
    return out
