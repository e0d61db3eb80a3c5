"""SAEHD blocks: shapes of every stage, the tiny-spatial im2col convolution, pixel norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facelab.models.saehd.archi import Conv2d, Decoder, Encoder, Inter, pixel_norm
from facelab.models.saehd.gan import UNetPatchDiscriminator, find_archi, receptive_field


@pytest.mark.parametrize("hw,k,stride", [(1, 3, 1), (2, 3, 1), (3, 3, 1), (4, 3, 1), (8, 3, 1), (8, 5, 2),
                                         (7, 5, 2), (16, 5, 2)])
def test_tiny_spatial_conv_matches_reference_conv(hw, k, stride):
    torch.manual_seed(0)
    conv = Conv2d(6, 10, k, stride=stride, padding=k // 2)
    x = torch.randn(3, 6, hw, hw, requires_grad=True)
    y = conv(x)
    ref = F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=k // 2)
    assert y.shape == ref.shape
    assert torch.allclose(y, ref, atol=1e-5)
    g = torch.randn_like(y)
    gx, gw = torch.autograd.grad(y, (x, conv.weight), g)
    rx, rw = torch.autograd.grad(ref, (x, conv.weight), g)
    assert torch.allclose(gx, rx, atol=1e-5) and torch.allclose(gw, rw, atol=1e-4)


def test_pixel_norm_unit_rms():
    x = torch.randn(4, 100) * 7
    assert torch.allclose(pixel_norm(x).square().mean(dim=1), torch.ones(4), atol=1e-4)


@pytest.mark.parametrize("opts,res", [("", 64), ("u", 64), ("d", 64), ("t", 64), ("udt", 64)])
def test_stage_shapes(opts, res):
    o = frozenset(opts)
    enc = Encoder(res, 8, o)
    flat = enc(torch.rand(2, 3, res, res))
    s = res // (32 if "t" in o else 16)
    assert flat.shape == (2, 64 * s * s) and enc.out_features == flat.shape[1]
    lowest = res // (32 if "d" in o else 16)
    inter = Inter(enc.out_features, 16, 24, lowest, o)
    code = inter(flat)
    assert code.shape == (2, 24, inter.out_res, inter.out_res)
    assert inter.out_res == (lowest if "t" in o else 2 * lowest)
    face, mask = Decoder(24, 8, 4, o)(code)
    assert face.shape == (2, 3, res, res) and mask.shape == (2, 1, res, res)


def test_patch_discriminator_receptive_field_and_shapes():
    layers = find_archi(28)
    assert receptive_field(layers) == pytest.approx(28, abs=2) and layers[0] == (3, 2)
    assert receptive_field([(3, 2), (3, 2)]) == 7
    center, full = UNetPatchDiscriminator(16, 4)(torch.rand(2, 3, 48, 48))
    assert full.shape == (2, 1, 48, 48) and center.shape[:2] == (2, 1)
