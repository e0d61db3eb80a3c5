"""A DeiT-style vision transformer with SAT's spatial token (timm naming, so DeiT weights map 1:1).

Tokens are ``[cls] + patches + [spatial]``. In every block the spatial token's head-averaged pre-softmax query row
gives each token a foreground probability ``sigmoid(mean_h Q_spa K^T / sqrt(d))``; in the last ``gated`` blocks the
ordinary attention is multiplied by it (no renormalisation). The token grid follows the input size; the position
embeddings are resized (bicubic) when it differs from the grid they were made for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from facelab.utils.registry import Registry


@dataclass(frozen=True)
class VitSpec:
    dim: int
    depth: int
    heads: int
    patch: int
    pos_grid: int  # grid the position embeddings are stored for (14 for DeiT at 224 px)
    gated: int = 3
    mlp_ratio: float = 4.0
    conv_stem: bool = False  # small from-scratch variant: a conv stem instead of a single patchify conv


#: name -> ``f() -> VitSpec``: the SAT backbones
SAT_BACKBONES: Registry[VitSpec] = Registry("SAT backbone")


@SAT_BACKBONES.register("deit_tiny", "DeiT-Tiny (192 wide, 12 blocks, patch 16): takes DeiT ImageNet weights")
def deit_tiny() -> VitSpec:
    return VitSpec(192, 12, 3, 16, 14)


@SAT_BACKBONES.register("deit_small", "DeiT-Small (384 wide, 12 blocks, patch 16): takes DeiT ImageNet weights")
def deit_small() -> VitSpec:
    return VitSpec(384, 12, 6, 16, 14)


@SAT_BACKBONES.register("vit_tiny_scratch", "small from-scratch ViT (64 wide, 4 blocks, conv stem, patch 8)")
def vit_tiny_scratch() -> VitSpec:
    return VitSpec(64, 4, 4, 8, 8, gated=2, mlp_ratio=2.0, conv_stem=True)


#: read-only view of the registry, name -> spec (kept for callers that look specs up by name)
VIT_SPECS: Mapping[str, VitSpec] = MappingProxyType({e.name: e.factory() for e in SAT_BACKBONES})


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int, conv_stem: bool) -> None:
        super().__init__()
        if conv_stem:  # three stride-2 convs for patch 8: learns fast on small images
            c = dim // 2
            self.stem = nn.Sequential(
                nn.Conv2d(3, c // 2, 3, 2, 1), nn.BatchNorm2d(c // 2), nn.ReLU(inplace=True),
                nn.Conv2d(c // 2, c, 3, 2, 1), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
            )
            self.proj = nn.Conv2d(c, dim, max(1, patch // 4), max(1, patch // 4))
        else:
            self.stem = nn.Identity()
            self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) -> (B,D,H/p,W/p)."""
        return self.proj(self.stem(x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, gated: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,N,D) -> output (B,N,D) and the spatial token's probabilities over all N tokens (B,N)."""
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        logits = (q @ k.transpose(-2, -1)) * self.scale  # (B,h,N,N)
        m_spa = torch.sigmoid(logits[:, :, -1, :].mean(1))  # spatial token is the last one
        attn = logits.softmax(-1)
        if gated:
            attn = attn * m_spa[:, None, None, :]
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out), m_spa


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: while training, zero a residual branch (B,...) per sample with probability ``p`` and scale
    the kept ones by 1/(1-p); the identity otherwise."""
    if p <= 0.0 or not training:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """Per-block drop-path probabilities rising linearly from 0 to ``rate`` (the DeiT / SAT rule)."""
    return [float(v) for v in torch.linspace(0, rate, depth)]


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, gated: bool, drop_path: float = 0.0) -> None:
        super().__init__()
        self.gated = gated
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, m_spa = self.attn(self.norm1(x), self.gated)
        x = x + drop_path(a, self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training), m_spa


class SpatialVit(nn.Module):
    """Input (B,3,H,W) normalised; output patch features (B,D,h,w) and the per-patch map (B,1,h,w) in [0,1].
    ``drop_path``: the last block's stochastic-depth rate while training (0 in the first, linear in between)."""

    def __init__(self, spec: VitSpec, drop_path: float = 0.0) -> None:
        super().__init__()
        self.spec = spec
        d = spec.dim
        self.patch_embed = PatchEmbed(d, spec.patch, spec.conv_stem)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + spec.pos_grid ** 2, d))
        self.spatial_token = nn.Parameter(torch.zeros(1, 1, d))
        self.spatial_pos = nn.Parameter(torch.zeros(1, 1, d))
        self.blocks = nn.ModuleList(
            Block(d, spec.heads, spec.mlp_ratio, i >= spec.depth - spec.gated, rate)
            for i, rate in enumerate(drop_path_rates(drop_path, spec.depth)))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        for p in (self.cls_token, self.pos_embed, self.spatial_token, self.spatial_pos):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _pos(self, h: int, w: int) -> torch.Tensor:
        g = self.spec.pos_grid
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        if (h, w) != (g, g):
            grid = patch_pos.reshape(1, g, g, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
            patch_pos = grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)
        return torch.cat([cls_pos, patch_pos], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.patch_embed(x)
        b, d, h, w = feats.shape
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), feats.flatten(2).transpose(1, 2)], 1) + self._pos(h, w)
        tokens = torch.cat([tokens, (self.spatial_token + self.spatial_pos).expand(b, -1, -1)], 1)
        maps = []
        for blk in self.blocks:
            tokens, m_spa = blk(tokens)
            if blk.gated:
                maps.append(m_spa[:, 1:-1])
        patch = self.norm(tokens)[:, 1:-1].transpose(1, 2).reshape(b, d, h, w)
        fmap = torch.stack(maps, 0).mean(0).reshape(b, 1, h, w)
        return patch, fmap


def vit_key_map(k: str) -> str | None:
    """timm DeiT key -> ours (``head.*`` and distillation parts dropped)."""
    if k.startswith(("head", "dist_token", "fc_norm", "pre_logits")):
        return None
    return "backbone." + k


def pos_grid_of(n_tokens: int) -> int:
    return int(math.isqrt(n_tokens - 1))
