"""SAEHD blocks: shapes of every stage, the tiny-spatial im2col convolution, pixel norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facelab.models.saehd.archi import (
    Conv2d,
    Decoder,
    Downscale,
    Encoder,
    Inter,
    ResidualBlock,
    Upscale,
    depth_to_space_subpixels,
    pixel_norm,
)
from facelab.models.saehd.config import parse_archi
from facelab.models.saehd.gan import CodeDiscriminator, UNetPatchDiscriminator, find_archi, receptive_field
from facelab.models.saehd.model import SAEHD


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


def test_double_resolution_head_matches_deepfacelab():
    """-d: a 1x1 conv and three 3x3 convs to RGB, concatenated and put through DeepFaceLab's NCHW
    depth_to_space (reshape to (B, 2, 2, C, H, W), transpose to (B, C, H, 2, W, 2)), then a sigmoid."""
    torch.manual_seed(0)
    dec = Decoder(24, 8, 4, frozenset("ud"))
    assert dec.out_conv.kernel_size == (1, 1) and [c.kernel_size for c in dec.out_convs] == [(3, 3)] * 3
    feats = torch.rand(2, 16, 6, 6)
    parts = torch.cat([dec.out_conv(feats)] + [c(feats) for c in dec.out_convs], dim=1)  # (B, 12, H, W)
    b, ch, h, w = parts.shape
    want = parts.reshape(b, 2, 2, ch // 4, h, w).permute(0, 3, 4, 1, 5, 2).reshape(b, ch // 4, 2 * h, 2 * w)
    got = depth_to_space_subpixels([dec.out_conv(feats)] + [c(feats) for c in dec.out_convs])
    assert torch.allclose(got, want)
    assert torch.equal(got[:, :, 0::2, 0::2], dec.out_conv(feats))  # the 1x1 conv fills the top-left sub-pixels
    code = torch.rand(2, 24, 2, 2)
    face, _ = dec(code)
    x = code
    for up, res in zip(dec.ups, dec.res, strict=True):
        x = res(up(x))
    heads = [dec.out_conv(x)] + [c(x) for c in dec.out_convs]
    assert torch.allclose(face, torch.sigmoid(depth_to_space_subpixels(heads)))
    assert not Decoder(24, 8, 4, frozenset("u")).out_convs  # without -d: the 1x1 conv only


def test_code_discriminator_pads_like_leras_same():
    """leras' "SAME" pads k // 2 on every side: 2 for the first 4x4 conv, 1 for the 3x3 ones."""
    torch.manual_seed(0)
    d = CodeDiscriminator(8, 16, ch=4)
    code = torch.rand(2, 8, 16, 16)
    x = code
    for conv in d.convs:
        p = conv.kernel_size[0] // 2
        x = F.leaky_relu(F.conv2d(F.pad(x, (p, p, p, p)), conv.weight, conv.bias, stride=2), 0.1)
    want = F.conv2d(x, d.out_conv.weight, d.out_conv.bias)
    got = d(code)
    assert got.shape == (2, 1, 3, 3)  # 16 -> 9 (4x4, pad 2) -> 5 -> 3
    assert torch.allclose(got, want, atol=1e-6)


def test_cos_archi_letter_swaps_every_activation_for_x_cos_x():
    """Archi letter ``c``: DeepFaceLab's act(x) = x * cos(x) in every downscale, upscale and residual block."""
    assert parse_archi("liae-udc") == ("liae", frozenset("udc"))
    torch.manual_seed(0)
    x = torch.randn(2, 4, 8, 8)
    down = Downscale(4, 6, cos=True)
    y = down.conv(x)
    assert torch.allclose(down(x), y * torch.cos(y))
    up = Upscale(4, 2, cos=True)
    y = up.conv(x)
    assert torch.allclose(up(x), F.pixel_shuffle(y * torch.cos(y), 2))
    res = ResidualBlock(4, cos=True)
    h = res.conv1(x) * torch.cos(res.conv1(x))
    s = x + res.conv2(h)
    assert torch.allclose(res(x), s * torch.cos(s), atol=1e-6)
    plain, cos = Encoder(32, 4, frozenset("u")), Encoder(32, 4, frozenset("uc"))
    cos.load_state_dict(plain.state_dict())  # same weights, other activation
    img = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(plain(img), cos(img))
    model = SAEHD({"resolution": 32, "archi": "df-udc", "e_dims": 4, "ae_dims": 8, "d_dims": 4, "d_mask_dims": 2})
    assert all(m.cos for m in model.modules() if isinstance(m, (Downscale, Upscale, ResidualBlock)))
    face, mask, _ = model.swap_faces(img)
    assert face.shape == (1, 3, 32, 32) and mask.shape == (1, 1, 32, 32)
