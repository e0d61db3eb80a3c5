"""Every BAS and SAT backbone: forward/backward at tiny sizes, the output contract, paper parameter counts."""

from __future__ import annotations

import pytest
import torch

from facelab.wsol.backbones import BAS_BACKBONES
from facelab.wsol.losses import LossWeights
from facelab.wsol.models import WsolArch, create_wsol_model
from facelab.wsol.trainer import method_losses
from facelab.wsol.vit import VIT_SPECS

CASES = [("bas", b, 0.125 if b != "tiny" else 0.5, 80 if b == "inceptionv3" else 48) for b in BAS_BACKBONES.names()]
CASES += [("sat", "vit_tiny_scratch", 1.0, 48), ("sat", "deit_tiny", 1.0, 48), ("sat", "deit_small", 1.0, 32)]


@pytest.mark.parametrize("method,backbone,width,size", CASES)
def test_forward_backward_contract(method, backbone, width, size):
    torch.manual_seed(0)
    model = create_wsol_model(WsolArch(method, backbone, 3, width))
    x = torch.rand(2, 3, size, size)
    y = torch.tensor([0, 2])
    terms = method_losses(method, model, x, y, LossWeights(alpha=0.5, beta=1.0))
    assert torch.isfinite(terms["total"])
    terms["total"].backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.logits.shape == (2, 3)
    assert out.fmap.shape == (2, 1, size, size)
    assert 0.0 <= float(out.fmap.min()) and float(out.fmap.max()) <= 1.0


def test_bas_frozen_pass_gives_no_gradient_to_late_part():
    torch.manual_seed(0)
    model = create_wsol_model(WsolArch("bas", "tiny", 2, 0.5))
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 1])
    out = model.train_forward(x, y)
    out.s_bg[:, 0].sum().backward()
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in model.late.parameters())
    assert float(model.generator.weight.grad.abs().sum()) > 0  # through M_bg
    bn = [m for m in model.late.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    before = bn.running_mean.clone()
    model._frozen_late(torch.rand(2, model.generator.in_channels, 8, 8))
    assert torch.equal(bn.running_mean, before)  # the frozen pass leaves the statistics alone


def test_sat_token_grid_follows_input_size():
    model = create_wsol_model(WsolArch("sat", "deit_tiny", 2)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 48)).fmap_low.shape == (1, 1, 4, 3)
        assert model(torch.rand(1, 3, 32, 32)).fmap_low.shape == (1, 1, 2, 2)


def test_bas_topk_map_is_mean_of_best_class_maps():
    torch.manual_seed(0)
    model = create_wsol_model(WsolArch("bas", "tiny", 4, 0.5)).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        logits, maps = model.class_maps(x)
        best = int(logits.argmax())
        assert torch.allclose(model(x, topk=1).fmap_low[0, 0], maps[0, best])
        assert torch.allclose(model(x).fmap_low[0, 0], maps[0].mean(0))


@pytest.mark.parametrize("method,backbone,params", [
    ("bas", "vgg16", 30.00e6), ("bas", "resnet50", 53.87e6), ("bas", "inceptionv3", 51.69e6),
    ("bas", "mobilenetv1", 23.21e6), ("sat", "deit_tiny", 5.87e6), ("sat", "deit_small", 22.36e6)])
def test_paper_sizes_at_full_width(method, backbone, params):
    model = create_wsol_model(WsolArch(method, backbone, 200))
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(params, rel=2e-3)


def test_bad_arch_is_rejected():
    with pytest.raises(ValueError):
        WsolArch("bas", "deit_tiny")
    with pytest.raises(ValueError):
        WsolArch("cam", "tiny")
    assert set(VIT_SPECS) >= {"deit_tiny", "deit_small"}
