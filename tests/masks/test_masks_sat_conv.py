"""SAT on a convolutional stem: shapes, the gated attention against a float64 reference, and a short occluder
training on real faces that removes occluders the landmark hull keeps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from facekit import face_landmarks

from facelab.align import face_transform, hull_mask, transform_points
from facelab.masks.learner import (
    MaskLearnConfig,
    create_learner,
    hull_minus,
    learner_loss,
    mask_iou,
    occluder_kept,
    occluder_score,
    pick_threshold,
    synth_batch,
    to_tensor,
    train_occluder_learner,
    warmup_weight,
)
from facelab.masks.occluders import package_textures
from facelab.wsol.sat_conv import ConvSatNet, ConvSatSpec, create_conv_sat, spatial_query_attention, stem_from_bas

CPU = torch.device("cpu")


@torch.no_grad()
def test_conv_sat_shapes_follow_the_input_size():
    torch.manual_seed(0)
    net = create_conv_sat("conv_stem", 2).eval()
    for size in (64, 48):
        x = torch.rand(3, 3, size, size)
        out = net(x)
        grid = size // net.spec.stride
        assert out.logits.shape == (3, 2)
        assert out.fmap.shape == (3, 1, size, size) and out.fmap_low.shape == (3, 1, grid, grid)
        assert 0 <= float(out.fmap.min()) and float(out.fmap.max()) <= 1
        train = net.train_forward(x)
        assert train.logits.shape == (3, 2) and train.m.shape == (3, 1, grid, grid)
    deeper = ConvSatNet(ConvSatSpec(stem=(8, 8, 16), dim=32, depth=3, heads=2, gated=1, pos_grid=4), 5)
    assert deeper.spec.stride == 8 and deeper(torch.rand(2, 3, 32, 32)).fmap_low.shape == (2, 1, 4, 4)
    assert deeper(torch.rand(2, 3, 32, 32)).logits.shape == (2, 5)


def test_conv_sat_spec_checks():
    for bad in ({"stem": ()}, {"dim": 30, "heads": 4}, {"gated": 0}, {"gated": 3, "depth": 2}):
        with pytest.raises(ValueError):
            ConvSatSpec(**bad)


def test_spatial_query_attention_matches_a_float64_reference():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 4, generator=g) for n in (1, 7, 7))
    out, m = spatial_query_attention(q, k, v, gated=True, bias=0.5)
    q64, k64, v64 = q.double(), k.double(), v.double()
    logits = q64 @ k64.transpose(-2, -1) / 2.0  # sqrt(d) = 2
    m_ref = torch.sigmoid(logits[:, :, 0].mean(1) + 0.5)
    ref = (logits.softmax(-1) * m_ref[:, None, None, :]) @ v64
    torch.testing.assert_close(m.double(), m_ref)
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    ungated, _ = spatial_query_attention(q, k, v, gated=False)
    torch.testing.assert_close(ungated.double(), logits.softmax(-1) @ v64, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_the_image_reaches_the_logits_only_under_the_map():
    torch.manual_seed(0)
    net = create_conv_sat("conv_stem", 2).eval()
    torch.nn.init.normal_(net.head.weight)
    x = torch.rand(2, 3, 32, 32)
    assert not torch.allclose(net(x).logits[0], net(x).logits[1])
    for blk in net.blocks:  # every gate shut: the map is 0 everywhere
        blk.gate_bias.fill_(-1e4)
    out = net(x)
    assert float(out.fmap.max()) == 0.0 and torch.equal(out.logits, net.head_bias.expand(2, -1))


def test_stem_from_bas_fills_the_whole_stem_but_its_projection():
    torch.manual_seed(0)
    bas = create_learner(MaskLearnConfig(method="bas"))
    net = create_conv_sat("conv_stem", 2)
    missing, unexpected = net.load_state_dict(stem_from_bas(bas.state_dict()), strict=False)
    assert not unexpected and all(not k.startswith("stem.convs.") for k in missing)
    torch.testing.assert_close(net.stem.convs[0][0].weight, bas.early[0][0].weight)
    with pytest.raises(ValueError, match="no early"):
        stem_from_bas(net.state_dict())
    with pytest.raises(ValueError, match="sat_init"):
        MaskLearnConfig(method="sat", sat_backbone="deit_tiny", sat_init="bas")


def test_sat_warmup_ramps_only_the_map_terms():
    assert [warmup_weight(s, 10, 0.5) for s in (0, 1, 5, 9)] == [0.0, 0.2, 1.0, 1.0]
    assert warmup_weight(0, 10, 0.0) == 1.0
    terms = {k: torch.tensor(v) for k, v in {"cls": 1.0, "area": 2.0, "norm": 4.0, "neg": 8.0}.items()}
    terms["total"] = sum(terms.values())
    assert float(learner_loss("sat", terms, 0.25)) == pytest.approx(1 + 2 + 0.25 * 12)
    assert float(learner_loss("bas", terms, 0.0)) == float(terms["total"])


def _faces(images: list[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops (N,S,S,3) float [0,1] and hulls (N,S,S) of the photos, each also shifted a few pixels."""
    faces, hulls = [], []
    for img in images:
        lm = face_landmarks(img)
        for dx, dy in ((0, 0), (9, -6), (-8, 7)):
            mat = face_transform(lm + [dx, dy], size, "whole_face")
            faces.append(cv2.warpAffine(img, mat, (size, size), flags=cv2.INTER_AREA).astype(np.float32) / 255.0)
            hulls.append(hull_mask(transform_points(lm + [dx, dy], mat), size).astype(np.float32))
    return np.stack(faces), np.stack(hulls)


