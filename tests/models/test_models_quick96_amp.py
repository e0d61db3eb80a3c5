"""Quick96 and AMP at tiny sizes: forward + backward, their schedules, morph mixing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facelab.errors import FacelabError
from facelab.models import arch_class, create_model, describe
from facelab.models.amp import AMPArch, morph_masks, swap_channel_mask
from facelab.models.base import Critic
from facelab.models.batch import Batch
from facelab.models.quick96 import Quick96Arch, quick96_side_loss
from facelab.models.saehd.losses import blurred_mask, dssim
from facelab.train.augment import random_affine
from facelab.train.distributed import SINGLE
from facelab.train.loader import spec_from_options
from facelab.train.loop import Run, resolved_options, run_step
from facelab.train.optim import RMSprop
from facelab.train.options import TrainOptions
from facelab.train.step import new_trainee, train_step

TINY = {"resolution": 32, "ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}


def random_batch(res: int, n: int = 2, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, 1, res, res)
    mask[..., 8:24, 8:24] = 1
    em = torch.zeros_like(mask)
    em[..., 12:16, 10:22] = 1
    img = lambda: torch.rand(n, 3, res, res, generator=g)  # noqa: E731
    return Batch(img(), img(), mask, em, img(), img(), mask, em)


def test_quick96_fixes_its_recipe_and_retrains_previous_batch_unwarped(caplog):
    torch.manual_seed(0)
    model = create_model("quick96", TINY)
    assert arch_class("quick96") is Quick96Arch and model.arch.archi == "df-ud"
    with caplog.at_level("WARNING"):
        opts = resolved_options(TrainOptions(lr=1e-6, gan_power=0.5), "quick96")
    assert "lr 1e-06 -> 0.0002" in caplog.text and "gan-power 0.5 -> 0.0" in caplog.text
    assert "masked-training" not in caplog.text  # left at its default: nothing to say
    trainee = new_trainee(model, opts)
    opt = trainee.optimizers["G"]
    assert isinstance(opt, RMSprop) and opt.param_groups[0]["lr"] == 2e-4
    assert opt.param_groups[0]["lr_dropout"] == 0.3 and opt.param_groups[0]["lr_cos"] == 0
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording_forward(src, dst, knobs):
        seen.append((src, dst))
        return model(src, dst, knobs)

    trainee.forward = recording_forward
    run = Run(model, trainee.optimizers, 0, {}, Path("unused"), "m", True, SINGLE, torch.device("cpu"))
    run.trainee = trainee
    a, b, c = random_batch(32, seed=1), random_batch(32, seed=2), random_batch(32, seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for it, batch in ((1, a), (2, b), (3, c)):
        run.iteration = it
        assert run_step(run, batch, opts).finite
    assert seen[0][0] is a.warped_src and seen[1][0] is b.warped_src
    assert seen[2][0] is b.target_src and seen[2][1] is b.target_dst  # iteration 3: batch 2 again, unwarped
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_quick96_defaults_and_validation():
    assert Quick96Arch().resolution == 96 and Quick96Arch().ae_dims == 128
    with pytest.raises(FacelabError):
        create_model("quick96", {"resolution": 80})
    with pytest.raises(FacelabError):
        create_model("quick96", {"archi": "liae"})


def test_morph_masks_have_exact_counts():
    m = morph_masks(5, 40, 0.3, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert m.shape == (5, 40, 1, 1)
    assert torch.equal(m.sum(dim=(1, 2, 3)), torch.full((5,), 12.0))
    assert not torch.equal(m[0], m[1])  # random per sample
    keep = swap_channel_mask(10, 0.35, torch.device("cpu"))
    assert keep.flatten().tolist() == [1.0] * 3 + [0.0] * 7


def test_amp_trains_with_gan():
    torch.manual_seed(0)
    model = create_model("amp", TINY | {"inter_dims": 32})
    opts = TrainOptions(gan_power=0.1, gan_dims=4, lr=1e-3, clipgrad=True, blur_out_mask=True)
    trainee = new_trainee(model, opts)
    assert set(trainee.optimizers) == {"G", "D_gan"}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_step(trainee, random_batch(32), opts.knobs(), opts.clipgrad, opts.mixed_precision)
    assert result.finite and {"src_loss", "dst_loss", "G_loss", "D_gan_loss"} <= set(result.losses)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    inters = {k for k in before if k.startswith(("inter_src.", "inter_dst."))}
    assert inters and changed == set(before) - inters  # DeepFaceLab's AMP optimises encoder and decoder only
    out = model.preview(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert out["src_dst"].shape == (2, 3, 32, 32) and out["src_dst_mask"].shape == (2, 1, 32, 32)


def test_amp_morph_value_picks_inter_channels():
    torch.manual_seed(0)
    model = create_model("amp", TINY | {"inter_dims": 32}).eval()
    dst = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        code = model.encoder(dst)
        from_src = model.decoder(model.inter_src(code))
        from_dst = model.decoder(model.inter_dst(code))
    full, none = model.predict(dst, 1.0), model.predict(dst, 0.0)
    assert torch.allclose(full["face"], from_src[0], atol=1e-6)
    assert torch.allclose(none["face"], from_dst[0], atol=1e-6)
    assert torch.allclose(full["dst_mask"], from_dst[1], atol=1e-6)
    half = model.predict(dst, 0.5)["face"]
    assert not torch.allclose(half, full["face"]) and not torch.allclose(half, none["face"])


def test_amp_defaults_validation_and_describe():
    assert AMPArch().resolution == 224 and AMPArch().inter_dims == 1024 and AMPArch().face_type == "whole_face"
    for bad in ({"resolution": 48}, {"face_type": "half"}, {"inter_dims": 0}):
        with pytest.raises(FacelabError):
            create_model("amp", TINY | bad)
    info = describe(create_model("amp", TINY | {"inter_dims": 32}), TrainOptions().knobs(), batch_size=2)
    assert info["model"] == "amp" and info["parameters"] > 0 and info["activations_mb"] > 0


def test_amp_gan_runs_on_both_sides_like_deepfacelab():
    """The AMP GAN terms against a port of DeepFaceLab's: four generator logits (centre and per-pixel, src and
    dst), the critic's eight cross-entropies times 1/8, on blurred-mask-masked images."""
    torch.manual_seed(0)
    model = create_model("amp", TINY | {"inter_dims": 32})
    knobs = TrainOptions(gan_power=0.3, gan_dims=4).knobs()
    critic = model.make_critics(knobs, {})["D_gan"]
    batch = random_batch(32, n=3)
    p = model(batch.warped_src, batch.warped_dst, knobs)
    g, d = model._gan_terms(Critic(critic, critic), p, batch, batch.target_src, batch.target_dst, 0.3)

    def ce(logits, label):  # DeepFaceLab's DLossOnes / DLossZeros: mean over all but the batch axis
        lab = torch.full_like(logits, label)
        return F.binary_cross_entropy_with_logits(logits, lab, reduction="none").mean(dim=(1, 2, 3))

    m_src, m_dst = blurred_mask(batch.target_src_mask, 32), blurred_mask(batch.target_dst_mask, 32)
    with torch.no_grad():
        ps, ps2 = critic(p["src_src"] * m_src)
        pd, pd2 = critic(p["dst_dst"] * m_dst)
        ts, ts2 = critic(batch.target_src * m_src)
        td, td2 = critic(batch.target_dst * m_dst)
    want_g = 0.3 * (ce(ps, 1) + ce(ps2, 1) + ce(pd, 1) + ce(pd2, 1))
    want_d = (ce(ts, 1) + ce(ts2, 1) + ce(ps, 0) + ce(ps2, 0) + ce(td, 1) + ce(td2, 1) + ce(pd, 0)
              + ce(pd2, 0)) / 8
    assert torch.allclose(g.detach(), want_g.mean(), atol=1e-6)
    assert torch.allclose(d.detach(), want_d.mean(), atol=1e-6)


