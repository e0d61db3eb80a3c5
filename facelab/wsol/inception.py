"""InceptionV3 for BAS (torchvision module names): first conv padded, the two stem max-pools padded and rounding up
(``ceil_mode``), Mixed_6a at stride 1, so f1 (to Mixed_6e) is 28x28 at 224 px (1/8) and f2 (Mixed_7a-c, Mixed_7a
padded) 14x14. Needs ~48 px or more.
"""

from __future__ import annotations

import torch
from torch import nn

from facelab.wsol.parts import BAS_BACKBONES, BackboneParts, channels


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kw) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


def _pool_branch(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.avg_pool2d(x, 3, 1, 1)


class InceptionA(nn.Module):
    def __init__(self, cin: int, pool: int, c) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, c(64), kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, c(48), kernel_size=1)
        self.branch5x5_2 = BasicConv2d(c(48), c(64), kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, c(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c(64), c(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c(96), c(96), kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, c(pool), kernel_size=1)
        self.out_channels = c(64) * 2 + c(96) + c(pool)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b1, b5, b3, self.branch_pool(_pool_branch(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction; BAS runs it at stride 1 with padding 1."""

    def __init__(self, cin: int, c, stride: int = 1) -> None:
        super().__init__()
        pad = 1 if stride == 1 else 0
        self.stride, self.pad = stride, pad
        self.branch3x3 = BasicConv2d(cin, c(384), kernel_size=3, stride=stride, padding=pad)
        self.branch3x3dbl_1 = BasicConv2d(cin, c(64), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c(64), c(96), kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(c(96), c(96), kernel_size=3, stride=stride, padding=pad)
        self.out_channels = c(384) + c(96) + cin

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, nn.functional.max_pool2d(x, 3, self.stride, self.pad)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin: int, c7: int, c) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, c(192), kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c(c7), kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c(c7), c(c7), kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c(c7), c(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c(c7), kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c(c7), c(c7), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c(c7), c(c7), kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c(c7), c(c7), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c(c7), c(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, c(192), kernel_size=1)
        self.out_channels = c(192) * 4

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        return torch.cat([b1, b7, bd, self.branch_pool(_pool_branch(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction to 1/16 (BAS pads it by 1)."""

    def __init__(self, cin: int, c) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, c(192), kernel_size=1)
        self.branch3x3_2 = BasicConv2d(c(192), c(320), kernel_size=3, stride=2, padding=1)
        self.branch7x7x3_1 = BasicConv2d(cin, c(192), kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(c(192), c(192), kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(c(192), c(192), kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(c(192), c(192), kernel_size=3, stride=2, padding=1)
        self.out_channels = c(320) + c(192) + cin

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, nn.functional.max_pool2d(x, 3, 2, 1)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin: int, c) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, c(320), kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, c(384), kernel_size=1)
        self.branch3x3_2a = BasicConv2d(c(384), c(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(c(384), c(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, c(448), kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(c(448), c(384), kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(c(384), c(384), kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(c(384), c(384), kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, c(192), kernel_size=1)
        self.out_channels = c(320) + 4 * c(384) + c(192)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        return torch.cat([b1, b3, bd, self.branch_pool(_pool_branch(x))], 1)


class InceptionEarly(nn.Module):
    def __init__(self, c) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, c(32), kernel_size=3, stride=2, padding=1)
        self.Conv2d_2a_3x3 = BasicConv2d(c(32), c(32), kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(c(32), c(64), kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(c(64), c(80), kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(c(80), c(192), kernel_size=3)
        self.Mixed_5b = InceptionA(c(192), 32, c)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, 64, c)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, 64, c)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, c, stride=1)
        cin = self.Mixed_6a.out_channels
        self.Mixed_6b = InceptionC(cin, 128, c)
        self.Mixed_6c = InceptionC(self.Mixed_6b.out_channels, 160, c)
        self.Mixed_6d = InceptionC(self.Mixed_6c.out_channels, 160, c)
        self.Mixed_6e = InceptionC(self.Mixed_6d.out_channels, 192, c)
        self.out_channels = self.Mixed_6e.out_channels

    def forward(self, x):
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=True)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = nn.functional.max_pool2d(x, 3, 2, 1, ceil_mode=True)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = getattr(self, name)(x)
        return x


class InceptionLate(nn.Module):
    def __init__(self, cin: int, c) -> None:
        super().__init__()
        self.Mixed_7a = InceptionD(cin, c)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, c)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, c)
        self.out_channels = self.Mixed_7c.out_channels

    def forward(self, x):
        return self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))


@BAS_BACKBONES.register("inceptionv3", "InceptionV3 (torchvision naming): f1 to Mixed_6e, f2 = Mixed_7a-c")
def inception_v3_parts(width: float = 1.0) -> BackboneParts:
    """InceptionV3 split for BAS (see module docstring)."""

    def c(n: int) -> int:
        return channels(n, width)

    early = InceptionEarly(c)
    late = InceptionLate(early.out_channels, c)

    def key_map(k: str) -> str | None:
        if k.startswith(("AuxLogits.", "fc.")):
            return None
        return ("late." if k.startswith("Mixed_7") else "early.") + k

    return BackboneParts(early, late, early.out_channels, late.out_channels, 8, c(1024), key_map)