def _scores(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return occluder_score(model, to_tensor(x, CPU))[:, 0].numpy()


def test_short_sat_training_removes_occluders_the_hull_keeps(astronaut, grace_hopper):
    faces, hulls = _faces([astronaut, grace_hopper], 48)
    sources = package_textures()
    val_x, _, val_o, val_h = synth_batch(faces, hulls, sources, np.random.default_rng(1), 48, occluded_share=1.0)
    x, _, occ, h = synth_batch(faces, hulls, sources, np.random.default_rng(2), 48, occluded_share=1.0)
    target = h * (1 - occ)
    cfg = MaskLearnConfig(method="sat", size=48, steps=160, batch_size=16, seed=1)

    def hull_minus_iou(model: torch.nn.Module) -> tuple[float, float]:
        t = pick_threshold(_scores(model, val_x), val_h, val_h * (1 - val_o))  # picked on the validation pastes
        pred = hull_minus(h, _scores(model, x), t)
        return float(mask_iou(pred, target).mean()), float(occluder_kept(pred, h, occ).mean())

    torch.manual_seed(cfg.seed)
    untrained_iou, _ = hull_minus_iou(create_learner(cfg).eval())
    iou, kept = hull_minus_iou(train_occluder_learner(faces, hulls, sources, cfg, CPU))
    hull_iou = float(mask_iou(h, target).mean())
    assert iou > hull_iou + 0.02 and iou > untrained_iou + 0.02  # 0.815 vs 0.778 (hull) and 0.778 (untrained)
    assert kept < 0.8  # 0.65


def test_sat_init_bas_needs_the_sides_bas_learner(ws):
    from facelab.errors import FacelabError
    from facelab.masks.workspace_masks import save_mask_model, train_mask_model

    cfg = MaskLearnConfig(method="sat", size=32, steps=1, batch_size=2, sat_init="bas")
    with pytest.raises(FacelabError, match="no mask learner"):
        train_mask_model(ws, "dst", cfg, CPU)
    bas_cfg = MaskLearnConfig(method="bas", size=32)
    save_mask_model(ws.model("mask_bas"), create_learner(bas_cfg), None, 0.5, 0, bas_cfg, {})
    with pytest.raises(FacelabError, match="readable face files"):  # the stem was found; the faces are next
        train_mask_model(ws, "dst", cfg, CPU)
