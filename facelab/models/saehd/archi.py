"""SAEHD building blocks (DeepFaceLab's ``DeepFakeArchi``): encoder, inter, decoder for df/liae with -u -d -t.

All modules take and return (B, C, H, W) tensors; images are (B, 3, R, R) in [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facelab.models import conv_paths, kernels


def init_weights(module: nn.Module) -> None:
    """Glorot-uniform weights and zero biases for every conv and dense layer (leras defaults)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Conv2d(nn.Conv2d):
    """nn.Conv2d whose CPU kernel is chosen per call: oneDNN direct (in the incoming layout or channels-last),
    im2col + one GEMM, or a 1x1 as one GEMM (:mod:`facelab.models.kernels`).

    Same weights and results as nn.Conv2d; only the kernel differs. The choices measured on this machine are set
    by :func:`facelab.models.kernels.plan_kernels`; without one, convolutions with tiny outputs (<= 4x4, where
    oneDNN is slow) run as im2col + GEMM and the others as oneDNN direct.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kernels.set_kernel_paths(self, {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or x.device.type != "cpu"
                or not kernels.plannable(self)):
            return super().forward(x)
        return conv_paths.conv2d(kernels.chosen_path(self, x), x, self.weight, self.bias, self.stride, self.padding)


def pixel_norm(x: torch.Tensor, dim: int = -1, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) along ``dim``."""
    return x * torch.rsqrt(x.square().mean(dim=dim, keepdim=True) + eps)


def activation(x: torch.Tensor, slope: float, cos: bool) -> torch.Tensor:
    """The archi's activation: x * cos(x) with the archi letter ``c``, else LeakyReLU of ``slope``."""
    return x * torch.cos(x) if cos else F.leaky_relu(x, slope)


