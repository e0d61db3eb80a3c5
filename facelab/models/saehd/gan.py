"""Discriminators of SAEHD: the U-Net patch discriminator (GAN) and the code discriminator (true face, df only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def receptive_field(layers: list[tuple[int, int]]) -> int:
    """Receptive field of a stack of (kernel, stride) convolutions."""
    rf, total_stride = 0, 1
    for i, (k, s) in enumerate(layers):
        rf = k if i == 0 else rf + (k - 1) * total_stride
        total_stride *= s
    return rf


def find_archi(patch_size: int, max_layers: int = 9) -> list[tuple[int, int]]:
    """3x3 layers (first stride 2, others 1 or 2) whose receptive field is nearest ``patch_size``.

    Among equal fields the fewest layers win, then the most total stride (DeepFaceLab's search).
    """
    best: dict[int, tuple[int, int, list[tuple[int, int]]]] = {}
    for count in range(1, max_layers + 1):
        for val in range((1 << (count - 1)) - 1, -1, -1):
            layers = [(3, 2)] + [(3, 2 if val & (1 << i) else 1) for i in range(count - 1)]
            rf = receptive_field(layers)
            sum_st = sum(s for _, s in layers)
            old = best.get(rf)
            if old is None or count < old[0] or (count == old[0] and sum_st > old[1]):
                best[rf] = (count, sum_st, layers)
    nearest = min(sorted(best), key=lambda rf: abs(rf - patch_size))
    return best[nearest][2]


class UNetPatchDiscriminator(nn.Module):
    """(B, 3, R, R) -> (centre logits (B, 1, r, r), per-pixel logits (B, 1, R, R)).

    Encoder of 3x3 convs chosen for a receptive field near ``patch_size``; channels base*2^i capped at 512; a
    transposed-conv decoder with skip connections gives the full-resolution logit map.
    """

    def __init__(self, patch_size: int, base_ch: int = 16, in_ch: int = 3) -> None:
        super().__init__()
        layers = find_archi(patch_size)
        chs = [min(base_ch * 2 ** i, 512) for i in range(len(layers) + 1)]
        self.in_conv = nn.Conv2d(in_ch, chs[0], 1)
        self.convs = nn.ModuleList()
        ups = []
        for i, (k, s) in enumerate(layers):
            self.convs.append(nn.Conv2d(chs[i], chs[i + 1], k, stride=s, padding=k // 2))
            in_up = chs[i + 1] * (2 if i != len(layers) - 1 else 1)
            ups.append(nn.ConvTranspose2d(in_up, chs[i], k, stride=s, padding=k // 2, output_padding=s - 1))
        self.upconvs = nn.ModuleList(reversed(ups))
        self.center_out = nn.Conv2d(chs[-1], 1, 1)
        self.center_conv = nn.Conv2d(chs[-1], chs[-1], 1)
        self.out_conv = nn.Conv2d(chs[0] * 2, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.leaky_relu(self.in_conv(x), 0.2)
        skips = []
        for conv in self.convs:
            skips.insert(0, x)
            x = F.leaky_relu(conv(x), 0.2)
        center = self.center_out(x)
        x = F.leaky_relu(self.center_conv(x), 0.2)
        for up, skip in zip(self.upconvs, skips, strict=True):
            x = F.leaky_relu(up(x), 0.2)
            if x.shape[-2:] != skip.shape[-2:]:
                x = x[..., : skip.shape[-2], : skip.shape[-1]]
            x = torch.cat([skip, x], dim=1)
        return center, self.out_conv(x)


class CodeDiscriminator(nn.Module):
    """Latent code (B, in, r, r) -> logits (B, 1, r', r'): 1 + r//8 stride-2 convs of ch*2^i (<= 8 ch) channels,
    the first 4x4 (padding 2 on every side, so r' = r/2 + 1 after it), the others 3x3 (padding 1)."""

    def __init__(self, in_ch: int, code_res: int, ch: int = 256) -> None:
        super().__init__()
        convs = []
        prev = in_ch
        for i in range(1 + code_res // 8):
            cur = ch * min(2 ** i, 8)
            k = 4 if i == 0 else 3
            convs.append(nn.Conv2d(prev, cur, k, stride=2, padding=k // 2))  # leras "SAME": symmetric k // 2
            prev = cur
        self.convs = nn.ModuleList(convs)
        self.out_conv = nn.Conv2d(prev, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.1)
        return self.out_conv(x)
