"""Quick96 and AMP at tiny sizes: forward + backward, their schedules, morph mixing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facelab.errors import FacelabError
from facelab.models import arch_class, create_model, describe
from facelab.models.amp import AMPArch, morph_masks, swap_channel_mask
from facelab.models.batch import Batch
from facelab.models.quick96 import Quick96Arch
from facelab.train.distributed import SINGLE
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
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)
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
