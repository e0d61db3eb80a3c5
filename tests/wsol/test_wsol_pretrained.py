"""ImageNet weights from a file the test writes, in torchvision / timm naming."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import FacelabError
from facelab.wsol.models import WsolArch, create_wsol_model
from facelab.wsol.pretrained import load_pretrained


def _torchvision_vgg(model) -> dict:
    """Our VGG16 tensors renamed to torchvision's ``features.N`` keys, plus its classifier."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith("early."):
            out["features." + k[len("early."):]] = torch.randn_like(v)
        elif k.startswith("late.rest."):
            out["features." + k[len("late.rest."):]] = torch.randn_like(v)
    out["classifier.0.weight"] = torch.randn(8, 8)
    return out


def test_vgg_weights_load_and_report(tmp_path):
    model = create_wsol_model(WsolArch("bas", "vgg16", 5, 0.125))
    sd = _torchvision_vgg(model)
    path = tmp_path / "vgg16.pth"
    torch.save(sd, path)
    report = load_pretrained(model, path)
    assert torch.equal(model.early[0].weight, sd["features.0.weight"])
    assert torch.equal(getattr(model.late.rest, "28").weight, sd["features.28.weight"])
    assert report.unexpected == ("classifier.0.weight",)
    assert "generator.weight" in report.missing and any(k.startswith("late.head") for k in report.missing)
    assert len(report.loaded) == 26
    assert "unexpected 1" in report.summary()


def test_resnet_torchvision_names_and_wrapped_file(tmp_path):
    model = create_wsol_model(WsolArch("bas", "resnet50", 3, 0.125))
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("early."):
            sd["module." + k[len("early."):]] = torch.rand_like(v.float()).to(v.dtype)
        elif k.startswith("late.rest."):
            sd["module." + k[len("late.rest."):]] = torch.rand_like(v.float()).to(v.dtype)
    sd["module.fc.weight"] = torch.zeros(1000, 4)
    torch.save({"state_dict": sd}, tmp_path / "r50.pth")
    report = load_pretrained(model, tmp_path / "r50.pth")
    assert torch.equal(model.late.rest.layer4[0].conv1.weight, sd["module.layer4.0.conv1.weight"])
    assert torch.equal(model.early.bn1.running_var, sd["module.bn1.running_var"])
    assert report.unexpected == ("fc.weight",)


def test_deit_timm_names_with_resized_position_grid(tmp_path):
    model = create_wsol_model(WsolArch("sat", "deit_tiny", 4))
    sd = {}
    for k, v in model.state_dict().items():
        if k.startswith("backbone.") and "spatial" not in k:
            sd[k[len("backbone."):]] = torch.randn_like(v)
    sd["pos_embed"] = torch.randn(1, 1 + 7 * 7, 192)  # stored for a 7x7 grid: resized to the model's 14x14
    sd["head.weight"] = torch.randn(1000, 192)
    torch.save({"model": sd}, tmp_path / "deit.pth")
    report = load_pretrained(model, tmp_path / "deit.pth")
    assert torch.equal(model.backbone.blocks[11].attn.qkv.weight, sd["blocks.11.attn.qkv.weight"])
    assert model.backbone.pos_embed.shape == (1, 197, 192)
    assert torch.equal(model.backbone.pos_embed[0, 0], sd["pos_embed"][0, 0])
    assert set(report.missing) == {"backbone.spatial_token", "backbone.spatial_pos", "head.weight", "head.bias"}
    assert report.unexpected == ("head.weight",)


def test_errors_name_the_file(tmp_path):
    model = create_wsol_model(WsolArch("bas", "vgg16", 2, 0.125))
    with pytest.raises(FacelabError, match="missing.pth"):
        load_pretrained(model, tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(FacelabError, match="junk.pth"):
        load_pretrained(model, tmp_path / "junk.pth")
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "full.pth")  # width 1.0 weights
    with pytest.raises(FacelabError, match="shape"):
        load_pretrained(model, tmp_path / "full.pth")
    torch.save({"foo.weight": torch.zeros(2)}, tmp_path / "foreign.pth")
    with pytest.raises(FacelabError, match="none of its"):
        load_pretrained(model, tmp_path / "foreign.pth")