def test_quick96_loss_uses_a_plain_gaussian_mask_like_deepfacelab():
    """Port of DeepFaceLab's Quick96 side loss: the mask blurred with sigma max(1, res // 32), not clipped."""
    g = torch.Generator().manual_seed(4)
    res = 96
    mask = torch.zeros(2, 1, res, res)
    mask[..., 20:76, 24:72] = 1
    target, pred = torch.rand(2, 3, res, res, generator=g), torch.rand(2, 3, res, res, generator=g)
    pred_mask = torch.rand(2, 1, res, res, generator=g)
    sigma = 3.0  # max(1, 96 // 32)
    size = max(3, int(4 * sigma)) + 1  # 12 -> made odd: 13 taps centred on the middle one
    x = np.arange(size) - size // 2
    k = np.exp(-(x ** 2) / (2 * sigma ** 2))
    k2d = torch.tensor(np.outer(k, k) / np.outer(k, k).sum(), dtype=torch.float32)[None, None]
    m = F.conv2d(mask, k2d, padding=size // 2)
    assert 0.0 < float(m[0, 0, 21, 48]) < 0.9  # soft inside the edge (SAEHD's clip x2 would make it ~1)
    t, p = target * m, pred * m
    want = 10 * dssim(t, p, 8) + 10 * (t - p).square().mean(dim=(1, 2, 3)) \
        + 10 * (mask - pred_mask).square().mean(dim=(1, 2, 3))
    got = quick96_side_loss(target, pred, mask, pred_mask, res)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_quick96_fixes_deepfacelab_augmentation():
    opts = resolved_options(TrainOptions(batch_size=16, random_warp=False, random_src_flip=True), "quick96")
    assert (opts.batch_size, opts.random_warp, opts.random_src_flip, opts.random_dst_flip) == (4, True, False, False)
    spec = spec_from_options(opts)
    assert spec.batch_size == 4 and spec.src.affine.scale == spec.dst.affine.scale == 0.05
    assert not spec.src.flip and not spec.dst.flip and spec.src.warp and spec.dst.warp
    saehd = spec_from_options(resolved_options(TrainOptions(), "saehd"))
    assert saehd.src.affine.scale == 0.15 and saehd.dst.flip
    rng = np.random.default_rng(0)
    scales = [np.sqrt(abs(np.linalg.det(random_affine(rng, 96, spec.src.affine)[:, :2]))) for _ in range(500)]
    assert 1 / 1.05 - 1e-9 <= min(scales) and max(scales) <= 1.05 + 1e-9 and max(scales) > 1.04