class Downscale(nn.Module):
    """Conv k x k stride 2 ("same") -> LeakyReLU 0.1 (x cos x with ``cos``): (B, in, H, W) -> (B, out, ceil(H/2),
    ceil(W/2))."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 5, cos: bool = False) -> None:
        super().__init__()
        self.conv = Conv2d(in_ch, out_ch, kernel_size, stride=2, padding=kernel_size // 2)
        self.cos = cos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return activation(self.conv(x), 0.1, self.cos)


class Upscale(nn.Module):
    """Conv 3x3 to 4*out -> LeakyReLU 0.1 (x cos x with ``cos``) -> depth-to-space x2: (B, in, H, W) ->
    (B, out, 2H, 2W)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, cos: bool = False) -> None:
        super().__init__()
        self.conv = Conv2d(in_ch, out_ch * 4, kernel_size, padding=kernel_size // 2)
        self.cos = cos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(activation(self.conv(x), 0.1, self.cos), 2)


class ResidualBlock(nn.Module):
    """Conv3x3 -> LReLU 0.2 -> Conv3x3 -> + input -> LReLU 0.2 (shape kept; x cos x for both with ``cos``)."""

    def __init__(self, ch: int, kernel_size: int = 3, cos: bool = False) -> None:
        super().__init__()
        self.conv1 = Conv2d(ch, ch, kernel_size, padding=kernel_size // 2)
        self.conv2 = Conv2d(ch, ch, kernel_size, padding=kernel_size // 2)
        self.cos = cos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = activation(self.conv1(x), 0.2, self.cos)
        return activation(x + self.conv2(y), 0.2, self.cos)


def _halve(size: int, times: int) -> int:
    for _ in range(times):
        size = math.ceil(size / 2)
    return size


class Encoder(nn.Module):
    """(B, 3, R, R) -> flat (B, 8e * S * S); S = R/16, or R/32 with ``t``. ``u``: pixel norm of the flat code."""

    def __init__(self, resolution: int, e_ch: int, opts: frozenset[str], in_ch: int = 3) -> None:
        super().__init__()
        self.use_pixel_norm = "u" in opts
        c = "c" in opts
        if "t" in opts:
            layers = [Downscale(in_ch, e_ch, cos=c), ResidualBlock(e_ch, cos=c), Downscale(e_ch, e_ch * 2, cos=c),
                      Downscale(e_ch * 2, e_ch * 4, cos=c), Downscale(e_ch * 4, e_ch * 8, cos=c),
                      Downscale(e_ch * 8, e_ch * 8, cos=c), ResidualBlock(e_ch * 8, cos=c)]
            n_down = 5
        else:
            chs = [in_ch] + [e_ch * min(2 ** i, 8) for i in range(4)]
            layers = [Downscale(chs[i], chs[i + 1], cos=c) for i in range(4)]
            n_down = 4
        self.body = nn.Sequential(*layers)
        self.out_ch = e_ch * 8
        self.out_res = _halve(resolution, n_down)

    @property
    def out_features(self) -> int:
        return self.out_ch * self.out_res * self.out_res

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.body(x), 1)
        return pixel_norm(x) if self.use_pixel_norm else x


class Inter(nn.Module):
    """Flat code -> Dense(ae) -> Dense(L*L*out) -> (B, out, L, L) [-> Upscale to 2L unless ``t``]."""

    def __init__(self, in_features: int, ae_ch: int, ae_out_ch: int, lowest_res: int, opts: frozenset[str]) -> None:
        super().__init__()
        self.ae_out_ch = ae_out_ch
        self.lowest_res = lowest_res
        self.dense1 = nn.Linear(in_features, ae_ch)
        self.dense2 = nn.Linear(ae_ch, lowest_res * lowest_res * ae_out_ch)
        self.upscale = None if "t" in opts else Upscale(ae_out_ch, ae_out_ch, cos="c" in opts)
        self.out_res = lowest_res if self.upscale is None else lowest_res * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dense2(self.dense1(x)).view(-1, self.ae_out_ch, self.lowest_res, self.lowest_res)
        return x if self.upscale is None else self.upscale(x)


def depth_to_space_subpixels(parts: list[torch.Tensor]) -> torch.Tensor:
    """Four (B, C, H, W) maps -> (B, C, 2H, 2W): map k fills sub-pixel (k // 2, k % 2) of every 2x2 block
    (DeepFaceLab's depth-to-space of the maps concatenated on channels, TensorFlow's channel order)."""
    x = torch.stack(parts, dim=2)  # (B, C, 4, H, W)
    b, c, _, h, w = x.shape
    return F.pixel_shuffle(x.reshape(b, c * 4, h, w), 2)


class Decoder(nn.Module):
    """Code (B, in, L, L) -> (face (B, 3, R, R), mask (B, 1, R, R)), both through a sigmoid.

    RGB: 3 (4 with ``t``) Upscale+Residual stages, then Conv1x1 -> 3, or with ``d`` that Conv1x1 and three
    Conv3x3 -> 3, one per sub-pixel of a 2x2 block (:func:`depth_to_space_subpixels`). Mask: a separate branch of
    plain upscales (one more with ``d``) -> Conv1x1 -> 1.
    """

    def __init__(self, in_ch: int, d_ch: int, d_mask_ch: int, opts: frozenset[str]) -> None:
        super().__init__()
        mults = [8, 8, 4, 2] if "t" in opts else [8, 4, 2]
        chs = [in_ch] + [d_ch * k for k in mults]
        cos = "c" in opts
        self.ups = nn.ModuleList(Upscale(chs[i], chs[i + 1], cos=cos) for i in range(len(mults)))
        self.res = nn.ModuleList(ResidualBlock(c, cos=cos) for c in chs[1:])
        mchs = [in_ch] + [d_mask_ch * k for k in mults] + ([d_mask_ch] if "d" in opts else [])
        self.mask_ups = nn.Sequential(*[Upscale(mchs[i], mchs[i + 1], cos=cos) for i in range(len(mchs) - 1)])
        self.double = "d" in opts
        self.out_conv = Conv2d(chs[-1], 3, 1)
        self.out_convs = nn.ModuleList(Conv2d(chs[-1], 3, 3, padding=1) for _ in range(3 if self.double else 0))
        self.out_convm = Conv2d(mchs[-1], 1, 1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = z
        for up, res in zip(self.ups, self.res, strict=True):
            x = res(up(x))
        if self.double:
            x = depth_to_space_subpixels([self.out_conv(x)] + [conv(x) for conv in self.out_convs])
        else:
            x = self.out_conv(x)
        m = self.out_convm(self.mask_ups(z))
        return torch.sigmoid(x), torch.sigmoid(m)
