"""SAEHD: every archi variant trains at a tiny size; NaN guard; liae freezing; optional parts; real-face fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelab.errors import FacelabError
from facelab.models import MODELS, arch_class, create_model, describe
from facelab.models.batch import Batch
from facelab.models.saehd import SAEHD, SAEHDArch
from facelab.models.store import migrate
from facelab.train.options import TrainOptions
from facelab.train.step import new_trainee, train_step

TINY = {"ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}


def random_batch(res: int, n: int = 2, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(n, 1, res, res)
    mask[..., res // 4: 3 * res // 4, res // 4: 3 * res // 4] = 1
    em = torch.zeros_like(mask)
    em[..., res // 3: res // 2, res // 3: 2 * res // 3] = 1
    img = lambda: torch.rand(n, 3, res, res, generator=g)  # noqa: E731
    return Batch(img(), img(), mask, em, img(), img(), mask.flip(-1), em)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _step(trainee, batch, opts):
    return train_step(trainee, batch, opts.knobs(), opts.clipgrad, opts.mixed_precision)


@pytest.mark.parametrize("archi", ["df", "liae", "df-u", "liae-u", "df-d", "liae-d", "df-t", "liae-t", "df-ud",
                                   "liae-ud", "df-udt", "liae-udt"])
def test_every_archi_trains_one_step(archi):
    torch.manual_seed(0)
    model = create_model("saehd", {"resolution": 32, "archi": archi, **TINY})
    opts = TrainOptions(lr=1e-3)
    trainee = new_trainee(model, opts)
    before = _snapshot(model)
    result = _step(trainee, random_batch(32), opts)
    assert result.finite
    assert {"src_loss", "dst_loss"} <= set(result.losses)
    assert all(np.isfinite(v) and v > 0 for v in result.losses.values())
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)  # every weight received a gradient and moved
    out = model.predict(torch.rand(3, 3, 32, 32))
    assert out["face"].shape == (3, 3, 32, 32) and out["mask"].shape == out["dst_mask"].shape == (3, 1, 32, 32)
    assert 0 <= out["face"].min() and out["face"].max() <= 1
    prev = model.preview(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    assert set(prev) == {"src_src", "dst_dst", "src_dst", "src_src_mask", "dst_dst_mask", "src_dst_mask"}


def test_all_options_on_with_discriminators():
    torch.manual_seed(0)
    model = create_model("saehd", {"resolution": 32, "archi": "df-ud", **TINY})
    opts = TrainOptions(gan_power=0.1, gan_dims=4, true_face_power=0.01, face_style_power=1.0, bg_style_power=1.0,
                        eyes_mouth_prio=True, blur_out_mask=True, lr_dropout="y", clipgrad=True,
                        optimizer="rmsprop")
    trainee = new_trainee(model, opts)
    assert set(trainee.optimizers) == {"G", "D_gan", "D_code"} and set(trainee.critics) == {"D_gan", "D_code"}
    d_gan, d_code = trainee.critics["D_gan"], trainee.critics["D_code"]
    d_before, c_before = _snapshot(d_gan), _snapshot(d_code)
    result = _step(trainee, random_batch(32), opts)
    assert result.finite and {"D_gan_loss", "D_code_loss", "G_loss"} <= set(result.losses)
    assert any(not torch.equal(v, d_before[k]) for k, v in d_gan.state_dict().items())
    assert any(not torch.equal(v, c_before[k]) for k, v in d_code.state_dict().items())
    assert not any(k.startswith(("D_gan.", "D_code.")) for k in model.state_dict())  # critics live apart

    # saved critic states rebuild the same critics in a fresh model
    fresh = create_model("saehd", {"resolution": 32, "archi": "df-ud", **TINY})
    for name, critic in trainee.critics.items():
        rebuilt = fresh.critic_from_state(name, critic.state_dict())
        for k, v in critic.state_dict().items():
            assert torch.equal(v, rebuilt.state_dict()[k])


def test_format_1_checkpoint_moves_critics_out_of_the_model():
    old = {"model": {"encoder.w": torch.ones(1), "D_gan.config": torch.tensor([4, 4]), "D_code.convs.0.w": torch.zeros(1)},
           "optimizers": {}}
    new = migrate(old)
    assert new["model"] == {"encoder.w": old["model"]["encoder.w"]}
    assert set(new["critics"]) == {"D_gan", "D_code"} and set(new["critics"]["D_gan"]) == {"config"}
    assert migrate(new) is new


def test_true_face_is_df_only():
    model = create_model("saehd", {"resolution": 32, "archi": "liae-ud", **TINY})
    assert set(new_trainee(model, TrainOptions(true_face_power=0.1)).optimizers) == {"G"}


def test_nan_batch_is_skipped_and_weights_unchanged():
    model = create_model("saehd", {"resolution": 32, "archi": "liae-ud", **TINY})
    opts = TrainOptions()
    trainee = new_trainee(model, opts)
    optims = trainee.optimizers
    _step(trainee, random_batch(32), opts)  # optimizer state exists now
    before = _snapshot(model)
    opt_before = {k: v.clone() for k, v in optims["G"].state[next(iter(model.parameters()))].items()}
    bad = random_batch(32, seed=1)
    bad.target_src[0, 0, 0, 0] = float("nan")
    result = _step(trainee, bad, opts)
    assert result.finite is False
    assert not np.isfinite(result.losses["src_loss"])
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    for k, v in optims["G"].state[next(iter(model.parameters()))].items():
        assert torch.equal(v, opt_before[k])


def test_liae_without_random_warp_freezes_inter_ab():
    model = create_model("saehd", {"resolution": 32, "archi": "liae-ud", **TINY})
    opts = TrainOptions(random_warp=False, lr=1e-3)
    trainee = new_trainee(model, opts)
    ab, b = _snapshot(model.inter_AB), _snapshot(model.inter_B)
    assert _step(trainee, random_batch(32), opts).finite
    assert all(torch.equal(v, ab[k]) for k, v in model.inter_AB.state_dict().items())
    assert all(not torch.equal(v, b[k]) for k, v in model.inter_B.state_dict().items())


def test_default_parameter_counts_match_reference():
    with torch.device("meta"):
        liae = SAEHD()
        df = SAEHD({"archi": "df-ud"})
    n_liae = sum(p.numel() for p in liae.parameters())
    n_df = sum(p.numel() for p in df.parameters())
    assert n_liae == pytest.approx(82e6, rel=0.03)  # enc 4.3 M + 2 x inter 19.9 M + decoder 38 M
    assert n_df == pytest.approx(54e6, rel=0.03)
    assert sum(p.numel() for p in liae.encoder.parameters()) == pytest.approx(4.3e6, rel=0.01)


def test_arch_validation_and_registry():
    assert set(MODELS.names()) >= {"saehd"}
    assert arch_class("saehd") is SAEHDArch
    assert create_model("saehd", {"resolution": 64, "archi": "df", **TINY}).arch.ae_dims == 16
    assert SAEHDArch(face_type="wf").face_type == "whole_face"
    for bad in ({"archi": "dfx"}, {"archi": "liae-uu"}, {"archi": "liae-ud", "resolution": 48},
                {"resolution": 40}, {"bogus": 1}, {"face_type": "nose"}):
        with pytest.raises(FacelabError):
            create_model("saehd", {**TINY, **bad})
    with pytest.raises(FacelabError):
        create_model("nosuchmodel")


def test_describe_reports_params_and_memory():
    model = create_model("saehd", {"resolution": 32, "archi": "liae-ud", **TINY})
    knobs = TrainOptions().knobs()
    info = describe(model, knobs, batch_size=4)
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert info["weights_mb"] == pytest.approx(info["parameters"] * 4 / 2 ** 20)
    assert info["activations_mb"] > 0 and info["total_mb"] > info["weights_mb"] + info["optimizer_mb"]
    assert describe(model, knobs, batch_size=8)["activations_mb"] == pytest.approx(2 * info["activations_mb"], rel=0.02)


def _face_crops(img: np.ndarray, res: int, n: int) -> torch.Tensor:
    """n slightly shifted crops around the face of the astronaut image, resized to res."""
    import cv2

    crops = []
    for i in range(n):
        y, x = 40 + 6 * (i % 3), 150 + 6 * (i // 3)
        crop = cv2.resize(img[y:y + 160, x:x + 160], (res, res), interpolation=cv2.INTER_AREA)
        crops.append(crop.astype(np.float32).transpose(2, 0, 1) / 255.0)
    return torch.from_numpy(np.stack(crops))


def test_tiny_model_fits_real_faces(astronaut, grace_hopper):
    torch.manual_seed(0)
    res = 32
    src, dst = _face_crops(astronaut, res, 4), _face_crops(grace_hopper, res, 4)
    mask = torch.zeros(4, 1, res, res)
    mask[..., 4:28, 6:26] = 1
    batch = Batch(src, src, mask, mask, dst, dst, mask, mask)
    model = create_model("saehd", {"resolution": res, "archi": "df-ud", "ae_dims": 32, "e_dims": 16,
                                   "d_dims": 16, "d_mask_dims": 8})
    opts = TrainOptions(lr=5e-4, masked_training=False)
    trainee = new_trainee(model, opts)
    first = _step(trainee, batch, opts).losses
    for _ in range(2, 61):
        last = _step(trainee, batch, opts).losses
    assert last["src_loss"] < 0.6 * first["src_loss"]
    assert last["dst_loss"] < 0.6 * first["dst_loss"]


@pytest.mark.parametrize("name,arch,parts", [("saehd", {"archi": "liae-ud"}, ("inter_AB", "inter_B")),
                                             ("saehd", {"archi": "df-ud"}, ("inter",)),
                                             ("amp", {"inter_dims": 16}, ("inter_src", "inter_dst"))])
def test_reinit_inters_touches_only_inters(name, arch, parts):
    model = create_model(name, {"resolution": 32, **TINY, **arch})
    before = _snapshot(model)
    torch.manual_seed(123)
    model.reinit_inters()
    for k, v in model.state_dict().items():
        inside = k.split(".")[0] in parts
        assert torch.equal(v, before[k]) != (inside and k.endswith("weight")), k


def test_eyes_mouth_term_weights_with_the_batch_mask_as_it_is():
    """DeepFaceLab's eyes+mouth term, 300 mean |t * em - p * em|, with em straight from the sample (it is already
    inside the binarised face mask): a soft face mask does not scale it down again."""
    torch.manual_seed(0)
    model = create_model("saehd", {"resolution": 32, "archi": "df-ud", **TINY})
    b = random_batch(32)
    b.target_src_mask = b.target_src_mask * 0.5  # a soft stored mask
    knobs_on = TrainOptions(eyes_mouth_prio=True).knobs()
    knobs_off = TrainOptions(eyes_mouth_prio=False).knobs()
    with torch.no_grad():
        p = model(b.warped_src, b.warped_dst, knobs_on)
        on = model.losses(p, b, knobs_on, {}).terms["src_loss"]
        off = model.losses(p, b, knobs_off, {}).terms["src_loss"]
    em = b.target_src_em
    want = 300 * (b.target_src * em - p["src_src"] * em).abs().mean()
    assert torch.allclose(on - off, want, rtol=1e-5)
