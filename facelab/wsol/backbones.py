"""CNN backbones for BAS, each split into ``early`` (the extractor f1, stride 8 at full size) and ``late`` (f2);
InceptionV3 registers from :mod:`facelab.wsol.inception`, the registry and the parts are in :mod:`facelab.wsol.parts`.

Every paper backbone keeps torchvision's module names inside its two parts, so an ImageNet state dict maps onto it
with a simple key rename (``key_map``). ``width`` scales every channel count (1.0 = the paper's network; smaller
widths exist for fast tests and cannot load ImageNet weights).
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from facelab.wsol.parts import BAS_BACKBONES, BackboneParts
from facelab.wsol.parts import channels as _ch

__all__ = ["BAS_BACKBONES", "BackboneParts", "mobilenetv1", "resnet50", "tiny_cnn", "vgg16"]


# -- tiny from-scratch CNN ----------------------------------------------------------------------------------------
def _cbr(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@BAS_BACKBONES.register("tiny", "small from-scratch CNN (map at 1/4 of the input), trains on a CPU in minutes")
def tiny_cnn(width: float = 1.0) -> BackboneParts:
    c1, c2, c3 = _ch(24, width), _ch(48, width), _ch(96, width)
    early = nn.Sequential(_cbr(3, c1, 2), _cbr(c1, c1), _cbr(c1, c2, 2), _cbr(c2, c2))
    late = nn.Sequential(_cbr(c2, c3, 2), _cbr(c3, c3))
    return BackboneParts(early, late, c2, c3, 4, _ch(96, width), lambda k: None)


# -- VGG16 ----------------------------------------------------------------------------------------------------------
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG_SPLIT = 23  # features.0..22 end at conv4_3 + ReLU (stride 8); 23 is pool4


@BAS_BACKBONES.register("vgg16", "VGG16 (torchvision naming, no BN): f1 to conv4_3, f2 = pool4 + conv5")
def vgg16(width: float = 1.0) -> BackboneParts:
    layers: list[nn.Module] = []
    cin = 3
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            cout = _ch(int(v), width)
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
            cin = cout
    early = nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(layers[:_VGG_SPLIT])))
    late = nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(layers) if i >= _VGG_SPLIT))

    def key_map(k: str) -> str | None:
        if not k.startswith("features."):
            return None
        idx = int(k.split(".")[1])
        return ("early." if idx < _VGG_SPLIT else "late.") + k[len("features."):]

    return BackboneParts(early, late, _ch(512, width), _ch(512, width), 8, _ch(1024, width), key_map)


# -- ResNet50 -------------------------------------------------------------------------------------------------------
class Bottleneck(nn.Module):
    """torchvision v1.5 bottleneck (stride on the 3x3 conv)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + idt)


def _res_layer(cin: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    down = None
    if stride != 1 or cin != planes * 4:
        down = nn.Sequential(nn.Conv2d(cin, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))
    mods = [Bottleneck(cin, planes, stride, down)] + [Bottleneck(planes * 4, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*mods), planes * 4


class _ResEarly(nn.Module):
    def __init__(self, width: float) -> None:
        super().__init__()
        c0 = _ch(64, width)
        self.conv1 = nn.Conv2d(3, c0, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(c0)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1, c = _res_layer(c0, _ch(64, width), 3, 1)
        self.layer2, c = _res_layer(c, _ch(128, width), 4, 2)
        self.layer3, c = _res_layer(c, _ch(256, width), 6, 1)  # stride 1: F stays at 1/8
        self.out_channels = c

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))


class _ResLate(nn.Module):
    def __init__(self, cin: int, width: float) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, 2)
        self.layer4, self.out_channels = _res_layer(cin, _ch(512, width), 3, 1)

    def forward(self, x):
        return self.layer4(self.pool(x))


@BAS_BACKBONES.register("resnet50", "ResNet50 (torchvision naming): f1 to layer3 at stride 1, f2 = pool + layer4")
def resnet50(width: float = 1.0) -> BackboneParts:
    early = _ResEarly(width)
    late = _ResLate(early.out_channels, width)

    def key_map(k: str) -> str | None:
        if k.startswith("fc."):
            return None
        return ("late." if k.startswith("layer4.") else "early.") + k

    return BackboneParts(early, late, early.out_channels, late.out_channels, 8, _ch(1024, width), key_map)


# -- MobileNetV1 ----------------------------------------------------------------------------------------------------
def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _conv_dw(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


# (cin, cout, stride) of model.1..13; model.6 runs at stride 1 instead of 2 (BAS)
_MBV1 = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 1)] + \
        [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
_MB_SPLIT = 12


@BAS_BACKBONES.register("mobilenetv1", "MobileNetV1 with ReLU (model.N naming): f1 to the 5th 512 block")
def mobilenetv1(width: float = 1.0) -> BackboneParts:
    mods: list[nn.Module] = [_conv_bn(3, _ch(32, width), 2)]
    mods += [_conv_dw(_ch(a, width), _ch(b, width), s) for a, b, s in _MBV1]
    early = nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(mods[:_MB_SPLIT])))
    late = nn.Sequential(OrderedDict((str(i), m) for i, m in enumerate(mods) if i >= _MB_SPLIT))

    def key_map(k: str) -> str | None:
        if not k.startswith("model."):
            return None
        idx = int(k.split(".")[1])
        if idx >= len(mods):
            return None
        return ("early." if idx < _MB_SPLIT else "late.") + k[len("model."):]

    return BackboneParts(early, late, _ch(512, width), _ch(1024, width), 8, _ch(1024, width), key_map)

